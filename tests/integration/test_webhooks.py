"""Outbound webhooks on a real PostgreSQL, to a clinic system on loopback: planned once per event
and subscription, delivered once with a valid signature, retried after a 500, dead after the
last attempt and sent again from the dead letters, and never sent to a non-loopback address.
The follower that plans them runs with its tracking position, as the other process managers."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg.rows import dict_row

from commands.webhooks import (
    SIGNATURE_HEADER,
    TOPICS,
    WebhookDispatcher,
    WebhookPlanner,
    Webhooks,
    sign,
    verify,
)
from domain.access import Actor
from domain.errors import Forbidden, InvalidInput
from domain.identity import Role
from projections.process_managers import WebhookPlanning
from projections.runner import ProjectionRunner, ensure_tracking
from tests.api.care_support import in_care_team
from tests.api.record_support import hba1c

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)
ADMIN = Actor(uuid.uuid4(), Role.CLINIC_ADMIN, frozenset({"riverside"}))
ELSEWHERE = Actor(uuid.uuid4(), Role.CLINIC_ADMIN, frozenset({"hillside"}))
SECRET = "a shared secret of thirty-two chars"
BOOKED = "carebridge:appointments.Appointment.Confirmed.v1"
CANCELLED = "carebridge:appointments.Appointment.Cancelled.v1"


class ClinicSystem(BaseHTTPRequestHandler):
    """The clinic system's endpoint: answers with the next scripted status (then 200) and
    keeps what it received."""

    received: list[dict[str, Any]] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with ClinicSystem.lock:
            ClinicSystem.received.append({"headers": self.headers, "body": body})
            status = ClinicSystem.statuses.pop(0) if ClinicSystem.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    ClinicSystem.received, ClinicSystem.statuses = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ClinicSystem)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/carebridge"
    finally:
        server.shutdown()
        server.server_close()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def webhooks(container: Any) -> Webhooks:
    return Webhooks(container.pharmacies.datastore)


@dataclass
class FakeEvent:
    """What the planner reads of an appointments event."""

    originator_id: UUID
    originator_version: int
    at: datetime


def booking(container: Any, clinic_id: str = "riverside",
            known_as: str | None = None) -> tuple[UUID, UUID]:
    """An appointment in the booking lookup, for a patient with an NHS number and, if given,
    a Riverside EMIS number; returns its id and the patient's."""
    appointment_id, patient_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(container.database.url) as conn:
        conn.execute(
            "INSERT INTO carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
            " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status, updated_at)"
            " VALUES (%s, %s, %s, %s, NULL, 'gp-video', %s, %s, 'booked', %s)",
            (appointment_id, patient_id, uuid.uuid4(), clinic_id, NOW + timedelta(days=2),
             NOW + timedelta(days=2, minutes=15), NOW))
        if known_as:
            conn.execute("INSERT INTO carebridge.patient_identifier_index (system, value,"
                         " patient_id) VALUES ('riverside-emis', %s, %s),"
                         " ('nhs', '9434765919', %s)", (known_as, patient_id, patient_id))
    return appointment_id, patient_id


def plan(container: Any, topic: str, appointment_id: UUID, version: int = 2) -> None:
    with psycopg.connect(container.database.url, row_factory=dict_row) as conn:
        cur = conn.cursor()
        for statement in WebhookPlanner().statements(
                topic, FakeEvent(appointment_id, version, NOW), cur):
            cur.execute(statement.sql, statement.params)


def deliveries(container: Any) -> list[dict[str, Any]]:
    with psycopg.connect(container.database.url, row_factory=dict_row) as conn:
        return conn.execute("SELECT * FROM carebridge.webhook_deliveries"
                            " ORDER BY created_at, delivery_id").fetchall()


def subscribe(webhooks: Webhooks, url: str, types: Sequence[str] = ("appointment.booked",),
              subscription_id: str = "emis") -> None:
    webhooks.put(ADMIN, "riverside", subscription_id, url, list(types), SECRET, NOW)


