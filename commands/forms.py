"""Intake forms: publishing form definitions, what a consultation type asks for before the
visit, a patient's drafts and submissions for an appointment, and the clinician's
pre-consultation view.

Each change saves its lookup row (carebridge.forms, visit_requirements or form_responses) in
the same transaction as its events. A draft may be saved from any device: the last write wins,
unless the client names the version it loaded (If-Match) and someone saved since, which is
refused so that the other device's answers are not lost unseen. Answers are health content:
they live in the (encrypted) events and the views that read them, never in the lookup rows,
logs, notifications or error messages.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.care import CareAccessApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from commands.record_access import record_access
from commands.reminders import documents_present, withdraw_preparation_when_done
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever, is_allowed
from domain.errors import ConcurrentChange, Conflict, Forbidden, NotFound, Rejections
from domain.forms import (
    FormDefinition,
    FormResponse,
    Questionnaire,
    VisitRequirements,
    check_form_id,
    form_definition_id,
    form_response_id,
    requirements_id,
)
from domain.identity import Role

FORMS, REQUIREMENTS, RESPONSES = ("carebridge.forms", "carebridge.visit_requirements",
                                  "carebridge.form_responses")
OPEN_APPOINTMENT = ("booked", "arrived")
DOCUMENT_WORDS = {"id_document": "Identity document", "referral_letter": "Referral letter",
                  "insurance_card": "Insurance card", "test_result": "Test result",
                  "photo": "Photo", "other": "Other document"}


class AppointmentNotOpen(Conflict):
    code = "appointment-not-open"
    title = "Forms for this appointment can no longer be changed"


class FormsApplication(CareApplication):
    name = "forms"

    def __init__(self, store: EventStoreSettings, care: CareAccessApplication,
                 appointments: Any) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.care = care
        self.appointments = appointments  # AppointmentsApplication: appointments and schedule

    # ---- definitions (clinic administrators) ------------------------------------------------

    def publish(self, actor: Actor, form_id: str, resource: dict[str, Any], at: datetime,
                key: IdempotencyKey | None = None) -> Outcome:
        """A new version of a form (any clinic administrator: forms serve the whole network)."""
        if not actor.system:
            authorise(actor, Action.SCHEDULE_MANAGE)
        errors = Rejections()
        check_form_id(form_id, errors)
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            definition = self._definition(form_id) or FormDefinition(
                form_id=form_id, by=actor.ref, at=at)
            definition.publish(resource, by=actor.ref, at=at)
            version = definition.current_version or 0
            title = definition.questionnaire(version).title
            row = Statement(
                f"INSERT INTO {FORMS} (form_id, current_version, title, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (form_id) DO UPDATE SET"
                " current_version = EXCLUDED.current_version, title = EXCLUDED.title,"
                " updated_at = EXCLUDED.updated_at", (form_id, version, title, at))
            return {"form_id": form_id, "version": version, "title": title}, [definition], [row]

        return run_once(self, self.idempotency, key, decide)

    def published(self, form_id: str) -> bool:
        definition = self._definition(form_id)
        return definition is not None and definition.current_version is not None

    def current(self, form_id: str) -> dict[str, Any]:
        """The current version of a form as a FHIR Questionnaire (anyone signed in)."""
        definition = self._definition(form_id)
        if definition is None or definition.current_version is None:
            raise NotFound("There is no form with this id.")
        return definition.versions[definition.current_version]

    def set_requirements(self, actor: Actor, type_id: str, forms: list[str], uploads: list[str],
                         at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """What a consultation type asks for before the visit (any clinic administrator, as
        consultation types are shared by the network)."""
        authorise(actor, Action.SCHEDULE_MANAGE)
        if self.appointments.schedule.consultation_type(type_id) is None:
            raise NotFound("There is no consultation type with this id.")
        errors = Rejections()
        for n, form_id in enumerate(forms):
            definition = self._definition(form_id)
            if definition is None or definition.current_version is None:
                errors.add(f"forms[{n}]", "Publish this form first.")
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            requirements = self._requirements(type_id) or VisitRequirements(
                consultation_type_id=type_id, by=actor.ref, at=at)
            requirements.set(forms, uploads, by=actor.ref, at=at)
            row = Statement(
                f"INSERT INTO {REQUIREMENTS} (consultation_type_id, forms, uploads, updated_at)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (consultation_type_id) DO UPDATE SET"
                " forms = EXCLUDED.forms, uploads = EXCLUDED.uploads,"
                " updated_at = EXCLUDED.updated_at", (type_id, forms, uploads, at))
            return {"consultation_type_id": type_id, "forms": requirements.forms,
                    "uploads": requirements.uploads}, [requirements], [row]

        return run_once(self, self.idempotency, key, decide)

    def requirements(self, type_id: str) -> dict[str, list[str]]:
        found = self._requirements(type_id)
        return {"forms": list(found.forms) if found else [],
                "uploads": list(found.uploads) if found else []}

    # ---- the patient's answers --------------------------------------------------------------

    def response(self, actor: Actor, appointment_id: UUID, form_id: str,
                 at: datetime) -> dict[str, Any]:
        """The answers so far (or none yet), with the form version they belong to."""
        appointment = self._patients_appointment(actor, appointment_id, Action.APPOINTMENTS_READ,
                                                 at)
        found = self._response(appointment_id, form_id)
        if found is None:
            self._asks_for(appointment, form_id)
            definition = self._definition(form_id)
            assert definition is not None and definition.current_version is not None
            return _patient_view(appointment_id, form_id, definition,
                                 definition.current_version, None)
        definition = self._definition(form_id)
        assert definition is not None
        # Answers are part of the record: reading them, even one's own, is recorded.
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      appointment.patient_id, "form_response", found.id, at)
        return _patient_view(appointment_id, form_id, definition, found.form_version, found)

    def save_draft(self, actor: Actor, appointment_id: UUID, form_id: str,
                   items: list[dict[str, Any]], at: datetime,
                   expected_version: int | None = None,
                   key: IdempotencyKey | None = None) -> Outcome:
        return self._answer(actor, appointment_id, form_id, items, at, expected_version, key,
                            submit=False)

    def submit(self, actor: Actor, appointment_id: UUID, form_id: str,
               items: list[dict[str, Any]], at: datetime, expected_version: int | None = None,
               key: IdempotencyKey | None = None) -> Outcome:
        return self._answer(actor, appointment_id, form_id, items, at, expected_version, key,
                            submit=True)

    def _answer(self, actor: Actor, appointment_id: UUID, form_id: str,
                items: list[dict[str, Any]], at: datetime, expected_version: int | None,
                key: IdempotencyKey | None, submit: bool) -> Outcome:
        appointment = self._patients_appointment(actor, appointment_id, Action.APPOINTMENTS_BOOK,
                                                 at)
        if appointment.status_at(at) not in OPEN_APPOINTMENT or at >= appointment.ends_at:
            raise AppointmentNotOpen("This appointment has been cancelled or is over, so its "
                                     "forms can no longer be changed.")

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            response = self._response(appointment_id, form_id)
            if response is None:
                self._asks_for(appointment, form_id)
                definition = self._definition(form_id)
                assert definition is not None and definition.current_version is not None
                response = FormResponse(patient_id=appointment.patient_id,
                                        appointment_id=appointment_id, form_id=form_id,
                                        form_version=definition.current_version, by=actor.ref,
                                        at=at)
                version = 0
            else:
                definition = self._definition(form_id)
                assert definition is not None
                version = response.version
            if expected_version is not None and expected_version != version:
                raise ConcurrentChange(
                    "These answers were saved somewhere else (perhaps on another device) since "
                    "you opened them. Nothing was saved: reload the form, check the answers "
                    "and make your change again.", current_version=version)
            questionnaire = definition.questionnaire(response.form_version)
            if submit:
                response.submit(questionnaire, items, by=actor.ref, at=at)
            else:
                response.save_draft(questionnaire, items, by=actor.ref, at=at)
            also = [_row(response, at)]
            if submit:
                also.append(withdraw_preparation_when_done(appointment_id, at,
                                                           self._documents_present()))
            return _patient_view(appointment_id, form_id, definition, response.form_version,
                                 response), [response], also

        return run_once(self, self.idempotency, key, decide)

    # ---- the clinician's view ---------------------------------------------------------------

    def pre_consultation(self, actor: Actor, appointment_id: UUID,
                         at: datetime) -> dict[str, Any]:
        """What the patient sent before the visit: submitted forms with every question and
        answer, forms still in draft (flagged incomplete, answers not shown: the patient has
        not sent them), and the documents uploaded for this appointment. Every view is
        recorded in the record access log."""
        authorise_ever(actor, Action.RECORDS_READ)
        if actor.role is Role.PATIENT:
            raise Forbidden("This view is for the clinicians caring for the patient.")
        appointment = self.appointments.appointment(appointment_id)
        relationship = self.care.relationship(actor, appointment.patient_id, at)
        authorise(actor, Action.RECORDS_READ,
                  PatientResource(appointment.patient_id, relationship))
        required = self.requirements(appointment.consultation_type_id)
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            started = [r["form_id"] for r in conn.execute(
                f"SELECT form_id FROM {RESPONSES} WHERE appointment_id = %s ORDER BY form_id",
                (appointment_id,)).fetchall()]
            documents = _documents(conn, appointment_id) if self._documents_present() else []
        forms = []
        for form_id in dict.fromkeys([*required["forms"], *started]):
            definition = self._definition(form_id)
            if definition is not None:
                forms.append(_clinician_view(form_id, definition,
                                             self._response(appointment_id, form_id)))
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      appointment.patient_id, "pre_consultation", appointment_id, at)
        return {"appointment_id": str(appointment_id), "patient_id": str(appointment.patient_id),
                "starts_at": appointment.starts_at.isoformat(), "forms": forms,
                "required_uploads": [{"document_type": t, "label": DOCUMENT_WORDS.get(t, t)}
                                     for t in required["uploads"]],
                "documents": documents}

    # ---- helpers ----------------------------------------------------------------------------

    def _patients_appointment(self, actor: Actor, appointment_id: UUID, action: Action,
                              at: datetime) -> Any:
        """The appointment, if the caller is its patient or helps them with appointments."""
        if actor.role is not Role.PATIENT:
            raise Forbidden("Only the patient, or someone who helps them with appointments, "
                            "fills in their forms.")
        appointment = self.appointments.appointment(appointment_id)
        relationship = self.care.relationship(actor, appointment.patient_id, at)
        if not is_allowed(actor, action, PatientResource(appointment.patient_id, relationship)):
            raise NotFound("There is no such appointment.")
        return appointment

    def _asks_for(self, appointment: Any, form_id: str) -> None:
        if form_id not in self.requirements(appointment.consultation_type_id)["forms"]:
            raise NotFound("This appointment does not ask for this form.")

    def _documents_present(self) -> bool:
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            return documents_present(conn)

    def _definition(self, form_id: str) -> FormDefinition | None:
        try:
            found: FormDefinition = self.repository.get(form_definition_id(form_id))
        except AggregateNotFoundError:
            return None
        return found

    def _requirements(self, type_id: str) -> VisitRequirements | None:
        try:
            found: VisitRequirements = self.repository.get(requirements_id(type_id))
        except AggregateNotFoundError:
            return None
        return found

    def _response(self, appointment_id: UUID, form_id: str) -> FormResponse | None:
        try:
            found: FormResponse = self.repository.get(form_response_id(appointment_id, form_id))
        except AggregateNotFoundError:
            return None
        return found


def _row(r: FormResponse, at: datetime) -> Statement:
    return Statement(
        f"INSERT INTO {RESPONSES} (response_id, patient_id, appointment_id, form_id,"
        " form_version, status, answered, questions, updated_at, submitted_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (response_id) DO UPDATE"
        " SET status = EXCLUDED.status, answered = EXCLUDED.answered,"
        " questions = EXCLUDED.questions, updated_at = EXCLUDED.updated_at,"
        " submitted_at = EXCLUDED.submitted_at",
        (r.id, r.patient_id, r.appointment_id, r.form_id, r.form_version, r.status, r.answered,
         r.questions, at, r.submitted_at))


def _documents(conn: Any, appointment_id: UUID) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT document_id, document_type, status, filename, created_at"
        " FROM carebridge.documents WHERE appointment_id = %s ORDER BY created_at",
        (appointment_id,)).fetchall()
    return [{"document_id": str(r["document_id"]), "document_type": r["document_type"],
             "label": DOCUMENT_WORDS.get(r["document_type"], r["document_type"]),
             "status": r["status"], "filename": r["filename"],
             "created_at": r["created_at"].isoformat()} for r in rows]


def questionnaire_response(definition: FormDefinition, version: int,
                           response: FormResponse | None) -> dict[str, Any]:
    """The answers as a FHIR R4 QuestionnaireResponse resource."""
    resource = definition.versions[version]
    document: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{resource['url']}|{version}",
        "status": "completed" if response is not None and response.submitted else "in-progress",
        "item": list(response.items) if response is not None else []}
    if response is not None:
        document["id"] = str(response.id)
        document["subject"] = {"reference": f"Patient/{response.patient_id}"}
        document["authored"] = response.saved_at.isoformat()
    return document


def _patient_view(appointment_id: UUID, form_id: str, definition: FormDefinition, version: int,
                  response: FormResponse | None) -> dict[str, Any]:
    return {
        "appointment_id": str(appointment_id), "form_id": form_id, "form_version": version,
        "status": response.status if response is not None else "not_started",
        "answered": response.answered if response is not None else 0,
        "questions": response.questions if response is not None else len(
            definition.questionnaire(version).questions()),
        "saved_at": response.saved_at.isoformat() if response is not None else None,
        "submitted_at": response.submitted_at.isoformat()
        if response is not None and response.submitted_at else None,
        "version": response.version if response is not None else 0,
        "questionnaire": definition.versions[version],
        "questionnaire_response": questionnaire_response(definition, version, response),
    }


def _clinician_view(form_id: str, definition: FormDefinition,
                    response: FormResponse | None) -> dict[str, Any]:
    version = response.form_version if response is not None else definition.current_version or 0
    questionnaire = definition.questionnaire(version)
    submitted = response is not None and response.submitted
    return {
        "form_id": form_id, "title": questionnaire.title, "form_version": version,
        "status": response.status if response is not None else "not_started",
        "incomplete": not submitted,
        "answered": response.answered if response is not None else 0,
        "questions": response.questions if response is not None else len(
            questionnaire.questions()),
        "submitted_at": response.submitted_at.isoformat()
        if response is not None and response.submitted_at else None,
        "answers": _answer_lines(questionnaire, response.items, None, "")
        if submitted and response is not None else []}


def _answer_lines(questionnaire: Questionnaire, items: list[dict[str, Any]],
                  section: str | None, prefix: str) -> list[dict[str, Any]]:
    """Each answered question with its section, its words and the answers in words."""
    lines: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for item in items:
        definition = questionnaire.by_link_id.get(item["linkId"])
        if definition is None:
            continue
        if definition.type == "group":
            n = seen[item["linkId"]] = seen.get(item["linkId"], -1) + 1
            path = prefix + item["linkId"] + (f"[{n}]" if definition.repeats else "")
            lines += _answer_lines(questionnaire, item.get("item", []),
                                   definition.text or section, path + "/")
        else:
            lines.append({"link_id": prefix + item["linkId"], "section": section,
                          "question": definition.text,
                          "answers": [_words(a) for a in item.get("answer", [])]})
    return lines


def _words(answer: dict[str, Any]) -> str:
    (name, value), = answer.items()
    if name == "valueCoding":
        return str(value.get("display") or value.get("code"))
    if name == "valueBoolean":
        return "Yes" if value else "No"
    return str(value)
