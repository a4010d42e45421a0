"""The appointments context: hold, confirm, book, reschedule, cancel, arrivals and no-shows.

Every reservation saves the appointment with the day ledgers it touches (the clinician's day,
and the room's day when the type needs a room) and the `carebridge.slot_bookings` row in ONE
transaction. Two requests for the last place race on the same ledger version: one commits,
the other gets ConcurrentChange, decides again on fresh state and, if the place is gone,
answers 409 `slot-taken` with the nearest alternatives.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.care import CareAccessApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.feature_flags import FeatureFlagsApplication
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from commands.outbox import Message, enqueue, local_when
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever
from domain.appointments import (
    Appointment,
    CancellationReason,
    ClinicianDay,
    DayLedger,
    RoomDay,
    SlotTaken,
    clinician_day_id,
    room_day_id,
)
from domain.errors import (
    CareBridgeError,
    ConcurrentChange,
    Conflict,
    Forbidden,
    NotFound,
    Rejections,
)
from domain.feature_flags import Feature
from domain.identity import Role
from domain.schedule_types import (
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    ScheduleSource,
    Session,
    StaticSchedule,
    fits,
    local_day,
)

log = logging.getLogger("carebridge.appointments")

SLOT_BOOKINGS = "carebridge.slot_bookings"
MAX_ACTIVE_HOLDS = 3  # per patient at a time


class TooManyHolds(Conflict):
    code = "too-many-holds"
    title = "You are holding several appointments already"

ATTEMPTS = 12  # decisions retried on fresh state after losing a race
ALTERNATIVES = 5
ALTERNATIVE_DAYS = 14

_UPSERT = (
    f"INSERT INTO {SLOT_BOOKINGS} (appointment_id, patient_id, clinician_id, clinic_id, room_id,"
    " consultation_type_id, starts_at, ends_at, status, hold_expires_at, updated_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (appointment_id) DO UPDATE SET clinician_id = EXCLUDED.clinician_id,"
    " room_id = EXCLUDED.room_id, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,"
    " status = EXCLUDED.status, hold_expires_at = EXCLUDED.hold_expires_at,"
    " updated_at = EXCLUDED.updated_at")
_SLOT_STATUS = {"held": "held", "booked": "booked", "arrived": "booked", "no_show": "booked",
                "cancelled": "released", "lapsed": "released"}

Decided = tuple[dict[str, Any], list[Any], list[Statement]]


class Placement:
    """Where a booking lands: its session, clinic, type, and the ledgers it reserves in."""

    def __init__(self, session: Session, clinic: ClinicInfo, kind: ConsultationTypeInfo,
                 starts_at: datetime) -> None:
        self.session, self.clinic, self.kind, self.starts_at = session, clinic, kind, starts_at
        self.day = local_day(starts_at, clinic.zone)
        self.ends_at = starts_at + kind.occupies


class AppointmentsApplication(CareApplication):
    name = "appointments"
    snapshotting_intervals = {ClinicianDay: 50, RoomDay: 50}
    # A busy day's ledger is read for every booking: keep it, and read only what is new.
    env = {"AGGREGATE_CACHE_MAXSIZE": "2000"}

    def __init__(self, store: EventStoreSettings, schedule: ScheduleSource | None = None,
                 care: CareAccessApplication | None = None,
                 feature_flags: FeatureFlagsApplication | None = None,
                 hold_minutes: int = 5, care_tail_days: int = 30) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        # The scheduling context in production; tests and benchmarks may put a StaticSchedule.
        self.schedule: ScheduleSource = schedule if schedule is not None else StaticSchedule()
        self.care, self.feature_flags = care, feature_flags
        self.hold_for = timedelta(minutes=hold_minutes)
        self.care_tail = timedelta(days=care_tail_days)
        # Requests in this process for the same clinician's day take turns, so that they do
        # not all lose the race to each other; across processes the ledger version decides.
        self._day_locks = [threading.Lock() for _ in range(64)]
        # Called after a cancellation, a move or a no-show commits (telemedicine follows).
        self.after_change: list[Callable[[Appointment, str, datetime], None]] = []

    # ---- booking ----------------------------------------------------------------------------

    def hold(self, actor: Actor, patient_id: UUID, clinician_id: UUID, consultation_type_id: str,
             starts_at: datetime, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """Holds a slot for `hold_minutes` while the patient confirms."""
        return self._reserve(actor, patient_id, clinician_id, consultation_type_id, starts_at, at,
                             key, confirmed=False)

    def book(self, actor: Actor, patient_id: UUID, clinician_id: UUID, type_id: str,
             starts_at: datetime, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """Hold and confirmation in one transaction: staff on the patient's behalf, and the
        waitlist when an offer is accepted."""
        return self._reserve(actor, patient_id, clinician_id, type_id, starts_at, at, key,
                             confirmed=True)

    def confirm(self, actor: Actor, appointment_id: UUID, at: datetime,
                key: IdempotencyKey | None = None) -> Outcome:
        appointment = self._authorised(actor, appointment_id, Action.APPOINTMENTS_BOOK, at)
        if appointment.hold_lapsed(at):
            self._record_lapse(appointment, at)  # then confirming below refuses

        def decide() -> Decided:
            current = self.appointment(appointment_id)
            if not current.confirm(by=actor.ref, at=at):
                return _view(current, at), [], []
            ledgers = self._ledgers_of(current)
            for ledger in ledgers:
                ledger.confirm(appointment_id, by=actor.ref, at=at)
            return _view(current, at), [current, *ledgers], [_slot_row(current, at)]

        outcome = self._decide(key, decide, days=self._days_of(appointment))
        if outcome.result["changed"] and not outcome.replayed:
            self._join_care_team(appointment_id, at)
        return outcome

    def _reserve(self, actor: Actor, patient_id: UUID, clinician_id: UUID, type_id: str,
                 starts_at: datetime, at: datetime, key: IdempotencyKey | None,
                 confirmed: bool) -> Outcome:
        self._authorise_patient(actor, Action.APPOINTMENTS_BOOK, patient_id, at)
        place = self._placement(clinician_id, type_id, starts_at, at)
        if actor.role != Role.PATIENT and not actor.system \
                and place.clinic.clinic_id not in actor.clinic_ids:
            raise Forbidden("You can book only at the clinics you work at.")
        self._check_feature(place, patient_id)
        by_staff = actor.role != Role.PATIENT and not actor.system

        def decide() -> Decided:
            if not confirmed:
                self._check_hold_limit(patient_id, at)
            clinician_day = self._ledger(ClinicianDay, clinician_id, place.day, actor, at)
            room_id, room_day = self._free_room(place, at, actor)
            appointment = Appointment(
                patient_id=patient_id, clinician_id=clinician_id,
                clinic_id=place.clinic.clinic_id, room_id=room_id, consultation_type_id=type_id,
                mode=place.kind.mode.value, starts_at=starts_at, ends_at=place.ends_at,
                hold_expires_at=at + self.hold_for, booked_by_staff=by_staff, by=actor.ref, at=at)
            hold_until = None if confirmed else at + self.hold_for
            ledgers = [clinician_day] + ([room_day] if room_day is not None else [])
            for ledger in ledgers:
                ledger.reserve(appointment.id, place.kind, starts_at, room_id, hold_until,
                               by=actor.ref, at=at)
            if confirmed:
                appointment.confirm(by=actor.ref, at=at)
            return _view(appointment, at), [appointment, *ledgers], [_slot_row(appointment, at)]

        outcome = self._decide(key, decide, taken=lambda: self._taken(place, at),
                               days=(clinician_day_id(clinician_id, place.day),))
        if confirmed and outcome.result["changed"] and not outcome.replayed:
            self._join_care_team(UUID(outcome.result["appointment_id"]), at)
        return outcome

    def _check_hold_limit(self, patient_id: UUID, at: datetime) -> None:
        """A patient holds a few slots at most, so that nobody can take a clinic's diary out
        of circulation by holding and never confirming."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute(
                f"SELECT count(*) AS holds FROM {SLOT_BOOKINGS} WHERE patient_id = %s"
                " AND status = 'held' AND hold_expires_at > %s", (patient_id, at)).fetchone()
        if row is not None and row["holds"] >= MAX_ACTIVE_HOLDS:
            raise TooManyHolds(
                f"You are already holding {MAX_ACTIVE_HOLDS} appointments. Confirm the one you "
                "want; the others are released by themselves within a few minutes.")

    def reschedule(self, actor: Actor, appointment_id: UUID, new_starts_at: datetime,
                   at: datetime, key: IdempotencyKey | None = None,
                   new_clinician_id: UUID | None = None,
                   override_reason: str | None = None) -> Outcome:
        appointment = self._authorised(actor, appointment_id, Action.APPOINTMENTS_BOOK, at)
        by_staff = actor.role != Role.PATIENT and not actor.system
        clinician_id = new_clinician_id or appointment.clinician_id
        place = self._placement(clinician_id, appointment.consultation_type_id, new_starts_at,
                                at, field="starts_at")
        if place.clinic.clinic_id != appointment.clinic_id:
            errors = Rejections()
            errors.add("clinician_id", "Choose a time at the same clinic, or cancel and book "
                       "again at the other clinic.")
            errors.raise_if_any()
        if by_staff and not (override_reason or "").strip():
            errors = Rejections()
            errors.add("reason", "Say why the clinic moves this appointment.")
            errors.raise_if_any()

        def decide() -> Decided:
            current = self.appointment(appointment_id)
            policy = self._clinic(current.clinic_id).policy
            if (current.starts_at, current.clinician_id) == (new_starts_at, clinician_id):
                return _view(current, at), [], []
            current.check_reschedule(new_starts_at, policy, by_staff, at)
            old = self._ledgers_of(current)
            clinician_day = self._ledger(ClinicianDay, clinician_id, place.day, actor, at)
            room_id, room_day = self._free_room(place, at, actor, besides=current.id)
            new = [clinician_day] + ([room_day] if room_day is not None else [])
            kept = {ledger.id for ledger in new}
            for ledger in old:
                if ledger.id not in kept:
                    ledger.release(current.id, by=actor.ref, at=at)
            for ledger in new:
                ledger.reserve(current.id, place.kind, new_starts_at, room_id, None,
                               by=actor.ref, at=at)
            current.reschedule(new_starts_at, place.ends_at, room_id, clinician_id,
                               by=actor.ref, at=at,
                               reason=override_reason.strip() if by_staff and override_reason
                               else None)
            touched = [current, *[o for o in old if o.id not in kept], *new]
            told = self._tell_patient(current, place.clinic, "appointment_moved_by_clinic",
                                      at) if by_staff else []
            return _view(current, at), touched, [_slot_row(current, at), *told]

        outcome = self._decide(key, decide, taken=lambda: self._taken(place, at),
                               days=(clinician_day_id(clinician_id, place.day),
                                     *self._days_of(appointment)))
        if outcome.result["changed"] and not outcome.replayed:
            self._join_care_team(appointment_id, at)
            self._changed(appointment_id, actor, at)
        return outcome

    def cancel(self, actor: Actor, appointment_id: UUID, reason_code: CancellationReason,
               at: datetime, note: str | None = None,
               key: IdempotencyKey | None = None) -> Outcome:
        appointment = self._authorised(actor, appointment_id, Action.APPOINTMENTS_BOOK, at)
        by_clinic = actor.role != Role.PATIENT
        clinic = self._clinic(appointment.clinic_id)

        def cancellation(current: Appointment) -> dict[str, Any]:
            # The same answer whether this request cancelled it or it already was cancelled.
            ends = current.free_cancellation_ends(clinic.policy)
            return _view(current, at) | {
                "late": current.late_cancellation,
                "free_cancellation_ended_at": ends.isoformat(),
                "free_cancellation_ended_at_local": local_when(ends, clinic.zone)}

        def decide() -> Decided:
            current = self.appointment(appointment_id)
            if not current.cancel(reason_code, clinic.policy, by_clinic, note, by=actor.ref,
                                  at=at):
                return cancellation(current), [], []
            ledgers = self._ledgers_of(current)
            for ledger in ledgers:
                ledger.release(appointment_id, by=actor.ref, at=at)
            also = [_slot_row(current, at)]
            if by_clinic:
                also += self._tell_patient_of_cancellation(current, clinic, at)
            return cancellation(current), [current, *ledgers], also

        outcome = self._decide(key, decide, days=self._days_of(appointment))
        if outcome.result["changed"] and not outcome.replayed:
            self._changed(appointment_id, actor, at)
        return outcome

    def arrive(self, actor: Actor, appointment_id: UUID, at: datetime,
               key: IdempotencyKey | None = None) -> Outcome:
        return self._record_outcome(actor, appointment_id, at, key, Appointment.arrive)

    def record_no_show(self, actor: Actor, appointment_id: UUID, at: datetime,
                       key: IdempotencyKey | None = None) -> Outcome:
        return self._record_outcome(actor, appointment_id, at, key, Appointment.record_no_show)

    def _record_outcome(self, actor: Actor, appointment_id: UUID, at: datetime,
                        key: IdempotencyKey | None,
                        record: Callable[[Appointment, str, datetime], bool]) -> Outcome:
        if actor.role == Role.PATIENT:
            raise Forbidden("Only clinic staff can record arrivals and no-shows.")
        self._authorised(actor, appointment_id, Action.APPOINTMENTS_BOOK, at)

        def decide() -> Decided:
            current = self.appointment(appointment_id)
            record(current, actor.ref, at)
            return _view(current, at), [current], [_slot_row(current, at)]

        outcome = self._decide(key, decide)
        if outcome.result["changed"] and not outcome.replayed:
            self._changed(appointment_id, actor, at)
        return outcome

    def _changed(self, appointment_id: UUID, actor: Actor, at: datetime) -> None:
        """Tells the contexts that follow appointments (a video consultation) at once; each
        also reconciles on its next read, so a failure here is logged, not raised."""
        if not self.after_change:
            return
        appointment = self.appointment(appointment_id)
        for follow in self.after_change:
            try:
                follow(appointment, actor.ref, at)
            except Exception:
                log.exception("appointment %s: a follower failed", appointment_id)

    def lapse_expired_holds(self, at: datetime, limit: int = 500) -> int:
        """Housekeeping: records HoldLapsed for holds that ran out; returns how many."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT appointment_id FROM {SLOT_BOOKINGS} WHERE status = 'held'"
                " AND hold_expires_at <= %s ORDER BY hold_expires_at LIMIT %s",
                (at, limit)).fetchall()
        for row in rows:
            self._record_lapse(self.appointment(row["appointment_id"]), at)
        return len(rows)

    # ---- reading ----------------------------------------------------------------------------

    def appointment(self, appointment_id: UUID) -> Appointment:
        found: Any
        try:
            found = self.repository.get(appointment_id)
        except AggregateNotFoundError:
            found = None
        if not isinstance(found, Appointment):
            raise NotFound("There is no such appointment.")
        return found

    def confirmation(self, actor: Actor, appointment_id: UUID, at: datetime) -> dict[str, Any]:
        """The confirmation view: where, with whom, when (clinic time and UTC), how to prepare,
        and the cancellation policy in words."""
        appointment = self._authorised(actor, appointment_id, Action.APPOINTMENTS_READ, at)
        clinic = self._clinic(appointment.clinic_id)
        kind = self.schedule.consultation_type(appointment.consultation_type_id)
        clinician = self.schedule.clinician(appointment.clinician_id)
        policy, zone = clinic.policy, clinic.zone
        free_until = appointment.free_cancellation_ends(policy)
        places_left = None
        if kind is not None and kind.capacity_per_slot > 1:
            ledger = self._existing(ClinicianDay, clinician_day_id(
                appointment.clinician_id, local_day(appointment.starts_at, zone)))
            taken = sum(1 for o in (ledger.active(at) if ledger else [])
                        if o.starts_at == appointment.starts_at and o.type_id == kind.type_id)
            places_left = max(kind.capacity_per_slot - taken, 0)
        sees_detail = actor.role in (Role.PATIENT, Role.DOCTOR, Role.NURSE)
        return _view(appointment, at) | {
            "clinic": {"clinic_id": clinic.clinic_id, "name": clinic.name,
                       "address_lines": list(clinic.address_lines), "town": clinic.town,
                       "postcode": clinic.postcode, "phone": clinic.phone},
            "clinician_name": clinician.display_name if clinician else "",
            "consultation_type": (kind.name if kind else "") if sees_detail else None,
            "preparation": (kind.preparation if kind else "") if sees_detail else None,
            "timezone": clinic.timezone,
            "starts_at_local": appointment.starts_at.astimezone(zone).isoformat(),
            "ends_at_local": appointment.ends_at.astimezone(zone).isoformat(),
            "free_cancellation_until": free_until.isoformat(),
            "free_cancellation_until_local": free_until.astimezone(zone).isoformat(),
            "cancellation_policy": policy_in_words(policy),
            "reschedules_left": max(policy.max_reschedules - appointment.reschedule_count, 0),
            "places_left": places_left,
            "late_cancellation": appointment.late_cancellation,
            "cancelled_by": appointment.cancelled_by,
            "reason_code": appointment.reason_code,
        }

    def alternatives(self, clinician_id: UUID, kind: ConsultationTypeInfo, after: datetime,
                     at: datetime, limit: int = ALTERNATIVES) -> list[dict[str, Any]]:
        """The nearest free starts of this clinician for this type at or after `after` (a
        small search for a refusal's answer; availability search is the full one)."""
        clinician = self.schedule.clinician(clinician_id)
        clinic = self.schedule.clinic(clinician.clinic_ids[0]) if clinician and \
            clinician.clinic_ids else None
        if clinic is None:
            return []
        found: list[dict[str, Any]] = []
        rooms: dict[UUID, Any] = {}  # room days read once per answer
        first = local_day(after, clinic.zone)
        for offset in range(ALTERNATIVE_DAYS):
            day = first + timedelta(days=offset)
            for session in self.schedule.sessions(clinician_id, day):
                if kind.type_id not in session.consultation_type_ids:
                    continue
                ledger = self._existing(ClinicianDay, clinician_day_id(clinician_id, day),
                                        peek=True)
                taken = ledger.active(at) if ledger else []
                session_clinic = self.schedule.clinic(session.clinic_id) or clinic
                for start in session.slot_starts():
                    if start < after or start <= at or start + kind.occupies > session.ends_at:
                        continue
                    if not fits(taken, kind, start):
                        continue
                    place = Placement(session, session_clinic, kind, start)
                    if kind.room_kind and \
                            self._free_room(place, at, None, seen_days=rooms)[0] is None:
                        continue
                    found.append({"clinician_id": str(clinician_id), "starts_at": start,
                                  "starts_at_local": start.astimezone(
                                      session_clinic.zone).isoformat(),
                                  "ends_at": start + kind.occupies})
                    if len(found) >= limit:
                        return found
        return found

    # ---- helpers ----------------------------------------------------------------------------

    def _decide(self, key: IdempotencyKey | None, decide: Callable[[], Decided],
                taken: Callable[[], SlotTaken] | None = None,
                days: tuple[UUID, ...] = ()) -> Outcome:
        """Runs a decision once per key; after losing a race, decides again on fresh state."""
        locks = [self._day_locks[i] for i in sorted({d.int % len(self._day_locks)
                                                      for d in days})]
        for attempt in range(ATTEMPTS):
            try:
                for lock in locks:
                    lock.acquire()
                try:
                    return run_once(self, self.idempotency, key, decide)
                finally:
                    for lock in reversed(locks):
                        lock.release()
            except SlotTaken as refused:
                raise taken() if taken is not None else refused from None
            except ConcurrentChange:
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))  # noqa: S311
        raise ConcurrentChange("Many people are booking at this moment. Nothing was saved; "
                               "please try again.")

    def _taken(self, place: Placement, at: datetime) -> SlotTaken:
        options = self.alternatives(place.session.clinician_id, place.kind, place.starts_at, at)
        when = local_when(place.starts_at, place.clinic.zone)
        return SlotTaken(f"The time {when} has just been taken. " + (
            "Choose one of the alternatives offered." if options else
            "There are no other free times with this clinician in the next two weeks; "
            "try another clinician or join the waitlist."),
            alternatives=[{**o, "starts_at": o["starts_at"].isoformat(),
                           "ends_at": o["ends_at"].isoformat()} for o in options])

    def _placement(self, clinician_id: UUID, type_id: str, starts_at: datetime, at: datetime,
                   field: str = "starts_at") -> Placement:
        """The session a requested start falls on; refuses every field that is wrong."""
        errors = Rejections()
        kind = self.schedule.consultation_type(type_id)
        clinician = self.schedule.clinician(clinician_id)
        if kind is None:
            errors.add("consultation_type_id", "Choose a consultation type the clinic offers.")
        if clinician is None:
            errors.add("clinician_id", "Choose a clinician of the clinic network.")
        elif kind is not None and type_id not in clinician.consultation_type_ids:
            errors.add("consultation_type_id", "This clinician does not offer this type of "
                       "consultation.")
        if starts_at.tzinfo is None:
            errors.add(field, "Give the time with its UTC offset.")
        elif starts_at <= at:
            errors.add(field, "Choose a time in the future.")
        errors.raise_if_any()
        assert kind is not None and clinician is not None
        for clinic_id in clinician.clinic_ids:
            clinic = self.schedule.clinic(clinic_id)
            if clinic is None:
                continue
            for session in self.schedule.sessions(clinician_id, local_day(starts_at, clinic.zone)):
                session_clinic = self.schedule.clinic(session.clinic_id) or clinic
                if (type_id in session.consultation_type_ids
                        and starts_at in session.slot_starts()
                        and starts_at + kind.occupies <= session.ends_at):
                    return Placement(session, session_clinic, kind, starts_at)
        errors.add(field, "This clinician has no bookable slot of this type at that time; "
                   "choose one of the times availability search offers.")
        errors.raise_if_any()
        raise AssertionError("unreachable")

    def _check_feature(self, place: Placement, patient_id: UUID) -> None:
        if place.kind.mode == Mode.VIDEO and self.feature_flags is not None:
            self.feature_flags.require(Feature.TELEMEDICINE, patient_id, place.clinic.clinic_id,
                                       service_type="video")

    def _free_room(self, place: Placement, at: datetime, actor: Actor | None,
                   besides: UUID | None = None,
                   seen_days: dict[UUID, Any] | None = None) -> tuple[str | None, RoomDay | None]:
        """The session's own room, or the first room of the kind the type needs that is free
        at that time (None, None when the type needs no room; (None, None) also when none is
        free, which the reservation then refuses)."""
        if place.kind.room_kind is None:
            return None, None
        if place.session.room_id is not None:
            candidates = [place.session.room_id]
        else:
            candidates = [r.room_id for r in
                          self.schedule.rooms(place.clinic.clinic_id, place.kind.room_kind)]
        for room_id in candidates:
            day_id = room_day_id(room_id, place.day)
            if seen_days is not None and day_id in seen_days:
                seen = seen_days[day_id]
            else:
                seen = self._existing(RoomDay, day_id, peek=True)
                if seen_days is not None:
                    seen_days[day_id] = seen
            if seen is None or seen.fits(place.kind, place.starts_at, at, besides):
                if actor is None:
                    return room_id, None
                if seen is None:
                    return room_id, RoomDay(room_id, place.day, by=actor.ref, at=at)
                return room_id, self._existing(RoomDay, seen.id)
        if actor is None:
            return None, None
        raise SlotTaken("No room is free at that time.")

    def _ledger(self, kind: type[DayLedger], owner: Any, day: date, actor: Actor,
                at: datetime) -> DayLedger:
        ledger_id = kind.create_id(owner, day)
        existing = self._existing(kind, ledger_id)
        if existing is not None:
            return existing
        return kind(owner, day, by=actor.ref, at=at)  # type: ignore[call-arg]

    def _existing(self, kind: type[Any], aggregate_id: UUID, peek: bool = False) -> Any:
        """The aggregate, or None; `peek` gives the cached one itself, to read and not change."""
        found: Any
        try:
            found = self.repository.get(aggregate_id, deepcopy_from_cache=not peek)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, kind) else None

    def _days_of(self, appointment: Appointment) -> tuple[UUID, ...]:
        clinic = self.schedule.clinic(appointment.clinic_id)
        if clinic is None:
            return ()
        return (clinician_day_id(appointment.clinician_id,
                                 local_day(appointment.starts_at, clinic.zone)),)

    def _ledgers_of(self, appointment: Appointment) -> list[DayLedger]:
        day = local_day(appointment.starts_at, self._clinic(appointment.clinic_id).zone)
        ledgers = [self._existing(ClinicianDay, clinician_day_id(appointment.clinician_id, day))]
        if appointment.room_id is not None:
            ledgers.append(self._existing(RoomDay, room_day_id(appointment.room_id, day)))
        return [ledger for ledger in ledgers if ledger is not None]

    def _record_lapse(self, appointment: Appointment, at: datetime) -> None:
        if not appointment.lapse(by="system", at=at):
            return
        ledgers = self._ledgers_of(appointment)
        for ledger in ledgers:
            ledger.release(appointment.id, by="system", at=at)
        try:
            self.save_all(appointment, *ledgers, also=[_slot_row(appointment, at)])
        except ConcurrentChange:
            log.info("appointment %s: lapse recorded concurrently", appointment.id)

    def _clinic(self, clinic_id: str) -> ClinicInfo:
        clinic = self.schedule.clinic(clinic_id)
        if clinic is None:
            raise NotFound("The clinic of this appointment is no longer listed.")
        return clinic

    def _authorise_patient(self, actor: Actor, action: Action, patient_id: UUID,
                           at: datetime) -> None:
        if actor.system:
            return  # CareBridge's own process managers (the waitlist) act for the patient
        authorise_ever(actor, action)
        relationship = self.care.relationship(actor, patient_id, at) if self.care else None
        authorise(actor, action, PatientResource(patient_id, relationship))

    def _authorised(self, actor: Actor, appointment_id: UUID, action: Action,
                    at: datetime) -> Appointment:
        if not actor.system:
            authorise_ever(actor, action)
        appointment = self.appointment(appointment_id)
        self._authorise_patient(actor, action, appointment.patient_id, at)
        if actor.role not in (Role.PATIENT,) and not actor.system \
                and appointment.clinic_id not in actor.clinic_ids:
            raise Forbidden("This appointment is at a clinic you do not work at.")
        return appointment

    def _join_care_team(self, appointment_id: UUID, at: datetime) -> None:
        """A booked clinician joins the patient's care team until the appointment ends (plus a
        tail). Booking stands even if this fails; the log says which appointment to repair."""
        if self.care is None:
            return
        appointment = self.appointment(appointment_id)
        try:
            self.care.join_through_appointment(
                appointment.patient_id, appointment.clinician_id, appointment.clinic_id,
                str(appointment.id), min(at, appointment.starts_at),
                appointment.ends_at + self.care_tail, at)
        except CareBridgeError as error:
            log.warning("appointment %s: clinician not added to the care team (%s)",
                        appointment.id, error.code)

    def _tell_patient_of_cancellation(self, appointment: Appointment, clinic: ClinicInfo,
                                      at: datetime) -> list[Statement]:
        return self._tell_patient(appointment, clinic, "appointment_cancelled_by_clinic", at)

    def _tell_patient(self, appointment: Appointment, clinic: ClinicInfo, kind: str,
                      at: datetime) -> list[Statement]:
        """A message to the patient naming only the time and the clinic."""
        account = self.care.identity.find_account(appointment.patient_id) if self.care else None
        if account is None:
            return []
        return enqueue(Message(kind, "email", account.id,
                               account.email, {"when": local_when(appointment.starts_at,
                                                                  clinic.zone),
                                               "clinic": clinic.name}), at)


