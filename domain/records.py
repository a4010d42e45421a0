"""Medical records: lab results, appointment summaries, referral letters, vaccinations and
care plans, with the rules that decide when a patient sees them.

One `Record` aggregate per entry. What the patient may read is in the patient-facing events
(`Entered`, `Revised`, `Released`, `EnteredInError`); what only staff read is in its own
event, `InternalNoteAdded`, which no patient view subscribes to. So an internal note cannot
reach a patient through a forgotten filter: the patient views never receive it at all.

Release. A record reaches the patient when a clinician releases it, or on its own when its
release time comes (`release_due_at`, set by the command layer from the delay configured for
its kind or test type; none means a clinician must release it). A preliminary lab result is
never released on its own. Once released, a record stays visible; a later correction is shown
as an amendment, with what it was before.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput
from domain.ids import stream_id

CONTEXT = "records"
TEXT_MAX = 4000
NOTE_MAX = 2000
NAME_MAX = 200
OBSERVATIONS_MAX = 100
ITEMS_MAX = 50


class Kind(StrEnum):
    LAB_RESULT = "lab_result"
    APPOINTMENT_SUMMARY = "appointment_summary"
    REFERRAL_LETTER = "referral_letter"
    VACCINATION = "vaccination"
    CARE_PLAN = "care_plan"


class Status(StrEnum):
    PRELIMINARY = "preliminary"
    FINAL = "final"
    AMENDED = "amended"


class Flag(StrEnum):
    NORMAL = "normal"
    LOW = "low"
    HIGH = "high"
    CRITICALLY_LOW = "critically_low"
    CRITICALLY_HIGH = "critically_high"
    ABNORMAL = "abnormal"


KIND_WORDS = {
    Kind.LAB_RESULT: "Test result",
    Kind.APPOINTMENT_SUMMARY: "Appointment summary",
    Kind.REFERRAL_LETTER: "Referral letter",
    Kind.VACCINATION: "Vaccination",
    Kind.CARE_PLAN: "Care plan",
}
# What a patient reads for each status of a result.
STATUS_WORDS = {
    Status.PRELIMINARY: "Early result: some tests are not finished, and the final result may "
    "differ",
    Status.FINAL: "Final result",
    Status.AMENDED: "Corrected: the clinic changed this result after it was final",
}
FLAG_WORDS = {
    Flag.NORMAL: "Within the usual range",
    Flag.LOW: "Below the usual range",
    Flag.HIGH: "Above the usual range",
    Flag.CRITICALLY_LOW: "Well below the usual range",
    Flag.CRITICALLY_HIGH: "Well above the usual range",
    Flag.ABNORMAL: "Outside the usual result",
}


class NotReleasable(Conflict):
    code = "record-not-releasable"
    title = "This record cannot be released"


class RecordWithdrawn(Conflict):
    code = "record-entered-in-error"
    title = "This record was marked as entered in error"


class RevisionNotAllowed(Conflict):
    code = "record-revision-not-allowed"
    title = "This change is not allowed for this record"


def record_id(source: str, external_id: str) -> UUID:
    """One record per entry of a clinic system, so a repeated import finds the same record."""
    return stream_id("record", source, external_id)


class Record(CareAggregate):
    TOPIC = topic(CONTEXT, "Record")

    @classmethod
    def create_id(cls, source: str, external_id: str, **_: object) -> UUID:
        return record_id(source, external_id)

    @event("Created", topic=topic(CONTEXT, "Record.Entered"))
    def __init__(self, source: str, external_id: str, patient_id: UUID, clinic_id: str,
                 kind: str, code: str, title: str, status: str, content: dict[str, Any],
                 occurred_at: datetime, release_due_at: datetime | None, by: str,
                 at: datetime) -> None:
        self.source, self.external_id = source, external_id
        self.patient_id, self.clinic_id = patient_id, clinic_id
        self.kind, self.code, self.title = Kind(kind), code, title
        self.status, self.content = Status(status), content
        self.occurred_at, self.entered_at = occurred_at, at
        self.release_due_at = release_due_at
        self.released_at: datetime | None = None
        self.released_by: str | None = None
        self.entered_in_error: str | None = None
        self.internal_notes: list[dict[str, Any]] = []
        self.revisions: list[dict[str, Any]] = []
        self.last_changed_at = at

    @classmethod
    def enter(cls, *, source: str, external_id: str, patient_id: UUID, clinic_id: str,
              kind: str, code: str | None, title: str | None, status: str | None,
              content: dict[str, Any], occurred_at: datetime,
              release_delays: dict[str, float | None], by: str, at: datetime) -> Record:
        """A new entry, checked in full: every wrong field is named at once. It is released on
        its own after the delay `release_delays` gives its test type or kind (see
        `release_due`)."""
        entry = checked_entry(kind, code, title, status, content)
        due = release_due(release_delays, entry["kind"], entry["code"], entry["status"], at)
        return cls(source=source, external_id=external_id, patient_id=patient_id,
                   clinic_id=clinic_id, occurred_at=occurred_at, release_due_at=due, by=by,
                   at=at, **entry)

    # ---- what the patient may see ---------------------------------------------------------

    @property
    def released(self) -> bool:
        return self.released_at is not None

    @property
    def visible_to_patient(self) -> bool:
        return self.released and self.entered_in_error is None

    def due_for_release(self, at: datetime) -> bool:
        return (not self.released and self.entered_in_error is None
                and self.release_due_at is not None and self.release_due_at <= at)

    # ---- commands ------------------------------------------------------------------------

    def release(self, by: str, at: datetime, automatic: bool = False) -> bool:
        """Makes the record visible to the patient. Releasing again changes nothing."""
        if self.entered_in_error is not None:
            raise RecordWithdrawn("This record was marked as entered in error, so it cannot be "
                                  "shown to the patient.")
        if self.released:
            return False
        if automatic and not self.due_for_release(at):
            raise NotReleasable("This record is not due for release yet.")
        self._released(automatic=automatic, by=by, at=at)
        return True

    def revise(self, *, title: str | None, status: str | None, content: dict[str, Any],
               reason: str | None, release_delays: dict[str, float | None], by: str,
               at: datetime) -> bool:
        """A new version of the entry (a final result after a preliminary one, a correction).
        A released record that changes is shown as an amendment: its status becomes
        `amended` and the patient reads why. Returns False when nothing changed."""
        if self.entered_in_error is not None:
            raise RecordWithdrawn("This record was marked as entered in error; enter a new "
                                  "record instead.")
        entry = checked_entry(self.kind.value, self.code, title or self.title, status,
                              content)
        requested = Status(entry["status"])
        if self.status is Status.PRELIMINARY:
            new_status = requested  # the final result, or another early one
        elif requested is Status.PRELIMINARY:
            raise RevisionNotAllowed("A final result cannot go back to preliminary; send the "
                                     "correction as amended, with the reason.", field="status")
        else:
            new_status = Status.AMENDED
        unchanged = (entry["title"], entry["content"]) == (self.title, self.content)
        if unchanged and (new_status is self.status or new_status is Status.AMENDED):
            return False
        words = (reason or "").strip()
        if new_status is Status.AMENDED and not words:
            raise InvalidInput([FieldError("reason", "Say, for the patient, what was corrected "
                                           "and why.")])
        if len(words) > NOTE_MAX:
            raise InvalidInput([FieldError("reason", f"Keep it under {NOTE_MAX} characters.")])
        due = self.release_due_at
        if not self.released and self.status is Status.PRELIMINARY \
                and new_status is not Status.PRELIMINARY:
            # The delay runs from the final result.
            due = release_due(release_delays, self.kind.value, self.code, new_status.value, at)
        self._revised(title=entry["title"], status=new_status.value, content=entry["content"],
                      reason=words or None, release_due_at=due, by=by, at=at)
        return True

    def add_internal_note(self, note: str, by: str, at: datetime) -> None:
        words = (note or "").strip()
        if not words:
            raise InvalidInput([FieldError("note", "Write the note.")])
        if len(words) > NOTE_MAX:
            raise InvalidInput([FieldError("note", f"Keep it under {NOTE_MAX} characters.")])
        self._noted(note=words, by=by, at=at)

    def mark_entered_in_error(self, reason: str, by: str, at: datetime) -> bool:
        """The record was never right (the wrong patient, a duplicate): it leaves the patient's
        views, and staff still see it, marked."""
        if self.entered_in_error is not None:
            return False
        words = (reason or "").strip()
        if not words:
            raise InvalidInput([FieldError("reason", "Say why this record was entered in "
                                           "error.")])
        if len(words) > NOTE_MAX:
            raise InvalidInput([FieldError("reason", f"Keep it under {NOTE_MAX} characters.")])
        self._withdrawn(reason=words, by=by, at=at)
        return True

    # ---- events --------------------------------------------------------------------------

    @event("Released", topic=topic(CONTEXT, "Record.Released"))
    def _released(self, automatic: bool, by: str, at: datetime) -> None:
        self.released_at, self.released_by = at, by
        self.last_changed_at = at

    @event("Revised", topic=topic(CONTEXT, "Record.Revised"))
    def _revised(self, title: str, status: str, content: dict[str, Any], reason: str | None,
                 release_due_at: datetime | None, by: str, at: datetime) -> None:
        self.revisions.append({"status": self.status.value, "title": self.title,
                               "content": self.content, "until": at})
        self.title, self.status, self.content = title, Status(status), content
        self.release_due_at = release_due_at
        self.last_changed_at = at

    @event("InternalNoteAdded", topic=topic(CONTEXT, "Record.InternalNoteAdded"))
    def _noted(self, note: str, by: str, at: datetime) -> None:
        self.internal_notes.append({"note": note, "by": by, "at": at})

    @event("EnteredInError", topic=topic(CONTEXT, "Record.EnteredInError"))
    def _withdrawn(self, reason: str, by: str, at: datetime) -> None:
        self.entered_in_error = reason
        self.last_changed_at = at


# ---- checking an entry ------------------------------------------------------------------------


def checked_entry(kind: str, code: str | None, title: str | None, status: str | None,
                  content: dict[str, Any]) -> dict[str, Any]:
    """The entry as it is stored: kind, code, title, status and the kind's content, each
    checked; raises InvalidInput naming every wrong field."""
    errors: list[FieldError] = []
    try:
        record_kind = Kind(kind)
    except ValueError:
        raise InvalidInput([FieldError("kind", "must be one of " + ", ".join(k.value for k in Kind))]
                           ) from None
    if not isinstance(content, dict):
        raise InvalidInput([FieldError("content", "must be an object")])
    record_status = Status.FINAL
    if status is not None:
        try:
            record_status = Status(status)
        except ValueError:
            errors.append(FieldError("status", "must be preliminary, final or amended"))
    if record_kind is not Kind.LAB_RESULT and record_status is Status.PRELIMINARY:
        errors.append(FieldError("status", "only a test result can be preliminary"))
    checked = _CONTENT[record_kind](content, errors)
    words = _text(title, "title", errors, NAME_MAX, required=False) or _default_title(
        record_kind, checked)
    record_code = _text(code, "code", errors, NAME_MAX, required=record_kind is Kind.LAB_RESULT)
    if errors:
        raise InvalidInput(errors)
    return {"kind": record_kind.value, "code": (record_code or record_kind.value).lower(),
            "title": words, "status": record_status.value, "content": checked}


def _default_title(kind: Kind, content: dict[str, Any]) -> str:
    if kind is Kind.VACCINATION and content.get("vaccine"):
        return str(content["vaccine"])
    if kind is Kind.CARE_PLAN and content.get("condition"):
        return f"Care plan: {content['condition']}"
    if kind is Kind.REFERRAL_LETTER and content.get("to"):
        return f"Referral to {content['to']}"
    return KIND_WORDS[kind]


def _text(value: Any, name: str, errors: list[FieldError], limit: int = TEXT_MAX,
          required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors.append(FieldError(name, "is required"))
        return None
    if not isinstance(value, str):
        errors.append(FieldError(name, "must be text"))
        return None
    words = value.strip()
    if len(words) > limit:
        errors.append(FieldError(name, f"keep it under {limit} characters"))
        return None
    return words


def _number(value: Any, name: str, errors: list[FieldError]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors.append(FieldError(name, "must be a number"))
        return None
    return float(value)


def _date(value: Any, name: str, errors: list[FieldError], required: bool = False) -> str | None:
    if value is None:
        if required:
            errors.append(FieldError(name, "is required"))
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        errors.append(FieldError(name, "must be a date, like 2026-03-31"))
        return None


def _items(value: Any, name: str, errors: list[FieldError], required: bool = False) -> list[str]:
    if value is None:
        if required:
            errors.append(FieldError(name, "list at least one"))
        return []
    if not isinstance(value, list) or len(value) > ITEMS_MAX:
        errors.append(FieldError(name, f"must be a list of at most {ITEMS_MAX} texts"))
        return []
    items = [_text(v, f"{name}[{i}]", errors, NOTE_MAX) for i, v in enumerate(value)]
    if required and not items:
        errors.append(FieldError(name, "list at least one"))
    return [i for i in items if i]


def _for_patient(content: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    """The words every kind may carry for the patient: a clinician's comment and what to do."""
    return {"comment": _text(content.get("comment"), "content.comment", errors, required=False),
            "follow_up": _text(content.get("follow_up"), "content.follow_up", errors,
                               required=False)}


