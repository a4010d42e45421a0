"""Auditor tools over HTTP: trails of a patient, an actor and a stream, what a patient could see
on a day, and the trail as FHIR R4 AuditEvent resources. Auditors only (403 for any other role).

Trails show each event's type, time, actor, version and fields with secrets redacted; clinical
content is shown (auditors are the audit). An auditor reading a patient's trail, one of their
streams, or what they could see, is itself recorded in the access log, so the patient's access
report shows it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from api.audit import audit_bundle, date_filter
from api.container import Container
from api.controllers.fhir import EXCEPTION_HANDLERS as FHIR_EXCEPTION_HANDLERS
from api.controllers.fhir import FHIR_JSON
from api.dependencies import signed_in
from commands.audit_trail import AuditTrail, Entry
from commands.record_access import record_access
from domain.access import Action, Actor, authorise
from domain.errors import FieldError, InvalidInput, NotFound

Limit = Annotated[int, QueryParameter(ge=1, le=5000, description="Entries per page.")]
Offset = Annotated[int, QueryParameter(ge=0, le=2**63 - 1, description="Entries to skip (the "
                                       "previous page's `next_offset`).")]  # an SQL bigint


class TrailEntry(msgspec.Struct):
    kind: str
    at: datetime
    actor: str
    application: str
    aggregate_id: UUID
    version: int | None
    event_type: str
    patient_id: UUID | None
    fields: dict[str, Any]
    access_id: int | None
    action: str | None


class Trail(msgspec.Struct):
    entries: list[TrailEntry]
    total: int
    next_offset: int | None


class StreamTrail(msgspec.Struct):
    aggregate_id: UUID
    application: str
    entries: list[TrailEntry]
    as_of: datetime | None = None
    version_as_of: int | None = None
    state_as_of: dict[str, Any] | None = None


class SeenRecord(msgspec.Struct):
    record_id: UUID
    version: int
    kind: str
    code: str
    title: str
    status: str
    content: dict[str, Any]
    occurred_at: datetime
    released_at: datetime
    released_by: str | None


class Seen(msgspec.Struct):
    patient_id: UUID
    day: date
    records: list[SeenRecord]


def auditor_only(actor: Actor) -> None:
    authorise(actor, Action.AUDIT_READ)


def audit_trail(container: Container) -> AuditTrail:
    return AuditTrail(container.applications, ZoneInfo(container.settings.clinic_timezone))


def _entries(entries: list[Entry]) -> list[TrailEntry]:
    return msgspec.convert([e.as_dict() for e in entries], list[TrailEntry])


def _page(entries: list[Entry], offset: int, limit: int) -> Trail:
    page = entries[offset:offset + limit]
    more = offset + limit < len(entries)
    return Trail(_entries(page), len(entries), offset + limit if more else None)


def _noted(trail: AuditTrail, actor: Actor, patient_id: UUID, now: datetime) -> None:
    """The auditor's own read of a patient's trail or stream, in the patient's access log."""
    record_access(trail.datastore, actor.ref, patient_id, "audit_trail", patient_id, now)


