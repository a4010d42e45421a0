"""Medical records import from clinic systems: a FHIR R4 Bundle of lab results, vaccinations and
letters, read into `ImportedRecord`s that the records commands enter (or revise, for an entry
that exists already).

As in medication import, the whole bundle is checked before anything is imported, and every
field that needs fixing is reported at once (`InvalidInput`), named by its place in the JSON:
`entry[3].resource.valueQuantity.value` (entries count from 0, as in the JSON). Each record is
also checked as the domain checks it (`checked_entry`), and what the domain refuses is named by
the place the value came from, so a bundle that reads here is refused later only for what needs
the database (an unknown patient).

The Bundle's type is collection, transaction, batch or searchset. Its entries that are
DiagnosticReports, Observations, Immunizations and DocumentReferences are read; other
resources (Patient, Practitioner, Specimen...) are passed over. The mapping:

Every record
- identifier[0].value → external_id, the clinic system's id (else "<resourceType>/<id>"); an
  entry listed twice is refused, naming both places;
- subject.reference (Immunization: patient.reference) "Patient/<CareBridge patient id>" → the
  patient;
- a time that is a date alone (2026-03-31) is midnight UTC; a time of day must carry its offset
  from UTC (a time without one names no moment, so it is refused).

DiagnosticReport, a lab report → lab_result
- status registered, partial, preliminary → preliminary; final → final; amended, corrected,
  appended → amended; cancelled, entered-in-error, unknown → passed over;
- code.coding[0].code, lowercased → code; code.text (else its first coding's display) → title;
- result[] → content.observations: each reference ("Observation/<id>", a fullUrl such as
  "urn:uuid:...", or "#<id>" of a contained Observation) is found in this bundle, and one that
  is not there is refused, naming it. An Observation a report lists is read only as part of the
  report, and left out of it when its status passes it over (below);
- conclusion → content.comment (the clinician's words for the patient); the extension
  FOLLOW_UP (valueString) → content.follow_up;
- effectiveDateTime, else effectivePeriod.start, else issued → occurred_at.

Observation → one test of a report; on its own, when its category is laboratory, a lab_result
of that one test, coded and titled as the test (other categories, vital signs for example, are
passed over)
- code.coding[0].code → code; code.text (else its first coding's display) → name;
- valueQuantity.value and its unit (else code) → a number and its unit; valueString, or
  valueCodeableConcept.text (else its first coding's display) → a value in words;
- referenceRange[0]: low.value, high.value, text → the usual range;
- interpretation[0].coding[0].code (HL7 v3 ObservationInterpretation): N → normal, L → low,
  H → high, LL → critically_low, HH → critically_high, A and AA → abnormal; another code leaves
  the flag to the usual range;
- status preliminary, final, amended, corrected as for a report; registered, cancelled,
  entered-in-error, unknown → passed over;
- note is never read: clinic systems keep internal notes there, never meant for the patient.

Immunization → vaccination
- status completed is imported (as final); not-done and entered-in-error are passed over;
- vaccineCode.text (else its first coding's display) → content.vaccine; vaccineCode.coding[0]
  .code, lowercased → code (else "vaccination");
- protocolApplied[0].doseNumberPositiveInt → content.dose; lotNumber → content.batch;
- occurrenceDateTime → occurred_at, and its day as written → content.given_on.

DocumentReference → by its type (type.coding codes, else the words of type.text and displays)
- LOINC 57133-1, or "referral" → referral_letter: the extension REFERRED_TO (valueString, who
  the patient is referred to) → content.to, which is required; the letter → content.letter;
- LOINC 11488-4 or 34117-2, or "summary" → appointment_summary: the letter → content.summary;
- LOINC 18776-5 (plan of care) and any other type → passed over;
- the letter is content[0].attachment: contentType text/plain, the text base64-encoded in data
  (UTF-8); attachment.title → title. A link, or a PDF, is refused: the app cannot show it;
- status current is imported; superseded and entered-in-error are passed over; docStatus
  preliminary and entered-in-error are passed over, final (or none) → final, amended → amended;
- date → occurred_at.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID

from commands.medication_import import (
    _PATIENT,
    _at,
    _codes,
    _date,
    _date_time,
    _is_number,
    _list,
    _str,
    _uuid,
)
from domain.errors import FieldError, InvalidInput, Rejections
from domain.records import Flag, Kind, Status, checked_entry

FOLLOW_UP = "https://carebridge.example/fhir/StructureDefinition/follow-up"
REFERRED_TO = "https://carebridge.example/fhir/StructureDefinition/referred-to"
BUNDLE_TYPES = ("collection", "transaction", "batch", "searchset")
REPORT_STATUSES = {"registered": Status.PRELIMINARY, "partial": Status.PRELIMINARY,
                   "preliminary": Status.PRELIMINARY, "final": Status.FINAL,
                   "amended": Status.AMENDED, "corrected": Status.AMENDED,
                   "appended": Status.AMENDED}
REPORT_PASSED_OVER = frozenset({"cancelled", "entered-in-error", "unknown"})
OBSERVATION_STATUSES = {"preliminary": Status.PRELIMINARY, "final": Status.FINAL,
                        "amended": Status.AMENDED, "corrected": Status.AMENDED}
OBSERVATION_PASSED_OVER = frozenset({"registered", "cancelled", "entered-in-error", "unknown"})
FLAGS = {"N": Flag.NORMAL, "L": Flag.LOW, "H": Flag.HIGH, "LL": Flag.CRITICALLY_LOW,
         "HH": Flag.CRITICALLY_HIGH, "A": Flag.ABNORMAL, "AA": Flag.ABNORMAL}
# Document types by LOINC code, then by a word of their name.
DOCUMENT_KINDS = ((Kind.REFERRAL_LETTER, frozenset({"57133-1"}), "referral"),
                  (Kind.APPOINTMENT_SUMMARY, frozenset({"11488-4", "34117-2"}), "summary"))
PLAN_OF_CARE = frozenset({"18776-5"})
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
                     r"(?P<offset>Z|[+-][0-9]{2}:[0-9]{2})?")
WHEN = ("Give a date, like 2026-03-31, or a time with its offset from UTC, like "
        "2026-03-31T09:30:00+01:00 (Z for UTC).")


NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"


@dataclass(frozen=True)
class ClinicPatient:
    """A patient as the clinic's system knows them (a Patient resource of the bundle): the
    NHS number and the system's own record number, with name and birth date to match on."""

    nhs_number: str | None
    local_number: str | None
    family_name: str | None
    date_of_birth: date | None


