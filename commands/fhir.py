"""The FHIR R4 read side: CareBridge's own state as FHIR resources, for the clinic systems around us.

Each resource is mapped from what CareBridge already keeps for the same purpose, so that the
FHIR API can show nothing the JSON API would not: the patient's views (patient-visible by
construction: released records and uploads, patient-visible messages), the write-side lookups
(appointments, prescription requests, form responses) and the aggregates they point to, and the
reference data (the clinician directory, free slots). Internal notes, unreleased records and
staff-only fields have no place in any mapping.

Access is the API's one policy (`domain.access`): a patient reads their own, a proxy what its
scopes cover, staff what their role and care relationship allow, anyone signed in the
directory. Every read of clinical content (prescriptions, documents and letters, messages, form
answers) is written to the record access log, as the JSON API does.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from commands.forms import questionnaire_response
from commands.record_access import ROLE_WORDS, record_access
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever
from domain.errors import FieldError, Forbidden, InvalidInput, NotFound
from domain.forms import form_definition_id, form_response_id
from domain.identity import Role
from domain.schedule_types import ClinicianInfo

SYSTEM = "https://carebridge.example/fhir"  # the base of CareBridge's own code systems
PATIENT_IDS = f"{SYSTEM}/sid/patient"
COUNT_DEFAULT, COUNT_MAX = 50, 200
SLOT_DAYS_DEFAULT, SLOT_DAYS_MAX = 7, 84
DOCUMENT_KINDS = ("document", "referral_letter", "appointment_summary")
_SLOT_ID = re.compile(r"^([0-9a-f]{32})-([0-9]{12})$")
_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb)?([0-9]{4}-[0-9]{2}-[0-9]{2}(T.+)?)$")

# CareBridge's statuses in FHIR's words.
APPOINTMENT_STATUS = {"held": "pending", "booked": "booked", "lapsed": "cancelled",
                      "cancelled": "cancelled", "arrived": "arrived", "no_show": "noshow"}
REQUEST_STATUS = {"submitted": "active", "under_review": "active", "approved": "active",
                  "ready_for_collection": "active", "sent_to_pharmacy": "active",
                  "completed": "completed", "rejected": "cancelled", "cancelled": "cancelled"}
LOINC_OF = {"referral_letter": ("57133-1", "Referral note"),
            "appointment_summary": ("34117-2", "History and physical note")}


# ---- search parameters ---------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A `date` search: the instants from `start` (inclusive) to `end` (exclusive)."""

    start: datetime | None = None
    end: datetime | None = None

    def holds(self, at: datetime | None) -> bool:
        if at is None:
            return self.start is None and self.end is None
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


def period(values: list[str]) -> Period:
    """`date=ge2026-11-01&date=lt2026-12-01`, `date=2026-11-24` (that whole day, UTC)."""
    start: datetime | None = None
    end: datetime | None = None
    for value in values:
        match = _DATE.match(value)
        if match is None:
            raise InvalidInput([FieldError("date", "Use a FHIR date search such as "
                                           "ge2026-11-01 or 2026-11-24T09:00:00Z.")])
        prefix, raw = match.group(1) or "eq", match.group(2)
        try:
            if "T" in raw:
                low = datetime.fromisoformat(raw.replace("Z", "+00:00"))
                low = low if low.tzinfo else low.replace(tzinfo=UTC)
                high = low + timedelta(seconds=1)
            else:
                low = datetime.combine(date.fromisoformat(raw), time(), UTC)
                high = low + timedelta(days=1)
        except ValueError:
            raise InvalidInput([FieldError("date", f"{raw} is not a date.")]) from None
        if prefix in ("eq", "ge", "sa", "gt"):
            start = max(start or low, high if prefix in ("gt", "sa") else low)
        if prefix in ("eq", "le", "eb", "lt"):
            end = min(end or high, low if prefix in ("lt", "eb") else high)
        if prefix == "ne":
            raise InvalidInput([FieldError("date", "The ne prefix is not supported.")])
    return Period(start, end)


