"""Conversations in memory: whose turn it is, the answer time promised, closing and reopening,
passing to another team, and staff notes in events of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidInput
from domain.messaging import (
    REOPEN_DAYS,
    Category,
    MessageRoutes,
    NotReopenable,
    State,
    Team,
    Thread,
    ThreadClosed,
    expectation_words,
)

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ADA = "patient:00000000-0000-4000-8000-00000000ada1"
NURSE = "nurse:00000000-0000-4000-8000-0000000000a2"


def thread(hours: float = 48) -> Thread:
    return Thread.start(patient_id=uuid4(), clinic_id="riverside",
                        category=Category.LAB_RESULT.value, subject="My HbA1c",
                        context_kind="record", context_id=uuid4(), team=Team.NURSES,
                        clinician_id=None, message_id=uuid4(), body="What does it mean?",
                        attachments=[], response_hours=hours, by=ADA, at=AT)


def say(t: Thread, from_patient: bool, at: datetime, body: str = "Thanks") -> None:
    t.post(message_id=uuid4(), body=body, attachments=[], from_patient=from_patient,
           response_hours=48, by=ADA if from_patient else NURSE, at=at)


def test_turns_pass_between_the_patient_and_the_clinic():
    t = thread()
    assert (t.state, t.due_by) == (State.OPEN, AT + timedelta(hours=48))
    say(t, True, AT + timedelta(hours=1))
    assert t.state is State.OPEN
    assert t.due_by == AT + timedelta(hours=48), "the promise runs from the first unanswered"
    say(t, False, AT + timedelta(hours=5))
    assert (t.state, t.due_by) == (State.PENDING_PATIENT, None)
    say(t, True, AT + timedelta(hours=6))
    assert (t.state, t.due_by) == (State.PENDING_CLINIC, AT + timedelta(hours=54))


def test_a_thread_is_overdue_only_while_the_clinic_owes_an_answer():
    t = thread(24)
    assert not t.overdue(AT + timedelta(hours=24))
    assert t.overdue(AT + timedelta(hours=24, seconds=1))
    say(t, False, AT + timedelta(hours=30))
    assert not t.overdue(AT + timedelta(days=10))


def test_a_closed_thread_takes_no_messages_and_reopens_within_the_window():
    t = thread()
    assert t.close(by=NURSE, at=AT)
    assert not t.close(by=NURSE, at=AT), "closing twice changes nothing"
    with pytest.raises(ThreadClosed):
        say(t, True, AT + timedelta(hours=1))
    assert t.reopen(24, by=ADA, at=AT + timedelta(days=REOPEN_DAYS))
    assert (t.state, t.due_by) == (State.REOPENED, AT + timedelta(days=REOPEN_DAYS, hours=24))
    say(t, False, AT + timedelta(days=REOPEN_DAYS, hours=1))
    assert t.state is State.PENDING_PATIENT
    t.close(by=ADA, at=AT + timedelta(days=31))
    with pytest.raises(NotReopenable):
        t.reopen(24, by=ADA, at=AT + timedelta(days=31 + REOPEN_DAYS, seconds=1))


def test_a_staff_note_is_an_event_of_its_own_and_never_in_a_patient_facing_one():
    t = thread()
    t.add_staff_note("MARKER worried about her", by=NURSE, at=AT)
    say(t, False, AT)
    t.reassign(Team.RECEPTION, None, by=NURSE, at=AT)
    events = t.collect_events()
    notes = [e for e in events if type(e).TOPIC.endswith("Thread.StaffNoteAdded.v1")]
    assert [n.note for n in notes] == ["MARKER worried about her"]
    for e in events:
        if e not in notes:
            assert "MARKER" not in repr(vars(e))


def test_passing_to_the_same_team_changes_nothing():
    t = thread()
    assert not t.reassign(Team.NURSES, None, by=NURSE, at=AT)
    assert t.reassign(Team.CLINICIAN, uuid4(), by=NURSE, at=AT)
    assert t.team is Team.CLINICIAN


def test_every_wrong_field_is_named():
    with pytest.raises(InvalidInput) as refused:
        Thread.start(patient_id=uuid4(), clinic_id="riverside", category="general",
                     subject=" ", context_kind=None, context_id=None, team=Team.RECEPTION,
                     clinician_id=None, message_id=uuid4(), body="x" * 5001,
                     attachments=[uuid4()] * 2, response_hours=24, by=ADA, at=AT)
    assert {e.field for e in refused.value.errors} == {"subject", "body", "attachments"}


def test_routing_rules_change_only_when_they_differ():
    routes = MessageRoutes(clinic_id="riverside", by=NURSE, at=AT)
    assert routes.change({"general": {"team": "support", "clinician_id": None}}, by=NURSE, at=AT)
    assert not routes.change({"general": {"team": "support", "clinician_id": None}}, by=NURSE,
                             at=AT)
    assert routes.id == MessageRoutes.create_id("riverside")


@pytest.mark.parametrize(("hours", "words"), [
    (24, "The clinic usually answers within 24 hours."),
    (48, "The clinic usually answers within 2 days."),
    (120, "The clinic usually answers within 5 days.")])
def test_the_promise_in_words(hours, words):
    assert expectation_words(hours) == words


@given(st.lists(st.sampled_from(["patient", "clinic", "close", "reopen"]), max_size=12))
def test_whatever_happens_the_state_says_whose_turn_it_is(steps):
    t = thread()
    at = AT
    for step in steps:
        at += timedelta(hours=1)
        try:
            if step == "close":
                t.close(by=NURSE, at=at)
            elif step == "reopen":
                t.reopen(48, by=ADA, at=at)
            else:
                say(t, step == "patient", at)
        except ThreadClosed:
            assert t.state is State.CLOSED
        assert (t.due_by is not None) == t.awaiting_clinic
