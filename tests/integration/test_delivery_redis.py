"""The production broker: the dispatcher hands a due notification to dramatiq on a real
redis-server (started by the session, on loopback), a dramatiq worker runs the
`deliver_notification` actor, and the message is delivered once."""

from __future__ import annotations

import threading

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker

from api.broker import Tasks
from commands.outbox import OutboxDispatcher, Outgoing
from tests.integration.delivery_support import put, reminder, row

pytestmark = pytest.mark.integration


def test_a_notification_travels_through_redis_and_is_delivered_once(database, redis_url):
    delivered: list[Outgoing] = []
    arrived = threading.Event()

    class Provider:
        def send(self, message: Outgoing) -> None:
            delivered.append(message)
            arrived.set()

    broker = RedisBroker(url=redis_url, namespace="carebridge-test")
    outbox = OutboxDispatcher(database.url, {"email": Provider()})
    tasks = Tasks(broker, database.url, outbox=outbox)
    outbox.queue = tasks.queue_notification
    worker = dramatiq.Worker(broker, queues={"notifications"}, worker_threads=2,
                             worker_timeout=100)
    worker.start()
    try:
        message = reminder()
        put(database.url, message)

        assert outbox.queue_due() == 1
        tasks.queue_notification(message.message_id)  # a duplicate message on the broker
        assert arrived.wait(30), "the worker did not deliver the notification"
        broker.join("notifications", timeout=30_000)
        worker.join()
    finally:
        worker.stop()
        broker.close()

    assert [m.message_id for m in delivered] == [message.message_id]
    assert row(database.url, message.message_id)["delivered_at"] is not None
