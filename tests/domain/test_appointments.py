"""Appointments in memory: the lifecycle, the clinic's policy at its edges, the clock change, and
a state machine proving the day ledger never lets two bookings collide."""

from __future__ import annotations

import contextlib
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, rule

from domain.appointments import (
    Appointment,
    AppointmentClosed,
    CancellationReason,
    ClinicianDay,
    HoldNotLive,
    NotYet,
    RescheduleRefused,
    SlotTaken,
)
from domain.errors import InvalidInput
from domain.schedule_types import (
    CancellationPolicy,
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    StaticSchedule,
)

ASHA = UUID("00000000-0000-4000-8000-0000000a5a01")  # a GP
NINA = UUID("00000000-0000-4000-8000-00000000a1a2")  # a nurse who vaccinates
GRACE = UUID("00000000-0000-4000-8000-000000006ace")
GRACE_REF = f"patient:{GRACE}"
RECEPTION_REF = "reception:00000000-0000-4000-8000-00000000bec1"
POLICY = CancellationPolicy(free_cancellation_hours=24, reschedule_notice_hours=24,
                            max_reschedules=2)
RIVERSIDE = ClinicInfo("riverside", "Riverside Health Centre", ("1 River Walk",), "London",
                       "SE1 1AA", "Europe/London", policy=POLICY, phone="020 7946 0000")
GP = ConsultationTypeInfo("gp-in-person", "GP appointment", Mode.IN_PERSON, 10,
                          buffer_after_minutes=5, room_kind="consulting",
                          preparation="Bring a list of your current medicines.")
VIDEO = ConsultationTypeInfo("video", "Video consultation", Mode.VIDEO, 10)
FLU = ConsultationTypeInfo("flu-vaccination", "Flu vaccination", Mode.IN_PERSON, 5,
                           room_kind="vaccination", capacity_per_slot=3)
WEEKDAYS = range(5)


def clinic_schedule(asha: UUID = ASHA, nina: UUID = NINA) -> StaticSchedule:
    """Riverside: Dr Patel sees GP patients 09:00-12:00 in 15-minute slots on weekdays (any
    free consulting room), and Nurse Okafor vaccinates 09:00-10:00 in 5-minute slots, three
    patients a slot, in the vaccination room."""
    return StaticSchedule(
        clinic_list=[RIVERSIDE],
        type_list=[GP, VIDEO, FLU],
        clinician_list=[
            ClinicianInfo(asha, "Dr Asha Patel", "general practice", ("en", "hi"),
                          ("riverside",), ("gp-in-person", "video")),
            ClinicianInfo(nina, "Nurse Nina Okafor", "practice nursing", ("en",),
                          ("riverside",), ("flu-vaccination",))],
        room_list=[RoomInfo("riverside-room-1", "riverside", "consulting", "Room 1"),
                   RoomInfo("riverside-room-2", "riverside", "consulting", "Room 2"),
                   RoomInfo("riverside-vaccination", "riverside", "vaccination",
                            "Vaccination room")],
        weekly={asha: {d: [("riverside", time(9), time(12), 15, ("gp-in-person", "video"), None)]
                       for d in WEEKDAYS},
                nina: {d: [("riverside", time(9), time(10), 5, ("flu-vaccination",),
                            "riverside-vaccination")] for d in WEEKDAYS}})


MONDAY = date(2026, 11, 30)
NINE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 09:00 in London in winter
BOOKED_AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def held(starts_at: datetime = NINE, at: datetime = BOOKED_AT) -> Appointment:
    appointment = Appointment(
        patient_id=GRACE, clinician_id=ASHA, clinic_id="riverside", room_id="riverside-room-1",
        consultation_type_id=GP.type_id, mode="in_person", starts_at=starts_at,
        ends_at=starts_at + GP.occupies, hold_expires_at=at + timedelta(minutes=5),
        booked_by_staff=False, by=GRACE_REF, at=at)
    appointment.collect_events()
    return appointment