def test_a_booking_is_delivered_once_signed_with_ids_and_statuses_only(container, webhooks,
                                                                      endpoint):
    subscribe(webhooks, endpoint)
    appointment_id, patient_id = booking(container, known_as="R12345")
    plan(container, BOOKED, appointment_id)
    plan(container, BOOKED, appointment_id)  # the same event again plans nothing more
    clock = Clock()
    dispatcher = WebhookDispatcher(container.database.url, clock=clock, loopback_only=True)

    assert dispatcher.deliver_due() == 1
    assert dispatcher.deliver_due() == 0

    (received,) = ClinicSystem.received
    headers, body = received["headers"], received["body"]
    assert verify(SECRET, body, headers[SIGNATURE_HEADER], int(NOW.timestamp()))
    assert headers[SIGNATURE_HEADER] == sign(SECRET, body, int(NOW.timestamp()))
    assert not verify("another secret entirely, 32 chars", body, headers[SIGNATURE_HEADER],
                      int(NOW.timestamp()))
    assert not verify(SECRET, body + b" ", headers[SIGNATURE_HEADER], int(NOW.timestamp()))
    assert not verify(SECRET, body, headers[SIGNATURE_HEADER], int(NOW.timestamp()) + 3600)
    assert headers["X-CareBridge-Event"] == "appointment.booked"
    (row,) = deliveries(container)
    assert headers["X-CareBridge-Delivery"] == str(row["delivery_id"])
    assert json.loads(body) == {
        "event_id": f"{appointment_id}:2", "type": "appointment.booked", "clinic_id": "riverside",
        "occurred_at": NOW.isoformat(),
        "data": {"appointment_id": str(appointment_id), "status": "booked",
                 "patient": {"id": str(patient_id), "identifiers": {"riverside-emis": "R12345"}}}}
    assert row["status"] == "delivered" and row["attempts"] == 1


def test_only_subscribed_event_types_of_the_clinic_are_planned(container, webhooks, endpoint):
    subscribe(webhooks, endpoint, ("appointment.cancelled",))
    riverside, _ = booking(container)
    hillside, _ = booking(container, "hillside")
    plan(container, BOOKED, riverside)
    plan(container, CANCELLED, hillside)
    assert deliveries(container) == []
    plan(container, CANCELLED, riverside, version=3)
    assert [d["event_type"] for d in deliveries(container)] == ["appointment.cancelled"]


@pytest.mark.parametrize(("name", "status"), [("Submitted", "submitted"),
                                             ("Approved", "approved"),
                                             ("SentToPharmacy", "sent_to_pharmacy")])
def test_a_prescription_request_tells_its_status_and_nothing_else(container, webhooks, endpoint,
                                                                  name, status):
    subscribe(webhooks, endpoint, ("prescription.status",))
    request_id, patient_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(container.database.url, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO carebridge.prescription_requests (request_id, patient_id,"
                     " clinic_id, queue, status, submitted_at, promised_by, updated_at)"
                     " VALUES (%s, %s, 'riverside', 'prescriber', 'submitted', %s, %s, %s)",
                     (request_id, patient_id, NOW, NOW, NOW))
        cur = conn.cursor()
        for statement in WebhookPlanner().statements(
                f"carebridge:prescriptions.PrescriptionRequest.{name}.v1",
                FakeEvent(request_id, 1, NOW), cur):
            cur.execute(statement.sql, statement.params)
    (row,) = deliveries(container)
    assert row["payload"]["data"] == {"prescription_request_id": str(request_id),
                                      "status": status,
                                      "patient": {"id": str(patient_id), "identifiers": {}}}


def test_the_planner_follows_topics_the_domain_records_and_never_a_note():
    from domain.appointments import Appointment
    from domain.prescriptions import PrescriptionRequest
    from domain.records import Record

    recorded = {event.TOPIC for aggregate in (Appointment, PrescriptionRequest, Record)
                for event in vars(aggregate).values() if hasattr(event, "TOPIC")}
    followed = {topic for topics in TOPICS.values() for topic in topics}
    assert followed <= recorded
    assert not any("Note" in topic for topic in followed)


def test_a_failed_delivery_is_retried_after_a_wait(container, webhooks, endpoint):
    subscribe(webhooks, endpoint)
    appointment_id, _ = booking(container)
    plan(container, BOOKED, appointment_id)
    ClinicSystem.statuses = [500]
    clock = Clock()
    dispatcher = WebhookDispatcher(container.database.url, clock=clock, loopback_only=True)

    assert dispatcher.deliver_due() == 0
    (row,) = deliveries(container)
    assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "HTTP 500")
    assert NOW + timedelta(seconds=15) <= row["next_attempt_at"] <= NOW + timedelta(seconds=30)
    assert dispatcher.deliver_due() == 0  # not yet due
    clock.now = row["next_attempt_at"]

    assert dispatcher.deliver_due() == 1
    first, second = ClinicSystem.received
    assert first["body"] == second["body"]
    assert first["headers"]["X-CareBridge-Delivery"] == second["headers"]["X-CareBridge-Delivery"]
    (row,) = deliveries(container)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 2, None)


