"""The outbox on a real PostgreSQL: delivery by SMTP and an SMS gateway on loopback, retries
with backoff, giving up (and erasing the content), sharing the work, and the LISTEN wake-up."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import psycopg
import pytest
from aiosmtpd.controller import Controller

from commands.eventstore import Statement
from commands.outbox import (
    MAX_ATTEMPTS,
    Message,
    OutboxDispatcher,
    Outgoing,
    SmsGateway,
    SmtpSender,
    enqueue,
)

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)


def put(container: Any, message: Message) -> None:
    statements: list[Statement] = enqueue(message, NOW)
    with psycopg.connect(container.database.url, autocommit=False) as conn:
        for statement in statements:
            conn.execute(statement.sql, statement.params)


def row(container: Any, message: Message) -> dict[str, Any]:
    with psycopg.connect(container.database.url) as conn:
        cur = conn.execute("SELECT recipient, payload, attempts, delivered_at, failed_at,"
                           " last_error, next_attempt_at FROM carebridge.outbox"
                           " WHERE message_id = %s", (message.message_id,))
        names = [c.name for c in cur.description or []]
        found = cur.fetchone()
    assert found is not None
    return dict(zip(names, found, strict=True))


def code_message(channel: str = "email", recipient: str = "grace@patients.test") -> Message:
    return Message("sign_in_code", channel, uuid.uuid4(), recipient,
                   {"code": "123456", "minutes": "10"})


class Inbox:
    def __init__(self) -> None:
        self.received: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    with socket.socket() as probe:  # a free loopback port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_an_email_goes_out_by_smtp_and_then_its_content_is_erased(container, smtp_server):
    controller, inbox = smtp_server
    port = controller.port
    dispatcher = OutboxDispatcher(container.database.url, {"email": SmtpSender(
        "127.0.0.1", port, "CareBridge <no-reply@carebridge.test>")})
    message = code_message()
    put(container, message)

    assert dispatcher.deliver_due() == 1

    (envelope,) = inbox.received
    email = message_from_bytes(envelope.content)
    assert envelope.rcpt_tos == ["grace@patients.test"]
    assert email["Subject"] == "Your CareBridge sign-in code"
    assert "123456" in email.get_payload()
    stored = row(container, message)
    assert stored["recipient"] is None and stored["payload"] is None
    assert stored["delivered_at"] is not None and stored["attempts"] == 1


class Gateway(BaseHTTPRequestHandler):
    received: list[tuple[str | None, dict[str, Any]]] = []
    status = 202

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Gateway.received.append((self.headers.get("Authorization"), body))
        self.send_response(Gateway.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sms_gateway() -> Iterator[str]:
    Gateway.received = []
    server = HTTPServer(("127.0.0.1", 0), Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/send"
    finally:
        server.shutdown()
        server.server_close()


def test_a_text_goes_to_the_sms_gateway_with_the_short_wording(container, sms_gateway):
    dispatcher = OutboxDispatcher(container.database.url,
                                  {"sms": SmsGateway(sms_gateway, token="gateway-secret")})
    message = code_message("sms", "+44 7700 900123")
    put(container, message)

    assert dispatcher.deliver_due() == 1

    ((authorization, body),) = Gateway.received
    assert authorization == "Bearer gateway-secret"
    assert body["to"] == "+44 7700 900123"
    assert body["text"] == "CareBridge sign-in code: 123456. Valid 10 min. Never share it."
    assert body["reference"] == str(message.message_id)


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    def send(self, message: Outgoing) -> None:
        self.calls += 1
        raise ConnectionRefusedError("provider down")


def test_a_failed_delivery_is_retried_later_and_then_given_up(container):
    failing = Failing()
    dispatcher = OutboxDispatcher(container.database.url, {"email": failing})
    message = code_message()
    put(container, message)

    assert dispatcher.deliver_due() == 0
    first = row(container, message)
    assert first["attempts"] == 1 and first["last_error"] == "ConnectionRefusedError"
    assert first["payload"] is not None  # kept for the retry
    assert dispatcher.deliver_due() == 0 and failing.calls == 1  # not due again yet

    with psycopg.connect(container.database.owner_url, autocommit=True) as conn:
        for _ in range(MAX_ATTEMPTS - 1):
            conn.execute("UPDATE carebridge.outbox SET next_attempt_at = now() - interval '1s'"
                         " WHERE message_id = %s", (message.message_id,))
            dispatcher.deliver_due()

    last = row(container, message)
    assert failing.calls == MAX_ATTEMPTS
    assert last["failed_at"] is not None
    # Kept so that support can send it again; erased once it is delivered.
    assert last["recipient"] == "grace@patients.test" and last["payload"] is not None


def test_two_dispatchers_never_send_the_same_message_twice(container):
    sent: list[uuid.UUID] = []
    lock = threading.Lock()

    class Slow:
        def send(self, message: Outgoing) -> None:
            time.sleep(0.01)
            with lock:
                sent.append(message.message_id)

    messages = [code_message() for _ in range(20)]
    for message in messages:
        put(container, message)
    dispatchers = [OutboxDispatcher(container.database.url, {"email": Slow()}) for _ in range(2)]
    threads = [threading.Thread(target=d.deliver_due) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(sent) == sorted(m.message_id for m in messages)


def test_the_dispatcher_thread_wakes_up_for_a_new_message(container):
    delivered = threading.Event()

    class Recorder:
        def send(self, message: Outgoing) -> None:
            delivered.set()

    dispatcher = OutboxDispatcher(container.database.url, {"email": Recorder()},
                                  poll_seconds=30)
    dispatcher.start()
    try:
        put(container, code_message())
        assert delivered.wait(20), "the dispatcher did not deliver the new message"
    finally:
        dispatcher.stop()