def _unknown(content: dict[str, Any], known: set[str], errors: list[FieldError]) -> None:
    for name in sorted(set(content) - known - {"comment", "follow_up"}):
        errors.append(FieldError(f"content.{name}", "is not a field of this kind of record; "
                                 "internal notes go to the notes endpoint"))


def flag_for(value: float | None, low: float | None, high: float | None) -> Flag | None:
    """The flag a numeric value earns against its reference range, when the lab sent none."""
    if value is None or (low is None and high is None):
        return None
    if low is not None and value < low:
        return Flag.LOW
    if high is not None and value > high:
        return Flag.HIGH
    return Flag.NORMAL


def _observation(raw: Any, where: str, errors: list[FieldError]) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        errors.append(FieldError(where, "must be an object with name, value and unit"))
        return None
    before = len(errors)
    _unknown_obs = set(raw) - {"code", "name", "value", "unit", "reference_low",
                               "reference_high", "reference_text", "flag"}
    for name in sorted(_unknown_obs):
        errors.append(FieldError(f"{where}.{name}", "is not a field of a test"))
    name = _text(raw.get("name"), f"{where}.name", errors, NAME_MAX)
    code = _text(raw.get("code"), f"{where}.code", errors, NAME_MAX, required=False)
    value = raw.get("value")
    numeric: float | None = None
    shown: str | None = None
    if isinstance(value, str):
        shown = _text(value, f"{where}.value", errors, NAME_MAX)
    elif value is not None:
        numeric = _number(value, f"{where}.value", errors)
        shown = None if numeric is None else f"{value}"
    else:
        errors.append(FieldError(f"{where}.value", "is required"))
    unit = _text(raw.get("unit"), f"{where}.unit", errors, 40, required=False)
    low = _number(raw.get("reference_low"), f"{where}.reference_low", errors)
    high = _number(raw.get("reference_high"), f"{where}.reference_high", errors)
    if low is not None and high is not None and low > high:
        errors.append(FieldError(f"{where}.reference_high", "must not be below reference_low"))
    ref_text = _text(raw.get("reference_text"), f"{where}.reference_text", errors, NAME_MAX,
                     required=False)
    flag: Flag | None = None
    if raw.get("flag") is not None:
        try:
            flag = Flag(raw["flag"])
        except ValueError:
            errors.append(FieldError(f"{where}.flag", "must be one of "
                                     + ", ".join(f.value for f in Flag)))
    if len(errors) > before:
        return None
    flag = flag or flag_for(numeric, low, high)
    return {"code": code, "name": name, "value": shown, "numeric_value": numeric, "unit": unit,
            "reference_low": low, "reference_high": high, "reference_text": ref_text,
            "flag": flag.value if flag else None}


