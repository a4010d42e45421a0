"""Invariants of booking, proved by a state machine that drives the appointments command handlers.

Double booking is prevented by the command layer with the day ledgers (`ClinicianDay`,
`RoomDay`) that every reservation saves in the same transaction as its appointment, so the
machine drives `AppointmentsApplication` itself, in memory: holds, bookings, confirmations,
cancellations, moves, arrivals and no-shows by patients, reception and people who may not,
legal and illegal, across both of London's clock changes (a night session on the two Sundays
books into the repeated and the skipped hour; sessions come from the scheduling context's own
`sessions_on`, slots in the model from wall-clock times). After every step:

- no double booking: no clinician or room holds overlapping live bookings (a group slot holds
  up to its capacity), no patient holds more than three live holds, and the ledgers hold
  exactly the live bookings, so a slot freed by a cancellation or a lapse is bookable again;
- no illegal transition: the machine's own model judges each command first; an illegal one is
  refused with the domain's error and appends nothing, a legal one succeeds as modelled;
- no lost event: every aggregate replayed from its stored events equals the model, its version
  is its number of events, and the notification log holds exactly those, in order, gapless.

The domain does not forbid one patient two overlapping appointments (with different
clinicians), so that is not an invariant here. Settings: see tests/domain/invariants_support.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from commands.appointments import (
    MAX_ACTIVE_HOLDS,
    SLOT_BOOKINGS,
    AppointmentsApplication,
    TooManyHolds,
)
from domain.access import Actor
from domain.appointments import (
    Appointment,
    AppointmentClosed,
    CancellationReason,
    ClinicianDay,
    DayLedger,
    HoldNotLive,
    NotYet,
    RescheduleRefused,
    SlotTaken,
    clinician_day_id,
    room_day_id,
)
from domain.errors import CareBridgeError, Forbidden, InvalidInput, NotFound
from domain.identity import Role
from domain.schedule_types import (
    CancellationPolicy,
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    Session,
    StaticSchedule,
)
from domain.scheduling import PatternPeriod, SessionTimes, WorkingPattern, sessions_on
from tests.domain.invariants_support import (
    CLINIC,
    MACHINE_SETTINGS,
    MIN_STEPS,
    ClinicCare,
    EventLog,
    StepCounter,
    attempt,
    in_memory_store,
    person,
    upserted_rows,
)

LONDON = ZoneInfo("Europe/London")
POLICY = CancellationPolicy(free_cancellation_hours=24, reschedule_notice_hours=24,
                            max_reschedules=2)
RIVERSIDE = ClinicInfo(CLINIC, "Riverside Health Centre", ("1 River Walk",), "London", "SE1 1AA",
                       "Europe/London", policy=POLICY)
GP = ConsultationTypeInfo("gp-in-person", "GP appointment", Mode.IN_PERSON, 10,
                          buffer_after_minutes=5, room_kind="consulting")
VIDEO = ConsultationTypeInfo("video", "Video consultation", Mode.VIDEO, 10)
FLU = ConsultationTypeInfo("flu-vaccination", "Flu vaccination", Mode.IN_PERSON, 5,
                           room_kind="vaccination", capacity_per_slot=3)
KINDS = (GP, VIDEO, FLU)
ROOM, VACCINATION = "riverside-room-1", "riverside-vaccination"  # one consulting room only

ASHA, BEN, NINA = (person(Role.DOCTOR, n).account_id for n in (0xA5A, 0xBE2, 0x212A))
CLINICIANS = (ASHA, BEN, NINA)
# clinician -> weekday -> [(local start, local end, slot minutes, types, fixed room)]
Sessions = dict[int, list[tuple[time, time, int, tuple[str, ...], str | None]]]
WEEKDAYS = range(5)
SESSIONS: dict[UUID, Sessions] = {
    # Dr Patel also keeps a night clinic on Sundays, across the clock change.
    ASHA: {**{d: [(time(9), time(10), 15, (GP.type_id, VIDEO.type_id), None)] for d in WEEKDAYS},
           6: [(time(0, 30), time(3), 15, (GP.type_id, VIDEO.type_id), None)]},
    BEN: {d: [(time(9), time(10), 15, (GP.type_id, VIDEO.type_id), None)] for d in WEEKDAYS},
    NINA: {d: [(time(9), time(9, 30), 5, (FLU.type_id,), VACCINATION)] for d in WEEKDAYS},
}
OFFERS = {ASHA: (GP.type_id, VIDEO.type_id), BEN: (GP.type_id, VIDEO.type_id),
          NINA: (FLU.type_id,)}

# Both sides of both clock changes; the Sundays are the change days themselves.
DAYS = (date(2026, 10, 23), date(2026, 10, 25), date(2026, 10, 26),
        date(2027, 3, 26), date(2027, 3, 28), date(2027, 3, 29))
START = datetime(2026, 10, 21, 12, 0, tzinfo=UTC)
END = datetime(2027, 3, 30, 12, 0, tzinfo=UTC)
JUMPS = (timedelta(minutes=1), timedelta(minutes=4), timedelta(minutes=5), timedelta(minutes=5),
         timedelta(minutes=30), timedelta(hours=6), timedelta(hours=6), timedelta(days=1),
         timedelta(days=1), timedelta(days=150))
# Just outside and inside the free cancellation and notice period, the arrival window, the start.
NEAR = tuple(timedelta(minutes=m) for m in (-25 * 60, -23 * 60, -61, -59, -5, 0, 10))
MOSTLY = st.sampled_from((True, True, True, False))  # mostly the sensible choice

PATIENTS = tuple(person(Role.PATIENT, n).account_id for n in (0xADA, 0x6ACE, 0xA1A2))
RECEPTION = person(Role.RECEPTION, 0xBEC1)
HILLSIDE_RECEPTION = person(Role.RECEPTION, 0xBEC2, clinic="hillside")
ACTORS = ("patient",) * 3 + ("reception",) * 3 + ("another_patient", "hillside")
PATIENT_REASONS = {CancellationReason.FEELING_BETTER, CancellationReason.CANNOT_ATTEND,
                   CancellationReason.BOOKED_ELSEWHERE, CancellationReason.OTHER}
CLINIC_REASONS = {CancellationReason.CLINICIAN_UNAVAILABLE, CancellationReason.CLINIC_CLOSED,
                  CancellationReason.BOOKED_IN_ERROR, CancellationReason.PATIENT_REQUEST,
                  CancellationReason.OTHER}
LIVE_OUTCOMES = ("booked", "arrived", "no_show")
SLOT_STATUS = {"held": "held", "booked": "booked", "arrived": "booked", "no_show": "booked",
               "cancelled": "released", "lapsed": "released"}


class PatternSchedule(StaticSchedule):
    """The reference data held in memory, with each clinician's sessions on a day computed as
    the scheduling context computes them (`sessions_on`, which settles clock changes) from a
    `WorkingPattern`."""

    def __init__(self) -> None:
        super().__init__(
            clinic_list=[RIVERSIDE], type_list=list(KINDS),
            clinician_list=[ClinicianInfo(c, f"Clinician {n}", "general practice", ("en",),
                                          (CLINIC,), OFFERS[c])
                            for n, c in enumerate(CLINICIANS)],
            room_list=[RoomInfo(ROOM, CLINIC, "consulting", "Room 1"),
                       RoomInfo(VACCINATION, CLINIC, "vaccination", "Vaccination room")])
        self.patterns: dict[UUID, WorkingPattern] = {}
        for clinician, days in SESSIONS.items():
            pattern = WorkingPattern(clinician, by="clinic_admin:test", at=START)
            pattern.set_pattern(PatternPeriod(date(2026, 1, 1), None, tuple(
                SessionTimes(opens, closes, CLINIC, minutes, types, room, weekday=weekday)
                for weekday, sessions in days.items()
                for opens, closes, minutes, types, room in sessions)),
                by="clinic_admin:test", at=START)
            self.patterns[clinician] = pattern

    def sessions(self, clinician_id: UUID, day: date) -> list[Session]:
        return sessions_on(self.patterns[clinician_id], day,
                           lambda clinic_id: LONDON if clinic_id == CLINIC else None,
                           lambda clinic_id, day: False)


def schedule() -> StaticSchedule:
    return PatternSchedule()


def wall(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=LONDON).astimezone(UTC)


def slots(clinician: UUID, day: date, kind: ConsultationTypeInfo) -> list[datetime]:
    """The model's bookable starts: each session cut into slots in real (UTC) time, so a
    session across a clock change has an hour more or less of them."""
    starts = []
    for opens, closes, minutes, types, _ in SESSIONS[clinician].get(day.weekday(), []):
        if kind.type_id not in types:
            continue
        at, ends = wall(day, opens), wall(day, closes)
        while at + timedelta(minutes=minutes) <= ends:
            if at + kind.occupies <= ends:
                starts.append(at)
            at += timedelta(minutes=minutes)
    return starts


def pick_start(clinician: UUID, kind: ConsultationTypeInfo, day: date, index: int,
               own_slot: bool) -> datetime:
    """Mostly one of the clinician's own slots for the type; otherwise any slot anyone has
    that day, or a time that is no slot at all."""
    own = slots(clinician, day, kind)
    if own_slot and own:
        return own[index % len(own)]
    found = {s for c in CLINICIANS for k in KINDS for s in slots(c, day, k)}
    anything = sorted(found | {wall(day, time(9, 7)), wall(day, time(13)),
                               wall(day, time(0, 40))})
    return anything[index % len(anything)]


def local_day(at: datetime) -> date:
    return at.astimezone(LONDON).date()


def room_kind_rooms(kind: ConsultationTypeInfo) -> list[str]:
    return {"consulting": [ROOM], "vaccination": [VACCINATION]}.get(kind.room_kind or "", [])


@dataclass
class Booking:
    """The model of one appointment."""

    id: UUID
    patient: UUID
    clinician: UUID
    kind: ConsultationTypeInfo
    starts_at: datetime
    room: str | None
    status: str  # held, booked, cancelled, lapsed, arrived, no_show
    hold_expires_at: datetime | None
    reschedules: int = 0
    late: bool = False

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.kind.occupies

    def live(self, now: datetime) -> bool:
        return self.status in LIVE_OUTCOMES or (
            self.status == "held" and self.hold_expires_at is not None
            and now < self.hold_expires_at)

    def ledgers(self) -> set[UUID]:
        day = local_day(self.starts_at)
        return {clinician_day_id(self.clinician, day)} | (
            {room_day_id(self.room, day)} if self.room else set())


def collide(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


STEPS = StepCounter()


class SchedulingMachine(RuleBasedStateMachine):
    appointments = Bundle("appointments")

    def __init__(self) -> None:
        super().__init__()
        STEPS.machines += 1
        self.now = START
        self.care = ClinicCare()
        self.app = AppointmentsApplication(in_memory_store(), schedule(), self.care,  # type: ignore[arg-type]
                                           None, hold_minutes=5)
        # Holds are limited per patient with a query of `carebridge.slot_bookings`; here the
        # same question is asked of the rows the recorder committed with the events.
        self.app._check_hold_limit = self._check_hold_limit  # type: ignore[method-assign]
        self.log = EventLog(self.app)
        self.bookings: dict[UUID, Booking] = {}

    def _check_hold_limit(self, patient_id: UUID, at: datetime) -> None:
        holds = sum(1 for row in upserted_rows(self.app, SLOT_BOOKINGS).values()
                    if row[1] == patient_id and row[8] == "held" and row[9] > at)
        if holds >= MAX_ACTIVE_HOLDS:
            raise TooManyHolds("Too many holds.")

    # ---- the model's judgement ------------------------------------------------------------

    def actor(self, kind: str, patient: UUID) -> Actor:
        if kind == "patient":
            return Actor(patient, Role.PATIENT)
        if kind == "another_patient":
            return Actor(next(p for p in PATIENTS if p != patient), Role.PATIENT)
        return RECEPTION if kind == "reception" else HILLSIDE_RECEPTION

    def day(self, index: int, future: bool) -> date:
        """Mostly a day still to come, so that most requests could be granted."""
        coming = [d for d in DAYS if wall(d, time(23)) > self.now] if future else []
        days = coming or list(DAYS)
        return days[index % len(days)]

    def live(self, besides: UUID | None = None) -> list[Booking]:
        return [b for b in self.bookings.values() if b.live(self.now) and b.id != besides]

    def free(self, kind: ConsultationTypeInfo, start: datetime, taken: list[Booking]) -> bool:
        """Nothing overlaps, except the same group type at the same start, up to capacity."""
        in_group = 0
        for other in taken:
            if collide((start, start + kind.occupies), (other.starts_at, other.ends_at)):
                if kind.capacity_per_slot > 1 and other.kind == kind \
                        and other.starts_at == start:
                    in_group += 1
                else:
                    return False
        return in_group < kind.capacity_per_slot

    def room_for(self, clinician: UUID, kind: ConsultationTypeInfo, start: datetime,
                 besides: UUID | None = None) -> tuple[bool, str | None]:
        """(whether a room is found, which); a video needs none."""
        if kind.room_kind is None:
            return True, None
        fixed = [s[4] for s in SESSIONS[clinician].get(local_day(start).weekday(), [])
                 if s[4] is not None]
        for room in fixed or room_kind_rooms(kind):
            if self.free(kind, start, [b for b in self.live(besides) if b.room == room]):
                return True, room
        return False, None

    def placement_refused(self, clinician: UUID, kind: ConsultationTypeInfo,
                          start: datetime) -> bool:
        return kind.type_id not in OFFERS[clinician] or start <= self.now \
            or start not in slots(clinician, local_day(start), kind)

    def may_act(self, actor: Actor, booking_patient: UUID) -> bool:
        if actor.role is Role.PATIENT:
            return actor.account_id == booking_patient
        return CLINIC in actor.clinic_ids

    def live_holds(self, patient: UUID) -> int:
        return sum(1 for b in self.bookings.values() if b.patient == patient
                   and b.status == "held" and b.live(self.now))

    # ---- booking --------------------------------------------------------------------------

    def reserve(self, actor: Actor, patient: UUID, clinician: UUID, kind: ConsultationTypeInfo,
                start: datetime, confirmed: bool) -> object:
        refusal: type[CareBridgeError] | None = None
        found, room = self.room_for(clinician, kind, start)
        if not self.may_act(actor, patient):
            refusal = Forbidden
        elif self.placement_refused(clinician, kind, start):
            refusal = InvalidInput
        elif not confirmed and self.live_holds(patient) >= MAX_ACTIVE_HOLDS:
            refusal = TooManyHolds
        elif not found or not self.free(kind, start, [b for b in self.live()
                                                       if b.clinician == clinician]):
            refusal = SlotTaken
        command = self.app.book if confirmed else self.app.hold
        names = ["Created", "Confirmed"] if confirmed else ["Created"]
        outcome = attempt(lambda: command(actor, patient, clinician, kind.type_id, start, self.now),
                          refusal, [self.log],
                          lambda made: {self.log: {UUID(made.result["appointment_id"]): names}},
                          {self.log: self._ledger_ids(clinician, room, start)})
        if outcome is None:
            return multiple()
        booking = Booking(UUID(outcome.result["appointment_id"]), patient, clinician, kind, start,
                          room, "booked" if confirmed else "held",
                          None if confirmed else self.now + timedelta(minutes=5))
        self.bookings[booking.id] = booking
        return booking.id

    def _ledger_ids(self, clinician: UUID, room: str | None, start: datetime) -> set[UUID]:
        day = local_day(start)
        return {clinician_day_id(clinician, day)} | ({room_day_id(room, day)} if room else set())

    @rule(target=appointments, patient=st.sampled_from(PATIENTS), who=st.sampled_from(ACTORS),
          clinician=st.sampled_from(CLINICIANS), kind=st.sampled_from(KINDS), offered=MOSTLY,
          day=st.integers(0, 5), index=st.integers(0, 40), own_slot=MOSTLY,
          confirmed=st.booleans())
    def hold_or_book(self, patient: UUID, who: str, clinician: UUID, kind: ConsultationTypeInfo,
                     offered: bool, day: int, index: int, own_slot: bool,
                     confirmed: bool) -> object:
        if offered and kind.type_id not in OFFERS[clinician]:
            kind = next(k for k in KINDS if k.type_id == OFFERS[clinician][0])
        return self.reserve(self.actor(who, patient), patient, clinician, kind,
                            pick_start(clinician, kind, self.day(day, own_slot), index, own_slot),
                            confirmed)

    @rule(target=appointments, taken=appointments, patient=st.sampled_from(PATIENTS),
          confirmed=st.booleans())
    def book_the_same_slot(self, taken: UUID, patient: UUID, confirmed: bool) -> object:
        """Another patient asks for exactly the slot of an earlier booking: refused while it
        is live, bookable again once it was cancelled or lapsed."""
        earlier = self.bookings[taken]
        return self.reserve(RECEPTION, patient, earlier.clinician, earlier.kind, earlier.starts_at,
                            confirmed)

    @rule(appointment=appointments, who=st.sampled_from(ACTORS), known=st.integers(0, 9))
    def confirm(self, appointment: UUID, who: str, known: int) -> None:
        booking = self.bookings[appointment]
        if not known:  # now and then, an appointment that does not exist, whoever asks
            attempt(lambda: self.app.confirm(self.actor(who, booking.patient), uuid4(), self.now),
                    NotFound, [self.log])
            return
        actor = self.actor(who, booking.patient)
        refusal: type[CareBridgeError] | None = None
        appended: list[str] = []
        lapses = booking.status == "held" and not booking.live(self.now)
        if not self.may_act(actor, booking.patient):
            refusal = Forbidden
        elif booking.status == "booked":
            pass
        elif booking.status == "held" and not lapses:
            appended = ["Confirmed"]
        else:
            refusal = HoldNotLive
            appended = ["HoldLapsed"] if lapses else []  # the lapse is recorded on the way
        attempt(lambda: self.app.confirm(actor, appointment, self.now), refusal, [self.log],
                {self.log: {appointment: appended}}, {self.log: booking.ledgers()})
        if appended == ["Confirmed"]:
            booking.status, booking.hold_expires_at = "booked", None
        elif appended == ["HoldLapsed"]:
            booking.status = "lapsed"

    @rule(appointment=appointments, who=st.sampled_from(ACTORS),
          reason=st.sampled_from(CancellationReason), fitting=MOSTLY)
    def cancel(self, appointment: UUID, who: str, reason: CancellationReason,
               fitting: bool) -> None:
        booking = self.bookings[appointment]
        actor = self.actor(who, booking.patient)
        allowed = PATIENT_REASONS if actor.role is Role.PATIENT else CLINIC_REASONS
        if fitting and reason not in allowed:
            reason = CancellationReason.OTHER
        refusal: type[CareBridgeError] | None = None
        appended: list[str] = []
        if not self.may_act(actor, booking.patient):
            refusal = Forbidden
        elif booking.status == "cancelled":
            pass
        elif reason not in allowed:
            refusal = InvalidInput
        elif not booking.live(self.now) or booking.status not in ("held", "booked") \
                or self.now >= booking.starts_at:
            refusal = AppointmentClosed
        else:
            appended = ["Cancelled"]
        attempt(lambda: self.app.cancel(actor, appointment, reason, self.now), refusal,
                [self.log], {self.log: {appointment: appended}}, {self.log: booking.ledgers()})
        if appended:
            booking.late = booking.status == "booked" \
                and self.now > booking.starts_at - timedelta(hours=POLICY.free_cancellation_hours)
            booking.status = "cancelled"

    @rule(appointment=appointments, who=st.sampled_from(ACTORS), day=st.integers(0, 5),
          index=st.integers(0, 40), own_slot=MOSTLY, to=st.sampled_from((None, None, *CLINICIANS)),
          with_reason=MOSTLY)
    def reschedule(self, appointment: UUID, who: str, day: int, index: int, own_slot: bool,
                   to: UUID | None, with_reason: bool) -> None:
        booking = self.bookings[appointment]
        actor = self.actor(who, booking.patient)
        clinician = to or booking.clinician
        start = pick_start(clinician, booking.kind, self.day(day, own_slot), index, own_slot)
        by_staff = actor.role is not Role.PATIENT
        found, room = self.room_for(clinician, booking.kind, start, besides=appointment)
        refusal: type[CareBridgeError] | None = None
        appended: list[str] = []
        if not self.may_act(actor, booking.patient):
            refusal = Forbidden
        elif self.placement_refused(clinician, booking.kind, start) \
                or (by_staff and not with_reason):
            refusal = InvalidInput
        elif (start, clinician) == (booking.starts_at, booking.clinician):
            pass
        elif booking.status != "booked" or self.now >= booking.starts_at:
            refusal = AppointmentClosed
        elif not by_staff and (booking.starts_at - self.now < timedelta(hours=24)
                               or booking.reschedules >= POLICY.max_reschedules):
            refusal = RescheduleRefused
        elif not found or not self.free(booking.kind, start,
                                        [b for b in self.live(appointment)
                                         if b.clinician == clinician]):
            refusal = SlotTaken
        else:
            appended = ["Rescheduled"]
        attempt(lambda: self.app.reschedule(
                    actor, appointment, start, self.now, new_clinician_id=to,
                    override_reason="The clinician is unwell" if with_reason else None),
                refusal, [self.log], {self.log: {appointment: appended}},
                {self.log: booking.ledgers() | self._ledger_ids(clinician, room, start)})
        if appended:
            booking.starts_at, booking.clinician, booking.room = start, clinician, room
            booking.reschedules += 1

    @rule(appointment=appointments, who=st.sampled_from(ACTORS), arrived=st.booleans())
    def record_outcome(self, appointment: UUID, who: str, arrived: bool) -> None:
        booking = self.bookings[appointment]
        actor = self.actor(who, booking.patient)
        outcome = "arrived" if arrived else "no_show"
        too_early = booking.starts_at - self.now > timedelta(hours=1) if arrived \
            else self.now < booking.starts_at
        refusal: type[CareBridgeError] | None = None
        appended: list[str] = []
        if actor.role is Role.PATIENT or not self.may_act(actor, booking.patient):
            refusal = Forbidden
        elif booking.status == outcome:
            pass
        elif booking.status != "booked":
            refusal = AppointmentClosed
        elif too_early:
            refusal = NotYet
        else:
            appended = ["Arrived" if arrived else "NoShowRecorded"]
        command = self.app.arrive if arrived else self.app.record_no_show
        attempt(lambda: command(actor, appointment, self.now), refusal, [self.log],
                {self.log: {appointment: appended}})
        if appended:
            booking.status = outcome

    @rule(jump=st.sampled_from(JUMPS))
    def time_passes(self, jump: timedelta) -> None:
        if self.now + jump < END:
            self.now += jump

    @rule(appointment=appointments, offset=st.sampled_from(NEAR))
    def time_comes_near(self, appointment: UUID, offset: timedelta) -> None:
        """The clock moves on to a moment near a booking that its rules turn on."""
        target = self.bookings[appointment].starts_at + offset
        if self.now < target < END:
            self.now = target

    # ---- invariants -----------------------------------------------------------------------

    @invariant()
    def count_step(self) -> None:
        STEPS.checks += 1

    @invariant()
    def appointments_replay_as_modelled(self) -> None:
        for booking in self.bookings.values():
            stored = self.log.replayed(booking.id)
            assert isinstance(stored, Appointment)
            assert (stored.status, stored.starts_at, stored.clinician_id, stored.room_id,
                    stored.reschedule_count, stored.late_cancellation, stored.patient_id) == (
                booking.status, booking.starts_at, booking.clinician, booking.room,
                booking.reschedules, booking.late, booking.patient), booking
            assert stored.status_at(self.now) == ("lapsed" if booking.status == "held"
                                                  and not booking.live(self.now)
                                                  else booking.status)

    @invariant()
    def no_double_booking(self) -> None:
        """Checked on the appointments as stored, not on the model."""
        live = [a for a in (self.log.replayed(i) for i in self.bookings)
                if a.status in LIVE_OUTCOMES or a.status_at(self.now) == "held"]
        for owner in [*CLINICIANS, ROOM, VACCINATION]:
            mine = [a for a in live if owner in (a.clinician_id, a.room_id)]
            for a in mine:
                overlapping = [b for b in mine if collide((a.starts_at, a.ends_at),
                                                          (b.starts_at, b.ends_at))]
                group = all(b.consultation_type_id == FLU.type_id and b.starts_at == a.starts_at
                            for b in overlapping)
                assert len(overlapping) == 1 or (group and len(overlapping) <= 3), overlapping
        for patient in PATIENTS:
            holds = [a for a in live if a.patient_id == patient and a.status == "held"]
            assert len(holds) <= MAX_ACTIVE_HOLDS

    @invariant()
    def ledgers_hold_exactly_the_live_bookings(self) -> None:
        """So a slot that is free in the appointments is free to book: nothing lingers."""
        for aggregate_id in list(self.log.versions):
            ledger = self.log.replayed(aggregate_id)
            if not isinstance(ledger, DayLedger):
                continue
            owner = getattr(ledger, "clinician_id", None) or getattr(ledger, "room_id", None)
            day = getattr(ledger, "day", None)
            expected = {str(b.id): (b.starts_at, b.ends_at) for b in self.live()
                        if owner in (b.clinician, b.room) and local_day(b.starts_at) == day}
            assert {k: (e["starts_at"], e["ends_at"]) for k, e in ledger.entries.items()
                    if e["hold_expires_at"] is None or e["hold_expires_at"] > self.now} == expected

    @invariant()
    def slot_rows_commit_with_their_events(self) -> None:
        rows = upserted_rows(self.app, SLOT_BOOKINGS)
        assert {appointment_id: row[8] for appointment_id, row in rows.items()} == {
            b.id: SLOT_STATUS[b.status] for b in self.bookings.values()}

    @invariant()
    def nothing_lost_from_the_log(self) -> None:
        self.log.check_totals()


def test_booking_never_double_books_nor_loses_an_event() -> None:
    before = STEPS.steps
    run_state_machine_as_test(SchedulingMachine, settings=MACHINE_SETTINGS)
    print(f"SchedulingMachine: {STEPS.steps - before} steps")  # shown with -s
    assert STEPS.steps - before >= MIN_STEPS, STEPS


# ---- the clock changes, spelled out ---------------------------------------------------------------

def test_the_night_clinic_has_an_hour_more_in_autumn_and_an_hour_less_in_spring() -> None:
    autumn, spring = slots(ASHA, DAYS[1], GP), slots(ASHA, DAYS[4], GP)
    assert len(autumn) == 14 and len(spring) == 6
    app = AppointmentsApplication(in_memory_store(), schedule(), ClinicCare(), None)  # type: ignore[arg-type]
    at = datetime(2026, 10, 20, tzinfo=UTC)
    first = datetime(2026, 10, 25, 1, 15, tzinfo=LONDON)  # 01:15 BST
    second = datetime(2026, 10, 25, 1, 15, fold=1, tzinfo=LONDON)  # 01:15 GMT, an hour later
    assert first.astimezone(UTC) in autumn and second.astimezone(UTC) in autumn
    for n, start in enumerate((first, second)):
        app.book(RECEPTION, PATIENTS[n], ASHA, GP.type_id, start.astimezone(UTC), at)
    ledger: ClinicianDay = app.repository.get(clinician_day_id(ASHA, date(2026, 10, 25)))
    assert sorted(e["starts_at"] for e in ledger.entries.values()) == [
        datetime(2026, 10, 25, 0, 15, tzinfo=UTC), datetime(2026, 10, 25, 1, 15, tzinfo=UTC)]
