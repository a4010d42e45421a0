"""The video consultation: one per video appointment, from the waiting room to the summary.

The state is what the patient's waiting room shows, and it always says where they stand:

    scheduled ─▶ early_arrival ─▶ waiting ─▶ clinician_joined ─▶ in_progress ─▶ ended
                    (patient in before        (clinician in)     (media        technical_failure
                     the join window)                             connected)
    and, from any open state: cancelled (the appointment was cancelled), no_show, and back to
    scheduled when the appointment moves.

A dropped connection never closes the consultation: the side that dropped may always come
back while it is open, and the state falls back (in_progress → clinician_joined when the
patient drops, → waiting when the clinician does). Presence is counted per connection, so a
second device or a reconnect racing the old socket's close never loses track of who is there.

The events are the session log (join and leave times, connection outcomes, quality figures;
never media). The summary keeps the follow-up instructions the patient reads apart from the
clinician's internal notes, which no patient-facing view ever reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput

CONTEXT = "telemedicine"
SUMMARY_MAX = 8000
QUALITY_FIELDS = ("rtt_ms", "packet_loss_pct", "inbound_fps", "bitrate_kbps")


class State(StrEnum):
    SCHEDULED = "scheduled"
    EARLY_ARRIVAL = "early_arrival"
    WAITING = "waiting"
    CLINICIAN_JOINED = "clinician_joined"
    IN_PROGRESS = "in_progress"
    ENDED = "ended"
    NO_SHOW = "no_show"
    CANCELLED = "cancelled"
    TECHNICAL_FAILURE = "technical_failure"


CLOSED = frozenset({State.ENDED, State.NO_SHOW, State.CANCELLED, State.TECHNICAL_FAILURE})


class Role(StrEnum):
    PATIENT = "patient"
    CLINICIAN = "clinician"


class Outcome(StrEnum):
    COMPLETED = "completed"
    TECHNICAL_FAILURE = "technical_failure"


class ConsultationClosed(Conflict):
    code = "consultation-closed"
    title = "This video consultation is over"


class TooEarly(Conflict):
    code = "too-early"
    title = "The waiting room is not open yet"


class NotYetOver(Conflict):
    code = "consultation-not-over"
    title = "The call has not ended yet"


def consultation_id(appointment_id: UUID) -> UUID:
    """One consultation per appointment, so that two first joins cannot make two: its stream
    (in the telemedicine log) has the appointment's id, so either id finds it, even before
    anyone joined."""
    return appointment_id


class Windows:
    """When the waiting room opens, when the call may start, and when joining stops."""

    def __init__(self, join_minutes: int, early_minutes: int, grace_minutes: int) -> None:
        self.join = timedelta(minutes=join_minutes)
        self.early = timedelta(minutes=early_minutes)
        self.grace = timedelta(minutes=grace_minutes)

    def join_opens(self, starts_at: datetime) -> datetime:
        return starts_at - self.join

    def room_opens(self, starts_at: datetime) -> datetime:
        return self.join_opens(starts_at) - self.early

    def joining_ends(self, ends_at: datetime) -> datetime:
        return ends_at + self.grace


class Consultation(CareAggregate):
    TOPIC = topic(CONTEXT, "Consultation")

    @event("Created", topic=topic(CONTEXT, "Consultation.Opened"))
    def __init__(self, appointment_id: UUID, patient_id: UUID, clinician_id: UUID,
                 clinic_id: str, starts_at: datetime, ends_at: datetime, by: str,
                 at: datetime) -> None:
        self.appointment_id, self.patient_id = appointment_id, patient_id
        self.clinician_id, self.clinic_id = clinician_id, clinic_id
        self.starts_at, self.ends_at = starts_at, ends_at
        self.closed: State | None = None
        self.checked_in = False          # the patient asked to join (waiting room)
        self.arrived_early = False
        self.clinician_in = False        # the clinician admitted the patient and is there
        self.clinician_told = False      # the patient was told the clinician joined
        self.media_connected = False
        self.connections: dict[str, set[str]] = {Role.PATIENT: set(), Role.CLINICIAN: set()}
        self.patient_first_in: datetime | None = None
        self.clinician_first_in: datetime | None = None
        self.call_started: datetime | None = None
        self.ended_at: datetime | None = None
        self.follow_up_instructions: str | None = None
        self.internal_notes: str | None = None
        self.summary_by: str | None = None
        self.cancel_reason: str | None = None

    @classmethod
    def create_id(cls, appointment_id: UUID, **_: object) -> UUID:
        """One consultation per appointment, so that two first joins cannot make two."""
        return consultation_id(appointment_id)

    # ---- what views read --------------------------------------------------------------------

    @property
    def state(self) -> State:
        if self.closed is not None:
            return self.closed
        if self.media_connected and self.present(Role.PATIENT) and self.present(Role.CLINICIAN):
            return State.IN_PROGRESS
        if self.clinician_in:
            return State.CLINICIAN_JOINED
        if self.checked_in:
            return State.EARLY_ARRIVAL if self.arrived_early else State.WAITING
        return State.SCHEDULED

    @property
    def is_open(self) -> bool:
        return self.closed is None

    def present(self, role: Role | str) -> bool:
        return bool(self.connections[Role(role)])

    def role_of(self, actor_id: UUID) -> Role | None:
        if actor_id == self.patient_id:
            return Role.PATIENT
        if actor_id == self.clinician_id:
            return Role.CLINICIAN
        return None

    # ---- decisions --------------------------------------------------------------------------

    def check_in(self, windows: Windows, by: str, at: datetime) -> bool:
        """The patient asks to join. Before the room opens: refused with the time it opens.
        A rejoin records nothing new here (the socket records presence)."""
        self._require_open(windows, at)
        if at < windows.room_opens(self.starts_at):
            opens = windows.room_opens(self.starts_at)
            raise TooEarly("The waiting room for this video appointment opens at "
                           f"{opens.isoformat()}. Come back then.", opens_at=opens.isoformat())
        early = at < windows.join_opens(self.starts_at)
        if self.checked_in:
            return self.open_window(windows, by, at)
        self._checked_in(early=early, by=by, at=at)
        return True

    def open_window(self, windows: Windows, by: str, at: datetime) -> bool:
        """An early arrival starts waiting once the join window opens (noticed lazily)."""
        if self.is_open and self.checked_in and self.arrived_early \
                and at >= windows.join_opens(self.starts_at):
            self._window_opened(by=by, at=at)
            return True
        return False

    def admit(self, windows: Windows, by: str, at: datetime) -> bool:
        """The clinician joins: from the join window on (they may not start a call early)."""
        self._require_open(windows, at)
        if at < windows.join_opens(self.starts_at):
            opens = windows.join_opens(self.starts_at)
            raise TooEarly(f"The call opens at {opens.isoformat()}.", opens_at=opens.isoformat())
        self.open_window(windows, by, at)
        if self.clinician_in:
            return False
        self._clinician_admitted(tell_patient=not self.clinician_told, by=by, at=at)
        return True

    def joined(self, role: Role, connection: str, by: str, at: datetime) -> bool:
        if not self.is_open or connection in self.connections[role]:
            return False
        self._joined(role=role.value, connection=connection, by=by, at=at)
        return True

    def left(self, role: Role, connection: str, reason: str, quality: dict[str, Any] | None,
             by: str, at: datetime) -> bool:
        if connection not in self.connections[role]:
            return False
        self._left(role=role.value, connection=connection, reason=reason,
                   quality=_clean_quality(quality), by=by, at=at)
        return True

    def connected(self, role: Role, by: str, at: datetime) -> bool:
        """A peer reports media connected; the call is in progress once both are there."""
        if not self.is_open or self.media_connected or not self.clinician_in \
                or not (self.present(Role.PATIENT) and self.present(Role.CLINICIAN)):
            return False
        self._media_connected(role=role.value, by=by, at=at)
        return True

    def connection_failed(self, role: Role, reason: str, by: str, at: datetime) -> bool:
        if not self.is_open:
            return False
        self._connection_failed(role=role.value, reason=reason[:200], by=by, at=at)
        return True

    def end(self, outcome: Outcome, by: str, at: datetime) -> bool:
        if self.closed in (State.ENDED, State.TECHNICAL_FAILURE):
            return False
        if self.closed is not None:
            raise ConsultationClosed(f"This consultation is already {self.closed.value}.")
        if outcome is Outcome.COMPLETED and self.call_started is None:
            raise NotYetOver("The call never connected. End it as a technical failure, or "
                             "record a no-show if the patient did not come.")
        self._ended(outcome=outcome.value, by=by, at=at)
        return True

    def record_no_show(self, by: str, at: datetime) -> bool:
        if self.closed is State.NO_SHOW:
            return False
        if self.closed is not None:
            raise ConsultationClosed(f"This consultation is already {self.closed.value}.")
        if self.patient_first_in is not None:
            raise Conflict("The patient joined this consultation, so it is not a no-show. "
                           "End it instead.")
        if at < self.starts_at:
            raise Conflict("A no-show can be recorded only after the start time.")
        self._no_show(by=by, at=at)
        return True

    def cancel(self, reason: str | None, by: str, at: datetime) -> bool:
        if self.closed is not None:
            return False
        self._cancelled(reason=reason, by=by, at=at)
        return True

    def move(self, starts_at: datetime, ends_at: datetime, clinician_id: UUID, by: str,
             at: datetime) -> bool:
        if self.closed is not None or (starts_at, ends_at, clinician_id) == (
                self.starts_at, self.ends_at, self.clinician_id):
            return False
        self._moved(starts_at=starts_at, ends_at=ends_at, clinician_id=clinician_id, by=by,
                    at=at)
        return True

    def record_summary(self, follow_up_instructions: str, internal_notes: str, by: str,
                       at: datetime) -> bool:
        errors: list[FieldError] = []
        follow_up, notes = follow_up_instructions.strip(), internal_notes.strip()
        if len(follow_up) > SUMMARY_MAX:
            errors.append(FieldError("follow_up_instructions",
                                     f"Keep it under {SUMMARY_MAX} characters."))
        if len(notes) > SUMMARY_MAX:
            errors.append(FieldError("internal_notes", f"Keep it under {SUMMARY_MAX} characters."))
        if not follow_up and not notes:
            errors.append(FieldError("follow_up_instructions", "Write the follow-up "
                                     "instructions for the patient, internal notes, or both."))
        if errors:
            raise InvalidInput(errors)
        if self.closed not in (State.ENDED, State.TECHNICAL_FAILURE):
            raise NotYetOver("End the call before writing its summary.")
        changed = False
        # What the patient reads and what only staff read go in events of their own, so that
        # the patient's record (which follows the first) never receives the second.
        if follow_up != (self.follow_up_instructions or ""):
            self._follow_up_written(patient_id=self.patient_id, clinic_id=self.clinic_id,
                                    starts_at=self.starts_at,
                                    follow_up_instructions=follow_up, by=by, at=at)
            changed = True
        if notes != (self.internal_notes or ""):
            self._internal_notes_written(internal_notes=notes, by=by, at=at)
            changed = True
        return changed

    def _require_open(self, windows: Windows, at: datetime) -> None:
        if self.closed is not None:
            raise ConsultationClosed(_closed_words(self.closed), state=self.closed.value)
        # A call that started (or a clinician still there) can always be rejoined until it is
        # ended; only a consultation that never began closes for joining after the grace.
        if at > windows.joining_ends(self.ends_at) and self.call_started is None \
                and not self.clinician_in:
            raise ConsultationClosed("The time for this video appointment has passed. "
                                     "Contact the clinic if you still need to be seen.",
                                     state=self.state.value)

    # ---- events -----------------------------------------------------------------------------

    @event("CheckedIn", topic=topic(CONTEXT, "Consultation.CheckedIn"))
    def _checked_in(self, early: bool, by: str, at: datetime) -> None:
        self.checked_in, self.arrived_early = True, early
        self.patient_first_in = self.patient_first_in or at

    @event("WindowOpened", topic=topic(CONTEXT, "Consultation.WindowOpened"))
    def _window_opened(self, by: str, at: datetime) -> None:
        self.arrived_early = False

    @event("ClinicianAdmitted", topic=topic(CONTEXT, "Consultation.ClinicianAdmitted"))
    def _clinician_admitted(self, tell_patient: bool, by: str, at: datetime) -> None:
        self.clinician_in = True
        self.clinician_told = self.clinician_told or tell_patient
        self.clinician_first_in = self.clinician_first_in or at
        self.arrived_early = False

    @event("Joined", topic=topic(CONTEXT, "Consultation.Joined"))
    def _joined(self, role: str, connection: str, by: str, at: datetime) -> None:
        self.connections[Role(role)].add(connection)
        if role == Role.PATIENT:
            self.patient_first_in = self.patient_first_in or at
            self.checked_in = True

    @event("Left", topic=topic(CONTEXT, "Consultation.Left"))
    def _left(self, role: str, connection: str, reason: str, quality: dict[str, Any] | None,
              by: str, at: datetime) -> None:
        self.connections[Role(role)].discard(connection)
        if not self.connections[Role(role)]:
            self.media_connected = False
            if role == Role.CLINICIAN:
                self.clinician_in = False

    @event("MediaConnected", topic=topic(CONTEXT, "Consultation.MediaConnected"))
    def _media_connected(self, role: str, by: str, at: datetime) -> None:
        self.media_connected = True
        self.call_started = self.call_started or at

    @event("ConnectionFailed", topic=topic(CONTEXT, "Consultation.ConnectionFailed"))
    def _connection_failed(self, role: str, reason: str, by: str, at: datetime) -> None:
        self.media_connected = False

    @event("Ended", topic=topic(CONTEXT, "Consultation.Ended"))
    def _ended(self, outcome: str, by: str, at: datetime) -> None:
        self.closed = State.ENDED if outcome == Outcome.COMPLETED else State.TECHNICAL_FAILURE
        self.ended_at, self.media_connected = at, False

    @event("NoShow", topic=topic(CONTEXT, "Consultation.NoShow"))
    def _no_show(self, by: str, at: datetime) -> None:
        self.closed, self.ended_at = State.NO_SHOW, at

    @event("Cancelled", topic=topic(CONTEXT, "Consultation.Cancelled"))
    def _cancelled(self, reason: str | None, by: str, at: datetime) -> None:
        self.closed, self.ended_at, self.cancel_reason = State.CANCELLED, at, reason
        self.media_connected = False

    @event("Moved", topic=topic(CONTEXT, "Consultation.Moved"))
    def _moved(self, starts_at: datetime, ends_at: datetime, clinician_id: UUID, by: str,
               at: datetime) -> None:
        self.starts_at, self.ends_at, self.clinician_id = starts_at, ends_at, clinician_id
        self.connections = {Role.PATIENT: set(), Role.CLINICIAN: set()}  # sockets are closed
        self.checked_in = self.arrived_early = self.clinician_in = self.media_connected = False

    @event("SummaryRecorded", topic=topic(CONTEXT, "Consultation.SummaryRecorded"))
    def _summary_recorded(self, follow_up_instructions: str, internal_notes: str, by: str,
                          at: datetime) -> None:
        """Summaries written before the follow-up and the internal notes had events of their
        own (replayed as they were; new summaries are never recorded this way)."""
        self.follow_up_instructions = follow_up_instructions or None
        self.internal_notes = internal_notes or None
        self.summary_by = by

    @event("FollowUpWritten", topic=topic(CONTEXT, "Consultation.FollowUpWritten"))
    def _follow_up_written(self, patient_id: UUID, clinic_id: str, starts_at: datetime,
                           follow_up_instructions: str, by: str, at: datetime) -> None:
        self.follow_up_instructions = follow_up_instructions or None
        self.summary_by = by

    @event("InternalNotesWritten", topic=topic(CONTEXT, "Consultation.InternalNotesWritten"))
    def _internal_notes_written(self, internal_notes: str, by: str, at: datetime) -> None:
        self.internal_notes = internal_notes or None
        self.summary_by = by


def _clean_quality(quality: dict[str, Any] | None) -> dict[str, Any] | None:
    """Only numeric quality figures enter the log (never anything a client made up)."""
    if not quality:
        return None
    kept: dict[str, Any] = {}
    for key, value in quality.items():
        if key == "samples" and isinstance(value, int):
            kept[key] = value
            continue
        name, _, stat = key.rpartition("_")
        if name in QUALITY_FIELDS and stat in ("avg", "max", "min") \
                and isinstance(value, int | float) and not isinstance(value, bool):
            kept[key] = round(float(value), 2)
    return kept or None


def _closed_words(state: State) -> str:
    return {
        State.ENDED: "This video consultation has ended.",
        State.TECHNICAL_FAILURE: "This video consultation ended because the connection did "
                                 "not work. The clinic will contact you.",
        State.NO_SHOW: "This video consultation was recorded as missed. Contact the clinic "
                       "to book again.",
        State.CANCELLED: "This appointment was cancelled.",
    }.get(state, "This video consultation is closed.")


def patient_message(consultation: Consultation, windows: Windows, join_opens_local: str) -> str:
    """Where the patient stands, in plain words (no clinical content, ever)."""
    state = consultation.state
    if state is State.SCHEDULED:
        return (f"Your video appointment opens at {join_opens_local}. You can wait in the "
                "waiting room a little before.")
    if state is State.EARLY_ARRIVAL:
        return (f"You are early. The call opens at {join_opens_local}; stay here and we will "
                "tell you.")
    if state is State.WAITING:
        return "You are in the waiting room. Your clinician has not joined yet."
    if state is State.CLINICIAN_JOINED:
        return "Your clinician has joined. The call is connecting."
    if state is State.IN_PROGRESS:
        return "Your call is in progress."
    return _closed_words(state)