def patient_param(params: Mapping[str, list[str]]) -> UUID | None:
    """The patient a search is about: `patient=` or `subject=`, as `Patient/<id>` or `<id>`."""
    raw = [v for name in ("patient", "subject") for v in params.get(name, [])]
    if not raw:
        return None
    if len(set(raw)) > 1:
        raise InvalidInput([FieldError("patient", "Search for one patient at a time.")])
    try:
        return UUID(raw[0].removeprefix("Patient/"))
    except ValueError:
        raise InvalidInput([FieldError("patient", "Give the patient as Patient/<id>.")]) from None


def count_param(params: Mapping[str, list[str]]) -> int:
    raw = params.get("_count", [str(COUNT_DEFAULT)])[-1]
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= COUNT_MAX:
        raise InvalidInput([FieldError("_count", f"Give a number from 1 to {COUNT_MAX}.")])
    return int(raw)


def bundle(base: str, resource_type: str, resources: list[dict[str, Any]],
           query: str) -> dict[str, Any]:
    """A searchset Bundle of the matches (all of them: no paging beyond `_count`)."""
    return _compact({
        "resourceType": "Bundle", "type": "searchset", "total": len(resources),
        "link": [{"relation": "self",
                  "url": f"{base}/{resource_type}" + (f"?{query}" if query else "")}],
        "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                   "search": {"mode": "match"}} for r in resources]})


def operation_outcome(code: str, diagnostics: str,
                      expression: list[str] | None = None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


# ---- mappings (pure) -----------------------------------------------------------------------


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def _ref(resource_type: str, resource_id: object) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def patient_resource(account: Any) -> dict[str, Any]:
    """Demographics only: the name and date of birth. Nothing clinical, no contact details."""
    resource: dict[str, Any] = {
        "resourceType": "Patient", "id": str(account.id), "active": True,
        "identifier": [{"system": PATIENT_IDS, "value": str(account.id)}],
        "name": [{"use": "official", "family": account.family_name,
                  "given": [account.given_name]}]}
    if account.date_of_birth is not None:
        resource["birthDate"] = account.date_of_birth.isoformat()
    return resource


def _compact(resource: dict[str, Any]) -> dict[str, Any]:
    """FHIR JSON has no empty arrays and no nulls: leave such members out."""
    return {k: v for k, v in resource.items() if v is not None and v != []}


def practitioner_resource(info: ClinicianInfo) -> dict[str, Any]:
    return _compact({
        "resourceType": "Practitioner", "id": str(info.account_id), "active": True,
        "name": [{"text": info.display_name}],
        "qualification": [{"code": {"text": info.specialty}}] if info.specialty else [],
        "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": language}]}
                          for language in info.languages]})


def schedule_resource(info: ClinicianInfo, type_names: Mapping[str, str]) -> dict[str, Any]:
    """A clinician's bookable time: one Schedule per clinician, its free slots are Slots."""
    return _compact({
        "resourceType": "Schedule", "id": str(info.account_id), "active": True,
        "serviceType": [_service_type(t, type_names) for t in info.consultation_type_ids],
        "specialty": [{"text": info.specialty}] if info.specialty else [],
        "actor": [_ref("Practitioner", info.account_id) | {"display": info.display_name}],
        "comment": "Clinics: " + ", ".join(info.clinic_ids)})


def _service_type(type_id: str, type_names: Mapping[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": f"{SYSTEM}/consultation-type", "code": type_id,
                        "display": type_names.get(type_id, type_id)}]}


def slot_id(clinician_id: UUID, starts_at: datetime) -> str:
    return f"{clinician_id.hex}-{starts_at.astimezone(UTC):%Y%m%d%H%M}"


def slot_resource(slot: Any, type_names: Mapping[str, str]) -> dict[str, Any]:
    return {"resourceType": "Slot", "id": slot_id(slot.clinician_id, slot.starts_at),
            "schedule": _ref("Schedule", slot.clinician_id),
            "serviceType": [_service_type(slot.consultation_type_id, type_names)],
            "status": "free", "start": _instant(slot.starts_at), "end": _instant(slot.ends_at),
            "comment": f"Clinic: {slot.clinic_id}"}


