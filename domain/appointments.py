"""Appointments: a hold that lapses by itself, confirmation, rescheduling and cancellation under
the clinic's policy, arrivals and no-shows; and the day ledgers that make double booking
impossible.

These event types are the storage format and are versioned with care. No double booking holds
because every reservation of a clinician's time goes through that clinician's `ClinicianDay`
(and a room's through its `RoomDay`) for the clinic-local day: two bookings that would collide
touch the same ledger, so they are saved against the same version and only one can win.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput
from domain.ids import stream_id
from domain.schedule_types import CancellationPolicy, ConsultationTypeInfo, Occupancy, fits

# Staff may record an arrival from this long before the start (patients come early).
ARRIVAL_WINDOW = timedelta(hours=1)


class CancellationReason(StrEnum):
    FEELING_BETTER = "feeling_better"
    CANNOT_ATTEND = "cannot_attend"
    BOOKED_ELSEWHERE = "booked_elsewhere"
    CLINICIAN_UNAVAILABLE = "clinician_unavailable"
    CLINIC_CLOSED = "clinic_closed"
    BOOKED_IN_ERROR = "booked_in_error"
    PATIENT_REQUEST = "patient_request"
    OTHER = "other"


PATIENT_REASONS = frozenset({CancellationReason.FEELING_BETTER, CancellationReason.CANNOT_ATTEND,
                             CancellationReason.BOOKED_ELSEWHERE, CancellationReason.OTHER})
CLINIC_REASONS = frozenset({CancellationReason.CLINICIAN_UNAVAILABLE,
                            CancellationReason.CLINIC_CLOSED, CancellationReason.BOOKED_IN_ERROR,
                            CancellationReason.PATIENT_REQUEST, CancellationReason.OTHER})


class SlotTaken(Conflict):
    code = "slot-taken"
    title = "That time has just been taken"


class HoldNotLive(Conflict):
    code = "hold-not-live"
    title = "This hold is no longer live"


class AppointmentClosed(Conflict):
    code = "appointment-closed"
    title = "This appointment can no longer be changed"


class RescheduleRefused(Conflict):
    code = "reschedule-refused"
    title = "This appointment cannot be moved online"


class NotYet(Conflict):
    code = "not-yet"
    title = "Too early to record this"


def clinician_day_id(clinician_id: UUID, day: date) -> UUID:
    return stream_id("clinician-day", str(clinician_id), day.isoformat())


def room_day_id(room_id: str, day: date) -> UUID:
    return stream_id("room-day", room_id, day.isoformat())


class Appointment(CareAggregate):
    """One patient's appointment with one clinician, from hold to its outcome."""

    TOPIC = topic("appointments", "Appointment")

    @event("Created", topic=topic("appointments", "Appointment.Held"))
    def __init__(self, patient_id: UUID, clinician_id: UUID, clinic_id: str, room_id: str | None,
                 consultation_type_id: str, mode: str, starts_at: datetime, ends_at: datetime,
                 hold_expires_at: datetime, booked_by_staff: bool, by: str, at: datetime) -> None:
        self.patient_id, self.clinician_id, self.clinic_id = patient_id, clinician_id, clinic_id
        self.room_id, self.consultation_type_id, self.mode = room_id, consultation_type_id, mode
        self.starts_at, self.ends_at = starts_at, ends_at
        self.hold_expires_at: datetime | None = hold_expires_at
        self.booked_by_staff = booked_by_staff
        self.status = "held"
        self.reschedule_count = 0
        self.late_cancellation = False
        self.cancelled_by: str | None = None
        self.reason_code: str | None = None

    # ---- what decisions read ----------------------------------------------------------------

    def hold_lapsed(self, at: datetime) -> bool:
        return self.status == "held" and self.hold_expires_at is not None \
            and at >= self.hold_expires_at

    def status_at(self, at: datetime) -> str:
        return "lapsed" if self.hold_lapsed(at) else self.status

    def free_cancellation_ends(self, policy: CancellationPolicy) -> datetime:
        return self.starts_at - timedelta(hours=policy.free_cancellation_hours)

    # ---- decisions --------------------------------------------------------------------------

    def confirm(self, by: str, at: datetime) -> bool:
        if self.status == "booked":
            return False  # already confirmed: a retried confirmation records nothing
        if self.status != "held" or self.hold_lapsed(at):
            raise HoldNotLive("This time is no longer held for you. Choose a time again; it "
                              "may still be free.")
        self._confirmed(by=by, at=at)
        return True

    def lapse(self, by: str, at: datetime) -> bool:
        """Records that an unconfirmed hold ran out (noticed lazily, or by housekeeping)."""
        if not self.hold_lapsed(at):
            return False
        self._hold_lapsed(by=by, at=at)
        return True

    def cancel(self, reason_code: CancellationReason, policy: CancellationPolicy, by_clinic: bool,
               note_for_patient: str | None, by: str, at: datetime) -> bool:
        if self.status == "cancelled":
            return False
        allowed = CLINIC_REASONS if by_clinic else PATIENT_REASONS
        if reason_code not in allowed:
            raise InvalidInput([FieldError("reason_code", "Choose one of: " + ", ".join(
                sorted(r.value for r in allowed)) + ".")])
        self._require_open(at)
        late = self.status == "booked" and at > self.free_cancellation_ends(policy)
        self._cancelled(cancelled_by="clinic" if by_clinic else "patient",
                        reason_code=reason_code.value, late=late,
                        note_for_patient=note_for_patient if by_clinic else None, by=by, at=at)
        return True

    def check_reschedule(self, new_starts_at: datetime, policy: CancellationPolicy,
                         by_staff: bool, at: datetime) -> None:
        """Refuses a move the clinic's policy does not allow. Staff may override the limits
        (the command asks them for a reason); nobody may move an appointment that has begun."""
        if self.status != "booked":
            raise AppointmentClosed("Only a confirmed appointment can be moved.")
        self._require_open(at)
        if new_starts_at <= at:
            raise InvalidInput([FieldError("starts_at", "Choose a time in the future.")])
        if by_staff:
            return
        notice = timedelta(hours=policy.reschedule_notice_hours)
        if self.starts_at - at < notice:
            raise RescheduleRefused(
                f"Appointments can be moved online up to {policy.reschedule_notice_hours} hours "
                "before they start. Please call the clinic, or cancel and book again.",
                limit="notice", notice_hours=policy.reschedule_notice_hours)
        if self.reschedule_count >= policy.max_reschedules:
            raise RescheduleRefused(
                f"This appointment has already been moved {self.reschedule_count} times, the "
                "most the clinic allows online. Please call the clinic, or cancel and book "
                "again.", limit="count", max_reschedules=policy.max_reschedules)

    def reschedule(self, starts_at: datetime, ends_at: datetime, room_id: str | None,
                   clinician_id: UUID, by: str, at: datetime, reason: str | None = None) -> None:
        """Moves the appointment; `reason` is the clinic's, when staff move it (staff-only)."""
        self._rescheduled(from_starts_at=self.starts_at, from_clinician_id=self.clinician_id,
                          starts_at=starts_at, ends_at=ends_at, reason=reason,
                          room_id=room_id, clinician_id=clinician_id,
                          reschedule_count=self.reschedule_count + 1, by=by, at=at)

    def arrive(self, by: str, at: datetime) -> bool:
        if self.status == "arrived":
            return False
        self._require_outcome_possible(at - self.starts_at >= -ARRIVAL_WINDOW)
        self._arrived(by=by, at=at)
        return True

    def record_no_show(self, by: str, at: datetime) -> bool:
        if self.status == "no_show":
            return False
        self._require_outcome_possible(at >= self.starts_at)
        self._no_show(by=by, at=at)
        return True

    def _require_open(self, at: datetime) -> None:
        if self.status not in ("held", "booked") or self.hold_lapsed(at):
            raise AppointmentClosed("This appointment is no longer booked.")
        if at >= self.starts_at:
            raise AppointmentClosed("This appointment has already started. Please speak to "
                                    "the clinic.")

    def _require_outcome_possible(self, time_has_come: bool) -> None:
        if self.status != "booked":
            raise AppointmentClosed("Only a confirmed appointment that is not yet settled can "
                                    "have an arrival or a no-show recorded.")
        if not time_has_come:
            raise NotYet("It is too early to record this; try again around the start time.")

    # ---- events -----------------------------------------------------------------------------

    @event("Confirmed", topic=topic("appointments", "Appointment.Confirmed"))
    def _confirmed(self, by: str, at: datetime) -> None:
        self.status, self.hold_expires_at = "booked", None

    @event("HoldLapsed", topic=topic("appointments", "Appointment.HoldLapsed"))
    def _hold_lapsed(self, by: str, at: datetime) -> None:
        self.status = "lapsed"

    @event("Rescheduled", topic=topic("appointments", "Appointment.Rescheduled"))
    def _rescheduled(self, from_starts_at: datetime, from_clinician_id: UUID,
                     starts_at: datetime, ends_at: datetime, reason: str | None,
                     room_id: str | None,
                     clinician_id: UUID, reschedule_count: int, by: str, at: datetime) -> None:
        self.starts_at, self.ends_at, self.room_id = starts_at, ends_at, room_id
        self.clinician_id, self.reschedule_count = clinician_id, reschedule_count

    @event("Cancelled", topic=topic("appointments", "Appointment.Cancelled"))
    def _cancelled(self, cancelled_by: str, reason_code: str, late: bool,
                   note_for_patient: str | None, by: str, at: datetime) -> None:
        self.status, self.cancelled_by, self.reason_code = "cancelled", cancelled_by, reason_code
        self.late_cancellation = late

    @event("Arrived", topic=topic("appointments", "Appointment.Arrived"))
    def _arrived(self, by: str, at: datetime) -> None:
        self.status = "arrived"

    @event("NoShowRecorded", topic=topic("appointments", "Appointment.NoShowRecorded"))
    def _no_show(self, by: str, at: datetime) -> None:
        self.status = "no_show"


