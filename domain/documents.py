"""Documents a patient uploads, and their review by the clinic.

pending_review → accepted | rejected (a reason the patient reads) | action_required (the patient
must do something: a note says what) | expired (an accepted document, such as an identity
document, that has run out). A resubmission is a new document that names the one it replaces;
the replaced one is marked `replaced` and leaves the queue. Reasons and notes are written for
the patient; staff-only remarks go in internal notes, which no patient view reads.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput
from domain.ids import stream_id

CONTEXT = "documents"
NOTE_MAX = 1000


class DocumentType(StrEnum):
    ID_DOCUMENT = "id_document"
    REFERRAL_LETTER = "referral_letter"
    INSURANCE_CARD = "insurance_card"
    TEST_RESULT = "test_result"
    PHOTO = "photo"
    OTHER = "other"


class Status(StrEnum):
    PENDING_REVIEW = "pending_review"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ACTION_REQUIRED = "action_required"
    EXPIRED = "expired"
    REPLACED = "replaced"


class RejectionReason(StrEnum):
    UNREADABLE_IMAGE = "unreadable_image"
    WRONG_DOCUMENT_TYPE = "wrong_document_type"
    EXPIRED_DOCUMENT = "expired_document"
    MISSING_PAGE = "missing_page"
    OTHER = "other"


# What the patient reads for each reason (a note adds to it; `other` needs one).
REASON_WORDS = {
    RejectionReason.UNREADABLE_IMAGE: "We could not read it: the picture is blurred, too dark or "
    "cut off. Please take a new photo in good light with the whole page in view, and upload it "
    "again.",
    RejectionReason.WRONG_DOCUMENT_TYPE: "This is not the kind of document we asked for. Please "
    "check which document is needed and upload that one.",
    RejectionReason.EXPIRED_DOCUMENT: "This document has expired. Please upload one that is "
    "still valid.",
    RejectionReason.MISSING_PAGE: "A page is missing. Please upload the whole document, every "
    "page.",
    RejectionReason.OTHER: "We could not accept this document.",
}
WORDS = {
    Status.PENDING_REVIEW: "Waiting for the clinic to check it",
    Status.ACCEPTED: "Accepted",
    Status.REJECTED: "Not accepted",
    Status.ACTION_REQUIRED: "Something is needed from you",
    Status.EXPIRED: "Expired",
    Status.REPLACED: "Replaced by a newer upload",
}


class NotReviewable(Conflict):
    code = "document-reviewed"
    title = "This document is not waiting for review"


def document_id(upload_id: UUID) -> UUID:
    """One document per completed upload, so a repeated completion claims it once."""
    return stream_id("document", str(upload_id))


class Document(CareAggregate):
    TOPIC = topic(CONTEXT, "Document")

    @classmethod
    def create_id(cls, upload_id: UUID, **_: object) -> UUID:
        return document_id(upload_id)

    @event("Created", topic=topic(CONTEXT, "Document.Uploaded"))
    def __init__(self, patient_id: UUID, clinic_id: str, upload_id: UUID, document_type: str,
                 filename: str, content_type: str, size: int, sha256: str, storage_key: str,
                 appointment_id: UUID | None, replaces: UUID | None, by: str,
                 at: datetime) -> None:
        self.patient_id, self.clinic_id, self.upload_id = patient_id, clinic_id, upload_id
        self.document_type = DocumentType(document_type)
        self.filename, self.content_type, self.size = filename, content_type, size
        self.sha256, self.storage_key = sha256, storage_key
        self.appointment_id, self.replaces = appointment_id, replaces
        self.uploaded_at = at
        self.status = Status.PENDING_REVIEW
        self.reason: RejectionReason | None = None
        self.note: str | None = None
        self.reviewed_by: str | None = None
        self.replaced_by: UUID | None = None
        self.internal_notes: list[dict[str, object]] = []
        self.history: list[tuple[str, datetime]] = [(Status.PENDING_REVIEW.value, at)]

    @property
    def explanation(self) -> str | None:
        """What the patient reads about the outcome."""
        if self.status is Status.REJECTED and self.reason is not None:
            words = REASON_WORDS[self.reason]
            return f"{words} {self.note}" if self.note else words
        if self.status in (Status.ACTION_REQUIRED, Status.EXPIRED):
            return self.note
        return None

    def accept(self, by: str, at: datetime) -> bool:
        if self.status is Status.ACCEPTED:
            return False
        self._pending()
        self._accepted(by=by, at=at)
        return True

    def reject(self, reason: RejectionReason, note: str | None, by: str, at: datetime) -> bool:
        words = _note(note, required=reason is RejectionReason.OTHER)
        if self.status is Status.REJECTED:
            return False
        self._pending()
        self._rejected(reason=reason.value, note=words or None, by=by, at=at)
        return True

    def require_action(self, note: str, by: str, at: datetime) -> bool:
        words = _note(note, required=True)
        self._pending()
        self._action_required(note=words, by=by, at=at)
        return True

    def expire(self, note: str | None, by: str, at: datetime) -> bool:
        if self.status is Status.EXPIRED:
            return False
        if self.status is not Status.ACCEPTED:
            raise NotReviewable("Only an accepted document can expire.")
        self._expired(note=_note(note) or "This document has expired. Please upload a new one.",
                      by=by, at=at)
        return True

    def replaced(self, by_document: UUID, by: str, at: datetime) -> bool:
        if self.status is Status.REPLACED:
            return False
        self._replaced(by_document=by_document, by=by, at=at)
        return True

    def add_note(self, note: str, by: str, at: datetime) -> None:
        self._noted(note=_note(note, required=True), by=by, at=at)

    def _pending(self) -> None:
        if self.status not in (Status.PENDING_REVIEW, Status.ACTION_REQUIRED):
            raise NotReviewable(f"This document is {WORDS[self.status].lower()}.")

    def _step(self, status: Status, at: datetime) -> None:
        self.status = status
        self.history.append((status.value, at))

    @event("Accepted", topic=topic(CONTEXT, "Document.Accepted"))
    def _accepted(self, by: str, at: datetime) -> None:
        self.reviewed_by, self.reason, self.note = by, None, None
        self._step(Status.ACCEPTED, at)

    @event("Rejected", topic=topic(CONTEXT, "Document.Rejected"))
    def _rejected(self, reason: str, note: str | None, by: str, at: datetime) -> None:
        self.reviewed_by, self.reason, self.note = by, RejectionReason(reason), note
        self._step(Status.REJECTED, at)

    @event("ActionRequired", topic=topic(CONTEXT, "Document.ActionRequired"))
    def _action_required(self, note: str, by: str, at: datetime) -> None:
        self.reviewed_by, self.note = by, note
        self._step(Status.ACTION_REQUIRED, at)

    @event("Expired", topic=topic(CONTEXT, "Document.Expired"))
    def _expired(self, note: str, by: str, at: datetime) -> None:
        self.note = note
        self._step(Status.EXPIRED, at)

    @event("Replaced", topic=topic(CONTEXT, "Document.Replaced"))
    def _replaced(self, by_document: UUID, by: str, at: datetime) -> None:
        self.replaced_by = by_document
        self._step(Status.REPLACED, at)

    @event("NoteAdded", topic=topic(CONTEXT, "Document.NoteAdded"))
    def _noted(self, note: str, by: str, at: datetime) -> None:
        self.internal_notes.append({"note": note, "by": by, "at": at})


def _note(note: str | None, required: bool = False) -> str:
    words = (note or "").strip()
    if required and not words:
        raise InvalidInput([FieldError("note", "Say in a few words what the patient should do.")])
    if len(words) > NOTE_MAX:
        raise InvalidInput([FieldError("note", f"Keep it under {NOTE_MAX} characters.")])
    return words