@dataclass(frozen=True)
class ImportedRecord:
    """One record of the bundle, as `Record.enter` takes it; `where` is its entry (`entry[2]`).
    The patient is either CareBridge's id (`Patient/<id>`) or, when the subject is a Patient of
    the bundle, who the clinic's system says it is (`clinic_patient`), to be matched through
    the identifier cross-reference (commands/identifiers.py)."""

    external_id: str
    patient_ref: UUID | None
    kind: str
    code: str
    title: str
    status: str
    content: dict[str, Any]
    occurred_at: datetime
    where: str
    clinic_patient: ClinicPatient | None = None

    @property
    def subject_field(self) -> str:
        return f"{self.where}.resource." + ("patient" if self.kind == Kind.VACCINATION
                                            else "subject") + ".reference"


@dataclass
class _Draft:
    """What a resource says of its record, before the domain's check."""

    kind: Kind
    code: Any
    title: Any
    status: Status
    content: dict[str, Any]
    occurred_at: datetime | None


class _Reading:
    """One record being read: the errors of its fields under their places in the bundle, and
    where each of the domain's fields came from, to name the domain's refusals by it."""

    def __init__(self, where: str, errors: Rejections) -> None:
        self.where, self.base, self.errors = where, f"{where}.resource", errors
        self.failed: set[str] = set()
        self.sources: dict[str, str] = {}

    def at(self, path: str) -> str:
        return f"{self.base}.{path}"

    def fail(self, place: str, message: str) -> None:
        self.failed.add(place)
        self.errors.add(place, message)

    def source(self, field: str, place: str, value: Any) -> Any:
        """`value`, noted as the domain's `field`, found at `place`."""
        self.sources[field] = place
        return value

    def read(self, place: str, value: Any, reader: Callable[[Any], Any]) -> Any:
        try:
            return reader(value)
        except ValueError as error:
            self.fail(place, str(error))
            return None

    def number(self, field: str, place: str, value: Any) -> Any:
        self.sources[field] = place
        if value is None or _is_number(value):
            return value
        self.fail(place, "Give a number, for example 5.2.")
        return None

    def status(self, place: str, value: Any, statuses: Mapping[str, Status],
               passed_over: frozenset[str]) -> Status | None:
        """The status, or None when it passes the resource over. A status not known is refused
        (and reads as final, so that the rest is still checked)."""
        word = _str(value)
        if word in passed_over:
            return None
        if word is not None and word in statuses:
            return statuses[word]
        self.fail(place, f"The status must be one of {', '.join(statuses)} (or "
                         f"{', '.join(sorted(passed_over))}, which are not imported).")
        return Status.FINAL

    def when(self, r: dict[str, Any], path: str, missing: str) -> datetime | None:
        """The moment at `path` of the record's resource `r`; `missing` says what to give."""
        value = _at(r, *path.split("."))
        if value is None:
            self.fail(self.at(path), missing)
            return None
        found: datetime | None = self.read(self.at(path), value, _moment)
        return found

    def finish(self, draft: _Draft, external_id: str | None,
               patient: UUID | ClinicPatient | None) -> ImportedRecord | None:
        try:
            entry = checked_entry(draft.kind, draft.code, draft.title, draft.status, draft.content)
        except InvalidInput as refused:
            for error in refused.errors:
                place = self.sources.get(error.field, f"{self.where}.{error.field}")
                if place not in self.failed:
                    self.fail(place, error.message)
            return None
        if self.failed or external_id is None or patient is None or draft.occurred_at is None:
            return None
        clinic = patient if isinstance(patient, ClinicPatient) else None
        return ImportedRecord(external_id, None if clinic else patient,  # type: ignore[arg-type]
                              entry["kind"], entry["code"], entry["title"], entry["status"],
                              draft.content, draft.occurred_at, self.where, clinic)