def booked(starts_at: datetime = NINE) -> Appointment:
    appointment = held(starts_at)
    appointment.confirm(by=GRACE_REF, at=BOOKED_AT + timedelta(minutes=1))
    appointment.collect_events()
    return appointment


def names(aggregate: Appointment | ClinicianDay) -> list[str]:
    return [type(e).__name__ for e in aggregate.collect_events()]


# ---- hold and confirmation --------------------------------------------------------------------

def test_a_live_hold_is_confirmed_once():
    appointment = held()
    assert appointment.confirm(by=GRACE_REF, at=BOOKED_AT + timedelta(minutes=4)) is True
    assert appointment.confirm(by=GRACE_REF, at=BOOKED_AT + timedelta(minutes=4)) is False
    assert names(appointment) == ["Confirmed"]
    assert appointment.status == "booked"


def test_a_hold_lapses_by_itself_and_cannot_then_be_confirmed():
    appointment = held()
    lapsed_at = BOOKED_AT + timedelta(minutes=5)
    assert appointment.status_at(lapsed_at - timedelta(seconds=1)) == "held"
    assert appointment.status_at(lapsed_at) == "lapsed"
    with pytest.raises(HoldNotLive):
        appointment.confirm(by=GRACE_REF, at=lapsed_at)
    assert appointment.lapse(by="system", at=lapsed_at) is True
    assert names(appointment) == ["HoldLapsed"]


# ---- cancellation under the policy ----------------------------------------------------------

def test_cancelling_up_to_the_notice_period_is_free():
    appointment = booked()
    appointment.cancel(CancellationReason.CANNOT_ATTEND, POLICY, by_clinic=False,
                       note_for_patient=None, by=GRACE_REF, at=NINE - timedelta(hours=24))
    assert appointment.late_cancellation is False


def test_cancelling_a_minute_inside_the_notice_period_is_recorded_as_late():
    appointment = booked()
    appointment.cancel(CancellationReason.FEELING_BETTER, POLICY, by_clinic=False,
                       note_for_patient=None, by=GRACE_REF,
                       at=NINE - timedelta(hours=24) + timedelta(minutes=1))
    assert appointment.late_cancellation is True
    event = appointment.collect_events()[-1]
    assert (event.late, event.cancelled_by, event.reason_code) == (True, "patient",
                                                                   "feeling_better")


def test_nobody_cancels_an_appointment_that_has_started():
    with pytest.raises(AppointmentClosed):
        booked().cancel(CancellationReason.OTHER, POLICY, by_clinic=True, note_for_patient=None,
                        by=RECEPTION_REF, at=NINE)


def test_patients_and_the_clinic_each_give_their_own_reasons():
    with pytest.raises(InvalidInput) as refused:
        booked().cancel(CancellationReason.CLINIC_CLOSED, POLICY, by_clinic=False,
                        note_for_patient=None, by=GRACE_REF, at=BOOKED_AT)
    assert refused.value.errors[0].field == "reason_code"
    with pytest.raises(InvalidInput):
        booked().cancel(CancellationReason.FEELING_BETTER, POLICY, by_clinic=True,
                        note_for_patient=None, by=RECEPTION_REF, at=BOOKED_AT)


def test_a_second_cancellation_records_nothing():
    appointment = booked()
    appointment.cancel(CancellationReason.OTHER, POLICY, False, None, by=GRACE_REF, at=BOOKED_AT)
    assert appointment.cancel(CancellationReason.OTHER, POLICY, False, None, by=GRACE_REF,
                              at=BOOKED_AT) is False
    assert names(appointment) == ["Cancelled"]


# ---- rescheduling under the policy ------------------------------------------------------------

