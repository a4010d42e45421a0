"""Telemedicine: video consultations from the waiting room to the summary.

Every change to a consultation is saved together with a `state` frame in the signaling table
(and a NOTIFY), so that every API process pushes it to the patient's and the clinician's
sockets the moment it commits. The appointments context calls `appointment_changed` after a
cancellation, a move or a no-show, and every read reconciles with the appointment too, so a
patient is never left in a waiting room for an appointment that no longer stands.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg.types.json import Jsonb

from commands.appointments import SLOT_BOOKINGS, AppointmentsApplication
from commands.care import CareAccessApplication
from commands.consents import ConsentsApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.feature_flags import FeatureFlagsApplication
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_retrying
from commands.outbox import Message, enqueue, local_when
from commands.record_access import record_access
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever
from domain.appointments import Appointment
from domain.consents import ConsentType
from domain.consultations import (
    Consultation,
    Role,
    State,
    Windows,
    consultation_id,
    patient_message,
)
from domain.consultations import (
    Outcome as CallOutcome,
)
from domain.errors import CareBridgeError, ConcurrentChange, Conflict, Forbidden, NotFound
from domain.feature_flags import Feature

log = logging.getLogger("carebridge.telemedicine")

SIGNALS = "carebridge.consultation_signals"
SIGNAL_CHANNEL = "consultation_signals"
TICKETS_USED = "carebridge.consultation_tickets_used"
ATTEMPTS = 5


class ConsentRequired(Forbidden):
    code = "consent-required"
    title = "Consent to video consultations is needed first"


class NotVideo(Conflict):
    code = "not-a-video-appointment"
    title = "This appointment is not a video consultation"


def signal(consultation: UUID, recipient: str, frame: dict[str, Any],
           sender_connection: str | None = None) -> list[Statement]:
    """Statements that deliver a frame to a consultation's sockets in every API process."""
    return [Statement(f"INSERT INTO {SIGNALS} (consultation_id, recipient, sender_connection,"
                      " frame) VALUES (%s, %s, %s, %s)",
                      (consultation, recipient, sender_connection, Jsonb(frame))),
            Statement("SELECT pg_notify(%s, %s)", (SIGNAL_CHANNEL, str(consultation)))]