class _Bundle:
    """The bundle's resources under the references that may point at them."""

    def __init__(self, entries: list[Any]) -> None:
        self.places: dict[str, tuple[str, dict[str, Any]]] = {}
        for n, entry in enumerate(entries):
            resource = _at(entry, "resource")
            if isinstance(resource, dict):
                for key in (_str(_at(entry, "fullUrl")), _local_reference(resource)):
                    if key:
                        self.places.setdefault(key, (f"entry[{n}].resource", resource))
        reports = [r for entry in entries
                   if _at(r := _at(entry, "resource"), "resourceType") == "DiagnosticReport"]
        self.in_reports = {found[0] for report in reports for item in _list(report, "result")
                           if (found := self.resolve(_at(item, "reference"), report, ""))}

    def resolve(self, reference: Any, report: dict[str, Any],
                report_place: str) -> tuple[str, dict[str, Any]] | None:
        """The place and resource `reference` in `report` points at, if it is in the bundle."""
        if not isinstance(reference, str):
            return None
        if reference.startswith("#"):
            for j, contained in enumerate(_list(report, "contained")):
                if isinstance(contained, dict) and contained.get("id") == reference[1:]:
                    return f"{report_place}.contained[{j}]", contained
            return None
        return self.places.get(reference)


def _local_reference(resource: dict[str, Any]) -> str | None:
    kind, name = _str(resource.get("resourceType")), _str(resource.get("id"))
    return f"{kind}/{name}" if kind and name else None


# ---- the bundle ---------------------------------------------------------------------------------


