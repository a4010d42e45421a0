"""Secure messaging: a thread between a patient and a clinic team, about one thing.

A thread has a category, the team it is routed to (reception, the nurses, the prescription
coordinators, support, or a named clinician), and the context it was started from (an
appointment, a prescription request, a record or a document), so the patient never has to
explain again. Its state says whose turn it is:

    open ──staff reply──▶ pending_patient ──patient reply──▶ pending_clinic ──staff reply──▶ …
      └──────────────── close ─────────▶ closed ──reopen──▶ reopened ──staff reply──▶ …

While the clinic owes an answer (open, pending_clinic, reopened) the thread has a `due_by`: the
last patient message's time plus the response time promised for its category. Internal staff
notes are events of their own (`Thread.StaffNoteAdded`) that no patient view receives.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput
from domain.ids import stream_id

CONTEXT = "messaging"
BODY_MAX = 5000
SUBJECT_MAX = 200
NOTE_MAX = 2000
ATTACHMENTS_MAX = 5


class Category(StrEnum):
    APPOINTMENT = "appointment"
    PRESCRIPTION = "prescription"
    LAB_RESULT = "lab_result"
    BILLING = "billing"
    CARE_FOLLOW_UP = "care_follow_up"
    GENERAL = "general"


class State(StrEnum):
    OPEN = "open"
    PENDING_CLINIC = "pending_clinic"
    PENDING_PATIENT = "pending_patient"
    CLOSED = "closed"
    REOPENED = "reopened"


class Team(StrEnum):
    RECEPTION = "reception"
    NURSES = "nurses"
    PRESCRIPTION_COORDINATORS = "prescription_coordinators"
    SUPPORT = "support"
    CLINICIAN = "clinician"  # a named clinician: the thread carries who


class ContextKind(StrEnum):
    APPOINTMENT = "appointment"
    PRESCRIPTION_REQUEST = "prescription_request"
    RECORD = "record"
    DOCUMENT = "document"


CATEGORY_WORDS = {
    Category.APPOINTMENT: "A question about an appointment",
    Category.PRESCRIPTION: "A prescription update",
    Category.LAB_RESULT: "A question about a test result",
    Category.BILLING: "Billing",
    Category.CARE_FOLLOW_UP: "Care follow-up",
    Category.GENERAL: "Something else",
}
STATE_WORDS = {
    State.OPEN: "Sent: the clinic will answer",
    State.PENDING_CLINIC: "Waiting for the clinic's answer",
    State.PENDING_PATIENT: "The clinic answered: your reply is awaited",
    State.CLOSED: "Closed",
    State.REOPENED: "Reopened: the clinic will answer",
}
TEAM_WORDS = {
    Team.RECEPTION: "Reception", Team.NURSES: "The nursing team",
    Team.PRESCRIPTION_COORDINATORS: "The prescriptions team", Team.SUPPORT: "Patient support",
    Team.CLINICIAN: "Your clinician",
}
# The clinic owes an answer in these states.
AWAITING_CLINIC = frozenset({State.OPEN, State.PENDING_CLINIC, State.REOPENED})
# Default routing: which team answers each category (a clinic may change it; a care follow-up
# about an appointment goes to that appointment's clinician).
DEFAULT_ROUTES = {
    Category.APPOINTMENT: Team.RECEPTION, Category.PRESCRIPTION: Team.PRESCRIPTION_COORDINATORS,
    Category.LAB_RESULT: Team.NURSES, Category.BILLING: Team.SUPPORT,
    Category.CARE_FOLLOW_UP: Team.NURSES, Category.GENERAL: Team.RECEPTION,
}
# Hours within which the clinic promises an answer, per category (settings may change them).
DEFAULT_RESPONSE_HOURS = {
    Category.APPOINTMENT: 24, Category.PRESCRIPTION: 48, Category.LAB_RESULT: 48,
    Category.BILLING: 120, Category.CARE_FOLLOW_UP: 48, Category.GENERAL: 72,
}
REOPEN_DAYS = 30


class ThreadClosed(Conflict):
    code = "thread-closed"
    title = "This conversation is closed"


class NotReopenable(Conflict):
    code = "thread-not-reopenable"
    title = "This conversation cannot be reopened"


def expectation_words(hours: float) -> str:
    days = hours / 24
    if hours <= 24:
        return f"The clinic usually answers within {int(hours)} hours."
    return f"The clinic usually answers within {days:g} days."


class Thread(CareAggregate):
    TOPIC = topic(CONTEXT, "Thread")

    @event("Created", topic=topic(CONTEXT, "Thread.Started"))
    def __init__(self, patient_id: UUID, clinic_id: str, category: str, subject: str,
                 context_kind: str | None, context_id: UUID | None, team: str,
                 clinician_id: UUID | None, message_id: UUID, body: str,
                 attachments: list[UUID], due_by: datetime, by: str, at: datetime) -> None:
        self.patient_id, self.clinic_id = patient_id, clinic_id
        self.category, self.subject = Category(category), subject
        self.context_kind = ContextKind(context_kind) if context_kind else None
        self.context_id = context_id
        self.team, self.clinician_id = Team(team), clinician_id
        self.state = State.OPEN
        self.due_by: datetime | None = due_by
        self.started_at = self.last_message_at = at
        self.messages: list[dict[str, Any]] = [_message(message_id, by, body, attachments, at)]
        self.notes: list[dict[str, Any]] = []
        self.closed_at: datetime | None = None

    @classmethod
    def start(cls, *, patient_id: UUID, clinic_id: str, category: str, subject: str,
              context_kind: str | None, context_id: UUID | None, team: Team,
              clinician_id: UUID | None, message_id: UUID, body: str, attachments: list[UUID],
              response_hours: float, by: str, at: datetime) -> Thread:
        errors: list[FieldError] = []
        words = _text(subject, "subject", SUBJECT_MAX, errors)
        text = _text(body, "body", BODY_MAX, errors)
        _attachments(attachments, errors)
        if errors:
            raise InvalidInput(errors)
        return cls(patient_id=patient_id, clinic_id=clinic_id, category=category, subject=words,
                   context_kind=context_kind, context_id=context_id, team=team.value,
                   clinician_id=clinician_id, message_id=message_id, body=text,
                   attachments=list(attachments), due_by=at + timedelta(hours=response_hours),
                   by=by, at=at)

    @property
    def awaiting_clinic(self) -> bool:
        return self.state in AWAITING_CLINIC

    def overdue(self, at: datetime) -> bool:
        return self.awaiting_clinic and self.due_by is not None and at > self.due_by

    # ---- commands ------------------------------------------------------------------------

    def post(self, *, message_id: UUID, body: str, attachments: list[UUID], from_patient: bool,
             response_hours: float, by: str, at: datetime) -> None:
        """A message from the patient's side (the patient or a proxy) or the clinic's."""
        errors: list[FieldError] = []
        text = _text(body, "body", BODY_MAX, errors)
        _attachments(attachments, errors)
        if errors:
            raise InvalidInput(errors)
        if self.state is State.CLOSED:
            raise ThreadClosed("This conversation is closed. Reopen it to write again, or start "
                               "a new one.")
        state: State
        if from_patient:
            state = State.PENDING_CLINIC if self.state is State.PENDING_PATIENT else self.state
            # The promise runs from the first message the clinic has not answered yet.
            due = self.due_by if self.awaiting_clinic and self.due_by else \
                at + timedelta(hours=response_hours)
        else:
            state, due = State.PENDING_PATIENT, None
        self._posted(message_id=message_id, body=text, attachments=list(attachments),
                     from_patient=from_patient, state=state.value, due_by=due, by=by, at=at)

    def close(self, by: str, at: datetime) -> bool:
        if self.state is State.CLOSED:
            return False
        self._closed(by=by, at=at)
        return True

    def reopen(self, response_hours: float, by: str, at: datetime) -> bool:
        if self.state is not State.CLOSED:
            return False
        if self.closed_at is not None and at - self.closed_at > timedelta(days=REOPEN_DAYS):
            raise NotReopenable(f"This conversation was closed more than {REOPEN_DAYS} days "
                                "ago. Please start a new one; you can name the same "
                                "appointment, request or record.")
        self._reopened(due_by=at + timedelta(hours=response_hours), by=by, at=at)
        return True

    def reassign(self, team: Team, clinician_id: UUID | None, by: str, at: datetime) -> bool:
        if (team, clinician_id) == (self.team, self.clinician_id):
            return False
        self._reassigned(team=team.value, clinician_id=clinician_id, by=by, at=at)
        return True

    def add_staff_note(self, note: str, by: str, at: datetime) -> None:
        errors: list[FieldError] = []
        words = _text(note, "note", NOTE_MAX, errors)
        if errors:
            raise InvalidInput(errors)
        self._noted(note=words, by=by, at=at)

    # ---- events --------------------------------------------------------------------------

    @event("MessagePosted", topic=topic(CONTEXT, "Thread.MessagePosted"))
    def _posted(self, message_id: UUID, body: str, attachments: list[UUID], from_patient: bool,
                state: str, due_by: datetime | None, by: str, at: datetime) -> None:
        self.messages.append(_message(message_id, by, body, attachments, at))
        self.state, self.due_by, self.last_message_at = State(state), due_by, at

    @event("Closed", topic=topic(CONTEXT, "Thread.Closed"))
    def _closed(self, by: str, at: datetime) -> None:
        self.state, self.due_by, self.closed_at = State.CLOSED, None, at

    @event("Reopened", topic=topic(CONTEXT, "Thread.Reopened"))
    def _reopened(self, due_by: datetime, by: str, at: datetime) -> None:
        self.state, self.due_by, self.closed_at = State.REOPENED, due_by, None

    @event("Reassigned", topic=topic(CONTEXT, "Thread.Reassigned"))
    def _reassigned(self, team: str, clinician_id: UUID | None, by: str, at: datetime) -> None:
        self.team, self.clinician_id = Team(team), clinician_id

    @event("StaffNoteAdded", topic=topic(CONTEXT, "Thread.StaffNoteAdded"))
    def _noted(self, note: str, by: str, at: datetime) -> None:
        self.notes.append({"note": note, "by": by, "at": at})


def _message(message_id: UUID, by: str, body: str, attachments: list[UUID],
             at: datetime) -> dict[str, Any]:
    return {"message_id": message_id, "by": by, "body": body,
            "attachments": list(attachments), "at": at}


def _text(value: str, name: str, limit: int, errors: list[FieldError]) -> str:
    words = (value or "").strip()
    if not words:
        errors.append(FieldError(name, "Write something."))
    elif len(words) > limit:
        errors.append(FieldError(name, f"Keep it under {limit} characters."))
    return words


def _attachments(attachments: list[UUID], errors: list[FieldError]) -> None:
    if len(attachments) > ATTACHMENTS_MAX:
        errors.append(FieldError("attachments", f"Attach at most {ATTACHMENTS_MAX} documents "
                                 "to one message."))
    elif len(set(attachments)) != len(attachments):
        errors.append(FieldError("attachments", "The same document is attached twice."))


class MessageRoutes(CareAggregate):
    """A clinic's routing rules: which team answers each category of conversation there."""

    TOPIC = topic(CONTEXT, "MessageRoutes")

    @classmethod
    def create_id(cls, clinic_id: str, **_: object) -> UUID:
        return stream_id("message-routes", clinic_id)

    @event("Created", topic=topic(CONTEXT, "MessageRoutes.Opened"))
    def __init__(self, clinic_id: str, by: str, at: datetime) -> None:
        self.clinic_id = clinic_id
        self.rules: dict[str, dict[str, Any]] = {}

    def change(self, rules: dict[str, dict[str, Any]], by: str, at: datetime) -> bool:
        if rules == self.rules:
            return False
        self._changed(rules=rules, by=by, at=at)
        return True

    @event("Changed", topic=topic(CONTEXT, "MessageRoutes.Changed"))
    def _changed(self, rules: dict[str, dict[str, Any]], by: str, at: datetime) -> None:
        self.rules = rules
