"""The FHIR R4 read API (`/fhir`, `application/fhir+json`) for the clinic systems around us:
read by id and a minimal search for each resource type, mapped in commands/fhir.py.

The same callers, tokens and access policy as the JSON API; errors are FHIR OperationOutcome
resources with the HTTP status the JSON API would give (bad search parameters: 400).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import FromPath

from api.container import Container
from api.dependencies import signed_in
from api.problems import FHIR_JSON
from commands.fhir import FhirReader, bundle, operation_outcome
from domain.access import Actor
from domain.errors import (
    CareBridgeError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthenticated,
)

log = logging.getLogger("carebridge.api")

FHIR_VERSION = "4.0.1"
RESOURCE_TYPES = ("Patient", "Practitioner", "Schedule", "Slot", "Appointment",
                  "MedicationRequest", "Consent", "DocumentReference", "Communication",
                  "QuestionnaireResponse")
# Each type's search parameters, as the CapabilityStatement lists them.
SEARCH_PARAMETERS: dict[str, tuple[tuple[str, str], ...]] = {
    "Patient": (("_id", "token"),),
    "Practitioner": (("name", "string"),),
    "Schedule": (("actor", "reference"),),
    "Slot": (("schedule", "reference"), ("service-type", "token"), ("start", "date")),
    **{t: (("patient", "reference"), ("subject", "reference"), ("date", "date"))
       for t in ("Appointment", "MedicationRequest", "Consent", "DocumentReference",
                 "Communication", "QuestionnaireResponse")},
}
# AuditEvent (api/controllers/audit.py, for auditors) is searched, never read by id.
AUDIT_EVENT_CAPABILITY = {
    "type": "AuditEvent", "interaction": [{"code": "search-type"}],
    "searchParam": [{"name": "patient", "type": "reference"},
                    {"name": "agent", "type": "reference"}, {"name": "date", "type": "date"}]}
_ISSUE_OF: tuple[tuple[type[CareBridgeError], int, str], ...] = (
    (InvalidInput, 400, "invalid"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (Unauthenticated, 401, "login"),
    (Forbidden, 403, "forbidden"),
    (TooManyRequests, 429, "throttled"),
)


def fhir(resource: dict[str, Any], status: int = 200,
         headers: dict[str, str] | None = None) -> Response[dict[str, Any]]:
    return Response(resource, status_code=status, media_type=FHIR_JSON, headers=headers)


def _request_id(request: Request[Any, Any, Any]) -> dict[str, str]:
    state = request.scope.setdefault("state", {})
    return {"X-Request-ID": state.get("request_id") or ""} if state.get("request_id") else {}


def handle_domain_error(request: Request[Any, Any, Any],
                        exc: CareBridgeError) -> Response[dict[str, Any]]:
    status, code = next(((s, c) for kind, s, c in _ISSUE_OF if isinstance(exc, kind)),
                        (400, "processing"))
    fields = [e.field for e in exc.errors] if isinstance(exc, InvalidInput) else None
    detail = "; ".join(f"{e.field}: {e.message}" for e in exc.errors) \
        if isinstance(exc, InvalidInput) and exc.errors else str(exc)
    headers = _request_id(request)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="carebridge"'
    return fhir(operation_outcome(code, detail, fields), status, headers)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
            429: "throttled"}.get(exc.status_code, "processing")
    return fhir(operation_outcome(code, "The request could not be completed."),
                exc.status_code, _request_id(request))


def handle_validation(request: Request[Any, Any, Any],
                      exc: ValidationException) -> Response[dict[str, Any]]:
    """A search or path parameter the types refuse: each named, as `invalid` issues."""
    extra = [item for item in (exc.extra if isinstance(exc.extra, list) else [])
             if isinstance(item, dict)]
    fields = [str(item.get("key") or item.get("source") or "request") for item in extra]
    detail = "; ".join(f"{field}: {str(item.get('message', 'is not valid')).replace('`', '')}"
                       for field, item in zip(fields, extra, strict=True))
    return fhir(operation_outcome("invalid", detail or "The request could not be read.",
                                  fields or None), 400, _request_id(request))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error", extra={"error_type": type(exc).__name__,
                                        "path_template": "/fhir"}, exc_info=exc)
    return fhir(operation_outcome("exception", "Something went wrong on our side."), 500,
                _request_id(request))


def _params(request: Request[Any, Any, Any]) -> dict[str, list[str]]:
    return {name: request.query_params.getall(name) for name in request.query_params}


def _reader(container: Container) -> FhirReader:
    return FhirReader(container.applications, container.availability,
                      container.settings.public_base_url)


def _search(request: Request[Any, Any, Any], container: Container, resource_type: str,
            find: Callable[[FhirReader, dict[str, list[str]]], list[dict[str, Any]]]
            ) -> Response[dict[str, Any]]:
    base = container.settings.public_base_url.rstrip("/") + "/fhir"
    found = find(_reader(container), _params(request))
    return fhir(bundle(base, resource_type, found, request.url.query))


def handle_out_of_range(request: Request[Any, Any, Any],
                        exc: OverflowError) -> Response[dict[str, Any]]:
    return fhir(operation_outcome("invalid", "A date or number is outside the range we handle: "
                                  "a date must stay within the years 1 to 9999 in UTC."), 400,
                _request_id(request))


# Every answer under /fhir is FHIR: errors are OperationOutcomes, validation errors included.
EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    CareBridgeError: handle_domain_error, ValidationException: handle_validation,
    HTTPException: handle_http, OverflowError: handle_out_of_range, Exception: handle_unexpected}


class FhirController(Controller):
    path = "/fhir"
    tags = ["FHIR R4"]
    dependencies = signed_in()
    exception_handlers = EXCEPTION_HANDLERS

    @get("/metadata", media_type=FHIR_JSON, sync_to_thread=False,
          summary="The CapabilityStatement of this server")
    def metadata(self, container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        base = container.settings.public_base_url.rstrip("/") + "/fhir"
        return fhir({
            "resourceType": "CapabilityStatement", "status": "active", "kind": "instance",
            "date": now.date().isoformat(), "fhirVersion": FHIR_VERSION,
            "format": [FHIR_JSON], "implementation": {"description": "CareBridge", "url": base},
            "rest": [{"mode": "server", "security": {"description": "Bearer access tokens, as "
                                                     "for the CareBridge API."},
                      "resource": [{"type": t, "interaction": [{"code": "read"},
                                                               {"code": "search-type"}],
                                    "searchParam": [{"name": n, "type": kind}
                                                    for n, kind in SEARCH_PARAMETERS[t]]}
                                   for t in RESOURCE_TYPES] + [AUDIT_EVENT_CAPABILITY]}]})

    # ---- reference data ---------------------------------------------------------------------

    @get("/Practitioner/{account_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True, summary="A clinician")
    def practitioner(self, account_id: FromPath[UUID], actor: NamedDependency[Actor],
                     container: NamedDependency[Container]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).practitioner(actor, account_id))

    @get("/Practitioner", media_type=FHIR_JSON, sync_to_thread=True, summary="Clinicians (name=)")
    def practitioners(self, request: Request[Any, Any, Any], actor: NamedDependency[Actor],
                      container: NamedDependency[Container]) -> Response[dict[str, Any]]:
        return _search(request, container, "Practitioner",
                       lambda r, p: r.practitioners(actor, p))

    @get("/Schedule/{account_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True,
         summary="A clinician's schedule (its id is the clinician's)")
    def schedule(self, account_id: FromPath[UUID], actor: NamedDependency[Actor],
                 container: NamedDependency[Container]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).schedule(actor, account_id))

    @get("/Schedule", media_type=FHIR_JSON, sync_to_thread=True,
          summary="Schedules (actor=Practitioner/<id>)")
    def schedules(self, request: Request[Any, Any, Any], actor: NamedDependency[Actor],
                  container: NamedDependency[Container]) -> Response[dict[str, Any]]:
        return _search(request, container, "Schedule", lambda r, p: r.schedules(actor, p))

    @get("/Slot/{slot_id:str}", media_type=FHIR_JSON, sync_to_thread=True, summary="A free slot")
    def slot(self, slot_id: FromPath[str], actor: NamedDependency[Actor],
             container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).slot(actor, slot_id, now))

    @get("/Slot", media_type=FHIR_JSON, sync_to_thread=True,
         summary="Free slots (schedule=, service-type=, start=), earliest first")
    def slots(self, request: Request[Any, Any, Any], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "Slot", lambda r, p: r.slots(actor, p, now))

    # ---- the patient and their care ---------------------------------------------------------

    @get("/Patient/{patient_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True,
         summary="A patient's demographics (name and date of birth)")
    def patient(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).patient(actor, patient_id, now))

    @get("/Patient", media_type=FHIR_JSON, sync_to_thread=True, summary="A patient by id (_id=); yourself")
    def patients(self, request: Request[Any, Any, Any], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "Patient", lambda r, p: r.patients(actor, p, now))

    @get("/Appointment/{appointment_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True,
          summary="An appointment")
    def appointment(self, appointment_id: FromPath[UUID], actor: NamedDependency[Actor],
                    container: NamedDependency[Container],
                    now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).appointment(actor, appointment_id, now))

    @get("/Appointment", media_type=FHIR_JSON, sync_to_thread=True,
          summary="A patient's appointments (patient=, date=)")
    def appointments(self, request: Request[Any, Any, Any], actor: NamedDependency[Actor],
                     container: NamedDependency[Container],
                     now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "Appointment",
                       lambda r, p: r.appointments(actor, p, now))

    @get("/Consent/{consent_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True, summary="A consent")
    def consent(self, consent_id: FromPath[UUID], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).consent(actor, consent_id, now))

    @get("/Consent", media_type=FHIR_JSON, sync_to_thread=True,
          summary="A patient's consents (patient=, date=)")
    def consents(self, request: Request[Any, Any, Any], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "Consent", lambda r, p: r.consents(actor, p, now))

    @get("/MedicationRequest/{medication_request_id:str}", media_type=FHIR_JSON, sync_to_thread=True,
         summary="One medicine of a repeat-prescription request (the read is recorded)")
    def medication_request(self, medication_request_id: FromPath[str],
                           actor: NamedDependency[Actor], container: NamedDependency[Container],
                           now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).medication_request(actor, medication_request_id, now))

    @get("/MedicationRequest", media_type=FHIR_JSON, sync_to_thread=True,
         summary="A patient's repeat-prescription requests (patient=, date=; recorded)")
    def medication_requests(self, request: Request[Any, Any, Any],
                            actor: NamedDependency[Actor], container: NamedDependency[Container],
                            now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "MedicationRequest",
                       lambda r, p: r.medication_requests(actor, p, now))

    @get("/DocumentReference/{document_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True,
         summary="An upload, or a released letter or summary (the read is recorded)")
    def document_reference(self, document_id: FromPath[UUID], actor: NamedDependency[Actor],
                           container: NamedDependency[Container],
                           now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).document_reference(actor, document_id, now))

    @get("/DocumentReference", media_type=FHIR_JSON, sync_to_thread=True,
         summary="A patient's uploads and released letters (patient=, date=; recorded)")
    def document_references(self, request: Request[Any, Any, Any],
                            actor: NamedDependency[Actor], container: NamedDependency[Container],
                            now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "DocumentReference",
                       lambda r, p: r.document_references(actor, p, now))

    @get("/Communication/{message_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True,
         summary="A message of a conversation with the clinic (the read is recorded)")
    def communication(self, message_id: FromPath[UUID], actor: NamedDependency[Actor],
                      container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).communication(actor, message_id, now))

    @get("/Communication", media_type=FHIR_JSON, sync_to_thread=True,
         summary="A patient's messages with the clinic (patient=, date=; recorded)")
    def communications(self, request: Request[Any, Any, Any], actor: NamedDependency[Actor],
                       container: NamedDependency[Container],
                       now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "Communication",
                       lambda r, p: r.communications(actor, p, now))

    @get("/QuestionnaireResponse/{response_id:uuid}", media_type=FHIR_JSON, sync_to_thread=True,
         summary="Answers to a form (the read is recorded)")
    def questionnaire_response(self, response_id: FromPath[UUID], actor: NamedDependency[Actor],
                               container: NamedDependency[Container],
                               now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return fhir(_reader(container).questionnaire_response(actor, response_id, now))

    @get("/QuestionnaireResponse", media_type=FHIR_JSON, sync_to_thread=True,
         summary="A patient's answers to forms (patient=, date=; recorded)")
    def questionnaire_responses(self, request: Request[Any, Any, Any],
                                actor: NamedDependency[Actor],
                                container: NamedDependency[Container],
                                now: NamedDependency[datetime]) -> Response[dict[str, Any]]:
        return _search(request, container, "QuestionnaireResponse",
                       lambda r, p: r.questionnaire_responses(actor, p, now))