def parse_record_bundle(data: Any) -> list[ImportedRecord]:
    """The records of a FHIR R4 Bundle (decoded JSON, or its text); InvalidInput naming every
    field that needs fixing."""
    entries = _entries(data)
    bundle, errors = _Bundle(entries), Rejections()
    records: list[ImportedRecord] = []
    first: dict[str, str] = {}
    for n, entry in enumerate(entries):
        where, resource = f"entry[{n}]", _at(entry, "resource")
        if not isinstance(resource, dict):
            errors.add(f"{where}.resource", "Each entry needs a resource.")
            continue
        record = _record(resource, where, bundle, errors)
        if record is None:
            continue
        if record.external_id in first:
            path = "id" if _at(resource, "identifier", 0, "value") is None else "identifier[0].value"
            errors.add(f"{where}.resource.{path}", "This record is in the bundle twice (also at "
                                                   f"{first[record.external_id]}).")
            continue
        first[record.external_id] = where
        records.append(record)
    if errors.errors:
        # An Observation in two reports would be named twice.
        raise InvalidInput(list(dict.fromkeys(errors.errors)))
    return records


def _entries(data: Any) -> list[Any]:
    if isinstance(data, str | bytes | bytearray):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            raise InvalidInput([FieldError("bundle", "This is not a JSON document: check that "
                                                     "the whole export was sent.")]) from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise InvalidInput([FieldError("resourceType", 'Send a FHIR Bundle (resourceType '
                                                       '"Bundle") of medical records.')])
    problems = Rejections()
    if _str(data.get("type")) not in BUNDLE_TYPES:
        problems.add("type", f"The bundle's type must be one of {', '.join(BUNDLE_TYPES)}.")
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        problems.add("entry", "The entries must be a list.")
    problems.raise_if_any()
    return entries


def _record(resource: dict[str, Any], where: str, bundle: _Bundle,
            errors: Rejections) -> ImportedRecord | None:
    reader = _READERS.get(_str(resource.get("resourceType")) or "")
    if reader is None:
        return None
    reading = _Reading(where, errors)
    draft = reader(resource, reading, bundle)
    if draft is None:
        return None
    patient_key = "patient" if resource["resourceType"] == "Immunization" else "subject"
    return reading.finish(draft, _external_id(resource, reading),
                          _patient(resource, reading, patient_key, bundle))


def _external_id(r: dict[str, Any], reading: _Reading) -> str | None:
    identifier, name = _at(r, "identifier", 0, "value"), _str(r.get("id"))
    if isinstance(identifier, str) and identifier.strip():
        return identifier.strip()
    if identifier is None and name and name.strip():
        return f"{r['resourceType']}/{name.strip()}"
    reading.fail(reading.at("identifier[0].value"), "Give the clinic system's id of this record "
                                                    "(or the resource's id), so that a later "
                                                    "export updates the same record.")
    return None


def _patient(r: dict[str, Any], reading: _Reading, key: str,
             bundle: _Bundle) -> UUID | ClinicPatient | None:
    """The clinic's own Patient resource in the bundle, when it carries identifiers; else
    CareBridge's id (`Patient/<id>`)."""
    place, reference = reading.at(f"{key}.reference"), _at(r, key, "reference")
    held = bundle.places.get(reference) if isinstance(reference, str) else None
    if held is not None and _at(held[1], "resourceType") == "Patient" \
            and _list(held[1], "identifier"):
        return _clinic_patient(held[1], place, reading)
    match = _PATIENT.fullmatch(reference) if isinstance(reference, str) else None
    if match is None:
        reading.fail(place, "Refer to the patient as Patient/ followed by their CareBridge id, "
                            "or to a Patient resource in the bundle.")
        return None
    found: UUID | None = reading.read(place, match.group(1), _uuid)
    return found


def _clinic_patient(p: dict[str, Any], place: str, reading: _Reading) -> ClinicPatient | None:
    """The NHS number (system https://fhir.nhs.uk/Id/nhs-number) and the clinic system's own
    record number (the first other identifier), the family name and the birth date."""
    nhs = local = None
    for identifier in _list(p, "identifier"):
        value = _str(_at(identifier, "value"))
        if not value:
            continue
        if _at(identifier, "system") == NHS_NUMBER_SYSTEM:
            nhs = nhs or value.replace(" ", "")
        else:
            local = local or value.strip()
    if nhs is None and local is None:
        reading.fail(place, "The patient this points to has no identifier value: give their "
                            "NHS number or the clinic system's record number.")
        return None
    birth = _str(p.get("birthDate"))
    born = None
    if birth:
        try:
            born = date.fromisoformat(birth)
        except ValueError:
            reading.fail(place, "The patient's birthDate must be a date, like 1958-12-10.")
            return None
    return ClinicPatient(nhs, local, _str(_at(p, "name", 0, "family")), born)


