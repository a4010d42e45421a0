"""Prescription analytics: time at each step and turnaround per request, with nothing that names
a patient, a member of staff, a medication or what anyone wrote."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from domain.prescriptions import PrescriptionRequest, RejectionReason
from projections.prescription_analytics import PrescriptionAnalytics
from projections.runner import ProjectionRunner, ensure_tables

pytestmark = pytest.mark.integration

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PROMISED = MONDAY + timedelta(days=2)
COORDINATOR = "staff:coordinator-7"
PRESCRIBER = "staff:prescriber-3"
HOUR = 3600


def hours(n: float) -> datetime:
    return MONDAY + timedelta(hours=n)


def submitted(fulfilment: str = "collection", queue: str = "coordinator", medications: int = 1,
              at: datetime = MONDAY, **overrides: Any) -> PrescriptionRequest:
    patient_id = overrides.pop("patient_id", uuid4())
    items = overrides.pop("items", [
        {"medication_id": f"med-{n}", "name": f"Medicine {n}", "dose": "one daily",
         "quantity": "28 tablets", "dosage_confirmed": True} for n in range(medications)])
    values: dict[str, Any] = {
        "patient_id": patient_id, "clinic_id": "riverside", "items": items,
        "fulfilment": fulfilment,
        "pharmacy_id": "high-street" if fulfilment == "pharmacy" else None,
        "patient_note": None, "queue": queue, "promised_by": PROMISED,
        "by": f"patient:{patient_id}", "at": at}
    values.update(overrides)
    return PrescriptionRequest(**values)


class Analytics:
    """The projection on this test's database, fed by the real runner."""

    def __init__(self, container: Any, database: Any, conn: psycopg.Connection[Any]) -> None:
        self.container, self.database, self.conn = container, database, conn
        self.runner = self.runner_with(batch_size=1000)

    def runner_with(self, batch_size: int) -> ProjectionRunner:
        return ProjectionRunner(PrescriptionAnalytics(), self.container.applications,
                                self.database.url, batch_size=batch_size)

    def save(self, *requests: PrescriptionRequest) -> None:
        self.container.prescriptions.save_all(*requests)

    def catch_up(self, runner: ProjectionRunner | None = None) -> int:
        return (runner or self.runner).catch_up(self.conn)

    def steps(self, request: PrescriptionRequest) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            "SELECT step, queue, entered_at, left_at, seconds_in_step, delayed"
            " FROM analytics.prescription_steps WHERE request_key = %s ORDER BY step_number",
            (request.id,)).fetchall()

    def turnaround(self, request: PrescriptionRequest) -> dict[str, Any]:
        cur = self.conn.execute("SELECT * FROM analytics.prescription_turnaround"
                                " WHERE request_key = %s", (request.id,))
        row = cur.fetchone()
        assert row is not None, "the request has a turnaround row"
        return dict(zip([c.name for c in cur.description or ()], row, strict=True))

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        return {table: sorted(self.conn.execute(f"SELECT * FROM analytics.{table}").fetchall(),
                              key=repr)
                for table in PrescriptionAnalytics.tables}


@pytest.fixture
def analytics(container: Any, database: Any) -> Iterator[Analytics]:
    with psycopg.connect(database.url, autocommit=True) as conn:
        ensure_tables(conn, PrescriptionAnalytics())
        yield Analytics(container, database, conn)


def collected_at_the_clinic(at: datetime = MONDAY) -> PrescriptionRequest:
    request = submitted(fulfilment="collection", medications=2, at=at)
    request.start_review(by=COORDINATOR, at=at + timedelta(hours=1))
    request.approve(by=COORDINATOR, at=at + timedelta(hours=2.5))
    request.ready_for_collection(by=COORDINATOR, at=at + timedelta(hours=5))
    request.complete(by=COORDINATOR, at=at + timedelta(hours=25))
    return request


def escalated_delayed_and_rejected() -> PrescriptionRequest:
    request = submitted(fulfilment="pharmacy")
    request.start_review(by=COORDINATOR, at=hours(1))
    request.escalate("needs a prescriber's eye", by=COORDINATOR, at=hours(2))
    request.start_review(by=PRESCRIBER, at=hours(50))
    request.mark_delayed(at=hours(60))
    request.reject(RejectionReason.NEEDS_APPOINTMENT, "Please book a review first.",
                   by=PRESCRIBER, at=hours(70))
    return request


# ---- steps and durations --------------------------------------------------------------------


