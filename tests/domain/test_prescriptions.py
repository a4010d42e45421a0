"""Repeat prescriptions in memory: eligibility and its reasons, the request's steps, one open
request per medicine, the promised date over weekends and clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.prescriptions import (
    AlreadyRequested,
    Medication,
    MedicationList,
    PrescriptionRequest,
    Reason,
    RejectionReason,
    RequestClosed,
    Status,
    WrongStep,
    eligibility,
    promised_by,
)

TODAY = date(2026, 11, 23)
AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LONDON = ZoneInfo("Europe/London")
C = "prescription_coordinator:c"


def medicine(**changes: object) -> Medication:
    values: dict[str, object] = {
        "medication_id": "amlodipine", "name": "Amlodipine 5 mg", "dose": "One a day",
        "quantity": "28 tablets", "issues_remaining": 3,
        "review_date": TODAY + timedelta(days=90), "needs_review": False, "controlled": False}
    values.update(changes)
    return Medication(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "reason"), [
    ({"controlled": True}, Reason.CONTROLLED_DRUG),
    ({"review_date": TODAY}, Reason.REVIEW_DUE),
    ({"review_date": TODAY - timedelta(days=28)}, Reason.REVIEW_DUE),
    ({"review_date": TODAY - timedelta(days=29)}, Reason.NEEDS_APPOINTMENT),
    ({"issues_remaining": 0}, Reason.NO_ISSUES_LEFT),
    ({"last_issued_on": TODAY - timedelta(days=20)}, Reason.TOO_SOON),
    ({"last_issued_on": TODAY - timedelta(days=9), "min_days_between_issues": 10},
     Reason.TOO_SOON),
])
def test_each_reason_a_medicine_cannot_be_requested(changes, reason) -> None:
    found = eligibility(medicine(**changes), TODAY, None, 21)
    assert not found.requestable and found.reason is reason and found.explanation


def test_requestable_on_the_day_the_interval_ends_and_routing_follows_review() -> None:
    m = medicine(last_issued_on=TODAY - timedelta(days=21))
    assert eligibility(m, TODAY, None, 21).requestable
    assert eligibility(m, TODAY, None, 21).queue.value == "coordinator"
    assert eligibility(medicine(needs_review=True), TODAY, None, 21).queue.value == "prescriber"
    held = eligibility(m, TODAY, uuid4(), 21)
    assert held.reason is Reason.ALREADY_REQUESTED


@given(st.integers(min_value=0, max_value=400), st.integers(min_value=1, max_value=365))
def test_too_soon_names_the_first_day_it_may_be_requested(days_ago: int, interval: int) -> None:
    m = medicine(last_issued_on=TODAY - timedelta(days=days_ago),
                 min_days_between_issues=interval)
    found = eligibility(m, TODAY, None, 21)
    assert found.requestable == (days_ago >= interval)
    if not found.requestable:
        assert found.requestable_from == TODAY - timedelta(days=days_ago) + timedelta(days=interval)


def test_one_open_request_per_medicine_and_issuing_counts_down() -> None:
    patient = uuid4()
    medicines = MedicationList(patient_id=patient, by=C, at=AT)
    assert medicines.record(medicine(), "import", by=C, at=AT)
    assert not medicines.record(medicine(), "import", by=C, at=AT), "the same record twice"
    first, second = uuid4(), uuid4()
    medicines.requested(first, ["amlodipine"], by=C, at=AT)
    with pytest.raises(AlreadyRequested) as refused:
        medicines.requested(second, ["amlodipine"], by=C, at=AT)
    assert refused.value.extensions["request_id"] == str(first)
    medicines.issued(first, TODAY, by=C, at=AT)
    assert medicines.medications["amlodipine"].issues_remaining == 2
    assert medicines.medications["amlodipine"].last_issued_on == TODAY
    assert medicines.request_closed(first, by=C, at=AT)
    medicines.requested(second, ["amlodipine"], by=C, at=AT)
    # A re-import without an issue date keeps the issue CareBridge recorded.
    assert not medicines.record(medicine(issues_remaining=2), "import", by=C, at=AT)


def test_a_bad_medication_record_names_every_field() -> None:
    medicines = MedicationList(patient_id=uuid4(), by=C, at=AT)
    with pytest.raises(InvalidInput) as refused:
        medicines.record(medicine(name=" ", issues_remaining=-1, min_days_between_issues=0),
                         "staff", by=C, at=AT)
    assert {e.field for e in refused.value.errors} == {"name", "issues_remaining",
                                                       "min_days_between_issues"}


def request(fulfilment: str = "collection") -> PrescriptionRequest:
    return PrescriptionRequest(
        patient_id=uuid4(), clinic_id="riverside",
        items=[{"medication_id": "amlodipine", "name": "Amlodipine 5 mg", "dose": "One a day",
                "quantity": "28 tablets", "dosage_confirmed": True}],
        fulfilment=fulfilment, pharmacy_id="p1" if fulfilment == "pharmacy" else None,
        patient_note=None, queue="coordinator",
        promised_by=AT + timedelta(days=2), by="patient:p", at=AT)


def test_collection_steps_in_order_and_retries_record_nothing() -> None:
    r = request()
    assert r.start_review(by=C, at=AT) and not r.start_review(by=C, at=AT)
    assert r.approve(by=C, at=AT) and not r.approve(by=C, at=AT)
    with pytest.raises(WrongStep):
        r.complete(by=C, at=AT)
    assert r.ready_for_collection(by=C, at=AT)
    assert r.complete(by=C, at=AT)
    assert [s for s, _ in r.timeline] == ["submitted", "under_review", "approved",
                                          "ready_for_collection", "completed"]
    with pytest.raises(RequestClosed):
        r.reject(RejectionReason.OTHER, "No", by=C, at=AT)


def test_pharmacy_requests_are_sent_not_collected() -> None:
    r = request("pharmacy")
    r.approve(by=C, at=AT)
    with pytest.raises(WrongStep):
        r.ready_for_collection(by=C, at=AT)
    handoff = uuid4()
    assert r.handoff_failed_(handoff, "HTTP 503", by="system", at=AT)
    assert r.sent_to_pharmacy(handoff, by="system", at=AT)
    assert not r.sent_to_pharmacy(handoff, by="system", at=AT), "a repeated notice"
    assert r.status is Status.SENT_TO_PHARMACY and not r.handoff_failed


def test_rejection_needs_words_for_the_patient_and_cancel_only_while_submitted() -> None:
    r = request()
    with pytest.raises(InvalidInput):
        r.reject(RejectionReason.TOO_SOON, "  ", by=C, at=AT)
    r.start_review(by=C, at=AT)
    with pytest.raises(RequestClosed):
        r.cancel(by="patient:p", at=AT)
    assert r.reject(RejectionReason.TOO_SOON, "Please ask again next week.", by=C, at=AT)
    fresh = request()
    assert fresh.cancel(by="patient:p", at=AT) and fresh.status is Status.CANCELLED


def test_delayed_once_and_only_past_the_promise_while_the_clinic_still_has_it() -> None:
    r = request()
    assert not r.mark_delayed(AT + timedelta(days=1))
    assert r.mark_delayed(AT + timedelta(days=2))
    assert not r.mark_delayed(AT + timedelta(days=3))
    ready = request()
    ready.approve(by=C, at=AT)
    ready.ready_for_collection(by=C, at=AT)
    assert not ready.mark_delayed(AT + timedelta(days=5)), "waiting for the patient, not us"


@pytest.mark.parametrize(("submitted", "promised"), [
    (datetime(2026, 11, 23, 9, 0, tzinfo=UTC), datetime(2026, 11, 25, 18, 0, tzinfo=UTC)),
    # Friday evening: Monday and Tuesday are the two working days.
    (datetime(2026, 11, 27, 20, 0, tzinfo=UTC), datetime(2026, 12, 1, 18, 0, tzinfo=UTC)),
    # Across the spring clock change: 18:00 BST is 17:00 UTC.
    (datetime(2027, 3, 26, 12, 0, tzinfo=UTC), datetime(2027, 3, 30, 17, 0, tzinfo=UTC)),
])
def test_the_promised_date_counts_working_days_in_the_clinics_zone(submitted, promised) -> None:
    assert promised_by(submitted, 2, LONDON) == promised