# ---- lab results --------------------------------------------------------------------------------


def _report(r: dict[str, Any], reading: _Reading, bundle: _Bundle) -> _Draft | None:
    status = reading.status(reading.at("status"), r.get("status"), REPORT_STATUSES,
                            REPORT_PASSED_OVER)
    if status is None:
        return None
    tests: list[dict[str, Any]] = []
    reading.sources["content.observations"] = reading.at("result")
    for i, item in enumerate(_list(r, "result")):
        reference = _at(item, "reference")
        found = bundle.resolve(reference, r, reading.base)
        if found is None or found[1].get("resourceType") != "Observation":
            # This is why the report may have no tests: say it once.
            reading.sources["content.observations"] = reading.at(f"result[{i}].reference")
            reading.fail(reading.at(f"result[{i}].reference"),
                         f"There is no Observation {reference} in this bundle: send the "
                         "report's results with it." if isinstance(reference, str)
                         else "Refer to an Observation of this bundle.")
            continue
        place, observation = found
        if reading.status(f"{place}.status", observation.get("status"), OBSERVATION_STATUSES,
                          OBSERVATION_PASSED_OVER) is None:
            continue
        _same_patient(r, place, observation, reading)
        tests.append(_test(place, observation, reading, f"content.observations[{len(tests)}]"))
    follow_up, follow_up_place = _extension(r, FOLLOW_UP, reading.base)
    return _Draft(Kind.LAB_RESULT, _code(r, "code", reading), _title(r, "code", reading), status,
                  {"observations": tests,
                   "comment": reading.source("content.comment", reading.at("conclusion"),
                                             r.get("conclusion")),
                   "follow_up": reading.source("content.follow_up", follow_up_place, follow_up)},
                  _effective(r, reading))


def _observation(r: dict[str, Any], reading: _Reading, bundle: _Bundle) -> _Draft | None:
    """A test on its own: one that no report lists, and a laboratory one."""
    categories = {code for category in _list(r, "category") for code in _codes(category, "coding")}
    if reading.base in bundle.in_reports or "laboratory" not in categories:
        return None
    status = reading.status(reading.at("status"), r.get("status"), OBSERVATION_STATUSES,
                            OBSERVATION_PASSED_OVER)
    if status is None:
        return None
    test = _test(reading.base, r, reading, "content.observations[0]")
    return _Draft(Kind.LAB_RESULT, _code(r, "code", reading), _title(r, "code", reading), status,
                  {"observations": [test]}, _effective(r, reading))


def _test(place: str, r: dict[str, Any], reading: _Reading, field: str) -> dict[str, Any]:
    """One test of a lab result, from the Observation at `place`. Its note is not read."""
    name, name_path = _words(r, "code")
    value, unit = _value(place, r, reading, field)
    usual = _at(r, "referenceRange", 0)
    return {
        "code": reading.source(f"{field}.code", f"{place}.code.coding[0].code",
                               _at(r, "code", "coding", 0, "code")),
        "name": reading.source(f"{field}.name", f"{place}.{name_path}", name),
        "value": value, "unit": unit,
        "reference_low": reading.number(f"{field}.reference_low",
                                        f"{place}.referenceRange[0].low.value",
                                        _at(usual, "low", "value")),
        "reference_high": reading.number(f"{field}.reference_high",
                                         f"{place}.referenceRange[0].high.value",
                                         _at(usual, "high", "value")),
        "reference_text": reading.source(f"{field}.reference_text",
                                         f"{place}.referenceRange[0].text", _at(usual, "text")),
        "flag": _flag(_at(r, "interpretation", 0, "coding", 0, "code")),
    }