def test_each_step_of_a_collected_request_has_its_time(analytics):
    request = collected_at_the_clinic()
    analytics.save(request)

    analytics.catch_up()

    assert analytics.steps(request) == [
        ("submitted", "coordinator", hours(0), hours(1), 1 * HOUR, False),
        ("under_review", "coordinator", hours(1), hours(2.5), 1.5 * HOUR, False),
        ("approved", "coordinator", hours(2.5), hours(5), 2.5 * HOUR, False),
        ("ready_for_collection", "coordinator", hours(5), hours(25), 20 * HOUR, False),
        ("completed", "coordinator", hours(25), None, None, False),
    ]
    assert analytics.turnaround(request) == {
        "request_key": request.id, "clinic_id": "riverside", "queue": "coordinator",
        "fulfilment": "collection", "medication_count": 2, "escalated": False,
        "submitted_at": hours(0), "decided_at": hours(2.5), "handed_over_at": hours(5),
        "closed_at": hours(25), "outcome": "completed", "decision_seconds": 2.5 * HOUR,
        "total_seconds": 25 * HOUR, "delayed": False, "rejection_reason": None,
    }


def test_a_step_is_closed_by_the_next_one_even_in_a_later_batch(analytics):
    request = submitted()
    analytics.save(request)
    analytics.catch_up()
    open_step = analytics.steps(request)

    request.start_review(by=COORDINATOR, at=hours(3))
    analytics.save(request)
    analytics.catch_up()
    reviewing = analytics.steps(request)

    request.approve(by=COORDINATOR, at=hours(4))
    analytics.save(request)
    analytics.catch_up()

    assert open_step == [("submitted", "coordinator", hours(0), None, None, False)]
    assert reviewing == [("submitted", "coordinator", hours(0), hours(3), 3 * HOUR, False),
                         ("under_review", "coordinator", hours(3), None, None, False)]
    assert [s[0] for s in analytics.steps(request)] == ["submitted", "under_review", "approved"]
    turnaround = analytics.turnaround(request)
    assert (turnaround["decided_at"], turnaround["decision_seconds"]) == (hours(4), 4 * HOUR)
    assert (turnaround["outcome"], turnaround["closed_at"], turnaround["total_seconds"]) == \
        (None, None, None)


def test_an_escalation_starts_a_new_wait_in_the_prescriber_queue(analytics):
    request = escalated_delayed_and_rejected()
    analytics.save(request)

    analytics.catch_up()

    assert analytics.steps(request) == [
        ("submitted", "coordinator", hours(0), hours(1), 1 * HOUR, False),
        ("under_review", "coordinator", hours(1), hours(2), 1 * HOUR, False),
        ("submitted", "prescriber", hours(2), hours(50), 48 * HOUR, False),
        ("under_review", "prescriber", hours(50), hours(70), 20 * HOUR, True),
        ("rejected", "prescriber", hours(70), None, None, True),
    ]
    turnaround = analytics.turnaround(request)
    assert {k: turnaround[k] for k in ("queue", "escalated", "outcome", "rejection_reason",
                                       "delayed", "decided_at", "handed_over_at", "closed_at",
                                       "decision_seconds", "total_seconds")} == {
        "queue": "prescriber", "escalated": True, "outcome": "rejected",
        "rejection_reason": "needs_appointment", "delayed": True, "decided_at": hours(70),
        "handed_over_at": None, "closed_at": hours(70), "decision_seconds": 70 * HOUR,
        "total_seconds": 70 * HOUR}


def test_a_delay_marked_in_a_later_batch_flags_the_current_step_and_the_request(analytics):
    request = submitted(queue="prescriber")
    request.start_review(by=PRESCRIBER, at=hours(1))
    analytics.save(request)
    analytics.catch_up()

    request.mark_delayed(at=hours(49))
    analytics.save(request)
    analytics.catch_up()
    request.approve(by=PRESCRIBER, at=hours(50))
    analytics.save(request)
    analytics.catch_up()

    assert [(s[0], s[5]) for s in analytics.steps(request)] == [
        ("submitted", False), ("under_review", True), ("approved", True)]
    assert analytics.turnaround(request)["delayed"] is True


def test_a_request_sent_to_a_pharmacy_is_handed_over_when_sent_not_when_a_handoff_fails(analytics):
    request = submitted(fulfilment="pharmacy")
    request.approve(by=COORDINATOR, at=hours(1))
    request.handoff_failed_(uuid4(), "pharmacy endpoint unavailable", by="system", at=hours(2))
    request.sent_to_pharmacy(uuid4(), by="system", at=hours(3))
    request.complete(by=COORDINATOR, at=hours(30))
    analytics.save(request)

    analytics.catch_up()

    assert [s[:5] for s in analytics.steps(request)] == [
        ("submitted", "coordinator", hours(0), hours(1), 1 * HOUR),
        ("approved", "coordinator", hours(1), hours(3), 2 * HOUR),
        ("sent_to_pharmacy", "coordinator", hours(3), hours(30), 27 * HOUR),
        ("completed", "coordinator", hours(30), None, None),
    ]
    turnaround = analytics.turnaround(request)
    assert (turnaround["fulfilment"], turnaround["handed_over_at"], turnaround["outcome"]) == \
        ("pharmacy", hours(3), "completed")