class DayLedger(CareAggregate):
    """The active reservations of one clinician's (or one room's) clinic-local day.

    Entries are plain dicts (appointment id -> starts_at, ends_at, type_id, room_id,
    hold_expires_at) so that snapshots need no custom transcoding. A hold that has run out is
    simply not active; it is dropped when the ledger next changes."""

    if TYPE_CHECKING:  # class annotations would become fields of the Created event
        entries: dict[str, dict[str, Any]]
        _reserved: Callable[..., None]
        _confirmed: Callable[..., None]
        _released: Callable[..., None]

    def __deepcopy__(self, memo: dict[int, Any]) -> DayLedger:
        # Repositories hand out copies of cached ledgers; entries hold only immutable values,
        # so copying the dicts is a deep copy, without the generic (slow) walk.
        twin = copy.copy(self)
        twin.entries = {key: dict(entry) for key, entry in self.entries.items()}
        twin._pending_events = list(self._pending_events)
        return twin

    def active(self, at: datetime, besides: UUID | None = None) -> list[Occupancy]:
        return [Occupancy(e["starts_at"], e["ends_at"], e["type_id"], e["room_id"])
                for key, e in self.entries.items()
                if key != str(besides) and _live(e, at)]

    def fits(self, kind: ConsultationTypeInfo, start: datetime, at: datetime,
             besides: UUID | None = None) -> bool:
        return fits(self.active(at, besides), kind, start)

    def reserve(self, appointment_id: UUID, kind: ConsultationTypeInfo, start: datetime,
                room_id: str | None, hold_expires_at: datetime | None, by: str,
                at: datetime) -> None:
        if not self.fits(kind, start, at, besides=appointment_id):
            raise SlotTaken("That time has just been taken.")
        self._reserved(appointment_id=appointment_id, starts_at=start,
                       ends_at=start + kind.occupies, type_id=kind.type_id, room_id=room_id,
                       hold_expires_at=hold_expires_at, by=by, at=at)

    def confirm(self, appointment_id: UUID, by: str, at: datetime) -> None:
        entry = self.entries.get(str(appointment_id))
        if entry is not None and entry["hold_expires_at"] is not None:
            self._confirmed(appointment_id=appointment_id, by=by, at=at)

    def release(self, appointment_id: UUID, by: str, at: datetime) -> None:
        if str(appointment_id) in self.entries:
            self._released(appointment_id=appointment_id, by=by, at=at)

    # The event methods live in each subclass, so that each has topics of its own; they share
    # these folds.
    def _apply_reserved(self, appointment_id: UUID, starts_at: datetime, ends_at: datetime,
                        type_id: str, room_id: str | None, hold_expires_at: datetime | None,
                        at: datetime) -> None:
        self.entries = {**{k: e for k, e in self.entries.items() if _live(e, at)},
                        str(appointment_id): {
                            "starts_at": starts_at, "ends_at": ends_at, "type_id": type_id,
                            "room_id": room_id, "hold_expires_at": hold_expires_at}}

    # Folds replace `entries` rather than change it in place: a reader of the cached ledger
    # (availability, alternatives) may be iterating the previous one.
    def _apply_confirmed(self, appointment_id: UUID) -> None:
        key = str(appointment_id)
        self.entries = {**self.entries, key: {**self.entries[key], "hold_expires_at": None}}

    def _apply_released(self, appointment_id: UUID) -> None:
        key = str(appointment_id)
        self.entries = {k: e for k, e in self.entries.items() if k != key}


