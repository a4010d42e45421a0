"""Helpers of the delivery tests: outbox rows put and read on a real PostgreSQL, senders that
record what they were given, and an SMS provider on loopback that de-duplicates by the
message's reference, as real providers do."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import psycopg

from commands.outbox import Contacts, Message, Outgoing, enqueue
from domain.profiles import CommunicationPreferences, QuietHours

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)


def put(url: str, message: Message, at: datetime = NOW, not_before: datetime | None = None) -> None:
    with psycopg.connect(url, autocommit=False) as conn:
        for statement in enqueue(message, at, not_before=not_before):
            conn.execute(statement.sql, statement.params)


def row(url: str, message_id: UUID) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        cur = conn.execute("SELECT * FROM carebridge.outbox WHERE message_id = %s", (message_id,))
        names = [c.name for c in cur.description or []]
        found = cur.fetchone()
    assert found is not None
    return dict(zip(names, found, strict=True))


def reminder(account_id: UUID | None = None, kind: str = "appointment_reminder") -> Message:
    """A care notification, written for email as the reminder planner writes it."""
    params = {"when": "24 November 2026 at 10:30 GMT", "clinic": "Riverside"} \
        if kind == "appointment_reminder" else {}
    return Message(kind, "email", account_id or uuid.uuid4(), "ada@patients.test", params)


def sign_in_code(account_id: UUID | None = None) -> Message:
    return Message("sign_in_code", "email", account_id or uuid.uuid4(), "ada@patients.test",
                   {"code": "123456", "minutes": "10"})


def preferring(*channels: str, quiet: tuple[str, str, str] | None = None
               ) -> CommunicationPreferences:
    return CommunicationPreferences(channels, QuietHours(*quiet) if quiet else None,
                                    "en").checked()


@dataclass
class Recorder:
    """A sender that keeps every message it was given."""

    sent: list[Outgoing] = field(default_factory=list)

    def send(self, message: Outgoing) -> None:
        self.sent.append(message)


@dataclass
class Patient:
    """Preferences and contacts the dispatcher's hooks return for every account."""

    preferences: CommunicationPreferences | None = None
    contacts: Contacts = field(default_factory=lambda: Contacts("ada@patients.test",
                                                                "+44 7700 900123"))

    def preferences_of(self, account_id: UUID) -> CommunicationPreferences | None:
        return self.preferences

    def contacts_of(self, account_id: UUID) -> Contacts:
        return self.contacts


class SmsProvider:
    """An SMS provider on loopback. Each request's `reference` (the outbox message id) is
    accepted once; a repeated reference is answered 200 and dropped, as providers do. With
    `hold` set, a request is accepted and then left unanswered until `release()`."""

    def __init__(self) -> None:
        self.accepted: dict[str, int] = {}
        self.duplicates: list[str] = []
        self.arrived = threading.Event()
        self._held = threading.Event()
        self._lock = threading.Lock()
        self.holding = False

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False
        self._held.set()

    def receive(self, body: dict[str, Any]) -> None:
        reference = body["reference"]
        with self._lock:
            if reference in self.accepted:
                self.duplicates.append(reference)
            else:
                self.accepted[reference] = 1
        self.arrived.set()
        if self.holding:
            self._held.wait(120)

    @contextmanager
    def serving(self) -> Iterator[str]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                provider.receive(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/messages"
        finally:
            self.release()
            server.shutdown()
            server.server_close()
