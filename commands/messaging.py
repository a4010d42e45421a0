"""Secure messaging, the write side: threads started by patients (or their proxies) with the
context they are about, routed to a clinic team by the clinic's rules, answered by the team,
closed and reopened; internal staff notes; the team's queue with the answers that are late.

Each thread is saved with its row in `carebridge.message_threads` (the team queues read it; it
holds the subject but never a message) and a NOTIFY on `carebridge_messages` that tells every
API process's live connections that the thread changed, in one transaction. What the patient
reads is the `patient_threads` projection (projections/message_views.py), which never receives
staff notes. Staff reads of a thread are recorded in `carebridge.record_access`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.care import CareAccessApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_retrying
from commands.outbox import Message, enqueue
from commands.record_access import record_access
from domain.access import (
    Action,
    Actor,
    ClinicResource,
    PatientResource,
    authorise,
    authorise_ever,
    may_ever,
)
from domain.errors import FieldError, Forbidden, InvalidInput, NotFound
from domain.feature_flags import Feature
from domain.identity import Role
from domain.messaging import (
    DEFAULT_RESPONSE_HOURS,
    DEFAULT_ROUTES,
    Category,
    ContextKind,
    MessageRoutes,
    Team,
    Thread,
)

log = logging.getLogger("carebridge.messaging")

THREADS = "carebridge.message_threads"
CHANNEL = "carebridge_messages"
# Who works each team's queue at a clinic (a named clinician's queue is that clinician's).
TEAM_ROLES: dict[Team, frozenset[Role]] = {
    Team.RECEPTION: frozenset({Role.RECEPTION}),
    Team.NURSES: frozenset({Role.NURSE, Role.DOCTOR}),
    Team.PRESCRIPTION_COORDINATORS: frozenset({Role.PRESCRIPTION_COORDINATOR}),
    Team.SUPPORT: frozenset({Role.SUPPORT}),
    Team.CLINICIAN: frozenset({Role.DOCTOR, Role.NURSE}),
}


class MessagingApplication(CareApplication):
    name = "messaging"

    def __init__(self, store: EventStoreSettings, care: CareAccessApplication,
                 contexts: Mapping[str, Any], preferred_clinic: Any,
                 response_hours: Mapping[str, float] | None = None,
                 feature_flags: Any = None) -> None:
        super().__init__(store)
        self.feature_flags = feature_flags  # messaging is switched on clinic by clinic
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.care, self.contexts, self.preferred_clinic = care, contexts, preferred_clinic
        self.response_hours = {**{c.value: float(h) for c, h in DEFAULT_RESPONSE_HOURS.items()},
                               **(response_hours or {})}

    # ---- the patient's side -------------------------------------------------------------------

    def start(self, actor: Actor, patient_id: UUID, category: Category, subject: str, body: str,
              context_kind: ContextKind | None, context_id: UUID | None,
              attachments: list[UUID], clinic_id: str | None, at: datetime,
              key: IdempotencyKey | None = None) -> Outcome:
        """A new thread, routed to the team the clinic's rules name for its category."""
        authorise_ever(actor, Action.MESSAGES_SEND)
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.MESSAGES_SEND, PatientResource(patient_id, relationship))
        clinic, clinician = self._context(patient_id, context_kind, context_id)
        self._check_attachments(patient_id, attachments)
        clinic = clinic or clinic_id or self.preferred_clinic(patient_id)
        if clinic is None:
            raise InvalidInput([FieldError("clinic_id", "Say which clinic this is for, or "
                                           "choose your clinic in your profile.")])
        if self.feature_flags is not None:
            self.feature_flags.require(Feature.MESSAGING, patient_id, clinic)
        team, clinician_id = self.route(clinic, category, clinician)
        message_id = uuid.uuid4()

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            thread = Thread.start(
                patient_id=patient_id, clinic_id=clinic, category=category.value,
                subject=subject, context_kind=context_kind.value if context_kind else None,
                context_id=context_id, team=team, clinician_id=clinician_id,
                message_id=message_id, body=body, attachments=attachments,
                response_hours=self.hours(category), by=actor.ref, at=at)
            return _ids(thread), [thread], self._statements(thread, at, "started")

        return self._run(key, decide)

    def post(self, actor: Actor, thread_ref: UUID, body: str, attachments: list[UUID],
             at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """A message in a thread, from the patient's side or the clinic's; the patient hears
        of a clinic's answer (never what it says)."""
        _may_ever(actor)
        thread = self._get(thread_ref)
        from_patient = self._may_take_part(actor, thread, at)
        if from_patient:
            self._check_attachments(thread.patient_id, attachments)
        elif attachments:
            raise InvalidInput([FieldError("attachments", "Attachments come from the patient's "
                                           "uploads; link a record or document in your text.")])

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._get(thread_ref)
            current.post(message_id=uuid.uuid4(), body=body, attachments=attachments,
                         from_patient=from_patient, response_hours=self.hours(current.category),
                         by=actor.ref, at=at)
            also = self._statements(current, at, "message")
            if not from_patient:
                also += self._tell_patient(current, at)
            return _ids(current), [current], also

        return self._run(key, decide)

    def close_thread(self, actor: Actor, thread_ref: UUID, at: datetime,
              key: IdempotencyKey | None = None) -> Outcome:
        _may_ever(actor)
        self._may_take_part(actor, self._get(thread_ref), at)
        return self._change(thread_ref, at, key, "closed",
                            lambda t: t.close(by=actor.ref, at=at))

    def reopen_thread(self, actor: Actor, thread_ref: UUID, at: datetime,
               key: IdempotencyKey | None = None) -> Outcome:
        _may_ever(actor)
        self._may_take_part(actor, self._get(thread_ref), at)
        return self._change(thread_ref, at, key, "reopened",
                            lambda t: t.reopen(self.hours(t.category), by=actor.ref, at=at))

    # ---- the clinic's side --------------------------------------------------------------------

    def reassign(self, actor: Actor, thread_ref: UUID, team: Team, clinician_id: UUID | None,
                 at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        _may_ever(actor, staff=True)
        thread = self._get(thread_ref)
        if self._may_take_part(actor, thread, at):
            raise Forbidden("Only the clinic's team can pass a conversation to another team.")
        clinician_id = self._check_clinician(team, clinician_id, thread.clinic_id)
        return self._change(thread_ref, at, key, "reassigned",
                            lambda t: t.reassign(team, clinician_id, by=actor.ref, at=at))

    def add_note(self, actor: Actor, thread_ref: UUID, note: str, at: datetime,
                 key: IdempotencyKey | None = None) -> Outcome:
        _may_ever(actor, staff=True)
        thread = self._get(thread_ref)
        if self._may_take_part(actor, thread, at):
            raise Forbidden("Notes on a conversation are for the clinic's staff.")

        def noted(t: Thread) -> bool:
            t.add_staff_note(note, by=actor.ref, at=at)
            return True

        return self._change(thread_ref, at, key, "noted", noted, notify=False)

    def staff_thread(self, actor: Actor, thread_ref: UUID, at: datetime) -> dict[str, Any]:
        _may_ever(actor, staff=True)
        thread = self._get(thread_ref)
        if self._may_take_part(actor, thread, at):
            raise Forbidden("This is the clinic's view of a conversation; open it from your "
                            "messages.")
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      thread.patient_id, "message_thread", thread.id, at)
        return self.staff_view(thread, at)

    def queue(self, actor: Actor, clinic_id: str, team: Team | None, state: str | None,
              overdue_only: bool, at: datetime) -> list[dict[str, Any]]:
        """A clinic's conversations for the teams the caller works in (or one of them), the
        ones waiting longest first, with whether the promised answer time has passed."""
        authorise_ever(actor, Action.MESSAGES_ANSWER)
        authorise(actor, Action.MESSAGES_ANSWER, ClinicResource(clinic_id))
        teams = [t for t in Team if actor.role in TEAM_ROLES[t]]
        if team is not None:
            if team not in teams:
                raise Forbidden("You do not work in that team's queue.")
            teams = [team]
        query = (f"SELECT * FROM {THREADS} WHERE clinic_id = %s AND team = ANY(%s)"
                 " AND (team <> 'clinician' OR clinician_id = %s)")
        params: list[Any] = [clinic_id, [t.value for t in teams], actor.account_id]
        if state is not None:
            query += " AND state = %s"
            params.append(state)
        elif not overdue_only:
            query += " AND state <> 'closed'"
        if overdue_only:
            query += " AND due_by < %s"
            params.append(at)
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(query + " ORDER BY due_by NULLS LAST, last_message_at"
                                " LIMIT 500", params).fetchall()
        listed = []
        for row in rows:
            account = self.care.identity.find_account(row["patient_id"])
            listed.append({
                "thread_id": str(row["thread_id"]), "patient_id": str(row["patient_id"]),
                "patient_name": f"{account.given_name} {account.family_name}" if account
                else None, "clinic_id": row["clinic_id"], "category": row["category"],
                "subject": row["subject"], "team": row["team"],
                "clinician_id": str(row["clinician_id"]) if row["clinician_id"] else None,
                "state": row["state"], "due_by": _iso(row["due_by"]),
                "overdue": row["due_by"] is not None and row["due_by"] < at,
                "last_message_at": row["last_message_at"].isoformat()})
        return listed

    def staff_view(self, t: Thread, at: datetime) -> dict[str, Any]:
        return {
            "thread_id": str(t.id), "patient_id": str(t.patient_id), "clinic_id": t.clinic_id,
            "category": t.category.value, "subject": t.subject,
            "context_kind": t.context_kind.value if t.context_kind else None,
            "context_id": str(t.context_id) if t.context_id else None, "team": t.team.value,
            "clinician_id": str(t.clinician_id) if t.clinician_id else None,
            "state": t.state.value, "due_by": _iso(t.due_by), "overdue": t.overdue(at),
            "messages": [{"message_id": str(m["message_id"]), "by": m["by"], "body": m["body"],
                          "attachments": [str(a) for a in m["attachments"]],
                          "at": m["at"].isoformat()} for m in t.messages],
            "notes": [{"note": n["note"], "by": n["by"], "at": n["at"].isoformat()}
                      for n in t.notes],
            "version": t.version,
        }

    # ---- routing ------------------------------------------------------------------------------

    def route(self, clinic_id: str, category: Category,
              context_clinician: UUID | None) -> tuple[Team, UUID | None]:
        """The team a new thread goes to: a care follow-up about an appointment goes to its
        clinician; otherwise the clinic's rule for the category, else the default."""
        if category is Category.CARE_FOLLOW_UP and context_clinician is not None:
            return Team.CLINICIAN, context_clinician
        routes = self._routes(clinic_id)
        rule = routes.rules.get(category.value) if routes is not None else None
        if rule is not None:
            team = Team(rule["team"])
            return team, UUID(rule["clinician_id"]) if rule.get("clinician_id") else None
        return DEFAULT_ROUTES[category], None

    def routes(self, actor: Actor, clinic_id: str) -> dict[str, dict[str, Any]]:
        authorise_ever(actor, Action.SCHEDULE_MANAGE)
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(clinic_id))
        found = self._routes(clinic_id)
        rules = found.rules if found is not None else {}
        return {c.value: rules.get(c.value) or {"team": DEFAULT_ROUTES[c].value,
                                                 "clinician_id": None} for c in Category}

    def set_routes(self, actor: Actor, clinic_id: str, rules: Mapping[Category, tuple[Team,
                   UUID | None]], at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """A clinic administrator decides which team answers each category at the clinic."""
        authorise_ever(actor, Action.SCHEDULE_MANAGE)
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(clinic_id))
        checked = {}
        for category, (team, clinician_id) in rules.items():
            try:
                clinician = self._check_clinician(team, clinician_id, clinic_id)
            except InvalidInput as error:
                raise InvalidInput([FieldError(f"{category.value}.{e.field}", e.message)
                                    for e in error.errors]) from None
            checked[category.value] = {"team": team.value,
                                       "clinician_id": str(clinician) if clinician else None}

        def decide() -> tuple[dict[str, Any], list[Any]]:
            found = self._routes(clinic_id) or MessageRoutes(clinic_id=clinic_id, by=actor.ref,
                                                             at=at)
            found.change({**found.rules, **checked}, by=actor.ref, at=at)
            return {"clinic_id": clinic_id}, [found]

        return self._run(key, decide)

    # ---- helpers ------------------------------------------------------------------------------

    def hours(self, category: Category) -> float:
        return self.response_hours[category.value]

    def _may_take_part(self, actor: Actor, thread: Thread, at: datetime) -> bool:
        """May this actor read and write in the thread? True for the patient's side."""
        if actor.role is Role.PATIENT:
            authorise_ever(actor, Action.MESSAGES_SEND)
            relationship = self.care.relationship(actor, thread.patient_id, at)
            authorise(actor, Action.MESSAGES_SEND,
                      PatientResource(thread.patient_id, relationship))
            return True
        authorise_ever(actor, Action.MESSAGES_ANSWER)
        in_team = thread.clinic_id in actor.clinic_ids and actor.role in TEAM_ROLES[thread.team] \
            and (thread.team is not Team.CLINICIAN or thread.clinician_id == actor.account_id)
        if in_team:
            return False
        relationship = self.care.relationship(actor, thread.patient_id, at)
        authorise(actor, Action.MESSAGES_READ,
                  PatientResource(thread.patient_id, relationship, clinic_id=thread.clinic_id))
        return False

    def _context(self, patient_id: UUID, kind: ContextKind | None,
                 ref: UUID | None) -> tuple[str | None, UUID | None]:
        """The clinic (and clinician, for an appointment) of what the thread is about; refuses
        anything that is not the patient's own."""
        if kind is None and ref is None:
            return None, None
        if kind is None or ref is None:
            raise InvalidInput([FieldError("context", "Send both the kind and the id of what "
                                           "this is about, or neither.")])
        app = self.contexts.get(kind.value)
        found: Any = None
        if app is not None:
            try:
                found = app.repository.get(ref)
            except AggregateNotFoundError:
                found = None
        if found is None or getattr(found, "patient_id", None) != patient_id \
                or (kind is ContextKind.RECORD and not found.visible_to_patient):
            raise InvalidInput([FieldError("context.id", f"This is not one of your "
                                           f"{kind.value.replace('_', ' ')}s.")])
        return found.clinic_id, getattr(found, "clinician_id", None)

    def _check_attachments(self, patient_id: UUID, attachments: list[UUID]) -> None:
        documents = self.contexts.get(ContextKind.DOCUMENT.value)
        errors = []
        for n, ref in enumerate(attachments):
            found: Any = None
            if documents is not None:
                try:
                    found = documents.repository.get(ref)
                except AggregateNotFoundError:
                    found = None
            if found is None or getattr(found, "patient_id", None) != patient_id:
                errors.append(FieldError(f"attachments[{n}]", "Upload the file first, then "
                                         "attach the document it became."))
        if errors:
            raise InvalidInput(errors)

    def _check_clinician(self, team: Team, clinician_id: UUID | None,
                         clinic_id: str) -> UUID | None:
        if team is not Team.CLINICIAN:
            if clinician_id is not None:
                raise InvalidInput([FieldError("clinician_id", "Only the clinician team "
                                               "names a clinician.")])
            return None
        account = self.care.identity.find_account(clinician_id) if clinician_id else None
        if account is None or Role(account.role) not in TEAM_ROLES[Team.CLINICIAN] \
                or clinic_id not in account.clinic_ids:
            raise InvalidInput([FieldError("clinician_id", "Name a doctor or nurse of this "
                                           "clinic.")])
        return clinician_id

    def _change(self, thread_ref: UUID, at: datetime, key: IdempotencyKey | None, what: str,
                change: Any, notify: bool = True) -> Outcome:
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._get(thread_ref)
            if not change(current):
                return _ids(current), [], []
            return _ids(current), [current], self._statements(current, at, what, notify)

        return self._run(key, decide)

    def _statements(self, t: Thread, at: datetime, what: str,
                    notify: bool = True) -> list[Statement]:
        statements = [Statement(
            f"INSERT INTO {THREADS} (thread_id, patient_id, clinic_id, category, subject, team,"
            " clinician_id, state, due_by, started_at, last_message_at, updated_at) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (thread_id) DO UPDATE"
            " SET team = EXCLUDED.team, clinician_id = EXCLUDED.clinician_id,"
            " state = EXCLUDED.state, due_by = EXCLUDED.due_by,"
            " last_message_at = EXCLUDED.last_message_at, updated_at = EXCLUDED.updated_at",
            (t.id, t.patient_id, t.clinic_id, t.category.value, t.subject, t.team.value,
             t.clinician_id, t.state.value, t.due_by, t.started_at, t.last_message_at, at))]
        if notify:  # ids and the state only: clients read the thread through the API
            statements.append(Statement("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({
                "thread_id": str(t.id), "patient_id": str(t.patient_id),
                "clinic_id": t.clinic_id, "team": t.team.value,
                "clinician_id": str(t.clinician_id) if t.clinician_id else None,
                "event": what, "state": t.state.value}))))
        return statements

    def _tell_patient(self, t: Thread, at: datetime) -> list[Statement]:
        account = self.care.identity.find_account(t.patient_id)
        if account is None:
            return []
        return enqueue(Message("new_message", "email", account.id, account.email,
                               {"link": f"carebridge://messages/{t.id}"}), at, about_id=t.id)

    def _run(self, key: IdempotencyKey | None, decide: Any) -> Outcome:
        return run_retrying(self, self.idempotency, key, decide, "this conversation")

    def _get(self, ref: UUID) -> Thread:
        try:
            found: Any = self.repository.get(ref)
        except AggregateNotFoundError:
            found = None
        if not isinstance(found, Thread):
            raise NotFound("There is no such conversation.")
        return found

    def _routes(self, clinic_id: str) -> MessageRoutes | None:
        try:
            found: Any = self.repository.get(MessageRoutes.create_id(clinic_id))
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, MessageRoutes) else None


def _may_ever(actor: Actor, staff: bool = False) -> None:
    """The coarse gate before a thread is loaded, so that a made-up id tells a caller who could
    never take part nothing: the patient's side, the clinic's teams, the care team."""
    if actor.role is Role.PATIENT:
        if staff:
            raise Forbidden("This is for the clinic's staff.")
        authorise_ever(actor, Action.MESSAGES_SEND)
    elif not (may_ever(actor, Action.MESSAGES_ANSWER) or may_ever(actor, Action.MESSAGES_READ)):
        raise Forbidden("You do not have access to patients' conversations.")


def _ids(t: Thread) -> dict[str, Any]:
    return {"thread_id": str(t.id), "state": t.state.value, "team": t.team.value,
            "due_by": _iso(t.due_by), "version": t.version}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None