class AuditController(Controller):
    path = "/v1/audit"
    tags = ["audit"]
    dependencies = signed_in()

    @get("/patients/{patient_id:uuid}/trail", sync_to_thread=True,
         summary="Every change to any of a patient's streams and every read of their record")
    def patient_trail(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                      container: NamedDependency[Container], now: NamedDependency[datetime],
                      limit: Limit = 1000, offset: Offset = 0) -> Trail:
        auditor_only(actor)
        trail = audit_trail(container)
        _noted(trail, actor, patient_id, now)
        return _page(trail.patient(patient_id), offset, limit)

    @get("/actors/{actor_ref:str}/trail", sync_to_thread=True,
         summary="Everything an actor changed (in every context) and read; the actor as "
         "`role:account id`, `system`, or an account id")
    def actor_trail(self, actor_ref: FromPath[str], actor: NamedDependency[Actor],
                    container: NamedDependency[Container], limit: Limit = 1000,
                    offset: Offset = 0) -> Trail:
        auditor_only(actor)
        return _page(audit_trail(container).actor(actor_ref), offset, limit)

    @get("/streams/{aggregate_id:uuid}", sync_to_thread=True,
         summary="Every event of one stream; with `as_of`, the aggregate's state at that moment")
    def stream(self, aggregate_id: FromPath[UUID], actor: NamedDependency[Actor],
               container: NamedDependency[Container], now: NamedDependency[datetime],
               as_of: Annotated[datetime | None, QueryParameter(
                   description="A time with its offset, e.g. 2026-11-23T18:00:00Z")] = None,
               ) -> StreamTrail:
        auditor_only(actor)
        if as_of is not None and as_of.tzinfo is None:
            raise InvalidInput([FieldError("as_of", "Give the time with its offset (Z for UTC).")])
        trail = audit_trail(container)
        app = trail.find_stream(aggregate_id)
        if app is None:
            raise NotFound("There is no stream with this id.")
        entries = trail.stream(app, aggregate_id)
        for patient_id in {e.patient_id for e in entries if e.patient_id is not None}:
            _noted(trail, actor, patient_id, now)  # a patient's stream (a record, a thread)
        result = StreamTrail(aggregate_id, app.name, _entries(entries))
        if as_of is not None:
            result.as_of = as_of
            state = trail.state_as_of(app, aggregate_id, as_of)
            if state is not None:
                result.version_as_of, result.state_as_of = state
        return result

    @get("/patients/{patient_id:uuid}/seen", sync_to_thread=True,
         summary="The records a patient could see on a day (clinic zone), as they stood then")
    def seen(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
             container: NamedDependency[Container], now: NamedDependency[datetime],
             day: Annotated[date, QueryParameter(description="The day, e.g. 2026-11-23")]) -> Seen:
        auditor_only(actor)
        trail = audit_trail(container)
        _noted(trail, actor, patient_id, now)
        records = trail.seen_on(patient_id, day)
        return Seen(patient_id, day, msgspec.convert(records, list[SeenRecord]))


class FhirAuditEventController(Controller):
    """FHIR R4 AuditEvent search (auditors only): a searchset Bundle; errors are
    OperationOutcomes, as everywhere under /fhir."""

    path = "/fhir"
    tags = ["audit", "FHIR R4"]
    dependencies = signed_in()
    exception_handlers = FHIR_EXCEPTION_HANDLERS

    @get("/AuditEvent", sync_to_thread=True, media_type=FHIR_JSON,
         summary="AuditEvents by patient and/or agent, optionally by date (FHIR search)")
    def search(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
               patient: Annotated[str | None, QueryParameter(
                   description="Patient id, or Patient/<id>")] = None,
               agent: Annotated[str | None, QueryParameter(
                   description="Actor ref (`doctor:<id>`), account id, or Patient/<id>, "
                   "Practitioner/<id>")] = None,
               date_: Annotated[list[str] | None, QueryParameter(
                   name="date", description="FHIR date search: 2026-11-23, ge2026-11-23, "
                   "lt2026-11-24T12:00:00Z")] = None) -> Response[dict[str, Any]]:
        auditor_only(actor)
        zone = ZoneInfo(container.settings.clinic_timezone)
        try:
            when = date_filter(date_ or [], zone)
        except ValueError as error:
            raise InvalidInput([FieldError("date", "Use a FHIR date such as 2026-11-23 or "
                                           "ge2026-11-23T09:00:00Z.")]) from error
        patient_id = _id(patient, "patient") if patient else None
        agent_ref = agent.split("/", 1)[1] if agent and "/" in agent else agent
        if patient_id is None and not agent_ref:
            raise InvalidInput([FieldError("patient", "Search by patient, agent or both.")])
        trail = audit_trail(container)
        if patient_id is not None:
            entries = trail.patient(patient_id)
            if agent_ref:
                entries = [e for e in entries
                           if e.actor == agent_ref or e.actor.endswith(":" + agent_ref)]
        else:
            entries = trail.actor(agent_ref or "")
        bundle = audit_bundle([e for e in entries if when(e.at)], patient_id)
        return Response(bundle, media_type=FHIR_JSON)


def _id(value: str, name: str) -> UUID:
    try:
        return UUID(value.removeprefix("Patient/"))
    except ValueError as error:
        raise InvalidInput([FieldError(name, "Give a patient id (or Patient/<id>).")]) from error