class TelemedicineApplication(CareApplication):
    name = "telemedicine"

    def __init__(self, store: EventStoreSettings, appointments: AppointmentsApplication,
                 consents: ConsentsApplication, care: CareAccessApplication,
                 feature_flags: FeatureFlagsApplication | None, windows: Windows) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.appointments, self.consents, self.care = appointments, consents, care
        self.feature_flags, self.windows = feature_flags, windows

    # ---- the patient ------------------------------------------------------------------------

    def join(self, actor: Actor, appointment_id: UUID, at: datetime,
             key: IdempotencyKey | None = None) -> Outcome:
        """The patient (or a proxy for their appointments) asks to join from the appointment."""
        appointment = self._patient_appointment(actor, appointment_id, at)
        if self.feature_flags is not None:
            self.feature_flags.require(Feature.TELEMEDICINE, appointment.patient_id,
                                       appointment.clinic_id, service_type="video")
        if not self.consents.holds(appointment.patient_id, ConsentType.TELEMEDICINE):
            text = self.consents.current_text(ConsentType.TELEMEDICINE)
            raise ConsentRequired(
                "Before your first video consultation, read and accept the consent to video "
                "consultations, then join again.", consent_type=ConsentType.TELEMEDICINE.value,
                text_version=text.current_version)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            consultation = self._open_for(appointment, actor, at)
            consultation.check_in(self.windows, by=actor.ref, at=at)
            return self._decided(consultation, at)

        return self._run(key, decide)

    def patient_view(self, actor: Actor, appointment_id: UUID, at: datetime) -> dict[str, Any]:
        appointment = self._patient_appointment(actor, appointment_id, at)
        consultation = self._current(appointment, at)
        if consultation.follow_up_instructions is not None:  # part of the record: logged
            self._viewed(actor, consultation, at)
        return self.view(consultation, at)

    # ---- the clinician ----------------------------------------------------------------------

    def admit(self, actor: Actor, consultation_ref: UUID, at: datetime,
              key: IdempotencyKey | None = None) -> Outcome:
        """The clinician joins (admits the patient); the patient is told the first time."""
        appointment = self._clinician_appointment(actor, consultation_ref, at)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            consultation = self._open_for(appointment, actor, at)
            told = consultation.clinician_told
            consultation.admit(self.windows, by=actor.ref, at=at)
            result, touched, also = self._decided(consultation, at)
            if not told and consultation.clinician_told:
                also += self._tell_patient_clinician_joined(consultation, at)
            return result, touched, also

        return self._run(key, decide)

    def end(self, actor: Actor, consultation_ref: UUID, outcome: CallOutcome, at: datetime,
            key: IdempotencyKey | None = None) -> Outcome:
        appointment = self._clinician_appointment(actor, consultation_ref, at)
        return self._change(key, appointment, actor, at,
                            lambda c: c.end(outcome, by=actor.ref, at=at))

    def record_no_show(self, actor: Actor, consultation_ref: UUID, at: datetime,
                       key: IdempotencyKey | None = None) -> Outcome:
        """The patient never came: recorded on the appointment (its outcome for the clinic and
        for analysts), which the consultation follows."""
        appointment = self._clinician_appointment(actor, consultation_ref, at)
        consultation = self._existing(consultation_id(appointment.id)) \
            or self._new(appointment, actor.ref, at)
        copy.deepcopy(consultation).record_no_show(by=actor.ref, at=at)  # its rules, unsaved
        recorded = self.appointments.record_no_show(actor, appointment.id, at, key=key)
        current = self._current(self.appointments.appointment(appointment.id), at)
        return Outcome(self.view(current, at), recorded.position, recorded.replayed)

    def record_summary(self, actor: Actor, consultation_ref: UUID, follow_up: str, notes: str,
                       at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        appointment = self._clinician_appointment(actor, consultation_ref, at)
        outcome = self._change(key, appointment, actor, at,
                               lambda c: c.record_summary(follow_up, notes, by=actor.ref, at=at))
        return Outcome(self.staff_view(actor, consultation_ref, at), outcome.position,
                       outcome.replayed)

    def staff_view(self, actor: Actor, consultation_ref: UUID, at: datetime) -> dict[str, Any]:
        """The clinician's view: the patient's view, the internal notes and the session log."""
        appointment = self._clinician_appointment(actor, consultation_ref, at)
        consultation = self._current(appointment, at)
        if consultation.follow_up_instructions or consultation.internal_notes:
            self._viewed(actor, consultation, at)
        return {**self.view(consultation, at),
                "internal_notes": consultation.internal_notes,
                "patient_name": self._patient_name(consultation.patient_id),
                "session_log": self.session_log(consultation.id)}

    def clinician_day(self, actor: Actor, day: date | None, at: datetime) -> list[dict[str, Any]]:
        """The clinician's own video consultations on a clinic-local day (default: today)."""
        authorise_ever(actor, Action.CONSULTATION_CONDUCT)
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT appointment_id, clinic_id FROM {SLOT_BOOKINGS} WHERE clinician_id = %s"
                " AND status = 'booked' AND starts_at >= %s AND starts_at < %s"
                " ORDER BY starts_at",
                (actor.account_id, *self._day_bounds(actor, day, at))).fetchall()
        listed = []
        for row in rows:
            appointment = self.appointments.appointment(row["appointment_id"])
            if appointment.mode != "video" or appointment.clinician_id != actor.account_id:
                continue
            view = self.view(self._current(appointment, at), at)
            listed.append({key: view[key] for key in (
                "consultation_id", "appointment_id", "state", "starts_at", "starts_at_local",
                "ends_at", "patient_present", "clinician_present", "waiting_since")}
                | {"patient_name": self._patient_name(appointment.patient_id)})
        return listed

    # ---- the sockets ------------------------------------------------------------------------

    def participant(self, consultation_ref: UUID, account_id: UUID) -> Role:
        """Which side an account is on (tickets are issued only to the two sides)."""
        consultation = self._existing(consultation_ref)
        if consultation is None:
            raise NotFound("There is no such video consultation.")
        role = consultation.role_of(account_id)
        return role if role is not None else Role.PATIENT  # a proxy joins on the patient's side

    def joined(self, consultation_ref: UUID, role: Role, connection: str, by: str,
               at: datetime) -> Consultation:
        return self._socket_event(consultation_ref, at,
                                  lambda c: c.joined(role, connection, by=by, at=at))

    def left(self, consultation_ref: UUID, role: Role, connection: str, reason: str,
             quality: dict[str, Any] | None, by: str, at: datetime) -> Consultation:
        return self._socket_event(consultation_ref, at,
                                  lambda c: c.left(role, connection, reason, quality, by=by,
                                                   at=at))

    def connected(self, consultation_ref: UUID, role: Role, by: str,
                  at: datetime) -> Consultation:
        return self._socket_event(consultation_ref, at,
                                  lambda c: c.connected(role, by=by, at=at))

    def connection_failed(self, consultation_ref: UUID, role: Role, reason: str, by: str,
                          at: datetime) -> Consultation:
        return self._socket_event(consultation_ref, at,
                                  lambda c: c.connection_failed(role, reason, by=by, at=at))

    def refresh(self, consultation_ref: UUID, at: datetime) -> Consultation:
        """Reconciles with the appointment and opens the join window for an early arrival."""
        consultation = self._existing(consultation_ref)
        if consultation is None:
            raise NotFound("There is no such video consultation.")
        appointment = self.appointments.appointment(consultation.appointment_id)
        reconciled = self._reconciled(appointment, at)
        assert reconciled is not None
        return self._socket_event(consultation_ref, at,
                                  lambda c: c.open_window(self.windows, by="system", at=at))

    def use_ticket(self, ticket_id: UUID, expires_at: datetime) -> bool:
        """Records a WebSocket ticket's one use; False if it was used before."""
        with self.factory.datastore.transaction(commit=True) as cur:  # type: ignore[attr-defined]
            cur.execute(f"DELETE FROM {TICKETS_USED} WHERE expires_at < now() - interval '1 day'")
            cur.execute(f"INSERT INTO {TICKETS_USED} (ticket_id, expires_at) VALUES (%s, %s)"
                        " ON CONFLICT DO NOTHING", (ticket_id, expires_at))
            return bool(cur.rowcount)

    # ---- the appointment changed ------------------------------------------------------------

    def appointment_changed(self, appointment: Appointment, by: str, at: datetime) -> None:
        """Called by the appointments context after a cancellation, a move or a no-show."""
        if appointment.mode != "video":
            return
        try:
            self._reconciled(appointment, at, by=by)
        except CareBridgeError as error:  # the next read reconciles again
            log.warning("consultation of appointment %s not reconciled (%s)", appointment.id,
                        error.code)

    # ---- views ------------------------------------------------------------------------------

    def view(self, consultation: Consultation, at: datetime) -> dict[str, Any]:
        """What both sides may see (never the internal notes)."""
        zone = self._zone(consultation.clinic_id)
        opens = self.windows.join_opens(consultation.starts_at)
        state = consultation.state
        return {
            "consultation_id": str(consultation.id),
            "appointment_id": str(consultation.appointment_id),
            "state": state.value,
            "message": patient_message(consultation, self.windows, local_when(opens, zone)),
            "join_opens_at": opens.isoformat(),
            "room_opens_at": self.windows.room_opens(consultation.starts_at).isoformat(),
            "joining_ends_at": self.windows.joining_ends(consultation.ends_at).isoformat(),
            "starts_at": consultation.starts_at.isoformat(),
            "ends_at": consultation.ends_at.isoformat(),
            "starts_at_local": local_when(consultation.starts_at, zone),
            "patient_present": consultation.present(Role.PATIENT),
            "clinician_present": consultation.present(Role.CLINICIAN),
            "waiting_since": consultation.patient_first_in.isoformat()
            if consultation.patient_first_in and state in (State.EARLY_ARRIVAL, State.WAITING)
            else None,
            "follow_up_instructions": consultation.follow_up_instructions,
            "version": consultation.version,
        }

    def session_log(self, consultation_ref: UUID) -> list[dict[str, Any]]:
        """Join and leave times, connection outcomes and quality figures; never media."""
        entries = []
        for stored in self.repository.event_store.get(consultation_ref):
            name = type(stored).__name__
            at: datetime = stored.at  # type: ignore[attr-defined]
            entry: dict[str, Any] = {"at": at.isoformat(),
                                     "event": _LOG_NAMES.get(name, name)}
            for attribute in ("role", "reason", "outcome", "quality", "early"):
                if hasattr(stored, attribute):
                    entry[attribute] = getattr(stored, attribute)
            entries.append(entry)
        return entries

    # ---- helpers ----------------------------------------------------------------------------

    def _decided(self, consultation: Consultation, at: datetime,
                 ) -> tuple[dict[str, Any], list[Any], list[Statement]]:
        view = self.view(consultation, at)
        also = signal(consultation.id, "both", {"type": "state", "state": view}) \
            if consultation.pending_events else []
        return view, [consultation], also

    def _change(self, key: IdempotencyKey | None, appointment: Appointment, actor: Actor,
                at: datetime, change: Callable[[Consultation], bool]) -> Outcome:
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            consultation = self._existing(consultation_id(appointment.id)) \
                or self._new(appointment, actor.ref, at)
            change(consultation)
            return self._decided(consultation, at)

        return self._run(key, decide)

    def _socket_event(self, consultation_ref: UUID, at: datetime,
                      change: Callable[[Consultation], bool]) -> Consultation:
        for _ in range(ATTEMPTS):
            consultation = self._existing(consultation_ref)
            if consultation is None:
                raise NotFound("There is no such video consultation.")
            if not change(consultation):
                return consultation
            view = self.view(consultation, at)
            try:
                self.save_all(consultation, also=signal(consultation.id, "both",
                                                        {"type": "state", "state": view}))
                return consultation
            except ConcurrentChange:
                continue
        raise ConcurrentChange("The consultation changed many times at once; try again.")

    def _run(self, key: IdempotencyKey | None, decide: Any) -> Outcome:
        return run_retrying(self, self.idempotency, key, decide, "this consultation")

    def _reconciled(self, appointment: Appointment, at: datetime,
                    by: str = "system") -> Consultation | None:
        """The consultation, brought in line with its appointment (cancelled, moved, missed)."""
        for _ in range(ATTEMPTS):
            consultation = self._existing(consultation_id(appointment.id))
            if consultation is None:
                return None
            changed = False
            if appointment.status == "cancelled":
                changed = consultation.cancel(appointment.reason_code, by=by, at=at)
            elif appointment.status == "no_show" and consultation.is_open:
                changed = consultation.record_no_show(by=by, at=max(at, appointment.starts_at)) \
                    if consultation.patient_first_in is None else False
            elif consultation.is_open:
                changed = consultation.move(appointment.starts_at, appointment.ends_at,
                                            appointment.clinician_id, by=by, at=at)
            if not changed:
                return consultation
            view = self.view(consultation, at)
            frame = {"type": "state", "state": view}
            try:
                self.save_all(consultation, also=signal(consultation.id, "both", frame))
                return consultation
            except ConcurrentChange:
                continue
        raise ConcurrentChange("The consultation changed many times at once; try again.")

    def _current(self, appointment: Appointment, at: datetime) -> Consultation:
        """The consultation as of now: reconciled with its appointment, the join window opened
        for an early arrival; before anyone joined, as it would begin (nothing is saved)."""
        consultation = self._reconciled(appointment, at)
        if consultation is None:
            return self._new(appointment, "system", at)
        if consultation.open_window(self.windows, by="system", at=at):
            return self._socket_event(consultation.id, at,
                                      lambda c: c.open_window(self.windows, by="system", at=at))
        return consultation

    def _open_for(self, appointment: Appointment, actor: Actor, at: datetime) -> Consultation:
        consultation = self._reconciled(appointment, at)
        return consultation if consultation is not None else self._new(appointment, actor.ref, at)

    def _new(self, appointment: Appointment, by: str, at: datetime) -> Consultation:
        if appointment.mode != "video":
            raise NotVideo("This appointment is in person; there is no video call to join.")
        if appointment.status in ("held", "lapsed") or appointment.status_at(at) == "lapsed":
            raise NotFound("This appointment is not booked.")
        consultation = Consultation(
            appointment_id=appointment.id, patient_id=appointment.patient_id,
            clinician_id=appointment.clinician_id, clinic_id=appointment.clinic_id,
            starts_at=appointment.starts_at, ends_at=appointment.ends_at, by=by, at=at)
        if appointment.status == "cancelled":
            consultation.cancel(appointment.reason_code, by=by, at=at)
        elif appointment.status == "no_show":
            consultation.record_no_show(by=by, at=max(at, appointment.starts_at))
        return consultation

    def _existing(self, consultation_ref: UUID) -> Consultation | None:
        try:
            found: Consultation = self.repository.get(consultation_ref)
        except AggregateNotFoundError:
            return None
        return found

    def _patient_appointment(self, actor: Actor, appointment_id: UUID,
                             at: datetime) -> Appointment:
        authorise_ever(actor, Action.CONSULTATION_JOIN)
        appointment = self.appointments.appointment(appointment_id)
        relationship = self.care.relationship(actor, appointment.patient_id, at)
        authorise(actor, Action.CONSULTATION_JOIN,
                  PatientResource(appointment.patient_id, relationship))
        if appointment.mode != "video":
            raise NotVideo("This appointment is in person; there is no video call to join.")
        return appointment

    def _clinician_appointment(self, actor: Actor, consultation_ref: UUID,
                               at: datetime) -> Appointment:
        authorise_ever(actor, Action.CONSULTATION_CONDUCT)
        appointment_id = self._appointment_of(consultation_ref)
        appointment = self.appointments.appointment(appointment_id)
        if appointment.clinician_id != actor.account_id:
            raise Forbidden("Only the clinician of this appointment can run its consultation.")
        relationship = self.care.relationship(actor, appointment.patient_id, at)
        authorise(actor, Action.CONSULTATION_CONDUCT,
                  PatientResource(appointment.patient_id, relationship))
        return appointment

    def _appointment_of(self, consultation_ref: UUID) -> UUID:
        """A consultation has its appointment's id (`consultation_id`)."""
        return consultation_ref

    def _day_bounds(self, actor: Actor, day: date | None,
                    at: datetime) -> tuple[datetime, datetime]:
        zone = self._zone(sorted(actor.clinic_ids)[0]) if actor.clinic_ids else None
        if zone is None:
            from datetime import UTC

            zone = UTC
        local_day = day or at.astimezone(zone).date()
        start = datetime.combine(local_day, time(0), tzinfo=zone)
        return start, datetime.combine(local_day + timedelta(days=1), time(0), tzinfo=zone)

    def _zone(self, clinic_id: str) -> Any:
        clinic = self.appointments.schedule.clinic(clinic_id)
        if clinic is None:
            from datetime import UTC

            return UTC
        return clinic.zone

    def _patient_name(self, patient_id: UUID) -> str | None:
        account = self.care.identity.find_account(patient_id)
        if account is None:
            return None
        return f"{account.given_name} {account.family_name}".strip()

    def _viewed(self, actor: Actor, consultation: Consultation, at: datetime) -> None:
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      consultation.patient_id, "consultation_summary", consultation.id, at)

    def _tell_patient_clinician_joined(self, consultation: Consultation,
                                       at: datetime) -> list[Statement]:
        """A nudge with no medical detail: by text when there is a mobile number, else email."""
        account = self.care.identity.find_account(consultation.patient_id)
        if account is None:
            return []
        phone = getattr(account, "mobile_phone", None)
        channel, recipient = ("sms", phone) if phone else ("email", account.email)
        return enqueue(Message("clinician_joined", channel, account.id, recipient, {}), at,
                       about_id=consultation.appointment_id)


_LOG_NAMES = {
    "Created": "opened", "CheckedIn": "patient_checked_in", "WindowOpened": "join_window_opened",
    "ClinicianAdmitted": "clinician_joined", "Joined": "joined", "Left": "left",
    "MediaConnected": "media_connected", "ConnectionFailed": "connection_failed",
    "Ended": "ended", "NoShow": "no_show", "Cancelled": "cancelled", "Moved": "moved",
    "SummaryRecorded": "summary_recorded", "FollowUpWritten": "follow_up_written",
    "InternalNotesWritten": "internal_notes_written",
}