def _lab_result(content: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    _unknown(content, {"observations", "specimen_collected_at"}, errors)
    raw = content.get("observations")
    observations: list[dict[str, Any]] = []
    if not isinstance(raw, list) or not raw:
        errors.append(FieldError("content.observations", "list at least one test, each with "
                                 "name, value and unit"))
    elif len(raw) > OBSERVATIONS_MAX:
        errors.append(FieldError("content.observations",
                                 f"send at most {OBSERVATIONS_MAX} tests in one result"))
    else:
        for i, item in enumerate(raw):
            checked = _observation(item, f"content.observations[{i}]", errors)
            if checked is not None:
                observations.append(checked)
    return {"observations": observations, **_for_patient(content, errors)}


def _appointment_summary(content: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    _unknown(content, {"summary", "appointment_id"}, errors)
    appointment = content.get("appointment_id")
    if appointment is not None:
        try:
            appointment = str(UUID(str(appointment)))
        except ValueError:
            errors.append(FieldError("content.appointment_id", "must be an appointment id"))
    return {"summary": _text(content.get("summary"), "content.summary", errors),
            "appointment_id": appointment, **_for_patient(content, errors)}


def _referral_letter(content: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    _unknown(content, {"to", "letter"}, errors)
    return {"to": _text(content.get("to"), "content.to", errors, NAME_MAX),
            "letter": _text(content.get("letter"), "content.letter", errors),
            **_for_patient(content, errors)}


def _vaccination(content: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    _unknown(content, {"vaccine", "dose", "given_on", "batch"}, errors)
    dose = content.get("dose")
    if dose is not None and (isinstance(dose, bool) or not isinstance(dose, int) or dose < 1):
        errors.append(FieldError("content.dose", "must be a whole number from 1"))
        dose = None
    return {"vaccine": _text(content.get("vaccine"), "content.vaccine", errors, NAME_MAX),
            "dose": dose, "given_on": _date(content.get("given_on"), "content.given_on",
                                           errors, required=True),
            "batch": _text(content.get("batch"), "content.batch", errors, 60, required=False),
            **_for_patient(content, errors)}


def _care_plan(content: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    _unknown(content, {"condition", "summary", "goals", "actions", "review_on"}, errors)
    return {"condition": _text(content.get("condition"), "content.condition", errors, NAME_MAX),
            "summary": _text(content.get("summary"), "content.summary", errors, required=False),
            "goals": _items(content.get("goals"), "content.goals", errors, required=True),
            "actions": _items(content.get("actions"), "content.actions", errors),
            "review_on": _date(content.get("review_on"), "content.review_on", errors,
                               required=True),
            **_for_patient(content, errors)}


_CONTENT = {Kind.LAB_RESULT: _lab_result, Kind.APPOINTMENT_SUMMARY: _appointment_summary,
            Kind.REFERRAL_LETTER: _referral_letter, Kind.VACCINATION: _vaccination,
            Kind.CARE_PLAN: _care_plan}


def release_due(delays: dict[str, float | None], kind: str, code: str, status: str,
                at: datetime) -> datetime | None:
    """When a record entered (or finalised) at `at` is released on its own: after the delay in
    hours configured for its test type (`lab_result:hba1c`), else for its kind (`lab_result`);
    never for a preliminary result or when the delay is none (a clinician releases it)."""
    if status == Status.PRELIMINARY:
        return None
    hours: float | None = 0.0
    for key in (f"{kind}:{code}", kind):
        if key in delays:
            hours = delays[key]
            break
    return None if hours is None else at + timedelta(hours=hours)