def policy_in_words(policy: Any) -> str:
    return (f"You can cancel free of charge until {policy.free_cancellation_hours} hours before "
            "the start; a later cancellation is recorded as late. You can move the appointment "
            f"online up to {policy.reschedule_notice_hours} hours before the start, at most "
            f"{policy.max_reschedules} times.")


def _slot_row(appointment: Appointment, at: datetime) -> Statement:
    status = _SLOT_STATUS[appointment.status]
    return Statement(_UPSERT, (
        appointment.id, appointment.patient_id, appointment.clinician_id, appointment.clinic_id,
        appointment.room_id, appointment.consultation_type_id, appointment.starts_at,
        appointment.ends_at, status, appointment.hold_expires_at if status == "held" else None,
        at))


def _view(appointment: Appointment, at: datetime) -> dict[str, Any]:
    return {
        "appointment_id": str(appointment.id),
        "patient_id": str(appointment.patient_id),
        "clinician_id": str(appointment.clinician_id),
        "clinic_id": appointment.clinic_id,
        "room_id": appointment.room_id,
        "consultation_type_id": appointment.consultation_type_id,
        "mode": appointment.mode,
        "status": appointment.status_at(at),
        "starts_at": appointment.starts_at.isoformat(),
        "ends_at": appointment.ends_at.isoformat(),
        "hold_expires_at": _iso(appointment.hold_expires_at),
        "reschedule_count": appointment.reschedule_count,
        "version": appointment.version,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