def test_a_delivery_is_dead_after_the_last_attempt_and_can_be_sent_again(container, webhooks,
                                                                         endpoint):
    subscribe(webhooks, endpoint)
    appointment_id, _ = booking(container)
    plan(container, BOOKED, appointment_id)
    ClinicSystem.statuses = [503, 500, 502]
    clock = Clock()
    dispatcher = WebhookDispatcher(container.database.url, max_attempts=3, clock=clock,
                                   loopback_only=True)
    for _ in range(3):
        assert dispatcher.deliver_due() == 0
        clock.now += timedelta(hours=7)

    (row,) = deliveries(container)
    assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 3, "HTTP 502")
    (dead,) = webhooks.deliveries(ADMIN, "dead")
    assert dead.delivery_id == row["delivery_id"] and dead.event_type == "appointment.booked"
    assert webhooks.deliveries(ELSEWHERE, "dead") == []
    assert dispatcher.deliver_due() == 0  # dead stays dead

    again = webhooks.retry(ADMIN, dead.delivery_id, clock.now)
    assert (again.status, again.attempts) == ("pending", 0)
    assert dispatcher.deliver_due() == 1
    assert len(ClinicSystem.received) == 4
    assert webhooks.deliveries(ADMIN, "dead") == []


def test_an_answer_no_retry_can_cure_is_dead_at_once(container, webhooks, endpoint):
    subscribe(webhooks, endpoint)
    appointment_id, _ = booking(container)
    plan(container, BOOKED, appointment_id)
    ClinicSystem.statuses = [410]
    dispatcher = WebhookDispatcher(container.database.url, clock=Clock(), loopback_only=True)
    assert dispatcher.deliver_due() == 0
    (row,) = deliveries(container)
    assert (row["status"], row["attempts"], row["last_error"]) == ("dead", 1, "HTTP 410")


def test_nothing_is_sent_to_an_address_that_is_not_loopback(container, webhooks, endpoint):
    subscribe(webhooks, "https://ehr.riverside.example/hooks")
    appointment_id, _ = booking(container)
    plan(container, BOOKED, appointment_id)
    dispatcher = WebhookDispatcher(container.database.url, clock=Clock(), loopback_only=True)
    assert dispatcher.deliver_due() == 0
    (row,) = deliveries(container)
    assert (row["status"], row["last_error"]) == ("dead", "address not allowed")
    assert ClinicSystem.received == []


def test_subscriptions_are_the_clinic_administrators_and_every_error_is_named(webhooks):
    with pytest.raises(InvalidInput) as refused:
        webhooks.put(ADMIN, "riverside", "EMIS!", "http://ehr.riverside.example/hooks",
                     ["appointment.booked", "record.content"], "short", NOW)
    assert [e.field for e in refused.value.errors] == [
        "subscription_id", "url", "event_types", "secret"]
    with pytest.raises(Forbidden):
        webhooks.put(ELSEWHERE, "riverside", "emis", "https://ehr.riverside.example/hooks",
                     ["appointment.booked"], SECRET, NOW)
    saved, issued = webhooks.put(ADMIN, "riverside", "emis", "https://ehr.riverside.example/h",
                                 ["record.released"], None, NOW)
    assert issued is not None and len(issued) >= 32  # a new subscription's secret, shown once
    assert saved.event_types == ["record.released"]
    changed, issued_again = webhooks.put(ADMIN, "riverside", "emis",
                                         "https://ehr.riverside.example/h",
                                         ["record.released", "prescription.status"], None, NOW)
    assert issued_again is None and changed.event_types == ["prescription.status",
                                                            "record.released"]
    webhooks.delete(ADMIN, "riverside", "emis")
    assert webhooks.get(ADMIN, "riverside", "emis") is None


# ---- the follower -------------------------------------------------------------------------------


def test_the_follower_plans_each_released_record_once_with_its_tracking(
        container, clock, sign_up, staff_member, webhooks, endpoint):
    subscribe(webhooks, endpoint, ("record.released",))
    ada, doctor = sign_up(), staff_member("doctor")
    in_care_team(container, clock, ada["account_id"], doctor["account_id"])
    clinician = Actor(UUID(doctor["account_id"]), Role.DOCTOR, frozenset({"riverside"}))
    entered = container.applications["records"].enter(
        clinician, UUID(ada["account_id"]), {"kind": "lab_result", "code": "hba1c",
                                             "title": "HbA1c", "content": hba1c(),
                                             "release_now": True}, clock.now)
    record_id = entered.result["record_id"]
    follower = ProjectionRunner(WebhookPlanning(), container.applications,
                                container.database.url)
    with psycopg.connect(container.database.url) as conn:
        with conn.transaction():
            ensure_tracking(conn.cursor(), follower.projection, follower.projection.name)
        assert follower.catch_up(conn) > 0
        assert follower.catch_up(conn) == 0
    (row,) = deliveries(container)
    assert row["event_type"] == "record.released"
    assert row["payload"]["data"] == {"record_id": str(record_id), "status": "released",
                                      "patient": {"id": ada["account_id"], "identifiers": {}}}
    assert "HbA1c" not in json.dumps(row["payload"])
