"""Documents: a completed upload becomes a document waiting for review; the clinic reviews it;
the patient reads the outcome in plain words and may upload a replacement.

Each document is saved with its row in `carebridge.documents` (the review queue, the
pre-consultation view and the appointment's outstanding items read it) in one transaction.
Every view and download of a document, by the patient or by staff, is recorded in
`carebridge.record_access`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.care import CareAccessApplication
from commands.consents import ConsentsApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_retrying
from commands.outbox import Message, enqueue, local_when
from commands.record_access import record_access
from commands.reminders import withdraw_preparation_when_done
from domain.access import (
    Action,
    Actor,
    ClinicResource,
    PatientResource,
    authorise,
    authorise_ever,
)
from domain.consents import ConsentType
from domain.documents import WORDS, Document, RejectionReason, Status, document_id
from domain.errors import Forbidden, NotFound, Rejections
from domain.identity import Role

log = logging.getLogger("carebridge.documents")

DOCUMENTS = "carebridge.documents"


class ConsentRequired(Forbidden):
    code = "consent-required"
    title = "Consent to the review of your documents is needed first"


class Files(Protocol):
    def get(self, key: str) -> bytes: ...


class DocumentsApplication(CareApplication):
    name = "documents"

    def __init__(self, store: EventStoreSettings, care: CareAccessApplication,
                 consents: ConsentsApplication, appointments: Any,
                 preferred_clinic: Callable[[UUID], str | None],
                 clinics: Callable[[str], Any]) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.care, self.consents, self.appointments = care, consents, appointments
        self.preferred_clinic, self.clinics = preferred_clinic, clinics
        self.files: Files | None = None

    # ---- from the upload --------------------------------------------------------------------

    def check_upload(self, actor: Actor, patient_id: UUID, appointment_id: UUID | None,
                     replaces: UUID | None, at: datetime) -> str:
        """Before an upload starts: may this actor upload for this patient, is the document
        review consent held, and where does it go? Returns the clinic; refuses in plain words
        (every wrong field at once)."""
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.DOCUMENTS_UPLOAD, PatientResource(patient_id, relationship))
        errors = Rejections()
        clinic_id = None
        if appointment_id is not None:
            appointment = self._appointment(appointment_id)
            if appointment is None or appointment.patient_id != patient_id:
                errors.add("appointment_id", "This is not one of your appointments.")
            else:
                clinic_id = appointment.clinic_id
        if replaces is not None:
            replaced = self._existing(replaces)
            if replaced is None or replaced.patient_id != patient_id:
                errors.add("replaces", "This is not one of your documents.")
            elif replaced.status in (Status.ACCEPTED, Status.REPLACED):
                errors.add("replaces", f"That document is {WORDS[replaced.status].lower()}; "
                           "only a document waiting for review, not accepted, needing action "
                           "or expired can be replaced.")
            else:
                clinic_id = clinic_id or replaced.clinic_id
        clinic_id = clinic_id or self.preferred_clinic(patient_id)
        if clinic_id is None and appointment_id is None:
            errors.add("appointment_id", "Upload for an appointment, or choose your clinic in "
                       "your profile first, so that we know which clinic should check it.")
        errors.raise_if_any()
        assert clinic_id is not None
        if not self.consents.holds(patient_id, ConsentType.DOCUMENT_REVIEW):
            text = self.consents.current_text(ConsentType.DOCUMENT_REVIEW)
            raise ConsentRequired(
                "Before your first upload, read and accept the consent to the review of your "
                "documents, then upload again.", consent_type=ConsentType.DOCUMENT_REVIEW.value,
                text_version=text.current_version)
        return clinic_id

    def claim(self, upload: Any, at: datetime) -> dict[str, Any]:
        """A completed upload (commands/uploads.py) becomes a document waiting for review. A
        repeated completion returns the same document."""
        existing = self._existing(document_id(upload.upload_id))
        if existing is not None:
            return self._patient_view(existing)
        owner = self.care.identity.find_account(upload.owner_id)
        if owner is None:
            raise NotFound("The account that uploaded this no longer exists.")
        actor = Actor(upload.owner_id, Role(owner.role), frozenset(owner.clinic_ids))
        patient_id = upload.patient_id or upload.owner_id
        appointment_id, replaces = upload.appointment_id, upload.replaces
        clinic_id = self.check_upload(actor, patient_id, appointment_id, replaces, at)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            document = Document(
                patient_id=patient_id, clinic_id=clinic_id, upload_id=upload.upload_id,
                document_type=upload.document_type, filename=upload.filename,
                content_type=upload.content_type, size=upload.size, sha256=upload.sha256,
                storage_key=upload.storage_key, appointment_id=appointment_id,
                replaces=replaces, by=actor.ref, at=at)
            touched: list[Any] = [document]
            also = [_row(document, at)]
            if appointment_id is not None:  # the last thing missing: no more reminders
                also.append(withdraw_preparation_when_done(appointment_id, at,
                                                           with_documents=True))
            if replaces is not None:
                old = self._document(replaces)
                if old.replaced(document.id, by=actor.ref, at=at):
                    touched.append(old)
                    also.append(_row(old, at))
            return self._patient_view(document), touched, also

        return self._run(None, decide).result

    # ---- the patient ------------------------------------------------------------------------

    def my_documents(self, actor: Actor, patient_id: UUID, at: datetime) -> list[dict[str, Any]]:
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.DOCUMENTS_READ, PatientResource(patient_id, relationship))
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(f"SELECT document_id FROM {DOCUMENTS} WHERE patient_id = %s"
                                " ORDER BY created_at DESC LIMIT 200", (patient_id,)).fetchall()
        return [self._patient_view(self._document(r["document_id"])) for r in rows]

    def document(self, actor: Actor, document_ref: UUID, at: datetime) -> dict[str, Any]:
        """One document: the patient's view, or for the clinic's reviewers the staff view."""
        document = self._readable(actor, document_ref, at)
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      document.patient_id, "document", document.id, at)
        if actor.role is Role.PATIENT:
            return self._patient_view(document)
        return self._staff_view(document)

    def content(self, actor: Actor, document_ref: UUID,
                at: datetime) -> tuple[bytes, str, str]:
        """The file (bytes, content type, file name); the download is recorded."""
        document = self._readable(actor, document_ref, at)
        if self.files is None:
            raise NotFound("Document storage is not configured.")
        data = self.files.get(document.storage_key)
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      document.patient_id, "document", document.id, at, action="download")
        return data, document.content_type, document.filename

    # ---- the clinic -------------------------------------------------------------------------

    def queue(self, actor: Actor, clinic_id: str, status: Status | None,
              at: datetime) -> list[dict[str, Any]]:
        authorise_ever(actor, Action.DOCUMENTS_REVIEW)
        authorise(actor, Action.DOCUMENTS_REVIEW, ClinicResource(clinic_id))
        wanted = status or Status.PENDING_REVIEW
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(f"SELECT document_id FROM {DOCUMENTS} WHERE clinic_id = %s"
                                " AND status = %s ORDER BY created_at LIMIT 500",
                                (clinic_id, wanted.value)).fetchall()
        listed = []
        for row in rows:
            document = self._document(row["document_id"])
            account = self.care.identity.find_account(document.patient_id)
            listed.append({
                "document_id": str(document.id), "patient_id": str(document.patient_id),
                "patient_name": f"{account.given_name} {account.family_name}" if account
                else None,
                "document_type": document.document_type.value, "status": document.status.value,
                "appointment_id": str(document.appointment_id) if document.appointment_id
                else None, "replaces": str(document.replaces) if document.replaces else None,
                "uploaded_at": document.uploaded_at.isoformat(),
                "age_hours": round((at - document.uploaded_at).total_seconds() / 3600, 1)})
        return listed

    def accept(self, actor: Actor, document_ref: UUID, at: datetime,
               key: IdempotencyKey | None = None) -> Outcome:
        return self._review(actor, document_ref, at, key,
                            lambda d: d.accept(by=actor.ref, at=at), tell=False)

    def reject(self, actor: Actor, document_ref: UUID, reason: RejectionReason,
               note: str | None, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        return self._review(actor, document_ref, at, key,
                            lambda d: d.reject(reason, note, by=actor.ref, at=at), tell=True)

    def require_action(self, actor: Actor, document_ref: UUID, note: str, at: datetime,
                       key: IdempotencyKey | None = None) -> Outcome:
        return self._review(actor, document_ref, at, key,
                            lambda d: d.require_action(note, by=actor.ref, at=at), tell=True)

    def expire(self, actor: Actor, document_ref: UUID, note: str | None, at: datetime,
               key: IdempotencyKey | None = None) -> Outcome:
        return self._review(actor, document_ref, at, key,
                            lambda d: d.expire(note, by=actor.ref, at=at), tell=True)

    def add_note(self, actor: Actor, document_ref: UUID, note: str, at: datetime,
                 key: IdempotencyKey | None = None) -> Outcome:
        def noted(document: Document) -> bool:
            document.add_note(note, by=actor.ref, at=at)
            return True

        return self._review(actor, document_ref, at, key, noted, tell=False)

    # ---- helpers ----------------------------------------------------------------------------

    def _review(self, actor: Actor, document_ref: UUID, at: datetime,
                key: IdempotencyKey | None, change: Callable[[Document], bool],
                tell: bool) -> Outcome:
        authorise_ever(actor, Action.DOCUMENTS_REVIEW)
        document = self._document(document_ref)
        authorise(actor, Action.DOCUMENTS_REVIEW, ClinicResource(document.clinic_id))

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._document(document_ref)
            if not change(current):
                return self._staff_view(current), [], []
            also = [_row(current, at)]
            if tell:
                also += self._tell(current, at)
            return self._staff_view(current), [current], also

        return self._run(key, decide)

    def _readable(self, actor: Actor, document_ref: UUID, at: datetime) -> Document:
        if actor.role is Role.PATIENT:
            authorise_ever(actor, Action.DOCUMENTS_READ)
            document = self._document(document_ref)
            relationship = self.care.relationship(actor, document.patient_id, at)
            authorise(actor, Action.DOCUMENTS_READ,
                      PatientResource(document.patient_id, relationship))
            return document
        if actor.role not in (Role.DOCTOR, Role.NURSE, Role.RECEPTION):
            raise Forbidden("You do not have access to patients' documents.")
        document = self._document(document_ref)
        if document.clinic_id in actor.clinic_ids:
            return document  # the clinic's reviewers (and its clinicians) read what it was sent
        relationship = self.care.relationship(actor, document.patient_id, at)
        authorise(actor, Action.DOCUMENTS_READ,
                  PatientResource(document.patient_id, relationship))  # care team, break-glass
        return document

    def _tell(self, document: Document, at: datetime) -> list[Statement]:
        account = self.care.identity.find_account(document.patient_id)
        if account is None:
            return []
        return enqueue(Message("document_update", "email", account.id, account.email, {}), at,
                       about_id=document.id)

    def _run(self, key: IdempotencyKey | None, decide: Any) -> Outcome:
        return run_retrying(self, self.idempotency, key, decide, "this document")

    def _appointment(self, appointment_id: UUID) -> Any:
        try:
            return self.appointments.appointment(appointment_id)
        except NotFound:
            return None

    def _existing(self, document_ref: UUID) -> Document | None:
        try:
            found: Any = self.repository.get(document_ref)
        except AggregateNotFoundError:
            return None
        return found if isinstance(found, Document) else None

    def _document(self, document_ref: UUID) -> Document:
        found = self._existing(document_ref)
        if found is None:
            raise NotFound("There is no such document.")
        return found

    def _zone(self, clinic_id: str) -> Any:
        clinic = self.clinics(clinic_id)
        return getattr(clinic, "zone", None) or UTC

    def _patient_view(self, d: Document) -> dict[str, Any]:
        zone = self._zone(d.clinic_id)
        return {
            "document_id": str(d.id), "patient_id": str(d.patient_id), "clinic_id": d.clinic_id,
            "document_type": d.document_type.value, "filename": d.filename,
            "content_type": d.content_type, "size": d.size,
            "appointment_id": str(d.appointment_id) if d.appointment_id else None,
            "replaces": str(d.replaces) if d.replaces else None,
            "replaced_by": str(d.replaced_by) if d.replaced_by else None,
            "status": d.status.value, "status_words": WORDS[d.status],
            "reason": d.reason.value if d.reason else None, "explanation": d.explanation,
            "uploaded_at": d.uploaded_at.isoformat(),
            "uploaded_at_local": local_when(d.uploaded_at, zone),
            "history": [{"status": s, "words": WORDS[Status(s)], "at": when.isoformat()}
                        for s, when in d.history],
            "version": d.version,
        }

    def _staff_view(self, d: Document) -> dict[str, Any]:
        return {**self._patient_view(d), "sha256": d.sha256, "reviewed_by": d.reviewed_by,
                "internal_notes": [{"note": n["note"], "by": n["by"],
                                    "at": n["at"].isoformat()}  # type: ignore[attr-defined]
                                   for n in d.internal_notes]}


def _row(d: Document, at: datetime) -> Statement:
    return Statement(
        f"INSERT INTO {DOCUMENTS} (document_id, patient_id, clinic_id, appointment_id,"
        " document_type, status, filename, created_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (document_id) DO UPDATE SET"
        " status = EXCLUDED.status, updated_at = EXCLUDED.updated_at",
        (d.id, d.patient_id, d.clinic_id, d.appointment_id, d.document_type.value,
         d.status.value, d.filename, d.uploaded_at, at))