def test_rescheduling_needs_the_notice_period():
    appointment = booked()
    appointment.check_reschedule(NINE + timedelta(days=1), POLICY, by_staff=False,
                                 at=NINE - timedelta(hours=24))
    with pytest.raises(RescheduleRefused) as refused:
        appointment.check_reschedule(NINE + timedelta(days=1), POLICY, by_staff=False,
                                     at=NINE - timedelta(hours=23, minutes=59))
    assert "24 hours" in refused.value.detail


def test_rescheduling_is_limited_for_patients_but_staff_may_override():
    appointment = booked()
    for n in range(POLICY.max_reschedules):
        appointment.check_reschedule(NINE + timedelta(days=n + 1), POLICY, False, BOOKED_AT)
        appointment.reschedule(NINE + timedelta(days=n + 1), NINE + timedelta(days=n + 1, minutes=15),
                               "riverside-room-1", ASHA, by=GRACE_REF, at=BOOKED_AT)
    with pytest.raises(RescheduleRefused) as refused:
        appointment.check_reschedule(NINE + timedelta(days=4), POLICY, False, BOOKED_AT)
    assert refused.value.extensions["limit"] == "count"
    appointment.check_reschedule(NINE + timedelta(days=4), POLICY, by_staff=True, at=BOOKED_AT)
    event = appointment.collect_events()[-1]
    assert (event.from_starts_at, event.reschedule_count) == (NINE + timedelta(days=1), 2)


# ---- arrivals and no-shows --------------------------------------------------------------------

def test_arrivals_are_recorded_from_an_hour_before_and_no_shows_only_after_the_start():
    appointment = booked()
    with pytest.raises(NotYet):
        appointment.arrive(by=RECEPTION_REF, at=NINE - timedelta(hours=1, minutes=1))
    with pytest.raises(NotYet):
        appointment.record_no_show(by=RECEPTION_REF, at=NINE - timedelta(minutes=1))
    assert appointment.arrive(by=RECEPTION_REF, at=NINE - timedelta(minutes=50)) is True
    with pytest.raises(AppointmentClosed):
        appointment.record_no_show(by=RECEPTION_REF, at=NINE + timedelta(minutes=20))
    assert names(appointment) == ["Arrived"]


def test_a_hold_never_gets_an_arrival():
    with pytest.raises(AppointmentClosed):
        held().arrive(by=RECEPTION_REF, at=NINE)


# ---- the clock change -------------------------------------------------------------------------

def test_nine_oclock_is_nine_oclock_in_london_on_both_sides_of_the_march_change():
    schedule = clinic_schedule()
    before = schedule.sessions(ASHA, date(2027, 3, 26))[0].slot_starts()[0]  # Friday, GMT
    after = schedule.sessions(ASHA, date(2027, 3, 29))[0].slot_starts()[0]  # Monday, BST
    assert before == datetime(2027, 3, 26, 9, 0, tzinfo=UTC)
    assert after == datetime(2027, 3, 29, 8, 0, tzinfo=UTC)
    ledger = ClinicianDay(ASHA, date(2027, 3, 29), by=GRACE_REF, at=BOOKED_AT)
    ledger.reserve(uuid4(), GP, after, None, None, by=GRACE_REF, at=BOOKED_AT)
    with pytest.raises(SlotTaken):  # 08:00 UTC and 09:00 London are the same moment
        ledger.reserve(uuid4(), GP, after.astimezone(RIVERSIDE.zone), None, None, by=GRACE_REF,
                       at=BOOKED_AT)


# ---- the day ledger ---------------------------------------------------------------------------

def test_a_group_slot_takes_its_capacity_and_no_more():
    ledger = ClinicianDay(NINA, MONDAY, by=GRACE_REF, at=BOOKED_AT)
    for _ in range(FLU.capacity_per_slot):
        ledger.reserve(uuid4(), FLU, NINE, "riverside-vaccination", None, by=GRACE_REF,
                       at=BOOKED_AT)
    with pytest.raises(SlotTaken):
        ledger.reserve(uuid4(), FLU, NINE, "riverside-vaccination", None, by=GRACE_REF,
                       at=BOOKED_AT)


