"""Medical records, the write side: staff entry, import from the clinic's systems, corrections,
internal notes, and release to the patient (by a clinician, or when the delay configured for
the test type has passed).

Each record is saved with its row in `carebridge.records` (the staff lists, the release queue
and the release sweep read it; it holds no content) in one transaction, and a release plans
its "something new in your record" message in the outbox in that transaction too. What the
patient reads is the `patient_records` projection (projections/record_views.py), which never
receives internal notes. Staff reads are recorded in `carebridge.record_access`.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.care import CareAccessApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_retrying
from commands.outbox import Message, enqueue
from commands.record_access import record_access
from commands.record_import import ImportedRecord
from domain.access import (
    INTERNAL_NOTE_READERS,
    SYSTEM,
    Action,
    Actor,
    ClinicResource,
    PatientResource,
    authorise,
    authorise_ever,
)
from domain.errors import ConcurrentChange, FieldError, Forbidden, InvalidInput, NotFound, Rejections
from domain.identity import Role
from domain.records import Kind, Record, record_id

log = logging.getLogger("carebridge.records")

RECORDS = "carebridge.records"
STAFF_SOURCE = "staff"
IMPORT_SOURCE = "import"
IMPORT_AMENDMENT = "The clinic's records system sent a corrected version."
# Imported history this old is filed without telling the patient (a back-fill of years of
# vaccinations should not send a message for each).
QUIET_HISTORY = timedelta(days=30)
RELEASE_SWEEP_LIMIT = 500
# Where an imported entry's patient and time were, by kind, to name them in a refusal.
_IMPORT_FIELDS = {"vaccination": ("resource.patient.reference", "resource.occurrenceDateTime"),
                  "lab_result": ("resource.subject.reference", "resource.effectiveDateTime"),
                  "": ("resource.subject.reference", "resource.date")}
DEFAULT_RELEASE_DELAYS: dict[str, float | None] = {
    "lab_result": 48.0,
    # Results that need a conversation first: a clinician releases them.
    "lab_result:hiv": None, "lab_result:histology": None, "lab_result:biopsy": None,
    "lab_result:cytology": None, "lab_result:genetic": None, "lab_result:psa": None,
    "appointment_summary": 0.0, "referral_letter": 0.0, "vaccination": 0.0, "care_plan": 0.0,
}


class RecordsApplication(CareApplication):
    name = "records"

    def __init__(self, store: EventStoreSettings, care: CareAccessApplication,
                 clinics: Callable[[str], Any],
                 release_delays: dict[str, float | None] | None = None) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.care, self.clinics = care, clinics
        self.release_delays = {**DEFAULT_RELEASE_DELAYS, **(release_delays or {})}
        self.identifiers: Any = None  # the identifier cross-reference, for imports

    # ---- entering records --------------------------------------------------------------------

    def enter(self, actor: Actor, patient_id: UUID, entry: dict[str, Any], at: datetime,
              key: IdempotencyKey | None = None) -> Outcome:
        """A clinician enters a record for a patient in their care. `release_now` shows it to
        the patient at once; otherwise the delay configured for its kind or test decides."""
        authorise_ever(actor, Action.RECORDS_WRITE)
        clinic_id = self._clinic_for(actor, entry.get("clinic_id"))
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.RECORDS_WRITE,
                  PatientResource(patient_id, relationship, clinic_id=clinic_id))
        occurred_at = entry.get("occurred_at") or at
        if occurred_at > at + timedelta(minutes=5):
            raise InvalidInput([FieldError("occurred_at", "must not be in the future")])
        external_id = str(uuid.uuid4())

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            kind, code = entry.get("kind"), entry.get("code")
            record = Record.enter(
                source=STAFF_SOURCE, external_id=external_id, patient_id=patient_id,
                clinic_id=clinic_id, kind=str(kind), code=code, title=entry.get("title"),
                status=entry.get("status"), content=entry.get("content") or {},
                occurred_at=occurred_at, release_delays=self.release_delays, by=actor.ref,
                at=at)
            also = []
            if entry.get("release_now"):
                record.release(by=actor.ref, at=at)
                also += self._tell(record, at)
            elif record.due_for_release(at):
                record.release(by=SYSTEM.ref, at=at, automatic=True)
                also += self._tell(record, at)
            return self.staff_view(record, actor), [record], [_row(record, at), *also]

        return self._run(key, decide)

    def import_records(self, actor: Actor, clinic_id: str, entries: Sequence[ImportedRecord],
                       at: datetime, source: str = "import",
                       system: str | None = None) -> dict[str, int]:
        """An export from the clinic's systems: all or nothing. Importing the same bundle again
        records nothing; a result that changed is recorded as a new version (an amendment, if
        it was final)."""
        self.may_import(actor, clinic_id)
        entries = self._resolved(entries, system or f"{clinic_id}-{IMPORT_SOURCE}", at)
        self._import_errors(entries, at).raise_if_any()
        source_ref = f"{source}:{clinic_id}"
        touched: list[Record] = []
        also: list[Statement] = []
        created = revised = 0
        for entry in entries:
            assert entry.patient_ref is not None  # every entry's patient was checked above
            existing = self._existing(record_id(source_ref, entry.external_id))
            if existing is None:
                record = Record.enter(
                    source=source_ref, external_id=entry.external_id,
                    patient_id=entry.patient_ref, clinic_id=clinic_id, kind=entry.kind,
                    code=entry.code, title=entry.title, status=entry.status,
                    content=entry.content, occurred_at=entry.occurred_at,
                    release_delays=self.release_delays, by=actor.ref, at=at)
                created += 1
            else:
                record = existing
                if record.patient_id != entry.patient_ref:
                    raise InvalidInput([FieldError(
                        f"{entry.where}.{_IMPORT_FIELDS.get(entry.kind, _IMPORT_FIELDS[''])[0]}",
                        "This entry was "
                                                   "imported before for another patient; "
                                                   "correct it in the clinic's system.")])
                try:
                    changed = record.revise(
                        title=entry.title, status=entry.status, content=entry.content,
                        reason=IMPORT_AMENDMENT, release_delays=self.release_delays,
                        by=actor.ref, at=at)
                except InvalidInput as error:
                    raise InvalidInput([FieldError(f"{entry.where}.{e.field}", e.message)
                                        for e in error.errors]) from None
                if not changed:
                    continue
                revised += 1
            if record.due_for_release(at):
                record.release(by=SYSTEM.ref, at=at, automatic=True)
                if at - record.occurred_at < QUIET_HISTORY:
                    also += self._tell(record, at)
            touched.append(record)
            also.append(_row(record, at))
        if touched:
            self.save_all(*touched, also=also)
        return {"entries": len(entries), "created": created, "revised": revised,
                "unchanged": len(entries) - created - revised}

    def _import_errors(self, entries: Sequence[ImportedRecord], at: datetime) -> Rejections:
        errors = Rejections()
        for entry in entries:
            subject, when = _IMPORT_FIELDS.get(entry.kind, _IMPORT_FIELDS[""])
            if entry.patient_ref is None:
                errors.add(entry.subject_field, "No certain match for this patient in "
                           "CareBridge: an administrator must confirm who it is in the "
                           "identifier review queue (GET /v1/admin/identifier-reviews), then "
                           "import again.")
            elif self.care.identity.find_account(entry.patient_ref) is None:
                errors.add(f"{entry.where}.{subject}", "No patient has this id.")
            if entry.occurred_at > at + timedelta(minutes=5):
                errors.add(f"{entry.where}.{when}", "is in the future.")
        return errors

    def _resolved(self, entries: Sequence[ImportedRecord], system: str,
                  at: datetime) -> list[ImportedRecord]:
        """Entries whose subject is the clinic's own Patient resource get CareBridge's patient
        through the identifier cross-reference: the NHS number, or `system`'s record number,
        else name and birth date (uncertain matches wait for an administrator's review)."""
        resolved = []
        for entry in entries:
            clinic = entry.clinic_patient
            if entry.patient_ref is None and clinic is not None and self.identifiers is not None:
                from commands.identifiers import Demographics

                numbers = {"nhs": clinic.nhs_number} if clinic.nhs_number else {}
                if clinic.local_number:
                    numbers[system] = clinic.local_number
                found = self.identifiers.resolve_patient(
                    system, numbers,
                    Demographics(clinic.family_name or "", clinic.date_of_birth), at)
                resolved.append(dataclasses.replace(entry, patient_ref=found))
            else:
                resolved.append(entry)
        return resolved

    @staticmethod
    def may_import(actor: Actor, clinic_id: str) -> None:
        authorise_ever(actor, Action.RECORDS_IMPORT)
        authorise(actor, Action.RECORDS_IMPORT, ClinicResource(clinic_id))

    # ---- changing records --------------------------------------------------------------------

    def revise(self, actor: Actor, ref: UUID, entry: dict[str, Any], expected: int | None,
               at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        def change(record: Record) -> list[Statement]:
            record.revise(title=entry.get("title"), status=entry.get("status"),
                          content=entry.get("content") or {}, reason=entry.get("reason"),
                          release_delays=self.release_delays, by=actor.ref, at=at)
            if record.due_for_release(at):
                record.release(by=SYSTEM.ref, at=at, automatic=True)
                return self._tell(record, at)
            return []

        return self._change(actor, ref, at, key, change, expected)

    def release(self, actor: Actor, ref: UUID, at: datetime,
                key: IdempotencyKey | None = None) -> Outcome:
        def change(record: Record) -> list[Statement]:
            return self._tell(record, at) if record.release(by=actor.ref, at=at) else []

        return self._change(actor, ref, at, key, change)

    def add_note(self, actor: Actor, ref: UUID, note: str, at: datetime,
                 key: IdempotencyKey | None = None) -> Outcome:
        def change(record: Record) -> list[Statement]:
            record.add_internal_note(note, by=actor.ref, at=at)
            return []

        return self._change(actor, ref, at, key, change)

    def mark_entered_in_error(self, actor: Actor, ref: UUID, reason: str, at: datetime,
                              key: IdempotencyKey | None = None) -> Outcome:
        def change(record: Record) -> list[Statement]:
            record.mark_entered_in_error(reason, by=actor.ref, at=at)
            return []

        return self._change(actor, ref, at, key, change)

    def release_due(self, at: datetime, limit: int = RELEASE_SWEEP_LIMIT) -> int:
        """Releases every record whose delay has passed (the release sweep's round); returns
        how many it released. Safe to run from several places: a record released meanwhile
        is simply passed over."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT record_id FROM {RECORDS} WHERE released_at IS NULL"
                " AND NOT entered_in_error AND release_due_at <= %s"
                " ORDER BY release_due_at LIMIT %s", (at, limit)).fetchall()
        released = 0
        for row in rows:
            record = self._existing(row["record_id"])
            if record is None or not record.due_for_release(at):
                continue
            record.release(by=SYSTEM.ref, at=at, automatic=True)
            try:
                self.save_all(record, also=[_row(record, at), *self._tell(record, at)])
            except ConcurrentChange:
                continue
            released += 1
        if released:
            log.info("records released after their delay: %d", released)
        return released

    # ---- staff reads -------------------------------------------------------------------------

    def staff_record(self, actor: Actor, ref: UUID, at: datetime) -> dict[str, Any]:
        """One record as the clinic holds it (internal notes for its clinicians); the view is
        recorded."""
        self._may_ever_read(actor)
        record = self._get(ref)
        self._may_read(actor, record.patient_id, at)
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      record.patient_id, "record", record.id, at)
        return self.staff_view(record, actor)

    def staff_records(self, actor: Actor, patient_id: UUID, at: datetime,
                      kind: Kind | None = None) -> list[dict[str, Any]]:
        """A patient's records as the clinic holds them, newest first, released or not."""
        self._may_read(actor, patient_id, at)
        query = f"SELECT * FROM {RECORDS} WHERE patient_id = %s"
        params: list[Any] = [patient_id]
        if kind is not None:
            query += " AND kind = %s"
            params.append(kind.value)
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(query + " ORDER BY occurred_at DESC LIMIT 500", params).fetchall()
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      patient_id, "record_list", patient_id, at)
        return [_listed(row) for row in rows]

    def release_queue(self, actor: Actor, clinic_id: str, at: datetime) -> list[dict[str, Any]]:
        """The clinic's records waiting for release, oldest first, with when each would be
        released on its own (none: a clinician must release it)."""
        authorise_ever(actor, Action.RECORDS_WRITE)
        if clinic_id not in actor.clinic_ids:
            raise Forbidden("You can only see the records waiting at your own clinics.")
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT * FROM {RECORDS} WHERE clinic_id = %s AND released_at IS NULL"
                " AND NOT entered_in_error ORDER BY entered_at LIMIT 500",
                (clinic_id,)).fetchall()
        listed = []
        for row in rows:
            account = self.care.identity.find_account(row["patient_id"])
            listed.append({**_listed(row), "patient_name": f"{account.given_name} "
                           f"{account.family_name}" if account else None,
                           "waiting_hours": round((at - row["entered_at"]).total_seconds()
                                                  / 3600, 1)})
        return listed

    def staff_view(self, r: Record, actor: Actor) -> dict[str, Any]:
        view = {
            "record_id": str(r.id), "patient_id": str(r.patient_id), "clinic_id": r.clinic_id,
            "kind": r.kind.value, "code": r.code, "title": r.title, "status": r.status.value,
            "content": r.content, "source": r.source.split(":")[0],
            "external_id": r.external_id, "occurred_at": r.occurred_at.isoformat(),
            "entered_at": r.entered_at.isoformat(),
            "release_due_at": _iso(r.release_due_at), "released_at": _iso(r.released_at),
            "released_by": r.released_by, "entered_in_error": r.entered_in_error,
            "revisions": [{"status": v["status"], "title": v["title"], "content": v["content"],
                           "until": v["until"].isoformat()} for v in r.revisions],
            "internal_note_count": len(r.internal_notes), "version": r.version,
        }
        if actor.role in INTERNAL_NOTE_READERS:
            view["internal_notes"] = [{"note": n["note"], "by": n["by"],
                                       "at": n["at"].isoformat()} for n in r.internal_notes]
        return view

    # ---- helpers -----------------------------------------------------------------------------

    def _change(self, actor: Actor, ref: UUID, at: datetime, key: IdempotencyKey | None,
                change: Callable[[Record], list[Statement]],
                expected: int | None = None) -> Outcome:
        authorise_ever(actor, Action.RECORDS_WRITE)
        record = self._get(ref)
        relationship = self.care.relationship(actor, record.patient_id, at)
        authorise(actor, Action.RECORDS_WRITE,
                  PatientResource(record.patient_id, relationship, clinic_id=record.clinic_id))

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._get(ref)
            if expected is not None and current.version != expected:
                raise ConcurrentChange(
                    "This record changed since you read it. Nothing was saved; reload it, "
                    "check the change, and try again.", current_version=current.version)
            also = change(current)
            if not current.pending_events:
                return self.staff_view(current, actor), [], []
            return self.staff_view(current, actor), [current], [_row(current, at), *also]

        return self._run(key, decide)

    @staticmethod
    def _may_ever_read(actor: Actor) -> None:
        if actor.role is Role.PATIENT:
            raise Forbidden("This is the clinic's view of a record; open it from your records.")
        authorise_ever(actor, Action.RECORDS_READ)

    def _may_read(self, actor: Actor, patient_id: UUID, at: datetime) -> None:
        self._may_ever_read(actor)
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.RECORDS_READ, PatientResource(patient_id, relationship))

    def _clinic_for(self, actor: Actor, clinic_id: Any) -> str:
        if clinic_id is None:
            if len(actor.clinic_ids) == 1:
                return next(iter(actor.clinic_ids))
            raise InvalidInput([FieldError("clinic_id", "Say which of your clinics this "
                                           "record belongs to.")])
        if not isinstance(clinic_id, str) or clinic_id not in actor.clinic_ids:
            raise InvalidInput([FieldError("clinic_id", "must be one of your clinics: "
                                           + ", ".join(sorted(actor.clinic_ids)))])
        return clinic_id

    def _tell(self, record: Record, at: datetime) -> list[Statement]:
        """The patient hears that something new is in their record: never what."""
        account = self.care.identity.find_account(record.patient_id)
        if account is None:
            return []
        kind = "result_available" if record.kind is Kind.LAB_RESULT else "record_available"
        return enqueue(Message(kind, "email", account.id, account.email,
                               {"link": f"carebridge://records/{record.id}"}), at,
                       about_id=record.id)

    def _run(self, key: IdempotencyKey | None, decide: Any) -> Outcome:
        return run_retrying(self, self.idempotency, key, decide, "this record")

    def _existing(self, ref: UUID) -> Record | None:
        try:
            found: Any = self.repository.get(ref)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Record) else None

    def _get(self, ref: UUID) -> Record:
        found = self._existing(ref)
        if found is None:
            raise NotFound("There is no such record.")
        return found

    def zone(self, clinic_id: str) -> Any:
        clinic = self.clinics(clinic_id)
        return getattr(clinic, "zone", None) or UTC


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    return {"record_id": str(row["record_id"]), "patient_id": str(row["patient_id"]),
            "clinic_id": row["clinic_id"], "kind": row["kind"], "code": row["code"],
            "title": row["title"], "status": row["status"],
            "occurred_at": row["occurred_at"].isoformat(),
            "entered_at": row["entered_at"].isoformat(),
            "release_due_at": _iso(row["release_due_at"]),
            "released_at": _iso(row["released_at"]), "entered_in_error": row["entered_in_error"],
            "internal_note_count": row["internal_note_count"]}


def _row(r: Record, at: datetime) -> Statement:
    return Statement(
        f"INSERT INTO {RECORDS} (record_id, patient_id, clinic_id, kind, code, title, status,"
        " occurred_at, entered_at, release_due_at, released_at, entered_in_error,"
        " internal_note_count, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " %s, %s, %s) ON CONFLICT (record_id) DO UPDATE SET title = EXCLUDED.title,"
        " status = EXCLUDED.status, release_due_at = EXCLUDED.release_due_at,"
        " released_at = EXCLUDED.released_at, entered_in_error = EXCLUDED.entered_in_error,"
        " internal_note_count = EXCLUDED.internal_note_count, updated_at = EXCLUDED.updated_at",
        (r.id, r.patient_id, r.clinic_id, r.kind.value, r.code, r.title, r.status.value,
         r.occurred_at, r.entered_at, r.release_due_at, r.released_at,
         r.entered_in_error is not None, len(r.internal_notes), at))

