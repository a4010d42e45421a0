"""Intake forms: form definitions (FHIR R4 Questionnaire) and what each consultation type asks
for, a patient's answers for an appointment (drafts from any device, then submission), and the
clinician's pre-consultation view.

Answers are health content: responses carry `Cache-Control: no-store`, and errors name the
question (its linkId path), never the answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from api.container import Container
from api.dependencies import expected_version, idempotency_key, position_headers, signed_in
from commands.forms import DOCUMENT_WORDS
from commands.idempotency import Outcome
from domain.access import Actor
from domain.documents import DocumentType

PRIVATE = {"Cache-Control": "no-store"}  # health content: no cache may keep it
FormId = Annotated[str, msgspec.Meta(min_length=1, max_length=63)]


class Answers(msgspec.Struct):
    """A FHIR QuestionnaireResponse; CareBridge reads its items (other elements are set by the
    server: status, questionnaire, subject, authored)."""

    resourceType: Literal["QuestionnaireResponse"]  # FHIR's element name
    item: list[dict[str, Any]] = msgspec.field(default_factory=list)


class FormView(msgspec.Struct):
    appointment_id: str
    form_id: str
    form_version: int
    status: str  # not_started | draft | submitted
    answered: int
    questions: int
    saved_at: str | None
    submitted_at: str | None
    version: int  # also the ETag: send it back as If-Match with the next save
    questionnaire: dict[str, Any]  # the form version these answers belong to
    questionnaire_response: dict[str, Any]


class Published(msgspec.Struct):
    form_id: str
    version: int
    title: str


class RequirementsBody(msgspec.Struct, forbid_unknown_fields=True):
    forms: Annotated[list[FormId], msgspec.Meta(max_length=20)]
    uploads: Annotated[list[DocumentType], msgspec.Meta(max_length=10)]


class Requirements(msgspec.Struct):
    consultation_type_id: str
    forms: list[str]
    uploads: list[str]


class AnswerLine(msgspec.Struct):
    link_id: str
    section: str | None
    question: str
    answers: list[str]


class FormSummary(msgspec.Struct):
    form_id: str
    title: str
    form_version: int
    status: str
    incomplete: bool
    answered: int
    questions: int
    submitted_at: str | None
    answers: list[AnswerLine]


class UploadNeeded(msgspec.Struct):
    document_type: str
    label: str


class UploadedDocument(msgspec.Struct):
    document_id: str
    document_type: str
    label: str
    status: str
    filename: str
    created_at: str


class PreConsultation(msgspec.Struct):
    appointment_id: str
    patient_id: str
    starts_at: str
    forms: list[FormSummary]
    required_uploads: list[UploadNeeded]
    documents: list[UploadedDocument]


def _form(result: dict[str, Any], position: int | None = None) -> Response[FormView]:
    view = msgspec.convert({k: v for k, v in result.items() if k != "changed"}, FormView)
    return Response(view, headers={"ETag": f'"{view.version}"', **PRIVATE,
                                   **position_headers("forms", position)})


def _answered(outcome: Outcome) -> Response[FormView]:
    return _form(outcome.result, outcome.position)


class FormController(Controller):
    """The patient's side (and a proxy's with the appointments scope), and reading forms."""

    path = "/v1"
    tags = ["intake forms"]
    dependencies = signed_in()

    @get("/forms/{form_id:str}", sync_to_thread=True,
         summary="The current version of a form (a FHIR R4 Questionnaire)")
    def definition(self, form_id: FromPath[str], actor: NamedDependency[Actor],
                   container: NamedDependency[Container]) -> Response[dict[str, Any]]:
        resource = container.forms.current(form_id)
        return Response(resource, headers={"ETag": f'"{resource["version"]}"'})

    @get("/appointments/{appointment_id:uuid}/forms/{form_id:str}", sync_to_thread=True,
         summary="My answers to a form for an appointment, to resume on any device")
    def answers(self, appointment_id: FromPath[UUID], form_id: FromPath[str],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[FormView]:
        return _form(container.forms.response(actor, appointment_id, form_id, now))

    @put("/appointments/{appointment_id:uuid}/forms/{form_id:str}/draft", sync_to_thread=True,
         summary="Save my answers so far (incomplete is fine); If-Match refuses a stale save")
    def draft(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
              form_id: FromPath[str], data: JSONBody[Answers], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[FormView]:
        key = idempotency_key(request, actor.ref, f"forms.draft.{appointment_id}.{form_id}",
                              data)
        return _answered(container.forms.save_draft(
            actor, appointment_id, form_id, data.item, now,
            expected_version=expected_version(request, "the answers you loaded"), key=key))

    @post("/appointments/{appointment_id:uuid}/forms/{form_id:str}/submit", status_code=200,
          sync_to_thread=True,
          summary="Send my answers to the clinic: every question is checked, all errors at once")
    def submit(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
               form_id: FromPath[str], data: JSONBody[Answers], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[FormView]:
        key = idempotency_key(request, actor.ref, f"forms.submit.{appointment_id}.{form_id}",
                              data)
        return _answered(container.forms.submit(
            actor, appointment_id, form_id, data.item, now,
            expected_version=expected_version(request, "the answers you loaded"), key=key))


class FormAdminController(Controller):
    """Clinic administrators: form versions and what each consultation type asks for."""

    path = "/v1/admin"
    tags = ["intake forms"]
    dependencies = signed_in()

    @put("/forms/{form_id:str}", sync_to_thread=True,
         summary="Publish a new version of a form (a FHIR R4 Questionnaire)")
    def publish(self, request: Request[Any, Any, State], form_id: FromPath[str],
                data: JSONBody[dict[str, Any]], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[Published]:
        key = idempotency_key(request, actor.ref, f"forms.publish.{form_id}", data)
        outcome = container.forms.publish(actor, form_id, data, now, key=key)
        return Response(Published(outcome.result["form_id"], outcome.result["version"],
                                  outcome.result["title"]),
                        headers=position_headers("forms", outcome.position))

    @put("/consultation-types/{type_id:str}/requirements", sync_to_thread=True,
         summary="The forms and uploads a consultation type needs before the visit")
    def requirements(self, request: Request[Any, Any, State], type_id: FromPath[str],
                     data: JSONBody[RequirementsBody], actor: NamedDependency[Actor],
                     container: NamedDependency[Container],
                     now: NamedDependency[datetime]) -> Response[Requirements]:
        key = idempotency_key(request, actor.ref, f"forms.requirements.{type_id}", data)
        outcome = container.forms.set_requirements(
            actor, type_id, list(data.forms), [u.value for u in data.uploads], now, key=key)
        return Response(Requirements(type_id, outcome.result["forms"],
                                     outcome.result["uploads"]),
                        headers=position_headers("forms", outcome.position))


class StaffFormController(Controller):
    path = "/v1/staff"
    tags = ["intake forms"]
    dependencies = signed_in()

    @get("/appointments/{appointment_id:uuid}/pre-consultation", sync_to_thread=True,
         summary="What the patient sent before the visit: forms with answers, and documents")
    def pre_consultation(self, appointment_id: FromPath[UUID], actor: NamedDependency[Actor],
                         container: NamedDependency[Container],
                         now: NamedDependency[datetime]) -> Response[PreConsultation]:
        view = container.forms.pre_consultation(actor, appointment_id, now)
        return Response(msgspec.convert(view, PreConsultation), headers=PRIVATE)


async def outstanding_items(conn: AsyncConnection[Any], appointment_id: UUID,
                            consultation_type_id: str) -> tuple[list[dict[str, Any]],
                                                                list[dict[str, Any]]]:
    """The forms not yet submitted (with their progress) and the uploads still missing for an
    appointment: what `GET /v1/appointments/{id}/outstanding` lists besides consents."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT forms, uploads FROM carebridge.visit_requirements"
                      " WHERE consultation_type_id = %s", (consultation_type_id,))
    required = await cur.fetchone()
    if required is None:
        return [], []
    await cur.execute(
        "SELECT q.form_id, f.title, r.status, r.answered, r.questions"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS q(form_id, n)"
        " JOIN carebridge.forms f USING (form_id)"
        " LEFT JOIN carebridge.form_responses r"
        " ON r.appointment_id = %s AND r.form_id = q.form_id"
        " WHERE r.status IS DISTINCT FROM 'submitted' ORDER BY q.n",
        (required["forms"], appointment_id))
    forms = [{"kind": "form", "id": r["form_id"], "label": r["title"],
              "status": r["status"] or "not_started", "answered": r["answered"] or 0,
              "questions": r["questions"]} for r in await cur.fetchall()]
    present: set[str] = set()
    await cur.execute("SELECT to_regclass('carebridge.documents') IS NOT NULL AS present")
    found = await cur.fetchone()
    if required["uploads"] and found is not None and found["present"]:
        await cur.execute("SELECT DISTINCT document_type FROM carebridge.documents"
                          " WHERE appointment_id = %s AND status IN ('pending_review', 'accepted')",
                          (appointment_id,))
        present = {r["document_type"] for r in await cur.fetchall()}
    uploads = [{"kind": "upload", "id": t, "label": DOCUMENT_WORDS.get(t, t),
                "status": "missing"} for t in required["uploads"] if t not in present]
    return forms, uploads
