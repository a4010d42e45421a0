"""Medication import from clinic systems: a CSV export or a FHIR R4 Bundle of MedicationRequests,
read into `(patient id, Medication)` records for `PrescriptionsApplication.import_medications`.

Both readers check the whole file before anything is imported and report every field that needs
fixing at once (`InvalidInput`), named so that the clinic can find it: `line 3.review_date` in a
CSV file (line 1 is the header), `entry[2].dispenseRequest.quantity` in a Bundle (entries count
from 0, as in the JSON). A medicine listed twice for the same patient is refused, naming both
places. The domain's own limits (`medication_errors`) are checked here too, so an import that
passes here is refused later only for what needs the database (an unknown patient).

CSV: the header names the columns (any order): patient_id, medication_id, name, dose, quantity,
issues_remaining, review_date, needs_review, controlled, min_days_between_issues,
last_issued_on. Dates are YYYY-MM-DD; review_date, min_days_between_issues and last_issued_on
may be empty (none). needs_review and controlled must be given (yes/no, true/false or 1/0): an
empty cell could make a controlled drug requestable online, so it is refused, not guessed.

FHIR R4: every entry whose resource is a MedicationRequest is read; other resources that
travel with it (Patient, Medication) are passed over. The mapping:

- status "active" is imported; on-hold, stopped, completed, cancelled, entered-in-error, draft
  and unknown are passed over (not current repeat medicines);
- intent must be an order (order, original-order, reflex-order, filler-order, instance-order);
- courseOfTherapyType must be a repeat: code "continuous" (FHIR) or
  "continuous-repeat-dispensing" (UK Core);
- subject.reference "Patient/<CareBridge patient id>" → the patient;
- identifier[0].value → medication_id (the clinic system's id for this repeat);
- medicationCodeableConcept.text (or else its first coding's display) → name;
- dosageInstruction[0].text → dose;
- dispenseRequest.quantity value and unit (or code) → quantity, e.g. "28 tablet";
- dispenseRequest.numberOfRepeatsAllowed → issues_remaining (the issues still authorised);
- dispenseRequest.dispenseInterval (in d or wk) → min_days_between_issues;
- the UK Core extension MedicationRepeatInformation
  (https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation),
  sub-extension authorisationExpiryDate → review_date (the date of the repeat's review);
- meta.tag with code "controlled" → controlled drug; code "needs-review" → needs a prescriber's
  review before each renewal (any code system; the code decides). Without them, neither.

A MedicationRequest carries no date of the last issue: imported records leave it empty, and the
medication list keeps the last issue it already knows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any
from uuid import UUID

from domain.errors import FieldError, InvalidInput, Rejections
from domain.prescriptions import Medication, medication_errors

COLUMNS = ("patient_id", "medication_id", "name", "dose", "quantity", "issues_remaining",
           "review_date", "needs_review", "controlled", "min_days_between_issues",
           "last_issued_on")
TRUE, FALSE = frozenset({"yes", "true", "1"}), frozenset({"no", "false", "0"})
REPEAT_INFORMATION = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
ORDER_INTENTS = frozenset({"order", "original-order", "reflex-order", "filler-order",
                           "instance-order"})
REPEAT_COURSES = frozenset({"continuous", "continuous-repeat-dispensing"})
PASSED_OVER = frozenset({"on-hold", "stopped", "completed", "cancelled", "entered-in-error",
                         "draft", "unknown"})
DAYS_PER = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7}
# Values that pass every check, standing in for fields that could not be read, so that the
# domain's checks still run on the fields that could.
_STAND_IN: dict[str, Any] = {"medication_id": "-", "name": "-", "dose": "-", "quantity": "-",
                             "issues_remaining": 0, "review_date": None, "needs_review": False,
                             "controlled": False, "min_days_between_issues": None,
                             "last_issued_on": None}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_WHOLE = re.compile(r"\d{1,9}")
_PATIENT = re.compile(r"Patient/(.+)")

Record = tuple[UUID, Medication]


class _Record:
    """One medication being read: its values, and the errors of its fields under their names
    in the source (`line 3.review_date`, `entry[2].dispenseRequest.quantity`)."""

    def __init__(self, where: str, names: Mapping[str, str], errors: Rejections) -> None:
        self.where, self.names, self.errors = where, names, errors
        self.values: dict[str, Any] = {}
        self.patient_id: UUID | None = None
        self.failed: set[str] = set()

    def field(self, name: str) -> str:
        return f"{self.where}.{self.names.get(name, name)}"

    def fail(self, name: str, message: str) -> None:
        self.failed.add(name)
        self.errors.add(self.field(name), message)

    def finish(self) -> Record | None:
        medication = Medication(**{**_STAND_IN, **self.values})
        for error in medication_errors(medication):
            if error.field not in self.failed:
                self.fail(error.field, error.message)
        if self.failed or self.patient_id is None:
            return None
        return self.patient_id, medication


class _Seen:
    """Refuses a medicine listed twice for one patient, naming where it was first."""

    def __init__(self) -> None:
        self.first: dict[tuple[UUID, str], str] = {}

    def check(self, record: _Record, found: Record | None) -> Record | None:
        if found is None:
            return None
        key = (found[0], found[1].medication_id)
        if key in self.first:
            record.fail("medication_id", f"This medicine is listed twice for this patient "
                                         f"(also at {self.first[key]}).")
            return None
        self.first[key] = record.where
        return found


# ---- CSV --------------------------------------------------------------------------------------


def parse_csv(text: str) -> list[Record]:
    """The records of a CSV export; InvalidInput naming every field that needs fixing."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    errors, records, seen = Rejections(), [], _Seen()
    try:
        header = [name.strip().lower() for name in next(reader, [])]
        if not any(header):
            raise InvalidInput([FieldError("line 1", "The file is empty. The first line must "
                                                     f"name the columns: {', '.join(COLUMNS)}.")])
        missing = [c for c in COLUMNS if c not in header]
        unknown = [c or "(a column without a name)" for c in header if c not in COLUMNS]
        if missing or unknown or len(set(header)) != len(header):
            raise InvalidInput([FieldError("line 1", _header_problem(missing, unknown))])
        line = reader.line_num + 1
        for row in reader:
            if any(cell.strip() for cell in row) \
                    and (record := seen.check(*_csv_row(row, header, f"line {line}", errors))):
                records.append(record)
            line = reader.line_num + 1
    except csv.Error:
        errors.add(f"line {reader.line_num}", "This line cannot be read: check its quotation "
                                              "marks (a value that opens a quotation mark and "
                                              "never closes it runs on to the end of the file).")
    errors.raise_if_any()
    return records


