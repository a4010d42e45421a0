"""Documents: the patient's uploads and their review status; the clinic's review queue; views
and downloads, each recorded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api.container import Container
from api.dependencies import idempotency_key, position_headers, signed_in
from commands.idempotency import Outcome
from domain.access import Actor
from domain.documents import RejectionReason, Status

Note = Annotated[str, msgspec.Meta(max_length=1000)]


class HistoryEntry(msgspec.Struct):
    status: str
    words: str
    at: str


class DocumentView(msgspec.Struct):
    document_id: str
    patient_id: str
    clinic_id: str
    document_type: str
    filename: str
    content_type: str
    size: int
    appointment_id: str | None
    replaces: str | None
    replaced_by: str | None
    status: str
    status_words: str
    reason: str | None
    explanation: str | None
    uploaded_at: str
    uploaded_at_local: str
    history: list[HistoryEntry]
    version: int


class InternalNote(msgspec.Struct):
    note: str
    by: str
    at: str


class StaffDocumentView(DocumentView):
    sha256: str
    reviewed_by: str | None
    internal_notes: list[InternalNote]


class QueueEntry(msgspec.Struct):
    document_id: str
    patient_id: str
    patient_name: str | None
    document_type: str
    status: str
    appointment_id: str | None
    replaces: str | None
    uploaded_at: str
    age_hours: float


class ReviewQueue(msgspec.Struct):
    documents: list[QueueEntry]


class Rejection(msgspec.Struct, forbid_unknown_fields=True):
    reason_code: RejectionReason
    note: Note | None = None  # the patient reads it; required for `other`


class ActionNeeded(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]  # the patient reads it


class Expiry(msgspec.Struct, forbid_unknown_fields=True):
    note: Note | None = None


class StaffNote(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]  # staff only


def _view(result: dict[str, Any]) -> DocumentView | StaffDocumentView:
    cleaned = {k: v for k, v in result.items() if k != "changed"}
    return msgspec.convert(cleaned, StaffDocumentView if "sha256" in cleaned else DocumentView)


def _staff(outcome: Outcome) -> Response[StaffDocumentView]:
    cleaned = {k: v for k, v in outcome.result.items() if k != "changed"}
    return Response(msgspec.convert(cleaned, StaffDocumentView),
                    headers=position_headers("documents", outcome.position))


class DocumentController(Controller):
    """Documents for the patient (and proxies with the documents scope) and for staff."""

    path = "/v1"
    tags = ["documents"]
    dependencies = signed_in()

    @get("/me/documents", sync_to_thread=True,
         summary="My uploaded documents, newest first, with their review status")
    def mine(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> list[DocumentView]:
        return [msgspec.convert(d, DocumentView)
                for d in container.documents.my_documents(actor, actor.account_id, now)]

    @get("/patients/{patient_id:uuid}/documents", sync_to_thread=True,
         summary="A patient's documents (for a proxy with the documents scope)")
    def patients(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> list[DocumentView]:
        return [msgspec.convert(d, DocumentView)
                for d in container.documents.my_documents(actor, patient_id, now)]

    @get("/documents/{document_id:uuid}", sync_to_thread=True,
         summary="One document and its review (the view is recorded)")
    def one(self, document_id: FromPath[UUID], actor: NamedDependency[Actor],
            container: NamedDependency[Container],
            now: NamedDependency[datetime]) -> DocumentView | StaffDocumentView:
        return _view(container.documents.document(actor, document_id, now))

    @get("/documents/{document_id:uuid}/content", sync_to_thread=True,
         summary="Download the file (the download is recorded)", media_type="application/octet-stream")
    def content(self, document_id: FromPath[UUID], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[bytes]:
        data, content_type, filename = container.documents.content(actor, document_id, now)
        return Response(data, media_type=content_type, headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


class StaffDocumentController(Controller):
    """A clinic's review queue and the review steps."""

    path = "/v1/staff/documents"
    tags = ["documents"]
    dependencies = signed_in()

    @get("/", sync_to_thread=True, summary="A clinic's documents by status, oldest first")
    def queue(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime],
              clinic_id: Annotated[str, QueryParameter(name="clinic_id")],
              status: Annotated[Status | None, QueryParameter(name="status")] = None,
              ) -> ReviewQueue:
        listed = container.documents.queue(actor, clinic_id, status, now)
        return ReviewQueue([msgspec.convert(d, QueueEntry) for d in listed])

    @post("/{document_id:uuid}/accept", status_code=200, sync_to_thread=True,
          summary="Accept a document")
    def accept(self, request: Request[Any, Any, State], document_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[StaffDocumentView]:
        key = idempotency_key(request, actor.ref, f"documents.accept.{document_id}", {})
        return _staff(container.documents.accept(actor, document_id, now, key=key))

    @post("/{document_id:uuid}/reject", status_code=200, sync_to_thread=True,
          summary="Reject with a reason the patient reads (and what to do)")
    def reject(self, request: Request[Any, Any, State], document_id: FromPath[UUID],
               data: JSONBody[Rejection], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[StaffDocumentView]:
        key = idempotency_key(request, actor.ref, f"documents.reject.{document_id}", data)
        return _staff(container.documents.reject(actor, document_id, data.reason_code,
                                                 data.note, now, key=key))

    @post("/{document_id:uuid}/action-required", status_code=200, sync_to_thread=True,
          summary="Ask the patient to do something (the note says what)")
    def action_required(self, request: Request[Any, Any, State], document_id: FromPath[UUID],
                        data: JSONBody[ActionNeeded], actor: NamedDependency[Actor],
                        container: NamedDependency[Container],
                        now: NamedDependency[datetime]) -> Response[StaffDocumentView]:
        key = idempotency_key(request, actor.ref, f"documents.action.{document_id}", data)
        return _staff(container.documents.require_action(actor, document_id, data.note, now,
                                                         key=key))

    @post("/{document_id:uuid}/expire", status_code=200, sync_to_thread=True,
          summary="Mark an accepted document as expired")
    def expire(self, request: Request[Any, Any, State], document_id: FromPath[UUID],
               data: JSONBody[Expiry], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[StaffDocumentView]:
        key = idempotency_key(request, actor.ref, f"documents.expire.{document_id}", data)
        return _staff(container.documents.expire(actor, document_id, data.note, now, key=key))

    @post("/{document_id:uuid}/notes", status_code=200, sync_to_thread=True,
          summary="Add an internal note (staff only)")
    def note(self, request: Request[Any, Any, State], document_id: FromPath[UUID],
             data: JSONBody[StaffNote], actor: NamedDependency[Actor],
             container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[StaffDocumentView]:
        key = idempotency_key(request, actor.ref, f"documents.note.{document_id}", data)
        return _staff(container.documents.add_note(actor, document_id, data.note, now, key=key))