def _value(place: str, r: dict[str, Any], reading: _Reading, field: str) -> tuple[Any, Any]:
    """The test's value and unit: a number with its unit, or words."""
    if "valueQuantity" in r:
        quantity = r["valueQuantity"]
        unit_path = "unit" if _at(quantity, "unit") is not None else "code"
        unit = reading.source(f"{field}.unit", f"{place}.valueQuantity.{unit_path}",
                              _at(quantity, unit_path))
        amount = reading.number(f"{field}.value", f"{place}.valueQuantity.value",
                                _at(quantity, "value"))
        if amount is None and f"{place}.valueQuantity.value" not in reading.failed:
            reading.fail(f"{place}.valueQuantity.value", "Give the result, for example 5.2.")
        return amount, unit
    words, path = (r.get("valueString"), "valueString") if "valueString" in r \
        else _words(r, "valueCodeableConcept")
    if words is not None and not isinstance(words, str):
        reading.fail(f"{place}.{path}", "This must be text.")
        words = None
    if words is None and "valueString" not in r and "valueCodeableConcept" not in r:
        path = "value[x]"
        reading.fail(f"{place}.{path}", "Give the result in valueQuantity (a number and its "
                                        "unit), valueString or valueCodeableConcept.")
    reading.sources[f"{field}.value"] = f"{place}.{path}"
    return words, None


def _flag(code: Any) -> str | None:
    flag = FLAGS.get(code) if isinstance(code, str) else None
    return flag.value if flag else None


def _same_patient(report: dict[str, Any], place: str, observation: dict[str, Any],
                  reading: _Reading) -> None:
    """A report must not carry another patient's test (a contained one names no patient)."""
    theirs = _at(observation, "subject", "reference")
    if theirs is not None and theirs != _at(report, "subject", "reference"):
        reading.fail(f"{place}.subject.reference", "This test is of another patient than the "
                                                   "report that lists it.")


def _effective(r: dict[str, Any], reading: _Reading) -> datetime | None:
    path = next((p for p in ("effectiveDateTime", "effectivePeriod.start", "issued")
                 if _at(r, *p.split(".")) is not None), "effectiveDateTime")
    return reading.when(r, path, "Give when the sample was taken (effectiveDateTime), or when "
                                 "the result was issued (issued).")


# ---- vaccinations -------------------------------------------------------------------------------


def _immunization(r: dict[str, Any], reading: _Reading, _: _Bundle) -> _Draft | None:
    status = reading.status(reading.at("status"), r.get("status"),
                            {"completed": Status.FINAL}, frozenset({"not-done", "entered-in-error"}))
    if status is None:
        return None
    given = reading.when(r, "occurrenceDateTime", "Give when the vaccine was given "
                                                  "(occurrenceDateTime).")
    content = {
        "vaccine": reading.source("content.vaccine", *_words_at(r, "vaccineCode", reading)),
        "dose": reading.source("content.dose",
                               reading.at("protocolApplied[0].doseNumberPositiveInt"),
                               _at(r, "protocolApplied", 0, "doseNumberPositiveInt")),
        # The day as the clinic wrote it, which is the patient's day, not UTC's.
        "given_on": reading.source("content.given_on", reading.at("occurrenceDateTime"),
                                   None if given is None
                                   else _date_time(r["occurrenceDateTime"]).isoformat()),
        "batch": reading.source("content.batch", reading.at("lotNumber"), r.get("lotNumber")),
    }
    return _Draft(Kind.VACCINATION, _code(r, "vaccineCode", reading) or Kind.VACCINATION.value,
                  None, status, content, given)


# ---- letters ------------------------------------------------------------------------------------


