"""The pharmacy handoff on a real PostgreSQL: delivery by HTTP to a pharmacy on loopback and by
file drop, retries with backoff, the dead letters and sending them again, sharing the work, the
erased prescription, the callbacks and the LISTEN wake-up."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from commands.pharmacy import (
    FileDropAdapter,
    HttpPharmacyAdapter,
    OutgoingHandoff,
    Pharmacy,
    PharmacyDirectory,
    PharmacyHandoffDispatcher,
    canonical,
)
from domain.access import Actor
from domain.errors import Conflict, Forbidden, NotFound
from domain.identity import Role

pytestmark = pytest.mark.integration
ADMIN = Actor(uuid.uuid4(), Role.CLINIC_ADMIN, frozenset({"riverside"}))
COORDINATOR = Actor(uuid.uuid4(), Role.PRESCRIPTION_COORDINATOR, frozenset({"riverside"}))
ELSEWHERE = Actor(uuid.uuid4(), Role.PRESCRIPTION_COORDINATOR, frozenset({"hillside"}))
DOCTOR = Actor(uuid.uuid4(), Role.DOCTOR, frozenset({"riverside"}))


class Pharmacist(BaseHTTPRequestHandler):
    """A pharmacy's endpoint: answers with the next scripted status (then 200) and keeps
    what it received."""

    received: list[dict[str, Any]] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Pharmacist.lock:
            Pharmacist.received.append({"key": self.headers.get("Idempotency-Key"),
                                        "authorization": self.headers.get("Authorization"),
                                        "content_type": self.headers.get("Content-Type"),
                                        "body": body})
            status = Pharmacist.statuses.pop(0) if Pharmacist.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def pharmacy_endpoint() -> Iterator[str]:
    Pharmacist.received, Pharmacist.statuses = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pharmacist)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/prescriptions"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def directory(container: Any) -> PharmacyDirectory:
    return PharmacyDirectory(container.identity.factory.datastore)


class Callbacks:
    def __init__(self) -> None:
        self.delivered: list[tuple[UUID, UUID]] = []
        self.dead: list[tuple[UUID, UUID, str]] = []

    def on_delivered(self, request_id: UUID, handoff_id: UUID, at: datetime) -> None:
        self.delivered.append((request_id, handoff_id))

    def on_dead(self, request_id: UUID, handoff_id: UUID, reason: str, at: datetime) -> None:
        self.dead.append((request_id, handoff_id, reason))


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def add_pharmacy(directory: PharmacyDirectory, channel: str, endpoint: str,
                 pharmacy_id: str = "high-street") -> None:
    directory.put(ADMIN, Pharmacy(pharmacy_id, "High Street Pharmacy", "1 High Street, Bristol",
                                  "BS1 4DJ", "0117 496 0000", channel, endpoint),
                  datetime.now(UTC))


def prescription(request_id: UUID) -> dict[str, Any]:
    return {"request_id": str(request_id), "clinic_id": "riverside",
            "patient": {"given_name": "Ada", "family_name": "Lovelace"},
            "items": [{"medication_id": "amlodipine", "name": "Amlodipine 5 mg tablets",
                       "dose": "One a day", "quantity": "28 tablets"}]}


def queue(container: Any, directory: PharmacyDirectory,
          pharmacy_id: str = "high-street") -> tuple[UUID, UUID]:
    """Queues a handoff as an approval would (statements in one transaction); returns
    (request id, handoff id)."""
    request_id = uuid.uuid4()
    statements = directory.handoff(request_id, pharmacy_id, prescription(request_id),
                                   datetime.now(UTC))
    with psycopg.connect(container.database.url) as conn:
        for statement in statements:
            conn.execute(statement.sql, statement.params)
        found = conn.execute("SELECT handoff_id FROM carebridge.pharmacy_handoffs"
                             " WHERE request_id = %s", (request_id,)).fetchone()
    assert found is not None
    return request_id, found[0]


def stored(container: Any, handoff_id: UUID) -> dict[str, Any]:
    with psycopg.connect(container.database.url) as conn:
        cur = conn.execute("SELECT * FROM carebridge.pharmacy_handoffs WHERE handoff_id = %s",
                           (handoff_id,))
        names = [c.name for c in cur.description or []]
        found = cur.fetchone()
    assert found is not None
    return dict(zip(names, found, strict=True))


def http_dispatcher(container: Any, callbacks: Callbacks, **options: Any,
                    ) -> PharmacyHandoffDispatcher:
    return PharmacyHandoffDispatcher(
        container.database.url, {"http": HttpPharmacyAdapter(token="pharmacy-secret")},
        callbacks.on_delivered, callbacks.on_dead, **options)


def test_a_prescription_reaches_the_pharmacy_with_its_idempotency_key_and_is_then_erased(
        container, directory, pharmacy_endpoint):
    add_pharmacy(directory, "http", pharmacy_endpoint)
    request_id, handoff_id = queue(container, directory)
    callbacks = Callbacks()
    dispatcher = http_dispatcher(container, callbacks)

    assert dispatcher.deliver_due() == 1

    (received,) = Pharmacist.received
    assert received["key"] == str(handoff_id)
    assert received["authorization"] == "Bearer pharmacy-secret"
    assert received["content_type"] == "application/json"
    assert received["body"] == {"handoff_id": str(handoff_id), "request_id": str(request_id),
                                "pharmacy_id": "high-street",
                                "prescription": prescription(request_id)}
    row = stored(container, handoff_id)
    assert row["status"] == "delivered" and row["attempts"] == 1
    assert row["delivered_at"] is not None and row["last_error"] is None
    assert row["payload"] is None
    assert row["payload_sha256"] == hashlib.sha256(
        canonical(prescription(request_id))).hexdigest()
    assert callbacks.delivered == [(request_id, handoff_id)]

    assert dispatcher.deliver_due() == 0  # nothing left: no second send, no second callback
    assert len(Pharmacist.received) == 1 and callbacks.delivered == [(request_id, handoff_id)]


def test_a_server_error_is_retried_with_the_same_key_and_then_delivered(
        container, directory, pharmacy_endpoint):
    add_pharmacy(directory, "http", pharmacy_endpoint)
    request_id, handoff_id = queue(container, directory)
    Pharmacist.statuses = [500]
    callbacks = Callbacks()
    dispatcher = http_dispatcher(container, callbacks, first_retry=timedelta(0))

    assert dispatcher.deliver_due() == 0  # one try per pass, even when due again at once
    first = stored(container, handoff_id)
    assert first["status"] == "pending" and first["attempts"] == 1
    assert first["last_error"] == "HTTP 500" and first["payload"] is not None
    assert callbacks.delivered == [] and callbacks.dead == []

    assert dispatcher.deliver_due() == 1

    assert [r["key"] for r in Pharmacist.received] == [str(handoff_id)] * 2
    row = stored(container, handoff_id)
    assert row["status"] == "delivered" and row["attempts"] == 2 and row["last_error"] is None
    assert callbacks.delivered == [(request_id, handoff_id)]


def test_a_refusal_no_retry_can_cure_makes_the_handoff_dead_at_once(
        container, directory, pharmacy_endpoint):
    add_pharmacy(directory, "http", pharmacy_endpoint)
    request_id, handoff_id = queue(container, directory)
    Pharmacist.statuses = [400]
    callbacks = Callbacks()
    dispatcher = http_dispatcher(container, callbacks, first_retry=timedelta(0))

    assert dispatcher.deliver_due() == 0
    assert dispatcher.deliver_due() == 0

    assert len(Pharmacist.received) == 1
    row = stored(container, handoff_id)
    assert row["status"] == "dead" and row["attempts"] == 1 and row["last_error"] == "HTTP 400"
    assert row["dead_at"] is not None
    assert row["payload"] is not None  # kept, so that staff can send it again
    assert callbacks.dead == [(request_id, handoff_id, "HTTP 400")]
    assert callbacks.delivered == []


def test_an_unreachable_pharmacy_is_retried_with_backoff_then_dead_after_the_last_attempt(
        container, directory):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    add_pharmacy(directory, "http", f"http://127.0.0.1:{port}/prescriptions")
    request_id, handoff_id = queue(container, directory)
    callbacks, clock = Callbacks(), Clock()
    dispatcher = http_dispatcher(container, callbacks, max_attempts=3, clock=clock)

    assert dispatcher.deliver_due() == 0
    first = stored(container, handoff_id)
    assert first["status"] == "pending" and first["attempts"] == 1
    assert first["last_error"] == "ConnectionRefusedError"
    assert first["next_attempt_at"] > clock.now  # backoff: not due again yet
    assert dispatcher.deliver_due() == 0
    assert stored(container, handoff_id)["attempts"] == 1

    for _ in range(2):
        clock.now += timedelta(days=1)
        dispatcher.deliver_due()

    last = stored(container, handoff_id)
    assert last["status"] == "dead" and last["attempts"] == 3
    assert last["last_error"] == "ConnectionRefusedError"
    assert callbacks.dead == [(request_id, handoff_id, "ConnectionRefusedError")]
    clock.now += timedelta(days=1)
    assert dispatcher.deliver_due() == 0 and len(callbacks.dead) == 1


def test_staff_send_a_dead_handoff_again_and_it_is_delivered(
        container, directory, pharmacy_endpoint):
    add_pharmacy(directory, "http", pharmacy_endpoint)
    request_id, handoff_id = queue(container, directory)
    Pharmacist.statuses = [404]
    callbacks = Callbacks()
    dispatcher = http_dispatcher(container, callbacks)
    dispatcher.deliver_due()
    (dead,) = directory.dead_letters(COORDINATOR)
    assert (dead.handoff_id, dead.request_id, dead.pharmacy_name) == (
        handoff_id, request_id, "High Street Pharmacy")
    assert (dead.status, dead.attempts, dead.last_error) == ("dead", 1, "HTTP 404")
    assert directory.dead_letters(ELSEWHERE) == []  # another clinic's handoff
    with pytest.raises(Forbidden):
        directory.dead_letters(DOCTOR)
    with pytest.raises(Forbidden):
        directory.retry(handoff_id, DOCTOR, datetime.now(UTC))
    with pytest.raises(NotFound):
        directory.retry(handoff_id, ELSEWHERE, datetime.now(UTC))

    again = directory.retry(handoff_id, COORDINATOR, datetime.now(UTC))
    assert (again.status, again.attempts, again.dead_at) == ("pending", 0, None)
    assert directory.retry(handoff_id, COORDINATOR, datetime.now(UTC)).status == "pending"
    assert stored(container, handoff_id)["retried_by"] == COORDINATOR.ref
    assert directory.dead_letters(COORDINATOR) == []

    assert dispatcher.deliver_due() == 1

    assert [r["key"] for r in Pharmacist.received] == [str(handoff_id)] * 2
    row = stored(container, handoff_id)
    assert row["status"] == "delivered" and row["payload"] is None
    assert callbacks.dead == [(request_id, handoff_id, "HTTP 404")]
    assert callbacks.delivered == [(request_id, handoff_id)]
    with pytest.raises(Conflict):
        directory.retry(handoff_id, COORDINATOR, datetime.now(UTC))


def test_two_dispatchers_never_send_the_same_handoff_twice(
        container, directory, pharmacy_endpoint):
    add_pharmacy(directory, "http", pharmacy_endpoint)
    handoffs = [queue(container, directory)[1] for _ in range(20)]
    callbacks = Callbacks()
    dispatchers = [http_dispatcher(container, callbacks) for _ in range(2)]
    threads = [threading.Thread(target=d.deliver_due) for d in dispatchers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(r["key"] for r in Pharmacist.received) == sorted(str(h) for h in handoffs)
    assert sorted(h for _, h in callbacks.delivered) == sorted(handoffs)


def test_a_failing_callback_leaves_the_delivered_handoff_delivered(
        container, directory, pharmacy_endpoint):
    add_pharmacy(directory, "http", pharmacy_endpoint)
    _, handoff_id = queue(container, directory)
    calls: list[UUID] = []

    def fails(request_id: UUID, handoff_id: UUID, at: datetime) -> None:
        calls.append(handoff_id)
        raise RuntimeError("the prescriptions context is busy")

    dispatcher = PharmacyHandoffDispatcher(container.database.url,
                                           {"http": HttpPharmacyAdapter()}, fails, None)

    assert dispatcher.deliver_due() == 1
    assert dispatcher.deliver_due() == 0

    assert calls == [handoff_id] and len(Pharmacist.received) == 1
    assert stored(container, handoff_id)["status"] == "delivered"


def drop_dispatcher(container: Any, root: Path, callbacks: Callbacks,
                    ) -> PharmacyHandoffDispatcher:
    return PharmacyHandoffDispatcher(container.database.url, {"file": FileDropAdapter(root)},
                                     callbacks.on_delivered, callbacks.on_dead)


def test_the_file_drop_writes_the_prescription_whole_and_never_twice(
        container, directory, tmp_path):
    root = tmp_path / "pharmacy-drop"
    add_pharmacy(directory, "file", "high-street")
    request_id, handoff_id = queue(container, directory)
    callbacks = Callbacks()

    assert drop_dispatcher(container, root, callbacks).deliver_due() == 1

    folder = root / "high-street"
    final = folder / f"{handoff_id}.json"
    assert [p.name for p in folder.iterdir()] == [final.name]  # no temporary file left behind
    assert json.loads(final.read_bytes()) == {
        "handoff_id": str(handoff_id), "request_id": str(request_id),
        "pharmacy_id": "high-street", "prescription": prescription(request_id)}
    assert stored(container, handoff_id)["payload"] is None
    assert callbacks.delivered == [(request_id, handoff_id)]

    # Delivered again (say the process stopped before it could mark the row): the file is
    # already there, so nothing new is written and it counts as delivered.
    written = final.read_bytes(), final.stat().st_mtime_ns
    FileDropAdapter(root).deliver(OutgoingHandoff(handoff_id, request_id, "high-street",
                                                  "high-street", {"changed": True}))
    assert (final.read_bytes(), final.stat().st_mtime_ns) == written
    assert [p.name for p in folder.iterdir()] == [final.name]


def test_a_file_already_dropped_counts_as_delivered(container, directory, tmp_path):
    root = tmp_path / "pharmacy-drop"
    add_pharmacy(directory, "file", "high-street")
    request_id, handoff_id = queue(container, directory)
    (root / "high-street").mkdir(parents=True)
    (root / "high-street" / f"{handoff_id}.json").write_text('{"earlier": true}')
    callbacks = Callbacks()

    assert drop_dispatcher(container, root, callbacks).deliver_due() == 1

    assert json.loads((root / "high-street" / f"{handoff_id}.json").read_text()) == {
        "earlier": True}
    assert stored(container, handoff_id)["status"] == "delivered"
    assert callbacks.delivered == [(request_id, handoff_id)]


def test_a_file_drop_that_fails_before_the_rename_leaves_no_file_and_is_retried(
        container, directory, tmp_path, monkeypatch):
    root = tmp_path / "pharmacy-drop"
    add_pharmacy(directory, "file", "high-street")
    _, handoff_id = queue(container, directory)

    def disk_full(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("commands.pharmacy.os.replace", disk_full)
    assert drop_dispatcher(container, root, Callbacks()).deliver_due() == 0

    assert list((root / "high-street").iterdir()) == []
    row = stored(container, handoff_id)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "OSError")


def test_the_auditor_reads_the_handoffs_status_but_never_the_prescription(
        container, directory, pharmacy_endpoint):
    add_pharmacy(directory, "http", pharmacy_endpoint)
    _, handoff_id = queue(container, directory)
    with psycopg.connect(container.database.owner_url) as conn:
        conn.execute("SET ROLE carebridge_auditor")
        assert conn.execute("SELECT status, attempts FROM carebridge.pharmacy_handoffs"
                            " WHERE handoff_id = %s", (handoff_id,)).fetchone() == ("pending", 0)
        assert conn.execute("SELECT count(*) FROM carebridge.pharmacies").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT payload FROM carebridge.pharmacy_handoffs")


def test_the_dispatcher_thread_wakes_up_for_a_new_handoff(container, directory):
    delivered = threading.Event()

    class Recorder:
        def deliver(self, handoff: OutgoingHandoff) -> None:
            delivered.set()

    add_pharmacy(directory, "file", "high-street")
    dispatcher = PharmacyHandoffDispatcher(container.database.url, {"file": Recorder()},
                                           poll_seconds=30)
    dispatcher.start()
    try:
        queue(container, directory)
        assert delivered.wait(20), "the dispatcher did not deliver the new handoff"
    finally:
        dispatcher.stop()