def test_a_cancelled_request_is_closed_without_a_decision(analytics):
    request = submitted()
    request.cancel(by=f"patient:{request.patient_id}", at=hours(0.5))
    analytics.save(request)

    analytics.catch_up()

    turnaround = analytics.turnaround(request)
    assert (turnaround["outcome"], turnaround["decided_at"], turnaround["decision_seconds"],
            turnaround["total_seconds"]) == ("cancelled", None, None, 0.5 * HOUR)
    assert [s[0] for s in analytics.steps(request)] == ["submitted", "cancelled"]


# ---- batches and rebuilds -------------------------------------------------------------------


def a_morning_of_requests(analytics: Analytics) -> list[PrescriptionRequest]:
    """Several requests whose events interleave in the log, saved over several transactions."""
    requests = [collected_at_the_clinic(hours(n)) for n in range(3)]
    requests.append(escalated_delayed_and_rejected())
    waiting = submitted(fulfilment="pharmacy", medications=3)
    requests.append(waiting)
    for request in requests:
        analytics.save(request)
    waiting.start_review(by=COORDINATOR, at=hours(6))
    analytics.save(waiting)
    return requests


def test_one_event_per_batch_gives_the_same_tables_as_a_rebuild_in_one_batch(analytics):
    requests = a_morning_of_requests(analytics)

    analytics.catch_up(analytics.runner_with(batch_size=1))
    one_by_one = analytics.tables()
    analytics.runner.rebuild(analytics.conn)

    assert analytics.tables() == one_by_one
    assert len(one_by_one["prescription_turnaround"]) == len(requests)
    assert len(one_by_one["prescription_steps"]) == 3 * 5 + 5 + 2


def test_the_runner_applies_each_event_once(analytics):
    a_morning_of_requests(analytics)
    analytics.catch_up()
    before = analytics.tables()

    assert analytics.catch_up() == 0
    assert analytics.tables() == before


# ---- who may read it, and what it never holds -----------------------------------------------


def test_analysts_read_the_analytics_tables_and_nothing_that_joins_them_to_a_patient(analytics):
    a_morning_of_requests(analytics)
    analytics.catch_up()
    analytics.runner.rebuild(analytics.conn)  # rebuilt tables keep the analysts' grant

    with psycopg.connect(analytics.database.owner_url, autocommit=True) as owner:
        owner.execute("SET ROLE carebridge_analyst")
        counts = [owner.execute(f"SELECT count(*) FROM analytics.{table}").fetchone()
                  for table in PrescriptionAnalytics.tables]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            owner.execute("SELECT patient_id FROM carebridge.prescription_requests")

    assert counts == [(22,), (5,)]


RECOGNISABLE = {
    "medication name": "Zorblaxamycin", "dose": "Quintuple-Spoon", "quantity": "Forty-Seven Sachets",
    "medication id": "MED-KUMQUAT", "patient note": "Ptarmigan-Feathers",
    "escalation note": "Wombat-Whisper", "internal note": "Xylophone-Secret",
    "explanation": "Jabberwock-Explained", "pharmacy": "Pharmacy-Quince",
    "coordinator": "staff:Grimsby", "prescriber": "staff:Oddleigh",
}


def test_no_row_holds_a_name_a_medication_a_note_an_explanation_or_a_patient_id(analytics):
    patient_id = uuid4()
    r = RECOGNISABLE
    request = submitted(
        fulfilment="pharmacy", patient_id=patient_id, pharmacy_id=r["pharmacy"],
        patient_note=r["patient note"], by=f"patient:{patient_id}",
        items=[{"medication_id": r["medication id"], "name": r["medication name"],
                "dose": r["dose"], "quantity": r["quantity"], "dosage_confirmed": True}])
    request.add_note(r["internal note"], by=r["coordinator"], at=hours(1))
    request.escalate(r["escalation note"], by=r["coordinator"], at=hours(2))
    request.start_review(by=r["prescriber"], at=hours(3))
    request.reject(RejectionReason.OTHER, r["explanation"], by=r["prescriber"], at=hours(4))
    analytics.save(request)

    analytics.catch_up()

    every_value = [text for table in PrescriptionAnalytics.tables for (text,) in
                   analytics.conn.execute(f"SELECT t::text FROM analytics.{table} t").fetchall()]
    assert len(every_value) == 4 + 1  # submitted, submitted (escalated), under review, rejected
    forbidden = [*RECOGNISABLE.values(), str(patient_id), patient_id.hex]
    found = [word for word in forbidden for text in every_value if word.lower() in text.lower()]
    assert found == []
    assert analytics.turnaround(request)["rejection_reason"] == "other"


def test_the_tables_have_no_column_that_could_hold_personal_or_clinical_text(analytics):
    columns = analytics.conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'analytics' AND table_name LIKE 'prescription%%'"
        " ORDER BY table_name, ordinal_position").fetchall()

    assert {c for _, c in columns} == {
        "request_key", "step_number", "clinic_id", "queue", "step", "entered_at", "left_at",
        "seconds_in_step", "fulfilment", "medication_count", "delayed", "escalated",
        "submitted_at", "decided_at", "handed_over_at", "closed_at", "outcome",
        "decision_seconds", "total_seconds", "rejection_reason"}

