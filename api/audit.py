"""Auditor replay: every event of a stream, the state of an aggregate at any moment, and trail
entries as FHIR R4 AuditEvent resources (in the spirit of IHE BALP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from commands.audit_trail import REDACTED, Entry, is_secret
from commands.eventstore import CareApplication


@dataclass(frozen=True)
class TrailEntry:
    application: str
    version: int
    event_type: str
    at: datetime
    actor: str


def find_stream(applications: dict[str, CareApplication], aggregate_id: UUID) -> CareApplication | None:
    for app in applications.values():
        if app.recorder.select_events(aggregate_id, limit=1):
            return app
    return None


def trail(app: CareApplication, aggregate_id: UUID) -> Iterator[TrailEntry]:
    for event in app.events.get(aggregate_id):
        topic: str = getattr(type(event), "TOPIC", "")  # e.g. carebridge:consents.Consent.Given.v1
        yield TrailEntry(app.name, event.originator_version, topic.split(":", 1)[1],
                         getattr(event, "at", None) or getattr(event, "timestamp"),  # noqa: B009
                         getattr(event, "by", "unknown"))


def state_as_of(app: CareApplication, aggregate_id: UUID, as_of: datetime) -> dict[str, Any] | None:
    """The aggregate's state as it was at `as_of`, or None if it did not exist yet."""
    version = None
    for entry in trail(app, aggregate_id):
        if entry.at <= as_of:
            version = entry.version
    if version is None:
        return None
    aggregate: Any = app.repository.get(aggregate_id, version=version)
    return {
        name.lstrip("_"): REDACTED if is_secret(name) else value
        for name, value in vars(aggregate).items()
        if name not in ("_pending_events",)
    }


# ---- FHIR R4 AuditEvent -----------------------------------------------------------------------

DCM = "http://dicom.nema.org/resources/ontology/DCM"
AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ROLE_SYSTEM = "urn:carebridge:role"
ACTOR_SYSTEM = "urn:carebridge:actor"
STREAM_SYSTEM = "urn:carebridge:stream"
_DELETIONS = ("Removed", "Deleted")


def _who(actor: str) -> dict[str, Any]:
    """A FHIR Reference for an actor ref: patients and staff by their account, CareBridge
    itself and other actors (a session, the command line) by identifier."""
    role, _, account = actor.partition(":")
    if role == "patient" and account:
        return {"reference": f"Patient/{account}"}
    if account and role not in ("session", "cli"):
        return {"reference": f"Practitioner/{account}"}
    display = "CareBridge" if actor == "system" else actor
    return {"identifier": {"system": ACTOR_SYSTEM, "value": actor}, "display": display}


def _action(entry: Entry) -> tuple[str, str]:
    """The AuditEvent action code and the RESTful interaction it corresponds to."""
    if entry.kind == "read":
        return "R", "read"
    if entry.version == 1:
        return "C", "create"
    if any(word in entry.event_type for word in _DELETIONS):
        return "D", "delete"
    return "U", "update"


def audit_event(entry: Entry, patient_id: UUID | None = None) -> dict[str, Any]:
    """One trail entry as a FHIR R4 AuditEvent (plain JSON). No clinical content: the entity
    names the stream, its version and the event type, and the patient."""
    from domain.ids import stream_id

    action, interaction = _action(entry)
    if entry.kind == "read":
        event_id = stream_id("audit_event", "read", entry.access_id)
        event_type = {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
    else:
        event_id = stream_id("audit_event", entry.application, entry.aggregate_id, entry.version)
        event_type = {"system": DCM, "code": "110110", "display": "Patient Record"}
    role = entry.actor.partition(":")[0]
    details = [{"type": "event_type", "valueString": entry.event_type}]
    if entry.version is not None:
        details.append({"type": "version", "valueString": str(entry.version)})
    if entry.action is not None:
        details.append({"type": "access", "valueString": entry.action})
    entities: list[dict[str, Any]] = [{
        "what": {"identifier": {"system": f"{STREAM_SYSTEM}:{entry.application}",
                                "value": str(entry.aggregate_id)}},
        "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
        "name": entry.application, "detail": details}]
    patient = patient_id or entry.patient_id
    if patient is not None:
        entities.insert(0, {
            "what": {"reference": f"Patient/{patient}"},
            "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}})
    return {
        "resourceType": "AuditEvent",
        "id": str(event_id),
        "type": event_type,
        "subtype": [{"system": RESTFUL_INTERACTION, "code": interaction}],
        "action": action,
        "recorded": entry.at.isoformat(),
        "outcome": "0",
        "agent": [{"role": [{"coding": [{"system": ROLE_SYSTEM, "code": role}]}],
                   "who": _who(entry.actor), "requestor": True}],
        "source": {"site": "CareBridge", "observer": {"display": "CareBridge"},
                   "type": [{"system": SOURCE_TYPE, "code": "4",
                             "display": "Application Server"}]},
        "entity": entities,
    }


def audit_bundle(entries: list[Entry], patient_id: UUID | None = None) -> dict[str, Any]:
    """A FHIR searchset Bundle of AuditEvents."""
    resources = [audit_event(entry, patient_id) for entry in entries]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(resources),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r,
                       "search": {"mode": "match"}} for r in resources]}


_PREFIXES = ("eq", "ne", "ge", "gt", "le", "lt")


def date_filter(values: list[str], zone: Any) -> Any:
    """A FHIR `date` search (`2026-11-23`, `ge2026-11-23`, `lt2026-11-24T12:00:00Z`; repeated
    values all apply) as a predicate on a time. A day is a day in the clinic's zone. Raises
    ValueError on a value it cannot read."""
    from datetime import date, timedelta

    bounds: list[tuple[str, datetime, datetime]] = []
    for raw in values:
        prefix = raw[:2] if raw[:2] in _PREFIXES else "eq"
        text = raw[2:] if raw[:2] in _PREFIXES else raw
        if len(text) == 10:
            start = datetime.combine(date.fromisoformat(text), datetime.min.time(), zone)
            end = start + timedelta(days=1)
        else:
            start = datetime.fromisoformat(text)
            if start.tzinfo is None:
                start = start.replace(tzinfo=zone)
            end = start
        bounds.append((prefix, start, end))

    def matches(at: datetime) -> bool:
        for prefix, start, end in bounds:
            inside = start <= at < end if end > start else at == start
            ok = {"eq": inside, "ne": not inside, "ge": at >= start, "gt": at >= end if end > start
                  else at > start, "le": at < end if end > start else at <= start,
                  "lt": at < start}[prefix]
            if not ok:
                return False
        return True

    return matches