def _header_problem(missing: list[str], unknown: list[str]) -> str:
    words = []
    if missing:
        words.append(f"these columns are missing: {', '.join(missing)}")
    if unknown:
        words.append(f"these columns are not known: {', '.join(unknown)}")
    if not words:
        words.append("a column is named twice")
    return (f"The first line must name the columns: {', '.join(COLUMNS)}; "
            f"{'; '.join(words)}.")


def _csv_row(row: list[str], header: list[str], where: str,
             errors: Rejections) -> tuple[_Record, Record | None]:
    record = _Record(where, {}, errors)
    if len(row) != len(header):
        errors.add(where, f"This line has {len(row)} values but the header names {len(header)} "
                          "columns. Check for a missing comma, or a comma in a value that is not "
                          "in quotation marks.")
        return record, None
    cells = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
    record.patient_id = _read(record, "patient_id", cells["patient_id"], _uuid)
    for name in ("medication_id", "name", "dose", "quantity"):
        record.values[name] = cells[name]
    record.values["issues_remaining"] = _read(record, "issues_remaining",
                                              cells["issues_remaining"], _whole)
    for name in ("review_date", "last_issued_on"):
        record.values[name] = _read(record, name, cells[name], _date) if cells[name] else None
    for name in ("needs_review", "controlled"):
        record.values[name] = _read(record, name, cells[name], _yes_no)
    days = cells["min_days_between_issues"]
    record.values["min_days_between_issues"] = \
        _read(record, "min_days_between_issues", days, _whole) if days else None
    return record, record.finish()