def appointment_resource(row: Mapping[str, Any], type_names: Mapping[str, str]) -> dict[str, Any]:
    return {"resourceType": "Appointment", "id": str(row["appointment_id"]),
            "status": APPOINTMENT_STATUS.get(row["status"], "booked"),
            "serviceType": [_service_type(row["consultation_type_id"], type_names)],
            "appointmentType": {"text": "video" if row["mode"] == "video" else "in person"},
            "start": _instant(row["starts_at"]), "end": _instant(row["ends_at"]),
            "participant": [
                {"actor": _ref("Patient", row["patient_id"]), "status": "accepted",
                 "required": "required"},
                {"actor": _ref("Practitioner", row["clinician_id"]), "status": "accepted",
                 "required": "required"}]}


def medication_request_resources(view: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A repeat-prescription request: one MedicationRequest per medicine asked for, grouped by
    the request. The patient's own note and the clinic's explanation are left out (free text);
    the status and why it was refused (a reason code) are kept."""
    status = REQUEST_STATUS.get(view["status"], "unknown")
    resources = []
    for n, item in enumerate(view["items"], start=1):
        resource: dict[str, Any] = {
            "resourceType": "MedicationRequest", "id": f"{view['request_id']}-{n}",
            "groupIdentifier": {"system": f"{SYSTEM}/prescription-request",
                                "value": view["request_id"]},
            "status": status, "intent": "proposal",
            "courseOfTherapyType": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                "code": "continuous"}]},
            "medicationCodeableConcept": {
                "coding": [{"system": f"{SYSTEM}/medication", "code": item["medication_id"]}],
                "text": item["name"]},
            "subject": _ref("Patient", view["patient_id"]),
            "authoredOn": view["submitted_at"],
            "dosageInstruction": [{"text": item["dose"]}] if item.get("dose") else [],
            "dispenseRequest": {"quantity": {"value": item["quantity"]}}
            if isinstance(item.get("quantity"), int | float) else None}
        if view.get("rejection_reason"):
            resource["statusReason"] = {"coding": [{
                "system": f"{SYSTEM}/prescription-rejection", "code": view["rejection_reason"]}]}
        resources.append(_compact(resource))
    return resources


def consent_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    """A consent the patient gave (or withdrew), with the text version agreed to."""
    given = row["status"] == "given"
    when = row["given_at"] if given else (row["withdrawn_at"] or row["given_at"])
    resource: dict[str, Any] = {
        "resourceType": "Consent", "id": str(row["consent_id"]),
        "status": "active" if given else "inactive",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": f"{SYSTEM}/consent-type",
                                  "code": row["consent_type"]}]}],
        "patient": _ref("Patient", row["patient_id"]),
        "policy": [{"uri": f"{SYSTEM}/consent-text/{row['consent_type']}/{row['text_version']}"}],
        "provision": {"type": "permit"}}
    if when is not None:
        resource["dateTime"] = _instant(when)
    return resource


def document_reference_resource(row: Mapping[str, Any], api_base: str) -> dict[str, Any]:
    """An upload of the patient's (its file is downloaded from the JSON API, which records the
    download), or a released letter or appointment summary (its text inline)."""
    c = row["content"]
    resource: dict[str, Any] = {
        "resourceType": "DocumentReference", "id": str(row["record_id"]), "status": "current",
        "subject": _ref("Patient", row["patient_id"]),
        "date": _instant(row["released_at"] or row["occurred_at"])}
    if row["kind"] == "document":
        resource["type"] = {"coding": [{"system": f"{SYSTEM}/document-type",
                                        "code": c["document_type"]}]}
        resource["content"] = [{"attachment": {
            "contentType": c["content_type"], "title": c["filename"], "size": c["size"],
            "url": f"{api_base}/v1/documents/{row['record_id']}/content"}}]
        return resource
    code, display = LOINC_OF[row["kind"]]
    text = c.get("letter") or c.get("summary") or ""
    follow_up = c.get("follow_up")
    if follow_up:
        text = f"{text}\n\n{follow_up}" if text else follow_up
    resource["docStatus"] = "amended" if row["amended_at"] is not None else "final"
    resource["type"] = {"coding": [{"system": "http://loinc.org", "code": code,
                                    "display": display}], "text": row["title"]}
    resource["content"] = [{"attachment": {
        "contentType": "text/plain; charset=utf-8", "title": row["title"],
        "data": base64.b64encode(text.encode()).decode()}}]
    return resource


def communication_resource(row: Mapping[str, Any],
                           clinician: Callable[[UUID], ClinicianInfo | None]) -> dict[str, Any]:
    """A message of a conversation as the patient sees it (internal notes are never in the
    view it is read from)."""
    role, _, account = str(row["author"]).partition(":")
    if row["from_patient"]:
        sender: dict[str, str] = _ref("Patient", account or row["patient_id"])
    else:
        info = clinician(UUID(account)) if account else None
        sender = (_ref("Practitioner", info.account_id) | {"display": info.display_name}
                  if info is not None else {"display": ROLE_WORDS.get(role, "The clinic")})
    return {"resourceType": "Communication", "id": str(row["message_id"]),
            "status": "completed", "subject": _ref("Patient", row["patient_id"]),
            "topic": {"text": row["subject"]},
            "category": [{"coding": [{"system": f"{SYSTEM}/message-category",
                                      "code": row["category"]}]}],
            "sent": _instant(row["at"]), "sender": sender,
            "payload": [{"contentString": row["body"]}]}


# ---- reading -------------------------------------------------------------------------------


class FhirReader:
    """Reads and searches, each authorised by the access policy; returns FHIR resources as
    dicts. `api_base` is the public base URL of the API (links to file downloads)."""

    def __init__(self, applications: Mapping[str, Any], availability: Any, api_base: str) -> None:
        self.apps = applications
        self.availability = availability
        self.directory = availability.schedule  # the reference data availability searches
        self.api_base = api_base.rstrip("/")
        self.datastore = applications["identity"].factory.datastore

    # ---- access ---------------------------------------------------------------------------

    def _allow(self, actor: Actor, action: Action, patient_id: UUID, at: datetime) -> None:
        relationship = self.apps["care"].relationship(actor, patient_id, at)
        authorise(actor, action, PatientResource(patient_id, relationship))

    def _searched_patient(self, actor: Actor, params: Mapping[str, list[str]]) -> UUID:
        patient_id = patient_param(params)
        if patient_id is None and actor.role is Role.PATIENT:
            return actor.account_id  # a patient's search is about themselves unless they say
        if patient_id is None:
            raise InvalidInput([FieldError("patient", "Name the patient: patient=Patient/<id>.")])
        return patient_id

    def _logged(self, actor: Actor, patient_id: UUID, what: str, resource_id: UUID,
                at: datetime) -> None:
        record_access(self.datastore, actor.ref, patient_id, what, resource_id, at)

    def _rows(self, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.datastore.get_connection() as conn:
            return list(conn.execute(sql, args).fetchall())

    def _patient_rows(self, select: str, patient_column: str, moment: str, patient_id: UUID,
                      when: Period, order: str, limit: int,
                      also: tuple[str, Any] | None = None) -> list[dict[str, Any]]:
        """One patient's rows whose `moment` falls in the `date` search, in `order`. The
        column names are this module's own, never the caller's."""
        extra, extra_args = (also[0], (also[1],)) if also else ("", ())
        return self._rows(
            f"{select} WHERE {patient_column} = %s{extra}"
            f" AND (%s::timestamptz IS NULL OR {moment} >= %s)"
            f" AND (%s::timestamptz IS NULL OR {moment} < %s) ORDER BY {order} LIMIT %s",
            (patient_id, *extra_args, when.start, when.start, when.end, when.end, limit))

    # ---- reference data -------------------------------------------------------------------

    def _type_names(self) -> dict[str, str]:
        return {t.type_id: t.name for t in self.directory.consultation_types()}

    def practitioner(self, actor: Actor, resource_id: UUID) -> dict[str, Any]:
        authorise(actor, Action.SCHEDULE_READ)
        info = self.directory.clinician(resource_id)
        if info is None:
            raise NotFound("There is no clinician with this id.")
        return practitioner_resource(info)

    def practitioners(self, actor: Actor, params: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        authorise(actor, Action.SCHEDULE_READ)
        name = " ".join(params.get("name", [])).strip().lower()
        return [practitioner_resource(c) for c in self.directory.clinicians()
                if name in c.display_name.lower()][:count_param(params)]

    def schedule(self, actor: Actor, resource_id: UUID) -> dict[str, Any]:
        authorise(actor, Action.SCHEDULE_READ)
        info = self.directory.clinician(resource_id)
        if info is None:
            raise NotFound("There is no schedule with this id.")
        return schedule_resource(info, self._type_names())

    def schedules(self, actor: Actor, params: Mapping[str, list[str]]) -> list[dict[str, Any]]:
        authorise(actor, Action.SCHEDULE_READ)
        wanted = {a.removeprefix("Practitioner/") for a in params.get("actor", [])}
        names = self._type_names()
        return [schedule_resource(c, names) for c in self.directory.clinicians()
                if not wanted or str(c.account_id) in wanted][:count_param(params)]

    def slot(self, actor: Actor, resource_id: str, at: datetime) -> dict[str, Any]:
        """A free slot, by the clinician and the start its id names; a slot no longer free
        is not found."""
        authorise(actor, Action.SCHEDULE_READ)
        match = _SLOT_ID.match(resource_id)
        if match is None:
            raise NotFound("There is no slot with this id.")
        clinician_id = UUID(match.group(1))
        try:
            starts_at = datetime.strptime(match.group(2), "%Y%m%d%H%M").replace(tzinfo=UTC)
        except ValueError:
            raise NotFound("There is no slot with this id.") from None
        if not at <= starts_at <= at + timedelta(days=SLOT_DAYS_MAX):
            raise NotFound("There is no free slot with this id.")  # past, or beyond searches
        day = starts_at.date()
        found = self.availability.search(
            clinician_id=clinician_id, date_from=day - timedelta(days=1),
            date_to=day + timedelta(days=1), at=at, limit=10_000)
        slot = next((s for s in found if s.starts_at == starts_at), None)
        if slot is None:
            raise NotFound("There is no free slot with this id.")
        return slot_resource(slot, self._type_names())

    def slots(self, actor: Actor, params: Mapping[str, list[str]],
              at: datetime) -> list[dict[str, Any]]:
        """Free slots, earliest first: `schedule=Schedule/<clinician>`, `service-type=<type>`,
        `start=` (or `date=`) as a date search, at most twelve weeks."""
        authorise(actor, Action.SCHEDULE_READ)
        when = period(params.get("start", []) + params.get("date", []))
        first = max((when.start or at), at).date()
        last = (when.end - timedelta(microseconds=1)).date() if when.end else \
            first + timedelta(days=SLOT_DAYS_DEFAULT - 1)
        if (last - first).days >= SLOT_DAYS_MAX:
            raise InvalidInput([FieldError("start", "Search at most twelve weeks at a time.")])
        schedules = params.get("schedule", [])
        clinician_id = None
        if schedules:
            try:
                clinician_id = UUID(schedules[-1].removeprefix("Schedule/"))
            except ValueError:
                raise InvalidInput([FieldError("schedule", "Give Schedule/<id>.")]) from None
        types = params.get("service-type", [])
        type_id = types[-1].rsplit("|", 1)[-1] if types else None
        found = self.availability.search(
            clinician_id=clinician_id, consultation_type_id=type_id, date_from=first,
            date_to=last, at=at, limit=count_param(params))
        names = self._type_names()
        return [slot_resource(s, names) for s in found if when.holds(s.starts_at)]

    # ---- the patient ----------------------------------------------------------------------

    def patient(self, actor: Actor, resource_id: UUID, at: datetime) -> dict[str, Any]:
        if actor.role is Role.PATIENT and resource_id == actor.account_id:
            authorise(actor, Action.PROFILE_READ, PatientResource(resource_id))
        else:
            authorise_ever(actor, Action.PATIENT_PROFILE_READ)
            self._allow(actor, Action.PATIENT_PROFILE_READ, resource_id, at)
        account = self.apps["identity"].find_account(resource_id)
        if account is None or account.role != Role.PATIENT:
            raise NotFound("There is no patient with this id.")
        return patient_resource(account)

    def patients(self, actor: Actor, params: Mapping[str, list[str]],
                 at: datetime) -> list[dict[str, Any]]:
        """`_id=<id>` (a patient's search without it finds themselves); never a search by
        name or date of birth, which would let anyone find out who is a patient here."""
        ids = params.get("_id", [])
        if not ids and actor.role is not Role.PATIENT:
            raise InvalidInput([FieldError("_id", "Name the patient: _id=<id>.")])
        try:
            patient_id = UUID(ids[-1]) if ids else actor.account_id
        except ValueError:
            raise InvalidInput([FieldError("_id", "Give the patient's id.")]) from None
        try:
            return [self.patient(actor, patient_id, at)]
        except NotFound:
            return []

    def appointment(self, actor: Actor, resource_id: UUID, at: datetime) -> dict[str, Any]:
        authorise_ever(actor, Action.APPOINTMENTS_READ)
        rows = self._rows("SELECT * FROM views.appointments WHERE appointment_id = %s",
                          (resource_id,))
        if not rows:
            raise NotFound("There is no appointment with this id.")
        self._allow(actor, Action.APPOINTMENTS_READ, rows[0]["patient_id"], at)
        return appointment_resource(rows[0], self._type_names())

    def appointments(self, actor: Actor, params: Mapping[str, list[str]],
                     at: datetime) -> list[dict[str, Any]]:
        authorise_ever(actor, Action.APPOINTMENTS_READ)
        patient_id = self._searched_patient(actor, params)
        self._allow(actor, Action.APPOINTMENTS_READ, patient_id, at)
        when = period(params.get("date", []))
        rows = self._patient_rows("SELECT * FROM views.appointments", "patient_id", "starts_at",
                                  patient_id, when, "starts_at", count_param(params))
        names = self._type_names()
        return [appointment_resource(r, names) for r in rows]

    def consent(self, actor: Actor, resource_id: UUID, at: datetime) -> dict[str, Any]:
        rows = self._rows("SELECT * FROM views.patient_consents WHERE consent_id = %s",
                          (resource_id,))
        action = self._consent_action(actor)
        if not rows:
            raise NotFound("There is no consent with this id.")
        self._allow(actor, action, rows[0]["patient_id"], at)
        return consent_resource(rows[0])

    def consents(self, actor: Actor, params: Mapping[str, list[str]],
                 at: datetime) -> list[dict[str, Any]]:
        action = self._consent_action(actor)
        patient_id = self._searched_patient(actor, params)
        self._allow(actor, action, patient_id, at)
        when = period(params.get("date", []))
        rows = self._rows("SELECT * FROM views.patient_consents WHERE patient_id = %s"
                          " ORDER BY consent_type", (patient_id,))
        found = [consent_resource(r) for r in rows
                 if not params.get("date") or when.holds(r["given_at"] or r["withdrawn_at"])]
        return found[:count_param(params)]

    @staticmethod
    def _consent_action(actor: Actor) -> Action:
        action = Action.CONSENT_READ if actor.role is Role.PATIENT else Action.PATIENT_CONSENTS_READ
        authorise_ever(actor, action)
        return action

    # ---- clinical content (every read is in the record access log) ------------------------

    def medication_request(self, actor: Actor, resource_id: str, at: datetime) -> dict[str, Any]:
        request_id = resource_id.rpartition("-")[0]
        authorise_ever(actor, Action.PRESCRIPTIONS_READ)
        try:
            key = UUID(request_id)
        except ValueError:
            raise NotFound("There is no medication request with this id.") from None
        rows = self._rows("SELECT patient_id FROM carebridge.prescription_requests"
                          " WHERE request_id = %s", (key,))
        if not rows:
            raise NotFound("There is no medication request with this id.")
        patient_id = rows[0]["patient_id"]
        found = [r for r in self._medication_requests(actor, patient_id, at, Period(), 10_000)
                 if r["id"] == resource_id]
        if not found:
            raise NotFound("There is no medication request with this id.")
        self._logged(actor, patient_id, "prescription_request", key, at)
        return found[0]

    def medication_requests(self, actor: Actor, params: Mapping[str, list[str]],
                            at: datetime) -> list[dict[str, Any]]:
        authorise_ever(actor, Action.PRESCRIPTIONS_READ)
        patient_id = self._searched_patient(actor, params)
        found = self._medication_requests(actor, patient_id, at, period(params.get("date", [])),
                                          count_param(params))
        for request_id in dict.fromkeys(r["groupIdentifier"]["value"] for r in found):
            self._logged(actor, patient_id, "prescription_request", UUID(request_id), at)
        return found

    def _medication_requests(self, actor: Actor, patient_id: UUID, at: datetime, when: Period,
                             limit: int) -> list[dict[str, Any]]:
        # The prescriptions context's own read (it authorises, and shows only what the patient
        # may see of each request).
        views = self.apps["prescriptions"].my_requests(actor, patient_id, at)
        found = [m for v in views
                 if when.holds(datetime.fromisoformat(v["submitted_at"]))
                 for m in medication_request_resources(v)]
        return found[:limit]

    def document_reference(self, actor: Actor, resource_id: UUID, at: datetime) -> dict[str, Any]:
        authorise_ever(actor, Action.DOCUMENTS_READ)
        rows = self._rows("SELECT * FROM views.patient_records WHERE record_id = %s"
                          " AND kind = ANY(%s)", (resource_id, list(DOCUMENT_KINDS)))
        if not rows:
            raise NotFound("There is no document with this id.")
        row = rows[0]
        self._allow_document(actor, row, at)
        self._logged(actor, row["patient_id"], _document_word(row), resource_id, at)
        return document_reference_resource(row, self.api_base)

    def document_references(self, actor: Actor, params: Mapping[str, list[str]],
                            at: datetime) -> list[dict[str, Any]]:
        authorise_ever(actor, Action.DOCUMENTS_READ)
        patient_id = self._searched_patient(actor, params)
        # Uploads need the documents scope, letters and summaries the records scope.
        uploads = self._may(actor, Action.DOCUMENTS_READ, patient_id, at)
        letters = self._may(actor, Action.RECORDS_READ, patient_id, at)
        if not (uploads or letters):
            self._allow(actor, Action.DOCUMENTS_READ, patient_id, at)  # refused, and says so
        kinds = [k for k in DOCUMENT_KINDS if (uploads if k == "document" else letters)]
        when = period(params.get("date", []))
        dated = "coalesce(released_at, occurred_at)"
        rows = self._patient_rows(
            "SELECT * FROM views.patient_records", "patient_id", dated, patient_id, when,
            f"{dated} DESC, record_id", count_param(params), (" AND kind = ANY(%s)", kinds))
        for row in rows:
            self._logged(actor, patient_id, _document_word(row), row["record_id"], at)
        return [document_reference_resource(r, self.api_base) for r in rows]

    def _allow_document(self, actor: Actor, row: Mapping[str, Any], at: datetime) -> None:
        """Uploads are documents; letters and summaries are part of the record."""
        action = Action.DOCUMENTS_READ if row["kind"] == "document" else Action.RECORDS_READ
        self._allow(actor, action, row["patient_id"], at)

    def _may(self, actor: Actor, action: Action, patient_id: UUID, at: datetime) -> bool:
        try:
            self._allow(actor, action, patient_id, at)
        except Forbidden:
            return False
        return True

    def communication(self, actor: Actor, resource_id: UUID, at: datetime) -> dict[str, Any]:
        authorise_ever(actor, Action.MESSAGES_READ)
        rows = self._rows(f"{_MESSAGES} WHERE m.message_id = %s", (resource_id,))
        if not rows:
            raise NotFound("There is no message with this id.")
        row = rows[0]
        self._allow(actor, Action.MESSAGES_READ, row["patient_id"], at)
        self._logged(actor, row["patient_id"], "message_thread", row["thread_id"], at)
        return communication_resource(row, self.directory.clinician)

    def communications(self, actor: Actor, params: Mapping[str, list[str]],
                       at: datetime) -> list[dict[str, Any]]:
        authorise_ever(actor, Action.MESSAGES_READ)
        patient_id = self._searched_patient(actor, params)
        self._allow(actor, Action.MESSAGES_READ, patient_id, at)
        when = period(params.get("date", []))
        rows = self._patient_rows(_MESSAGES, "t.patient_id", "m.at", patient_id, when,
                                  "m.at, m.seq", count_param(params))
        for thread_id in dict.fromkeys(r["thread_id"] for r in rows):
            self._logged(actor, patient_id, "message_thread", thread_id, at)
        return [communication_resource(r, self.directory.clinician) for r in rows]

    def questionnaire_response(self, actor: Actor, resource_id: UUID,
                               at: datetime) -> dict[str, Any]:
        authorise_ever(actor, self._answers_action(actor))
        rows = self._rows(f"{_RESPONSES} WHERE response_id = %s", (resource_id,))
        found = self._answers(actor, rows, at)
        if not found:
            raise NotFound("There are no answers with this id.")
        return found[0]

    def questionnaire_responses(self, actor: Actor, params: Mapping[str, list[str]],
                                at: datetime) -> list[dict[str, Any]]:
        authorise_ever(actor, self._answers_action(actor))
        patient_id = self._searched_patient(actor, params)
        self._allow(actor, self._answers_action(actor), patient_id, at)
        when = period(params.get("date", []))
        rows = self._patient_rows(_RESPONSES, "patient_id", "updated_at", patient_id, when,
                                  "updated_at", count_param(params))
        return self._answers(actor, rows, at)

    @staticmethod
    def _answers_action(actor: Actor) -> Action:
        """The patient (or a proxy for appointments) fills in forms; clinicians read the
        answers as part of the record."""
        return Action.APPOINTMENTS_READ if actor.role is Role.PATIENT else Action.RECORDS_READ

    def _answers(self, actor: Actor, rows: list[dict[str, Any]],
                 at: datetime) -> list[dict[str, Any]]:
        forms = self.apps["forms"]
        found = []
        for row in rows:
            self._allow(actor, self._answers_action(actor), row["patient_id"], at)
            if actor.role is not Role.PATIENT and row["status"] != "submitted":
                continue  # a draft is the patient's until they send it
            definition = forms.repository.get(form_definition_id(row["form_id"]))
            response = forms.repository.get(form_response_id(row["appointment_id"],
                                                             row["form_id"]))
            resource = questionnaire_response(definition, response.form_version, response)
            resource["author"] = _ref("Patient", row["patient_id"])
            self._logged(actor, row["patient_id"], "form_response", row["response_id"], at)
            found.append(resource)
        return found


_MESSAGES = ("SELECT m.*, t.patient_id, t.subject, t.category FROM views.patient_messages m"
             " JOIN views.patient_threads t ON t.thread_id = m.thread_id")
_RESPONSES = ("SELECT response_id, patient_id, appointment_id, form_id, status, updated_at"
              " FROM carebridge.form_responses")


def _document_word(row: Mapping[str, Any]) -> str:
    return "document" if row["kind"] == "document" else "record"