def _live(entry: dict[str, Any], at: datetime) -> bool:
    return entry["hold_expires_at"] is None or entry["hold_expires_at"] > at


class ClinicianDay(DayLedger):
    TOPIC = topic("appointments", "ClinicianDay")

    @event("Created", topic=topic("appointments", "ClinicianDay.Created"))
    def __init__(self, clinician_id: UUID, day: date, by: str, at: datetime) -> None:
        self.clinician_id, self.day = clinician_id, day
        self.entries = {}

    @classmethod
    def create_id(cls, clinician_id: UUID, day: date, **_: object) -> UUID:
        return clinician_day_id(clinician_id, day)

    @event("Reserved", topic=topic("appointments", "ClinicianDay.Reserved"))
    def _reserved(self, appointment_id: UUID, starts_at: datetime, ends_at: datetime,
                  type_id: str, room_id: str | None, hold_expires_at: datetime | None, by: str,
                  at: datetime) -> None:
        self._apply_reserved(appointment_id, starts_at, ends_at, type_id, room_id,
                             hold_expires_at, at)

    @event("Confirmed", topic=topic("appointments", "ClinicianDay.Confirmed"))
    def _confirmed(self, appointment_id: UUID, by: str, at: datetime) -> None:
        self._apply_confirmed(appointment_id)

    @event("Released", topic=topic("appointments", "ClinicianDay.Released"))
    def _released(self, appointment_id: UUID, by: str, at: datetime) -> None:
        self._apply_released(appointment_id)


class RoomDay(DayLedger):
    TOPIC = topic("appointments", "RoomDay")

    @event("Created", topic=topic("appointments", "RoomDay.Created"))
    def __init__(self, room_id: str, day: date, by: str, at: datetime) -> None:
        self.room_id, self.day = room_id, day
        self.entries = {}

    @classmethod
    def create_id(cls, room_id: str, day: date, **_: object) -> UUID:
        return room_day_id(room_id, day)

    @event("Reserved", topic=topic("appointments", "RoomDay.Reserved"))
    def _reserved(self, appointment_id: UUID, starts_at: datetime, ends_at: datetime,
                  type_id: str, room_id: str | None, hold_expires_at: datetime | None, by: str,
                  at: datetime) -> None:
        self._apply_reserved(appointment_id, starts_at, ends_at, type_id, room_id,
                             hold_expires_at, at)

    @event("Confirmed", topic=topic("appointments", "RoomDay.Confirmed"))
    def _confirmed(self, appointment_id: UUID, by: str, at: datetime) -> None:
        self._apply_confirmed(appointment_id)

    @event("Released", topic=topic("appointments", "RoomDay.Released"))
    def _released(self, appointment_id: UUID, by: str, at: datetime) -> None:
        self._apply_released(appointment_id)