def _read(record: _Record, name: str, value: Any, reader: Callable[[Any], Any]) -> Any:
    """The value as `reader` reads it; a field error (and a stand-in) when it cannot."""
    try:
        return reader(value)
    except ValueError as error:
        record.fail(name, str(error))
        return _STAND_IN.get(name)


def _uuid(value: Any) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise ValueError("Give the patient's CareBridge id, for example "
                         "3f2a6c1e-8b4d-4e0f-9a7b-2c5d8e1f0a3b.") from None


def _whole(value: str) -> int:
    if not _WHOLE.fullmatch(value):
        raise ValueError("Enter a whole number, for example 6.")
    return int(value)


def _date(value: Any) -> date:
    words = "Enter a date as YYYY-MM-DD, for example 2026-03-31."
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError(words)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"There is no such date. {words}") from None


def _date_time(value: Any) -> date:
    """The day of a FHIR dateTime, which must name a whole day (2026-03-31, with or without a
    time of day)."""
    if isinstance(value, str) and len(value) > 10 and value[10] == "T":
        value = value[:10]
    return _date(value)


def _yes_no(value: str) -> bool:
    if value.lower() in TRUE:
        return True
    if value.lower() in FALSE:
        return False
    raise ValueError("Enter yes or no.")


# ---- FHIR R4 ----------------------------------------------------------------------------------

_FHIR_NAMES = {
    "patient_id": "subject.reference", "medication_id": "identifier[0].value",
    "name": "medicationCodeableConcept.text", "dose": "dosageInstruction[0].text",
    "quantity": "dispenseRequest.quantity",
    "issues_remaining": "dispenseRequest.numberOfRepeatsAllowed",
    "min_days_between_issues": "dispenseRequest.dispenseInterval",
}


def parse_fhir_bundle(data: Any) -> list[Record]:
    """The records of a FHIR R4 Bundle (decoded JSON, or its text); InvalidInput naming every
    field that needs fixing."""
    if isinstance(data, str | bytes | bytearray):
        try:
            data = json.loads(data)
        except ValueError:
            raise InvalidInput([FieldError("bundle", "This is not a JSON document: check that "
                                                     "the whole export was sent.")]) from None
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise InvalidInput([FieldError("resourceType", 'Send a FHIR Bundle (resourceType '
                                                       '"Bundle") of MedicationRequests.')])
    entries = data.get("entry", [])
    if not isinstance(entries, list):
        raise InvalidInput([FieldError("entry", "The entries must be a list.")])
    errors, records, seen = Rejections(), [], _Seen()
    for n, entry in enumerate(entries):
        where = f"entry[{n}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            errors.add(f"{where}.resource", "Each entry needs a resource.")
        elif resource.get("resourceType") == "MedicationRequest" \
                and _is_current_repeat(resource, where, errors):
            record = _Record(where, _FHIR_NAMES, errors)
            if (found := seen.check(record, _medication_request(resource, record))) is not None:
                records.append(found)
    errors.raise_if_any()
    return records


def _is_current_repeat(resource: dict[str, Any], where: str, errors: Rejections) -> bool:
    """Whether to import it: an active repeat order. Refusals are added to `errors`."""
    status, intent = _str(resource.get("status")), _str(resource.get("intent"))
    if status in PASSED_OVER:
        return False
    current = True
    if status != "active":
        errors.add(f"{where}.status", 'Give the status: "active" for a current repeat medicine.')
        current = False
    if intent not in ORDER_INTENTS:
        errors.add(f"{where}.intent", 'Only orders can be imported (intent "order"), not '
                                      "proposals, plans or options.")
        current = False
    if not _codes(resource.get("courseOfTherapyType"), "coding") & REPEAT_COURSES:
        errors.add(f"{where}.courseOfTherapyType", 'Only repeat medicines can be imported: '
                                                   'mark them with the code "continuous".')
        current = False
    return current