def test_a_lapsed_hold_frees_its_place_without_any_event():
    ledger = ClinicianDay(ASHA, MONDAY, by=GRACE_REF, at=BOOKED_AT)
    ledger.reserve(uuid4(), GP, NINE, None, BOOKED_AT + timedelta(minutes=5), by=GRACE_REF,
                   at=BOOKED_AT)
    assert not ledger.fits(GP, NINE, at=BOOKED_AT + timedelta(minutes=4))
    assert ledger.fits(GP, NINE, at=BOOKED_AT + timedelta(minutes=5))


def _collide(a: tuple[datetime, datetime, str], b: tuple[datetime, datetime, str]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class ClinicianDayMachine(RuleBasedStateMachine):
    """Random holds, confirmations, cancellations, lapses and moves on one clinician's day:
    the active entries never overlap, except up to capacity in the same group slot. The check
    is written here from scratch, not with the `fits` the ledger uses."""

    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        self.now = BOOKED_AT
        self.ledger = ClinicianDay(ASHA, MONDAY, by=GRACE_REF, at=self.now)

    @rule(target=reservations, slot=st.integers(0, 35), group=st.booleans(),
          confirmed=st.booleans())
    def hold(self, slot: int, group: bool, confirmed: bool) -> UUID:
        appointment_id = uuid4()
        kind = FLU if group else GP
        with contextlib.suppress(SlotTaken):
            self.ledger.reserve(appointment_id, kind, NINE + timedelta(minutes=5 * slot), None,
                                None if confirmed else self.now + timedelta(minutes=5),
                                by=GRACE_REF, at=self.now)
        return appointment_id

    @rule(appointment_id=reservations)
    def confirm(self, appointment_id: UUID) -> None:
        entry = self.ledger.entries.get(str(appointment_id))
        if entry is not None and (entry["hold_expires_at"] or self.now) > self.now:
            self.ledger.confirm(appointment_id, by=GRACE_REF, at=self.now)

    @rule(appointment_id=consumes(reservations))
    def cancel(self, appointment_id: UUID) -> None:
        self.ledger.release(appointment_id, by=GRACE_REF, at=self.now)

    @rule(appointment_id=reservations, slot=st.integers(0, 35))
    def move(self, appointment_id: UUID, slot: int) -> None:
        entry = self.ledger.entries.get(str(appointment_id))
        if entry is None:
            return
        kind = FLU if entry["type_id"] == FLU.type_id else GP
        with contextlib.suppress(SlotTaken):
            self.ledger.reserve(appointment_id, kind, NINE + timedelta(minutes=5 * slot), None,
                                None, by=GRACE_REF, at=self.now)

    @rule(minutes=st.integers(1, 7))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @invariant()
    def never_double_booked(self) -> None:
        active = [(e["starts_at"], e["ends_at"], e["type_id"])
                  for e in self.ledger.entries.values()
                  if e["hold_expires_at"] is None or e["hold_expires_at"] > self.now]
        for i, a in enumerate(active):
            group = [b for b in active if b[0] == a[0] and b[2] == a[2] == FLU.type_id]
            assert len(group) <= FLU.capacity_per_slot
            for b in active[i + 1:]:
                if _collide(a, b):
                    assert a[2] == b[2] == FLU.type_id and a[0] == b[0], (a, b)

    @invariant()
    def replay_gives_the_same_ledger(self) -> None:
        events = list(self.ledger.pending_events)
        copy = None
        for e in events:
            copy = e.mutate(copy)
        assert copy is not None and copy.entries == self.ledger.entries


ClinicianDayMachine.TestCase.settings = hypothesis_settings(max_examples=60,
                                                            stateful_step_count=40,
                                                            deadline=None)
test_the_clinician_day_never_double_books = ClinicianDayMachine.TestCase
