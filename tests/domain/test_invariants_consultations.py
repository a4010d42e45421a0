"""Invariants of the video consultation, proved by a state machine that drives the command handlers.

The machine drives `TelemedicineApplication` and the `AppointmentsApplication` it follows, in
memory and wired as the service wires them (a cancelled, moved or missed appointment is passed
on at once): reception books video and in-person appointments on the Monday after the spring
clock change, patients join (early, on time, too early, too late, without consent, someone
else's), clinicians admit them (their own and others'), sockets come and go, media connects and
fails, calls end, no-shows and summaries are recorded, appointments are cancelled and moved.
After every step:

- no illegal transition: the machine's own model of each consultation (the waiting-room state
  and what it rests on: who is checked in, present, admitted, connected) judges each command
  first; an illegal one is refused with the domain's error and appends nothing, a legal one
  succeeds as modelled; a closed consultation never opens again;
- the consultation follows its appointment: it is closed when the appointment is cancelled or
  missed, and while open it has the appointment's time and clinician;
- no lost event: every consultation and appointment replayed from its stored events equals the
  model, its version is its number of events, and both notification logs hold exactly those,
  in order, gapless.

Settings: see tests/domain/invariants_support.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from commands.appointments import AppointmentsApplication
from commands.telemedicine import ConsentRequired, NotVideo, TelemedicineApplication
from domain.access import Actor
from domain.appointments import (
    Appointment,
    AppointmentClosed,
    CancellationReason,
    SlotTaken,
    clinician_day_id,
    room_day_id,
)
from domain.consents import ConsentType
from domain.consultations import (
    Consultation,
    ConsultationClosed,
    NotYetOver,
    Outcome,
    Role,
    TooEarly,
    Windows,
)
from domain.errors import CareBridgeError, Conflict, Forbidden, InvalidInput, NotFound
from domain.identity import Role as AccountRole
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    StaticSchedule,
)
from tests.domain.invariants_support import (
    CLINIC,
    MACHINE_SETTINGS,
    MIN_STEPS,
    ClinicCare,
    Consents,
    EventLog,
    StepCounter,
    attempt,
    in_memory_store,
    person,
)

RIVERSIDE = ClinicInfo(CLINIC, "Riverside Health Centre", ("1 River Walk",), "London", "SE1 1AA",
                       "Europe/London")
VIDEO = ConsultationTypeInfo("video", "Video consultation", Mode.VIDEO, 10)
GP = ConsultationTypeInfo("gp-in-person", "GP appointment", Mode.IN_PERSON, 10,
                          buffer_after_minutes=5, room_kind="consulting")
KINDS = (VIDEO, VIDEO, VIDEO, GP)
ASHA, BEN = (person(AccountRole.DOCTOR, n) for n in (0xA5A, 0xBE2))
CLINICIANS = (ASHA, BEN)
RECEPTION = person(AccountRole.RECEPTION, 0xBEC1)
GRACE, ADA = (person(AccountRole.PATIENT, n, clinic=None).account_id for n in (0x6ACE, 0xADA))
PATIENTS = (GRACE, GRACE, GRACE, ADA)  # Ada never consented to video consultations

DAY = date(2027, 3, 29)  # the Monday after the spring change: 09:00 in London is 08:00 UTC
SLOTS = [datetime(2027, 3, 29, 8, 0, tzinfo=UTC) + timedelta(minutes=15 * n) for n in range(12)]
START = datetime(2027, 3, 29, 7, 0, tzinfo=UTC)
ROOMS = ("riverside-room-1", "riverside-room-2")
# Day ledgers are the scheduling machine's business; here they may change with any booking.
LEDGERS = [clinician_day_id(c.account_id, DAY) for c in CLINICIANS] + [
    room_day_id(room, DAY) for room in ROOMS]
END = START + timedelta(hours=8)
WINDOWS = Windows(join_minutes=10, early_minutes=20, grace_minutes=30)
JUMPS = tuple(timedelta(minutes=m) for m in (1, 1, 5, 5, 10, 15, 30, 120))
# Around the moments a consultation's rules turn on: the waiting room and the call opening,
# the start, and the end of joining (offsets from the start; the end is 10 minutes later).
NEAR = tuple(timedelta(minutes=m) for m in (-31, -29, -11, -9, 0, 20, 39, 41))
CONNECTIONS = {Role.PATIENT: ("p1", "p2"), Role.CLINICIAN: ("c1", "c2")}
MOSTLY = st.sampled_from((True, True, True, False))
SUMMARIES = ("", "Rest and fluids; call the clinic if it gets worse.")
NOTES = ("", "Probably viral.")


def schedule() -> StaticSchedule:
    sessions: list[tuple[str, time, time, int, tuple[str, ...], str | None]] = [
        (CLINIC, time(9), time(12), 15, (VIDEO.type_id, GP.type_id), None)]
    return StaticSchedule(
        clinic_list=[RIVERSIDE], type_list=[VIDEO, GP],
        clinician_list=[ClinicianInfo(c.account_id, f"Dr {n}", "general practice", ("en",),
                                      (CLINIC,), (VIDEO.type_id, GP.type_id))
                        for n, c in enumerate(CLINICIANS)],
        room_list=[RoomInfo(room, CLINIC, "consulting", room) for room in ROOMS],
        weekly={c.account_id: {DAY.weekday(): sessions} for c in CLINICIANS})


@dataclass
class Call:
    """The model of one consultation, written from the waiting-room diagram."""

    starts_at: datetime
    ends_at: datetime
    clinician: UUID
    closed: str | None = None
    checked_in: bool = False
    early: bool = False
    clinician_in: bool = False
    told: bool = False
    media: bool = False
    present: dict[Role, set[str]] = field(default_factory=lambda: {Role.PATIENT: set(),
                                                                   Role.CLINICIAN: set()})
    patient_came: bool = False
    call_started: bool = False
    follow_up: str | None = None
    notes: str | None = None

    def state(self) -> str:
        if self.closed:
            return self.closed
        if self.media and self.present[Role.PATIENT] and self.present[Role.CLINICIAN]:
            return "in_progress"
        if self.clinician_in:
            return "clinician_joined"
        if self.checked_in:
            return "early_arrival" if self.early else "waiting"
        return "scheduled"

    def joining_over(self, now: datetime) -> bool:
        return now > self.ends_at + WINDOWS.grace and not self.call_started \
            and not self.clinician_in

    def window_opens(self, now: datetime) -> bool:
        return not self.closed and self.checked_in and self.early \
            and now >= self.starts_at - WINDOWS.join


@dataclass
class Visit:
    """The model of one appointment and its consultation (None until one is stored)."""

    id: UUID
    patient: UUID
    clinician: UUID
    kind: ConsultationTypeInfo
    starts_at: datetime
    status: str = "booked"  # booked, cancelled, no_show
    call: Call | None = None

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.kind.occupies

    def fresh_call(self, now: datetime) -> Call:
        """The consultation a first join creates: already closed if the appointment is."""
        call = Call(self.starts_at, self.ends_at, self.clinician)
        call.closed = {"cancelled": "cancelled", "no_show": "no_show"}.get(self.status)
        return call

    def created(self, call: Call) -> list[str]:
        if self.call is not None:
            return []
        return ["Created", *({"cancelled": ["Cancelled"], "no_show": ["NoShow"]}.get(
            self.status, []))]


STEPS = StepCounter()


class ConsultationsMachine(RuleBasedStateMachine):
    visits = Bundle("visits")

    def __init__(self) -> None:
        super().__init__()
        STEPS.machines += 1
        self.now = START
        care = ClinicCare()
        self.appointments = AppointmentsApplication(in_memory_store(), schedule(), care,  # type: ignore[arg-type]
                                                    None)
        self.telemedicine = TelemedicineApplication(
            in_memory_store(), self.appointments,
            Consents({(GRACE, ConsentType.TELEMEDICINE)}), care, None, WINDOWS)  # type: ignore[arg-type]
        self.appointments.after_change.append(self.telemedicine.appointment_changed)
        self.booked, self.calls = EventLog(self.appointments), EventLog(self.telemedicine)
        self.logs = [self.booked, self.calls]
        self.visits_: dict[UUID, Visit] = {}
        self.closed_before: dict[UUID, object] = {}

    def expect(self, visit: Visit, appointment: list[str], call: list[str],
               ) -> dict[EventLog, dict[UUID, list[str]]]:
        return {self.booked: {visit.id: appointment}, self.calls: {visit.id: call}}

    def clinician_refusal(self, visit: Visit, who: str) -> type[CareBridgeError] | None:
        """Who may run the consultation: its own clinician; and only a video one exists."""
        if who != "clinician" or (visit.call is None and visit.kind is GP):
            return Forbidden if who != "clinician" else NotVideo
        return None

    def clinician(self, visit: Visit, who: str) -> Actor:
        own = next(c for c in CLINICIANS if c.account_id == visit.clinician)
        other = next(c for c in CLINICIANS if c is not own)
        return {"clinician": own, "another_clinician": other, "reception": RECEPTION}[who]

    # ---- appointments -----------------------------------------------------------------------

    @rule(target=visits, patient=st.sampled_from(PATIENTS), clinician=st.sampled_from(CLINICIANS),
          kind=st.sampled_from(KINDS), slot=st.integers(0, len(SLOTS) - 1), coming=MOSTLY)
    def book(self, patient: UUID, clinician: Actor, kind: ConsultationTypeInfo,
             slot: int, coming: bool) -> object:
        slots = [s for s in SLOTS if s > self.now] if coming else []
        start = (slots or SLOTS)[slot % len(slots or SLOTS)]
        busy = any(v.clinician == clinician.account_id and v.starts_at == start
                   and v.status != "cancelled" for v in self.visits_.values())
        refusal = InvalidInput if start <= self.now else (SlotTaken if busy else None)
        made = attempt(lambda: self.appointments.book(RECEPTION, patient, clinician.account_id,
                                                      kind.type_id, start, self.now),
                       refusal, self.logs,
                       lambda done: {self.booked: {UUID(done.result["appointment_id"]):
                                                   ["Created", "Confirmed"]}},
                       {self.booked: LEDGERS})
        if made is None:
            return multiple()
        visit = Visit(UUID(made.result["appointment_id"]), patient, clinician.account_id, kind,
                      start)
        self.visits_[visit.id] = visit
        return visit.id

    @rule(visit_id=visits, now_and_then=st.sampled_from((False, False, True)))
    def clinic_cancels(self, visit_id: UUID, now_and_then: bool) -> None:
        if not now_and_then:
            return
        visit = self.visits_[visit_id]
        refusal = None
        if visit.status == "no_show" or (visit.status == "booked" and self.now >= visit.starts_at):
            refusal = AppointmentClosed
        changes = refusal is None and visit.status == "booked"
        follows = changes and visit.call is not None and visit.call.closed is None
        attempt(lambda: self.appointments.cancel(RECEPTION, visit_id,
                                                 CancellationReason.CLINICIAN_UNAVAILABLE,
                                                 self.now),
                refusal, self.logs,
                self.expect(visit, ["Cancelled"] if changes else [],
                            ["Cancelled"] if follows else []),
                {self.booked: LEDGERS})
        if changes:
            visit.status = "cancelled"
        if follows and visit.call is not None:
            visit.call.closed, visit.call.media = "cancelled", False

    @rule(visit_id=visits, slot=st.integers(0, len(SLOTS) - 1),
          to=st.sampled_from((None, None, *CLINICIANS)))
    def clinic_moves(self, visit_id: UUID, slot: int, to: Actor | None) -> None:
        visit = self.visits_[visit_id]
        start, clinician = SLOTS[slot], to.account_id if to else visit.clinician
        busy = any(v.clinician == clinician and v.starts_at == start and v.id != visit.id
                   and v.status != "cancelled" for v in self.visits_.values())
        refusal: type[CareBridgeError] | None = None
        same = (start, clinician) == (visit.starts_at, visit.clinician)
        if start <= self.now:
            refusal = InvalidInput
        elif same:
            pass
        elif visit.status != "booked" or self.now >= visit.starts_at:
            refusal = AppointmentClosed
        elif busy:
            refusal = SlotTaken
        changes = refusal is None and not same
        follows = changes and visit.call is not None and visit.call.closed is None
        attempt(lambda: self.appointments.reschedule(
                    RECEPTION, visit_id, start, self.now, new_clinician_id=to.account_id if to
                    else None, override_reason="The clinician is called away"),
                refusal, self.logs,
                self.expect(visit, ["Rescheduled"] if changes else [], ["Moved"] if follows else []),
                {self.booked: LEDGERS})
        if changes:
            visit.starts_at, visit.clinician = start, clinician
        if follows and visit.call is not None:
            call = visit.call
            call.starts_at, call.ends_at, call.clinician = start, visit.ends_at, clinician
            call.present = {Role.PATIENT: set(), Role.CLINICIAN: set()}  # sockets are closed
            call.checked_in = call.early = call.clinician_in = call.media = False

    # ---- the patient ------------------------------------------------------------------------

    @rule(visit_id=visits, who=st.sampled_from(("patient",) * 6 + ("another_patient",
                                                                    "reception")))
    def patient_joins(self, visit_id: UUID, who: str) -> None:
        visit = self.visits_[visit_id]
        actor = {"patient": Actor(visit.patient, AccountRole.PATIENT), "reception": RECEPTION,
                 "another_patient": Actor(next(p for p in PATIENTS if p != visit.patient),
                                          AccountRole.PATIENT)}[who]
        call = visit.call or visit.fresh_call(self.now)
        refusal: type[CareBridgeError] | None = None
        names: list[str] = []
        early = self.now < visit.starts_at - WINDOWS.join
        if actor.account_id != visit.patient:
            refusal = Forbidden
        elif visit.kind is GP:
            refusal = NotVideo
        elif visit.patient != GRACE:
            refusal = ConsentRequired
        elif call.closed or call.joining_over(self.now):
            refusal = ConsultationClosed
        elif self.now < call.starts_at - WINDOWS.join - WINDOWS.early:
            refusal = TooEarly
        elif call.checked_in:
            names = ["WindowOpened"] if call.window_opens(self.now) else []
        else:
            names = ["CheckedIn"]
        if refusal is None:
            names = visit.created(call) + names
        attempt(lambda: self.telemedicine.join(actor, visit_id, self.now), refusal, self.logs,
                self.expect(visit, [], names))
        if refusal is None:
            if names[-1:] == ["CheckedIn"]:
                call.checked_in, call.early, call.patient_came = True, early, True
            elif names[-1:] == ["WindowOpened"]:
                call.early = False
            visit.call = call

    # ---- the clinician ----------------------------------------------------------------------

    @rule(visit_id=visits, who=st.sampled_from(("clinician",) * 6 + ("another_clinician",
                                                                      "reception")))
    def clinician_admits(self, visit_id: UUID, who: str) -> None:
        visit = self.visits_[visit_id]
        call = visit.call or (visit.fresh_call(self.now) if visit.kind is VIDEO else None)
        refusal = self.clinician_refusal(visit, who)
        names: list[str] = []
        if refusal is None and call is not None:
            if call.closed or call.joining_over(self.now):
                refusal = ConsultationClosed
            elif self.now < call.starts_at - WINDOWS.join:
                refusal = TooEarly
            else:
                names = visit.created(call) + (["WindowOpened"] if call.window_opens(self.now)
                                               else [])
                names += [] if call.clinician_in else ["ClinicianAdmitted"]
        attempt(lambda: self.telemedicine.admit(self.clinician(visit, who), visit_id, self.now),
                refusal, self.logs, self.expect(visit, [], names))
        if refusal is None and call is not None:
            call.early, call.clinician_in, call.told = False, True, True
            visit.call = call

    @rule(visit_id=visits, outcome=st.sampled_from(Outcome),
          who=st.sampled_from(("clinician",) * 6 + ("another_clinician", "reception")))
    def clinician_ends(self, visit_id: UUID, outcome: Outcome, who: str) -> None:
        visit = self.visits_[visit_id]
        call = visit.call or (visit.fresh_call(self.now) if visit.kind is VIDEO else None)
        refusal = self.clinician_refusal(visit, who)
        names: list[str] = []
        if refusal is None and call is not None:
            if call.closed in ("cancelled", "no_show"):
                refusal = ConsultationClosed
            elif call.closed:
                pass
            elif outcome is Outcome.COMPLETED and not call.call_started:
                refusal = NotYetOver
            else:
                names = [*visit.created(call), "Ended"]
        attempt(lambda: self.telemedicine.end(self.clinician(visit, who), visit_id, outcome,
                                              self.now),
                refusal, self.logs, self.expect(visit, [], names))
        if names and call is not None:
            call.closed = "ended" if outcome is Outcome.COMPLETED else "technical_failure"
            call.media = False
            visit.call = call

    @rule(visit_id=visits, who=st.sampled_from(("clinician",) * 6 + ("another_clinician",
                                                                      "reception")))
    def clinician_records_no_show(self, visit_id: UUID, who: str) -> None:
        visit = self.visits_[visit_id]
        call = visit.call or (visit.fresh_call(self.now) if visit.kind is VIDEO else None)
        refusal = self.clinician_refusal(visit, who)
        if refusal is None and call is not None:
            if call.closed not in (None, "no_show"):
                refusal = ConsultationClosed
            elif call.closed is None and (call.patient_came or self.now < call.starts_at):
                refusal = Conflict
        changes = refusal is None and visit.status == "booked"
        follows = changes and visit.call is not None
        attempt(lambda: self.telemedicine.record_no_show(self.clinician(visit, who), visit_id,
                                                         self.now),
                refusal, self.logs,
                self.expect(visit, ["NoShowRecorded"] if changes else [],
                            ["NoShow"] if follows else []))
        if changes:
            visit.status = "no_show"
        if follows and visit.call is not None:
            visit.call.closed = "no_show"

    @rule(visit_id=visits, follow_up=st.sampled_from(SUMMARIES), notes=st.sampled_from(NOTES),
          who=st.sampled_from(("clinician",) * 6 + ("another_clinician", "reception")))
    def clinician_writes_summary(self, visit_id: UUID, follow_up: str, notes: str,
                                 who: str) -> None:
        visit = self.visits_[visit_id]
        call = visit.call or (visit.fresh_call(self.now) if visit.kind is VIDEO else None)
        refusal = self.clinician_refusal(visit, who)
        names: list[str] = []
        if refusal is None and call is not None:
            if not follow_up and not notes:
                refusal = InvalidInput
            elif call.closed not in ("ended", "technical_failure"):
                refusal = NotYetOver
            else:
                names = (["FollowUpWritten"] if follow_up != (call.follow_up or "") else []) + (
                    ["InternalNotesWritten"] if notes != (call.notes or "") else [])
        attempt(lambda: self.telemedicine.record_summary(self.clinician(visit, who), visit_id,
                                                         follow_up, notes, self.now),
                refusal, self.logs, self.expect(visit, [], names))
        if names and call is not None:
            call.follow_up, call.notes = follow_up or None, notes or None

    # ---- the sockets ------------------------------------------------------------------------

    @rule(visit_id=visits, role=st.sampled_from(Role), second=st.booleans(),
          happening=st.sampled_from(("joined", "joined", "left", "connected", "failed",
                                     "refresh")))
    def socket_reports(self, visit_id: UUID, role: Role, second: bool, happening: str) -> None:
        visit = self.visits_[visit_id]
        call, connection = visit.call, CONNECTIONS[role][second]
        if call is None:
            attempt(lambda: self.telemedicine.refresh(visit_id, self.now), NotFound, self.logs)
            return
        here = call.present[role]
        name = {"joined": "Joined" if not call.closed and connection not in here else None,
                "left": "Left" if connection in here else None,
                "connected": "MediaConnected" if not call.closed and not call.media
                and call.clinician_in and call.present[Role.PATIENT]
                and call.present[Role.CLINICIAN] else None,
                "failed": "ConnectionFailed" if not call.closed else None,
                "refresh": "WindowOpened" if call.window_opens(self.now) else None}[happening]
        telemedicine, by = self.telemedicine, f"{role.value}:{visit.id}"
        command = {
            "joined": lambda: telemedicine.joined(visit_id, role, connection, by, self.now),
            "left": lambda: telemedicine.left(visit_id, role, connection, "closed",
                                              {"rtt_ms_avg": 40, "made_up": "x"}, by, self.now),
            "connected": lambda: telemedicine.connected(visit_id, role, by, self.now),
            "failed": lambda: telemedicine.connection_failed(visit_id, role, "ice failed", by,
                                                             self.now),
            "refresh": lambda: telemedicine.refresh(visit_id, self.now)}[happening]
        attempt(command, None, self.logs, self.expect(visit, [], [name] if name else []))
        if name == "Joined":
            here.add(connection)
            if role is Role.PATIENT:
                call.patient_came = call.checked_in = True
        elif name == "Left":
            here.discard(connection)
            if not here:
                call.media = False
                call.clinician_in = call.clinician_in and role is not Role.CLINICIAN
        elif name == "MediaConnected":
            call.media = call.call_started = True
        elif name == "ConnectionFailed":
            call.media = False
        elif name == "WindowOpened":
            call.early = False

    # ---- a consultation's ordinary life ------------------------------------------------------

    @rule(visit_id=visits, ordinary=MOSTLY)
    def the_call_moves_on(self, visit_id: UUID, ordinary: bool) -> None:
        """The next step of an ordinary consultation (or of one that goes wrong), so that the
        machine reaches calls in progress, no-shows and summaries as often as waiting rooms."""
        visit = self.visits_[visit_id]
        state = visit.call.state() if visit.call else "scheduled"
        if state in ("scheduled", "early_arrival") and ordinary:
            self.time_comes_near(visit_id, timedelta(minutes=-15))
            self.patient_joins(visit_id, "patient")
        elif state in ("scheduled", "early_arrival"):  # the patient never comes
            self.time_comes_near(visit_id, timedelta(minutes=-9))
            self.clinician_admits(visit_id, "clinician")
            self.time_comes_near(visit_id, timedelta(0))
            self.clinician_records_no_show(visit_id, "clinician")
        elif state == "waiting" and ordinary:
            self.time_comes_near(visit_id, timedelta(minutes=-9))
            self.clinician_admits(visit_id, "clinician")
        elif state == "waiting":  # the clinic moves it while the patient waits
            later = [n for n, slot in enumerate(SLOTS) if slot > visit.starts_at]
            self.clinic_moves(visit_id, later[0] if later else 0, None)
        elif state == "clinician_joined" and ordinary:
            self.socket_reports(visit_id, Role.PATIENT, False, "joined")
            self.socket_reports(visit_id, Role.CLINICIAN, False, "joined")
            self.socket_reports(visit_id, Role.CLINICIAN, False, "connected")
        elif state == "clinician_joined":  # the clinic cancels it with the clinician there
            self.clinic_cancels(visit_id, now_and_then=True)
        elif state == "in_progress" and ordinary:
            self.clinician_ends(visit_id, Outcome.COMPLETED, "clinician")
        elif state == "in_progress":
            self.socket_reports(visit_id, Role.PATIENT, False, "failed")
            self.socket_reports(visit_id, Role.PATIENT, False, "left")
            self.clinician_ends(visit_id, Outcome.TECHNICAL_FAILURE, "clinician")
        elif state in ("ended", "technical_failure"):
            self.clinician_writes_summary(visit_id, SUMMARIES[ordinary], NOTES[1], "clinician")

    @rule(visit_id=visits, cancel=st.booleans())
    def the_clinic_changes_a_waiting_room(self, visit_id: UUID, cancel: bool) -> None:
        """The patient waits for the call when the clinic cancels or moves the appointment:
        the waiting room must follow at once."""
        self.time_comes_near(visit_id, timedelta(minutes=-29))
        self.patient_joins(visit_id, "patient")
        if cancel:
            self.clinic_cancels(visit_id, now_and_then=True)
        else:
            visit = self.visits_[visit_id]
            later = [n for n, slot in enumerate(SLOTS) if slot > visit.starts_at]
            self.clinic_moves(visit_id, later[0] if later else 0, None)

    # ---- time -------------------------------------------------------------------------------

    @rule(jump=st.sampled_from(JUMPS))
    def time_passes(self, jump: timedelta) -> None:
        if self.now + jump < END:
            self.now += jump

    @rule(visit_id=visits, offset=st.sampled_from(NEAR))
    def time_comes_near(self, visit_id: UUID, offset: timedelta) -> None:
        target = self.visits_[visit_id].starts_at + offset
        if self.now < target < END:
            self.now = target

    # ---- invariants -------------------------------------------------------------------------

    @invariant()
    def count_step(self) -> None:
        STEPS.checks += 1

    @invariant()
    def consultations_replay_as_modelled(self) -> None:
        for visit in self.visits_.values():
            stored = self.calls.replayed(visit.id)
            call = visit.call
            assert (stored is None) == (call is None), visit
            if stored is None or call is None:
                continue
            assert isinstance(stored, Consultation)
            assert stored.state.value == call.state(), (stored.state, call)
            assert (stored.starts_at, stored.ends_at, stored.clinician_id, stored.checked_in,
                    stored.arrived_early, stored.clinician_in, stored.clinician_told,
                    stored.media_connected, stored.connections, stored.patient_first_in is not None,
                    stored.call_started is not None, stored.follow_up_instructions,
                    stored.internal_notes) == (
                call.starts_at, call.ends_at, call.clinician, call.checked_in, call.early,
                call.clinician_in, call.told, call.media, call.present, call.patient_came,
                call.call_started, call.follow_up, call.notes), call

    @invariant()
    def the_consultation_follows_its_appointment(self) -> None:
        """Checked on what is stored: appointment and consultation as replayed."""
        for visit in self.visits_.values():
            appointment = self.booked.replayed(visit.id)
            assert isinstance(appointment, Appointment)
            assert (appointment.status, appointment.starts_at, appointment.clinician_id) == (
                visit.status, visit.starts_at, visit.clinician)
            call = self.calls.replayed(visit.id)
            if call is None:
                continue
            if appointment.status in ("cancelled", "no_show"):
                assert not call.is_open
            if call.is_open:
                assert (call.starts_at, call.ends_at, call.clinician_id) == (
                    appointment.starts_at, appointment.ends_at, appointment.clinician_id)

    @invariant()
    def closed_stays_closed(self) -> None:
        for visit in self.visits_.values():
            stored = self.calls.replayed(visit.id)
            closed = stored.closed if stored is not None else None
            before = self.closed_before.setdefault(visit.id, closed)
            assert before is None or before == closed, (before, closed)
            self.closed_before[visit.id] = closed

    @invariant()
    def nothing_lost_from_the_logs(self) -> None:
        for log in self.logs:
            log.check_totals()



def test_video_consultations_keep_their_invariants() -> None:
    before = STEPS.steps
    run_state_machine_as_test(ConsultationsMachine, settings=MACHINE_SETTINGS)
    print(f"ConsultationsMachine: {STEPS.steps - before} steps")  # shown with -s
    assert STEPS.steps - before >= MIN_STEPS, STEPS