def _medication_request(r: dict[str, Any], record: _Record) -> Record | None:
    reference = _at(r, "subject", "reference")
    match = _PATIENT.fullmatch(reference) if isinstance(reference, str) else None
    if match is None:
        record.fail("patient_id", "Refer to the patient as Patient/ followed by their CareBridge "
                                  "id.")
    else:
        record.patient_id = _read(record, "patient_id", match.group(1), _uuid)
    record.values["medication_id"] = _text(record, "medication_id", _at(r, "identifier", 0, "value"))
    concept = r.get("medicationCodeableConcept")
    name = _at(concept, "text") or _at(concept, "coding", 0, "display")
    if concept is None and "medicationReference" in r:
        record.fail("name", "Give the medicine in medicationCodeableConcept, with its name as "
                            "text: references to Medication resources are not read.")
    record.values["name"] = _text(record, "name", name)
    record.values["dose"] = _text(record, "dose", _at(r, "dosageInstruction", 0, "text"))
    dispense = r.get("dispenseRequest")
    record.values["quantity"] = _read(record, "quantity", _at(dispense, "quantity"), _quantity)
    record.values["issues_remaining"] = _read(record, "issues_remaining",
                                              _at(dispense, "numberOfRepeatsAllowed"), _count)
    interval = _at(dispense, "dispenseInterval")
    record.values["min_days_between_issues"] = None if interval is None else \
        _read(record, "min_days_between_issues", interval, _days)
    record.values["review_date"] = _review_date(r, record)
    tags = _codes(r.get("meta"), "tag")
    record.values["controlled"] = "controlled" in tags
    record.values["needs_review"] = "needs-review" in tags
    return record.finish()


def _review_date(r: dict[str, Any], record: _Record) -> date | None:
    for i, extension in enumerate(_list(r, "extension")):
        if _at(extension, "url") != REPEAT_INFORMATION:
            continue
        for j, part in enumerate(_list(extension, "extension")):
            if _at(part, "url") == "authorisationExpiryDate":
                name = f"extension[{i}].extension[{j}].valueDateTime"
                record.names = {**record.names, "review_date": name}
                found: date = _read(record, "review_date", _at(part, "valueDateTime"), _date_time)
                return found
    return None


def _text(record: _Record, name: str, value: Any) -> str:
    if value is None or isinstance(value, str):
        return (value or "").strip()
    record.fail(name, "This must be text.")
    return "-"


def _quantity(value: Any) -> str:
    amount, unit = _at(value, "value"), _at(value, "unit") or _at(value, "code")
    if not _is_number(amount) or amount <= 0 or not isinstance(unit, str) or not unit.strip():
        raise ValueError("Give the quantity to supply with its unit, for example value 28 and "
                         'unit "tablet".')
    return f"{int(amount) if float(amount).is_integer() else amount} {unit.strip()}"


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("Give the number of repeat issues still authorised, as a whole number "
                         "(0 to 100).")
    return value


def _days(value: Any) -> int:
    amount, unit = _at(value, "value"), _at(value, "code") or _at(value, "unit")
    per = DAYS_PER.get(unit.strip().lower()) if isinstance(unit, str) else None
    if not _is_number(amount) or per is None or not float(amount).is_integer():
        raise ValueError("Give the shortest time between issues in whole days or weeks, for "
                         'example value 28 and code "d".')
    return int(amount) * per


def _is_number(value: Any) -> bool:
    """A JSON number that is finite and within reason (JSON allows 1e999 and 10**400)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**15


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _codes(value: Any, key: str) -> set[str]:
    """The codes of the codings (or tags) under `key`."""
    return {code for item in _list(value, key) if isinstance(code := _at(item, "code"), str)}


def _at(value: Any, *path: str | int) -> Any:
    """The value at `path` in decoded JSON, or None where anything on the way is missing or of
    another shape."""
    for step in path:
        if isinstance(step, int):
            value = value[step] if isinstance(value, list) and len(value) > step else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
    return value


def _list(value: Any, key: str) -> list[Any]:
    found = _at(value, key)
    return found if isinstance(found, list) else []
