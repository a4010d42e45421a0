"""Background work with dramatiq: Redis in production, an in-process broker and worker locally.

Actors are registered here against the chosen broker (dramatiq binds an actor to a broker when
it is declared), and their code lives next to what they deliver: `deliver_notification` is the
outbox's `deliver` (commands/outbox.py). Its retries are the outbox's (backoff kept in the row),
not dramatiq's: a message that failed is queued again by the dispatcher when it is due.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import dramatiq
from dramatiq.brokers.stub import StubBroker

from api.settings import Settings
from commands.housekeeping import purge_expired_idempotency_keys, purge_spent_webauthn_challenges
from commands.outbox import OutboxDispatcher

log = logging.getLogger("carebridge.worker")


def create_broker(settings: Settings) -> dramatiq.Broker:
    if settings.broker_url:
        from dramatiq.brokers.redis import RedisBroker

        broker: dramatiq.Broker = RedisBroker(url=settings.broker_url)
    else:
        broker = StubBroker()
        broker.emit_after("process_boot")
    dramatiq.set_broker(broker)
    return broker


class Tasks:
    """The actors of this deployment, bound to one broker."""

    def __init__(self, broker: dramatiq.Broker, database_url: str,
                 uploads: Any | None = None, outbox: OutboxDispatcher | None = None) -> None:
        def purge() -> None:
            removed = purge_expired_idempotency_keys(database_url)
            log.info("purged %d expired idempotency keys", removed)

        self.purge_idempotency_keys: dramatiq.Actor[[], None] = dramatiq.Actor(
            purge, actor_name="purge_idempotency_keys", queue_name="housekeeping",
            priority=0, broker=broker, options={"max_retries": 3})

        def purge_challenges() -> None:
            removed = purge_spent_webauthn_challenges(database_url)
            log.info("purged %d expired passkey challenges", removed)

        self.purge_webauthn_challenges: dramatiq.Actor[[], None] = dramatiq.Actor(
            purge_challenges, actor_name="purge_webauthn_challenges", queue_name="housekeeping",
            priority=0, broker=broker, options={"max_retries": 3})

        def purge_uploads() -> None:
            if uploads is not None:
                log.info("purged %d abandoned uploads", uploads.purge_expired(datetime.now(UTC)))

        self.purge_uploads: dramatiq.Actor[[], None] = dramatiq.Actor(
            purge_uploads, actor_name="purge_uploads", queue_name="housekeeping",
            priority=0, broker=broker, options={"max_retries": 3})

        def deliver_notification(message_id: str) -> None:
            if outbox is None:
                raise LookupError("this worker has no outbox to deliver from")
            outcome = outbox.deliver(UUID(message_id))
            log.debug("notification %s: %s", message_id, outcome)

        self.deliver_notification: dramatiq.Actor[[str], None] = dramatiq.Actor(
            deliver_notification, actor_name="deliver_notification",
            queue_name="notifications", priority=0, broker=broker,
            options={"max_retries": 0})

    def queue_notification(self, message_id: UUID) -> None:
        """What the outbox dispatcher calls for each due row."""
        self.deliver_notification.send(str(message_id))


class InProcessWorker:
    """A dramatiq worker in this process plus a timer that enqueues periodic housekeeping."""

    def __init__(self, broker: dramatiq.Broker, tasks: Tasks, threads: int,
                 every_seconds: float = 3600.0) -> None:
        self.worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=1000)
        self._stop = threading.Event()
        self._every = every_seconds
        self._periodic: list[Callable[[], Any]] = [tasks.purge_idempotency_keys.send,
                                                   tasks.purge_webauthn_challenges.send,
                                                   tasks.purge_uploads.send]
        self._timer = threading.Thread(target=self._tick, name="housekeeping", daemon=True)

    def start(self) -> None:
        self.worker.start()
        self._timer.start()

    def _tick(self) -> None:
        while not self._stop.wait(self._every):
            for send in self._periodic:
                send()

    def stop(self) -> None:
        self._stop.set()
        self.worker.stop(timeout=5000)

