"""The waiting room's state machine, in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from domain.consultations import (
    Consultation,
    ConsultationClosed,
    NotYetOver,
    Outcome,
    Role,
    State,
    TooEarly,
    Windows,
    consultation_id,
    patient_message,
)
from domain.errors import Conflict, InvalidInput

START = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
WINDOWS = Windows(join_minutes=10, early_minutes=60, grace_minutes=30)
P, C = "patient:p", "doctor:c"


def consultation() -> Consultation:
    return Consultation(appointment_id=uuid4(), patient_id=uuid4(), clinician_id=uuid4(),
                        clinic_id="riverside", starts_at=START,
                        ends_at=START + timedelta(minutes=20), by=P,
                        at=START - timedelta(minutes=30))


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def in_call(c: Consultation) -> Consultation:
    c.check_in(WINDOWS, by=P, at=at(-5))
    c.joined(Role.PATIENT, "p1", by=P, at=at(-5))
    c.admit(WINDOWS, by=C, at=at(-1))
    c.joined(Role.CLINICIAN, "c1", by=C, at=at(-1))
    c.connected(Role.CLINICIAN, by=C, at=at(0))
    return c


def test_one_consultation_per_appointment() -> None:
    c = consultation()
    assert c.id == consultation_id(c.appointment_id)
    assert c.state is State.SCHEDULED


def test_early_arrival_then_waiting_when_the_window_opens() -> None:
    c = consultation()
    c.check_in(WINDOWS, by=P, at=at(-40))
    assert c.state is State.EARLY_ARRIVAL
    assert not c.open_window(WINDOWS, by="system", at=at(-11))
    assert c.open_window(WINDOWS, by="system", at=at(-10))
    assert c.state is State.WAITING
    assert "has not joined yet" in patient_message(c, WINDOWS, "10:00")


def test_too_early_names_when_the_room_opens() -> None:
    c = consultation()
    with pytest.raises(TooEarly) as refused:
        c.check_in(WINDOWS, by=P, at=at(-71))
    assert refused.value.extensions["opens_at"] == at(-70).isoformat()
    assert c.state is State.SCHEDULED and not c.pending_events[1:]


def test_waiting_clinician_joined_in_progress_ended() -> None:
    c = consultation()
    c.check_in(WINDOWS, by=P, at=at(-5))
    c.joined(Role.PATIENT, "p1", by=P, at=at(-5))
    assert c.state is State.WAITING
    assert c.admit(WINDOWS, by=C, at=at(-1))
    assert c.state is State.CLINICIAN_JOINED
    assert not c.connected(Role.CLINICIAN, by=C, at=at(-1)), "the clinician's socket is not in"
    c.joined(Role.CLINICIAN, "c1", by=C, at=at(-1))
    assert c.connected(Role.CLINICIAN, by=C, at=at(0))
    assert c.state is State.IN_PROGRESS
    assert not c.connected(Role.PATIENT, by=P, at=at(0)), "reported twice: recorded once"
    assert c.end(Outcome.COMPLETED, by=C, at=at(15))
    assert c.state is State.ENDED and not c.is_open
    assert not c.end(Outcome.COMPLETED, by=C, at=at(16)), "ending twice records nothing"


def test_the_clinician_cannot_start_before_the_join_window() -> None:
    c = consultation()
    with pytest.raises(TooEarly):
        c.admit(WINDOWS, by=C, at=at(-11))


def test_patient_is_told_once_that_the_clinician_joined() -> None:
    c = in_call(consultation())
    assert c.clinician_told
    admissions = [e for e in c.pending_events if type(e).__name__ == "ClinicianAdmitted"]
    assert [e.tell_patient for e in admissions] == [True]  # type: ignore[attr-defined]
    c.left(Role.CLINICIAN, "c1", "dropped", None, by=C, at=at(2))
    c.admit(WINDOWS, by=C, at=at(3))
    admissions = [e for e in c.pending_events if type(e).__name__ == "ClinicianAdmitted"]
    assert [e.tell_patient for e in admissions] == [True, False]  # type: ignore[attr-defined]


def test_a_dropped_patient_rejoins_and_the_call_resumes() -> None:
    c = in_call(consultation())
    assert c.left(Role.PATIENT, "p1", "dropped", {"rtt_ms_avg": 80.0, "samples": 3}, by=P,
                  at=at(3))
    assert c.state is State.CLINICIAN_JOINED, "the clinician is still there"
    c.check_in(WINDOWS, by=P, at=at(4))  # rejoining is always possible while open
    c.joined(Role.PATIENT, "p2", by=P, at=at(4))
    assert c.connected(Role.PATIENT, by=P, at=at(4))
    assert c.state is State.IN_PROGRESS


def test_a_dropped_clinician_leaves_the_patient_waiting() -> None:
    c = in_call(consultation())
    c.left(Role.CLINICIAN, "c1", "dropped", None, by=C, at=at(3))
    assert c.state is State.WAITING


def test_presence_counts_connections() -> None:
    c = in_call(consultation())
    c.joined(Role.PATIENT, "p2", by=P, at=at(3))  # a reconnect racing the old socket's close
    c.left(Role.PATIENT, "p1", "dropped", None, by=P, at=at(3))
    assert c.present(Role.PATIENT) and c.state is State.IN_PROGRESS
    assert not c.left(Role.PATIENT, "p1", "dropped", None, by=P, at=at(3)), "left twice"


def test_cancelled_while_waiting_closes_the_room() -> None:
    c = consultation()
    c.check_in(WINDOWS, by=P, at=at(-5))
    c.joined(Role.PATIENT, "p1", by=P, at=at(-5))
    assert c.cancel("clinician_unavailable", by=C, at=at(-4))
    assert c.state is State.CANCELLED
    assert "cancelled" in patient_message(c, WINDOWS, "10:00")
    with pytest.raises(ConsultationClosed):
        c.check_in(WINDOWS, by=P, at=at(-3))
    assert c.left(Role.PATIENT, "p1", "closed", None, by=P, at=at(-3)), "the leave is logged"


def test_a_move_sends_everyone_back_to_scheduled() -> None:
    c = consultation()
    c.check_in(WINDOWS, by=P, at=at(-5))
    c.joined(Role.PATIENT, "p1", by=P, at=at(-5))
    assert c.move(at(120), at(140), c.clinician_id, by=C, at=at(-4))
    assert c.state is State.SCHEDULED and not c.present(Role.PATIENT)
    assert c.starts_at == at(120)
    assert not c.move(at(120), at(140), c.clinician_id, by=C, at=at(-4))


def test_no_show_only_after_the_start_and_only_if_the_patient_never_came() -> None:
    c = consultation()
    with pytest.raises(Conflict):
        c.record_no_show(by=C, at=at(-1))
    assert c.record_no_show(by=C, at=at(11))
    assert c.state is State.NO_SHOW
    joined = in_call(consultation())
    with pytest.raises(Conflict):
        joined.record_no_show(by=C, at=at(11))


def test_completed_needs_a_call_otherwise_technical_failure() -> None:
    c = consultation()
    c.check_in(WINDOWS, by=P, at=at(-5))
    c.admit(WINDOWS, by=C, at=at(-1))
    with pytest.raises(NotYetOver):
        c.end(Outcome.COMPLETED, by=C, at=at(5))
    assert c.end(Outcome.TECHNICAL_FAILURE, by=C, at=at(5))
    assert c.state is State.TECHNICAL_FAILURE


def test_joining_ends_after_the_grace_period_unless_the_call_is_running() -> None:
    c = consultation()
    with pytest.raises(ConsultationClosed):
        c.check_in(WINDOWS, by=P, at=at(20 + 31))
    running = in_call(consultation())
    running.left(Role.PATIENT, "p1", "dropped", None, by=P, at=at(50))
    assert not running.check_in(WINDOWS, by=P, at=at(55)), "a rejoin records no new check-in"
    assert running.joined(Role.PATIENT, "p2", by=P, at=at(55))
    assert running.connected(Role.PATIENT, by=P, at=at(55))


def test_summary_keeps_internal_notes_apart_and_needs_an_ended_call() -> None:
    c = in_call(consultation())
    with pytest.raises(NotYetOver):
        c.record_summary("Rest", "Query asthma", by=C, at=at(5))
    c.end(Outcome.COMPLETED, by=C, at=at(15))
    with pytest.raises(InvalidInput) as refused:
        c.record_summary(" ", "", by=C, at=at(16))
    assert refused.value.errors[0].field == "follow_up_instructions"
    assert c.record_summary("Rest and drink fluids.", "Query asthma.", by=C, at=at(16))
    assert c.follow_up_instructions == "Rest and drink fluids."
    assert c.internal_notes == "Query asthma."
    assert "asthma" not in patient_message(c, WINDOWS, "10:00")
    assert not c.record_summary("Rest and drink fluids.", "Query asthma.", by=C, at=at(17))


def test_quality_figures_keep_numbers_only() -> None:
    c = in_call(consultation())
    c.left(Role.PATIENT, "p1", "bye", {"rtt_ms_avg": 81.234, "samples": 4,
                                       "notes": "free text", "rtt_ms_avg_extra": "x"},
           by=P, at=at(3))
    left = c.pending_events[-1]
    assert left.quality == {"rtt_ms_avg": 81.23, "samples": 4}  # type: ignore[attr-defined]


def test_the_join_window_across_the_spring_clock_change_is_ten_real_minutes() -> None:
    """London's clocks go forward at 01:00 UTC on 28 March 2027: a 02:05 BST call opens at
    00:55 GMT, ten minutes earlier in real time, and the patient reads both in local time."""
    from zoneinfo import ZoneInfo

    from commands.outbox import local_when

    london = ZoneInfo("Europe/London")
    starts = datetime(2027, 3, 28, 1, 5, tzinfo=UTC)
    opens = WINDOWS.join_opens(starts)
    assert starts - opens == timedelta(minutes=10)
    assert local_when(starts, london).endswith("02:05 BST")
    assert local_when(opens, london).endswith("00:55 GMT")
    c = Consultation(appointment_id=uuid4(), patient_id=uuid4(), clinician_id=uuid4(),
                     clinic_id="riverside", starts_at=starts, ends_at=starts + timedelta(minutes=10),
                     by=P, at=starts - timedelta(hours=2))
    c.check_in(WINDOWS, by=P, at=opens - timedelta(minutes=1))
    assert c.state is State.EARLY_ARRIVAL
    assert c.open_window(WINDOWS, by="system", at=opens)
    assert "00:55 GMT" in patient_message(
        Consultation(appointment_id=uuid4(), patient_id=uuid4(), clinician_id=uuid4(),
                     clinic_id="riverside", starts_at=starts, ends_at=starts, by=P, at=opens),
        WINDOWS, local_when(opens, london))
