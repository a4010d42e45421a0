"""Medical records in memory: entries checked field by field, release by a clinician or after
the delay for the test type, preliminary results, amendments kept as amendments, internal notes
in events of their own, records entered in error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.records import (
    NotReleasable,
    Record,
    RecordWithdrawn,
    RevisionNotAllowed,
    Status,
    checked_entry,
    flag_for,
    release_due,
)

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DOCTOR = "doctor:00000000-0000-4000-8000-0000000000d1"
DELAYS: dict[str, float | None] = {"lab_result": 48, "lab_result:hiv": None, "vaccination": 0}
PATIENT_FACING = ("Record.Entered", "Record.Revised", "Record.Released", "Record.EnteredInError")


def result(value: float = 48, status: str = "final", code: str = "hba1c",
           **content: Any) -> Record:
    return Record.enter(
        source="staff", external_id=str(uuid4()), patient_id=uuid4(), clinic_id="riverside",
        kind="lab_result", code=code, title="HbA1c", status=status,
        content={"observations": [{"name": "HbA1c", "value": value, "unit": "mmol/mol",
                                   "reference_low": 20, "reference_high": 41}], **content},
        occurred_at=AT - timedelta(days=1), release_delays=DELAYS, by=DOCTOR, at=AT)


def revise(record: Record, value: float, status: str | None = None, reason: str | None = None,
           at: datetime = AT + timedelta(hours=1)) -> bool:
    return record.revise(title=None, status=status, content={"observations": [
        {"name": "HbA1c", "value": value, "unit": "mmol/mol", "reference_low": 20,
         "reference_high": 41}]}, reason=reason, release_delays=DELAYS, by=DOCTOR, at=at)


def topics(record: Record) -> list[str]:
    return [type(e).TOPIC.split(":", 1)[1].removeprefix("records.").removesuffix(".v1")
            for e in record.collect_events()]


def test_a_final_result_is_due_after_its_kinds_delay_and_not_a_moment_before():
    record = result()
    assert record.release_due_at == AT + timedelta(hours=48)
    assert not record.due_for_release(AT + timedelta(hours=47, minutes=59))
    assert record.due_for_release(AT + timedelta(hours=48))
    with pytest.raises(NotReleasable):
        record.release("system", AT + timedelta(hours=1), automatic=True)
    assert record.release("system", AT + timedelta(hours=48), automatic=True)
    assert record.visible_to_patient


def test_a_test_type_with_no_delay_waits_for_a_clinician_for_ever():
    record = result(code="hiv")
    assert record.release_due_at is None
    assert not record.due_for_release(AT + timedelta(days=3650))
    assert record.release(DOCTOR, AT + timedelta(hours=2))
    assert not record.release(DOCTOR, AT + timedelta(hours=3)), "releasing twice changes nothing"


def test_release_delays_by_test_type_then_kind_then_at_once():
    assert release_due(DELAYS, "lab_result", "hba1c", "final", AT) == AT + timedelta(hours=48)
    assert release_due(DELAYS, "lab_result", "hiv", "final", AT) is None
    assert release_due(DELAYS, "vaccination", "flu", "final", AT) == AT
    assert release_due({}, "care_plan", "care_plan", "final", AT) == AT
    assert release_due(DELAYS, "lab_result", "hba1c", "preliminary", AT) is None


def test_a_preliminary_result_is_never_due_and_its_final_version_starts_the_clock():
    record = result(status="preliminary")
    assert record.release_due_at is None
    later = AT + timedelta(days=5)
    assert revise(record, 44, status="final", at=later)
    assert record.status is Status.FINAL
    assert record.release_due_at == later + timedelta(hours=48)


def test_a_change_to_a_final_result_is_an_amendment_that_needs_a_reason_and_keeps_the_old():
    record = result(48)
    with pytest.raises(InvalidInput) as missing:
        revise(record, 40)
    assert [e.field for e in missing.value.errors] == ["reason"]
    assert revise(record, 40, reason="The laboratory corrected the value.")
    assert record.status is Status.AMENDED
    assert record.revisions[0]["content"]["observations"][0]["value"] == "48"
    assert record.content["observations"][0]["flag"] == "normal"
    with pytest.raises(RevisionNotAllowed):
        revise(record, 41, status="preliminary", reason="no")
    assert not revise(record, 40, reason="again"), "the same content again changes nothing"


def test_an_internal_note_is_an_event_of_its_own_and_never_part_of_a_patient_facing_one():
    record = result()
    record.add_internal_note("MARKER haemolysed? repeat", by=DOCTOR, at=AT)
    record.release(DOCTOR, AT)
    revise(record, 40, reason="Corrected.")
    events = record.collect_events()
    [note] = [e for e in events if type(e).TOPIC.endswith("Record.InternalNoteAdded.v1")]
    assert note.note == "MARKER haemolysed? repeat"
    for event in events:
        if type(event).TOPIC.endswith(tuple(f"{t}.v1" for t in PATIENT_FACING)):
            assert "MARKER" not in repr(vars(event))


def test_an_entry_may_not_carry_fields_of_its_own_invention():
    with pytest.raises(InvalidInput) as refused:
        checked_entry("lab_result", "hba1c", None, None, {
            "observations": [{"name": "HbA1c", "value": 40, "note": "internal"}],
            "internal_notes": "x"})
    assert {e.field for e in refused.value.errors} == {
        "content.observations[0].note", "content.internal_notes"}


def test_every_wrong_field_is_named_at_once():
    with pytest.raises(InvalidInput) as refused:
        checked_entry("care_plan", None, None, "preliminary",
                      {"goals": [], "review_on": "31/03/2027"})
    assert {e.field for e in refused.value.errors} == {
        "status", "content.condition", "content.goals", "content.review_on"}


def test_a_record_entered_in_error_can_no_longer_be_released_or_revised():
    record = result()
    assert record.mark_entered_in_error("Another patient's sample.", by=DOCTOR, at=AT)
    assert not record.mark_entered_in_error("again", by=DOCTOR, at=AT)
    assert not record.due_for_release(AT + timedelta(days=30))
    with pytest.raises(RecordWithdrawn):
        record.release(DOCTOR, AT)
    with pytest.raises(RecordWithdrawn):
        revise(record, 40, reason="x")


def test_topics_of_a_records_life():
    record = result(code="hiv")
    record.add_internal_note("call first", by=DOCTOR, at=AT)
    record.release(DOCTOR, AT)
    revise(record, 40, reason="Corrected.")
    record.mark_entered_in_error("Wrong patient.", by=DOCTOR, at=AT)
    assert topics(record) == ["Record.Entered", "Record.InternalNoteAdded", "Record.Released",
                              "Record.Revised", "Record.EnteredInError"]


@pytest.mark.parametrize(("value", "low", "high", "flag"), [
    (5.0, 4.0, 6.0, "normal"), (3.9, 4.0, 6.0, "low"), (6.1, 4.0, 6.0, "high"),
    (4.0, 4.0, None, "normal"), (7.0, None, 6.0, "high"), (5.0, None, None, None)])
def test_a_flag_from_the_reference_range(value, low, high, flag):
    found = flag_for(value, low, high)
    assert (found.value if found else None) == flag


json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@given(kind=st.sampled_from(["lab_result", "vaccination", "care_plan", "referral_letter",
                             "appointment_summary", "other"]),
       content=st.dictionaries(st.sampled_from(["observations", "vaccine", "given_on", "goals",
                                                "condition", "review_on", "to", "letter",
                                                "summary", "comment", "x"]), json, max_size=5))
def test_any_entry_is_either_accepted_or_refused_in_words(kind, content):
    try:
        checked = checked_entry(kind, "code", None, None, content)
    except InvalidInput as refused:
        assert refused.errors and all(e.field and e.message for e in refused.errors)
    else:
        assert checked["kind"] == kind and checked["title"]
