"""Appointment reminders: planned into the outbox when an appointment is confirmed, withdrawn
when it is cancelled or moved (and planned again for the new time).

A reminder names the local date and time and the clinic, nothing else: never the specialty,
the clinician's field or the reason for the visit. Video visits also get a join reminder
shortly before the start. Planned rows wait in the outbox until their `not_before` time.

When the consultation type asks for forms or uploads before the visit (domain/forms.py) and
something is still missing, preparation reminders are planned 72 and 24 hours before. They say
only that something is left to do (never which form or document), are withdrawn with the
others when the appointment is cancelled or moved, and are withdrawn on their own as soon as
nothing is missing (`withdraw_preparation_when_done`, which the forms and documents contexts add
to the transaction that completes the last item).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from commands.eventstore import Statement
from commands.outbox import OUTBOX, Message, enqueue, local_when
from commands.waitlist import SLOT_BOOKINGS, Accounts, appointment_topic
from domain.schedule_types import Mode, ScheduleSource

CONFIRMED = appointment_topic("Confirmed")
CANCELLED = appointment_topic("Cancelled")
RESCHEDULED = appointment_topic("Rescheduled")
REMINDER_TOPICS = (CONFIRMED, RESCHEDULED, CANCELLED)
JOIN_REMINDER = timedelta(minutes=10)
PREPARATION = "visit_preparation_reminder"
PREPARATION_HOURS = (72, 24)
DOCUMENTS = "carebridge.documents"


@dataclass(frozen=True)
class PlannedAppointment:
    """What a reminder needs to know of an appointment (read from the booking lookup)."""

    appointment_id: UUID
    patient_id: UUID
    clinic_id: str
    consultation_type_id: str
    starts_at: datetime
    video: bool


class ReminderPlanner:
    """Turns appointment events into outbox statements; run by a follower of the log."""

    def __init__(self, schedule: Callable[[], ScheduleSource | None], accounts: Accounts | None,
                 reminder_hours: Sequence[int]) -> None:
        self.schedule_of, self.accounts = schedule, accounts
        self.reminder_hours = sorted(set(reminder_hours), reverse=True)

    def statements(self, topic: str, event: Any, cur: Any) -> list[Statement]:
        """The outbox writes one appointments event calls for (`cur` reads the lookup)."""
        appointment_id = event.originator_id
        if topic == CANCELLED:
            return [withdraw(appointment_id, event.at)]
        if topic not in (CONFIRMED, RESCHEDULED):
            return []
        appointment = self._appointment(cur, appointment_id)
        if appointment is None:
            return []
        planned: list[Statement] = []
        if topic == RESCHEDULED:
            planned.append(withdraw(appointment_id, event.at))
            appointment = PlannedAppointment(**{**appointment.__dict__,
                                                "starts_at": event.starts_at})
        return planned + self.plan(appointment, event.at,
                                   preparation=something_outstanding(cur, appointment_id))

    def plan(self, appointment: PlannedAppointment, at: datetime,
             preparation: bool = False) -> list[Statement]:
        schedule = self.schedule_of()
        clinic = schedule.clinic(appointment.clinic_id) if schedule else None
        account = self.accounts.find_account(appointment.patient_id) if self.accounts else None
        email = getattr(account, "email", None)
        if clinic is None or not email:
            return []
        when = local_when(appointment.starts_at, clinic.zone)
        statements: list[Statement] = []
        for hours in self.reminder_hours:
            due = appointment.starts_at - timedelta(hours=hours)
            if due > at:
                statements += enqueue(
                    Message("appointment_reminder", "email", appointment.patient_id, email,
                            {"when": when, "clinic": clinic.name}),
                    at, not_before=due, about_id=appointment.appointment_id)
        due = appointment.starts_at - JOIN_REMINDER
        if appointment.video and due > at:
            statements += enqueue(
                Message("video_join_reminder", "email", appointment.patient_id, email, {}),
                at, not_before=due, about_id=appointment.appointment_id)
        for hours in PREPARATION_HOURS if preparation else ():
            due = appointment.starts_at - timedelta(hours=hours)
            if due > at:
                statements += enqueue(
                    Message(PREPARATION, "email", appointment.patient_id, email,
                            {"when": when, "clinic": clinic.name}),
                    at, not_before=due, about_id=appointment.appointment_id)
        return statements

    def _appointment(self, cur: Any, appointment_id: UUID) -> PlannedAppointment | None:
        row = cur.execute(
            f"SELECT patient_id, clinic_id, consultation_type_id, starts_at, room_id"
            f" FROM {SLOT_BOOKINGS} WHERE appointment_id = %s", (appointment_id,)).fetchone()
        if row is None:
            return None
        patient_id, clinic_id, type_id, starts_at, room_id = (
            row[k] for k in ("patient_id", "clinic_id", "consultation_type_id", "starts_at",
                             "room_id")) if isinstance(row, dict) else row
        schedule = self.schedule_of()
        kind = schedule.consultation_type(type_id) if schedule else None
        video = kind.mode == Mode.VIDEO if kind else room_id is None
        return PlannedAppointment(appointment_id, patient_id, clinic_id, type_id, starts_at,
                                  video)


def withdraw(appointment_id: UUID, at: datetime) -> Statement:
    """Withdraws the undelivered planned messages about an appointment; their recipient and
    content are erased at once."""
    return Statement(
        f"UPDATE {OUTBOX} SET withdrawn_at = %s, recipient = NULL, payload = NULL"
        " WHERE about_id = %s AND delivered_at IS NULL AND failed_at IS NULL"
        " AND withdrawn_at IS NULL", (at, appointment_id))


def _outstanding_sql(with_documents: bool) -> str:
    """True when the appointment (the one parameter, given twice) still lacks a required form
    that was submitted, or a required upload that is waiting for review or accepted."""
    uploads = (
        " OR EXISTS (SELECT 1 FROM carebridge.slot_bookings b"
        " JOIN carebridge.visit_requirements r USING (consultation_type_id)"
        " CROSS JOIN LATERAL unnest(r.uploads) AS u(document_type)"
        " WHERE b.appointment_id = %s AND NOT EXISTS (SELECT 1 FROM " + DOCUMENTS + " d"
        " WHERE d.appointment_id = b.appointment_id AND d.document_type = u.document_type"
        " AND d.status IN ('pending_review', 'accepted')))") if with_documents else (
        " OR EXISTS (SELECT 1 FROM carebridge.slot_bookings b"
        " JOIN carebridge.visit_requirements r USING (consultation_type_id)"
        " WHERE b.appointment_id = %s AND cardinality(r.uploads) > 0)")
    return (
        "(EXISTS (SELECT 1 FROM carebridge.slot_bookings b"
        " JOIN carebridge.visit_requirements r USING (consultation_type_id)"
        " CROSS JOIN LATERAL unnest(r.forms) AS f(form_id)"
        " WHERE b.appointment_id = %s AND NOT EXISTS (SELECT 1 FROM carebridge.form_responses s"
        " WHERE s.appointment_id = b.appointment_id AND s.form_id = f.form_id"
        " AND s.status = 'submitted'))" + uploads + ")")


def documents_present(cur: Any) -> bool:
    """Whether the documents context's lookup table exists yet (it comes with its migration)."""
    row = cur.execute("SELECT to_regclass(%s) IS NOT NULL", (DOCUMENTS,)).fetchone()
    return bool(row[0] if not isinstance(row, dict) else next(iter(row.values())))


def something_outstanding(cur: Any, appointment_id: UUID) -> bool:
    """Does the appointment still need a form or an upload from the patient?"""
    row = cur.execute("SELECT " + _outstanding_sql(documents_present(cur)),
                      (appointment_id, appointment_id)).fetchone()
    return bool(row[0] if not isinstance(row, dict) else next(iter(row.values())))


def withdraw_preparation_when_done(appointment_id: UUID, at: datetime,
                                   with_documents: bool) -> Statement:
    """Withdraws the planned preparation reminders of an appointment if, with what the same
    transaction wrote before this statement, nothing is missing any more."""
    return Statement(
        f"UPDATE {OUTBOX} SET withdrawn_at = %s, recipient = NULL, payload = NULL"
        " WHERE about_id = %s AND kind = %s AND delivered_at IS NULL AND failed_at IS NULL"
        " AND withdrawn_at IS NULL AND NOT " + _outstanding_sql(with_documents),
        (at, appointment_id, PREPARATION, appointment_id, appointment_id))