def _document(r: dict[str, Any], reading: _Reading, _: _Bundle) -> _Draft | None:
    kind = _document_kind(r)
    if kind is None:
        return None
    status = reading.status(reading.at("status"), r.get("status"), {"current": Status.FINAL},
                            frozenset({"superseded", "entered-in-error"}))
    if status is None:
        return None
    if r.get("docStatus") is not None:
        status = reading.status(reading.at("docStatus"), r.get("docStatus"),
                                {"final": Status.FINAL, "amended": Status.AMENDED},
                                frozenset({"preliminary", "entered-in-error"}))
        if status is None:
            return None
    letter_place = reading.at("content[0].attachment.data")
    letter = reading.read(letter_place, _at(r, "content", 0, "attachment"), _letter)
    content: dict[str, Any] = {"summary": reading.source("content.summary", letter_place, letter)}
    if kind is Kind.REFERRAL_LETTER:
        to, to_place = _extension(r, REFERRED_TO, reading.base)
        if to is None and to_place == reading.at("extension"):
            reading.fail(to_place, "Say who the patient is referred to: an extension with url "
                                   f"{REFERRED_TO} and valueString.")
        content = {"to": reading.source("content.to", to_place, to),
                   "letter": reading.source("content.letter", letter_place, letter)}
    title = _at(r, "content", 0, "attachment", "title")
    return _Draft(kind, None,
                  reading.source("title", reading.at("content[0].attachment.title"), title),
                  status, content, reading.when(r, "date", "Give when the letter was written "
                                                           "(date)."))


def _document_kind(r: dict[str, Any]) -> Kind | None:
    codes = _codes(r.get("type"), "coding")
    names = [_at(r, "type", "text"), *(_at(c, "display") for c in _list(r.get("type"), "coding"))]
    words = " ".join(name for name in names if isinstance(name, str)).lower()
    if codes & PLAN_OF_CARE:
        return None
    kinds = [kind for kind, kind_codes, _ in DOCUMENT_KINDS if codes & kind_codes] \
        or [kind for kind, _, word in DOCUMENT_KINDS if word in words]
    return kinds[0] if kinds else None


def _letter(attachment: Any) -> str:
    content_type = _str(_at(attachment, "contentType")) or ""
    data = _at(attachment, "data")
    if content_type.split(";")[0].strip().lower() != "text/plain" or not isinstance(data, str):
        raise ValueError("Send the letter as text: contentType text/plain, with the text "
                         "base64-encoded in data. A link or another format (a PDF) cannot be "
                         "shown in the app.")
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except ValueError:
        raise ValueError("This is not text encoded in base64 (of UTF-8).") from None


# ---- small readers ------------------------------------------------------------------------------


def _words(r: Any, key: str) -> tuple[Any, str]:
    """The words of a CodeableConcept: its text, else its first coding's display; and where."""
    if _at(r, key, "text") is None and _at(r, key, "coding", 0, "display") is not None:
        return _at(r, key, "coding", 0, "display"), f"{key}.coding[0].display"
    return _at(r, key, "text"), f"{key}.text"


def _words_at(r: dict[str, Any], key: str, reading: _Reading) -> tuple[str, Any]:
    words, path = _words(r, key)
    return reading.at(path), words


def _title(r: dict[str, Any], key: str, reading: _Reading) -> Any:
    return reading.source("title", *_words_at(r, key, reading))


def _code(r: dict[str, Any], key: str, reading: _Reading) -> Any:
    code = reading.source("code", reading.at(f"{key}.coding[0].code"),
                          _at(r, key, "coding", 0, "code"))
    return code.lower() if isinstance(code, str) else code


def _extension(r: dict[str, Any], url: str, base: str) -> tuple[Any, str]:
    """The valueString of the extension with `url`, and its place."""
    for i, extension in enumerate(_list(r, "extension")):
        if _at(extension, "url") == url:
            return _at(extension, "valueString"), f"{base}.extension[{i}].valueString"
    return None, f"{base}.extension"


def _moment(value: Any) -> datetime:
    """A FHIR date or dateTime as a time in UTC."""
    found = _MOMENT.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        if isinstance(value, str) and len(value) == 10:
            return datetime.combine(_date(value), time(), UTC)
        raise ValueError(WHEN)
    if found.group("offset") is None:
        raise ValueError("Give the time with its offset from UTC, like 2026-03-31T09:30:00+01:00 "
                         "(Z for UTC): without it, the time could be in any time zone.")
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"There is no such time. {WHEN}") from None


_READERS: dict[str, Callable[[dict[str, Any], _Reading, _Bundle], _Draft | None]] = {
    "DiagnosticReport": _report, "Observation": _observation, "Immunization": _immunization,
    "DocumentReference": _document}
