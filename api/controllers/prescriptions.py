"""Repeat prescriptions: what a patient may request and why not, their requests and timelines;
the clinic's queues, the review workflow and the medication lists."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from api.container import Container
from api.dependencies import idempotency_key, position_headers, signed_in
from commands.idempotency import Outcome
from commands.medication_import import parse_csv, parse_fhir_bundle
from commands.prescriptions import RequestedItem
from domain.access import Actor
from domain.errors import FieldError, InvalidInput
from domain.prescriptions import Fulfilment, Medication, Queue, RejectionReason

Words = Annotated[str, msgspec.Meta(max_length=1000)]
Short = Annotated[str, msgspec.Meta(max_length=200)]


class MedicationView(msgspec.Struct):
    medication_id: str
    name: str
    dose: str
    quantity: str
    issues_remaining: int
    review_date: str | None
    last_issued_on: str | None
    needs_review: bool
    controlled: bool
    requestable: bool
    reason: str | None
    explanation: str | None
    requestable_from: str | None
    open_request_id: str | None


class Medications(msgspec.Struct):
    medications: list[MedicationView]


class Item(msgspec.Struct, forbid_unknown_fields=True):
    medication_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    dosage_confirmed: bool


class NewRequest(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    items: list[Item]
    fulfilment: Fulfilment
    pharmacy_id: Short | None = None
    note: Words | None = None
    patient_id: UUID | None = None  # someone the caller acts for; defaults to the caller


class TimelineEntry(msgspec.Struct):
    status: str
    words: str
    at: str
    at_local: str


class RequestedMedication(msgspec.Struct):
    medication_id: str
    name: str
    dose: str
    quantity: str


class RequestView(msgspec.Struct):
    request_id: str
    patient_id: str
    clinic_id: str
    status: str
    status_words: str
    items: list[RequestedMedication]
    fulfilment: str
    pharmacy_id: str | None
    note: str | None
    submitted_at: str
    promised_by: str
    promised_by_local: str
    delayed: bool
    rejection_reason: str | None
    explanation: str | None
    timeline: list[TimelineEntry]
    version: int


class InternalNote(msgspec.Struct):
    note: str
    by: str
    at: str


class StaffRequestView(RequestView):
    queue: str
    handoff_failed: bool
    reviewer: str | None
    internal_notes: list[InternalNote]


class QueueEntry(msgspec.Struct):
    request_id: str
    patient_id: str
    patient_name: str | None
    queue: str
    status: str
    delayed: bool
    handoff_failed: bool
    medications: int
    submitted_at: str
    age_hours: float
    promised_by: str


class QueueView(msgspec.Struct):
    requests: list[QueueEntry]


class RequestWithContext(StaffRequestView):
    patient_name: str | None
    age_hours: float
    medications: list[MedicationView]
    history: list[RequestView]


class Rejection(msgspec.Struct, forbid_unknown_fields=True):
    reason_code: RejectionReason
    explanation: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]  # the patient reads it


class Note(msgspec.Struct, forbid_unknown_fields=True):
    note: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]  # staff only


class MedicationEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: Short
    dose: Short
    quantity: Short
    issues_remaining: Annotated[int, msgspec.Meta(ge=0, le=100)]
    needs_review: bool
    controlled: bool
    review_date: date | None = None
    min_days_between_issues: Annotated[int, msgspec.Meta(ge=1, le=365)] | None = None
    last_issued_on: date | None = None


class MedicationImport(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: Annotated[str, msgspec.Meta(min_length=1, max_length=80)]
    format: Literal["csv", "fhir"]
    # CSV: the file's text. FHIR: a Bundle of MedicationRequest resources (JSON).
    content: Annotated[str, msgspec.Meta(min_length=1, max_length=900_000)] | dict[str, Any]


class ImportSummary(msgspec.Struct):
    records: int
    patients: int
    changed: int


class MedicationRecorded(msgspec.Struct):
    patient_id: str
    medication_id: str
    changed: bool


def _clean(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "changed"}


def _answer(outcome: Outcome, view: type[Any], status: int = 200) -> Response[Any]:
    return Response(msgspec.convert(_clean(outcome.result), view), status_code=status,
                    headers=position_headers("prescriptions", outcome.position))


class PatientPrescriptionController(Controller):
    """The patient's side (and a proxy's with the prescriptions scope)."""

    path = "/v1"
    tags = ["prescriptions"]
    dependencies = signed_in()

    @get("/me/medications", sync_to_thread=True,
         summary="My repeat medicines: which I may request now, and why not")
    def my_medications(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                       now: NamedDependency[datetime]) -> Medications:
        return self._medications(container, actor, actor.account_id, now)

    @get("/patients/{patient_id:uuid}/medications", sync_to_thread=True,
         summary="A patient's repeat medicines (for a proxy or the clinic)")
    def medications(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                    container: NamedDependency[Container],
                    now: NamedDependency[datetime]) -> Medications:
        return self._medications(container, actor, patient_id, now)

    @staticmethod
    def _medications(container: Container, actor: Actor, patient_id: UUID,
                     now: datetime) -> Medications:
        listed = container.prescriptions.medications(actor, patient_id, now)
        return Medications([msgspec.convert(m, MedicationView) for m in listed])

    @post("/prescription-requests", status_code=201, sync_to_thread=True,
          summary="Request repeat medicines")
    def create(self, request: Request[Any, Any, State], data: JSONBody[NewRequest],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[RequestView]:
        key = idempotency_key(request, actor.ref, "prescriptions.request", data)
        outcome = container.prescriptions.request(
            actor, data.patient_id or actor.account_id, data.clinic_id,
            [RequestedItem(i.medication_id, i.dosage_confirmed) for i in data.items],
            data.fulfilment, data.pharmacy_id, data.note, now, key=key)
        return _answer(outcome, RequestView, 201)

    @get("/me/prescription-requests", sync_to_thread=True,
         summary="My repeat prescription requests with their timelines, newest first")
    def mine(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> list[RequestView]:
        return [msgspec.convert(r, RequestView)
                for r in container.prescriptions.my_requests(actor, actor.account_id, now)]

    @get("/prescription-requests/{request_id:uuid}", sync_to_thread=True,
         summary="One of my requests and its timeline")
    def one(self, request_id: FromPath[UUID], actor: NamedDependency[Actor],
            container: NamedDependency[Container], now: NamedDependency[datetime]) -> RequestView:
        return msgspec.convert(container.prescriptions.patient_request(actor, request_id, now),
                               RequestView)

    @post("/prescription-requests/{request_id:uuid}/cancel", status_code=200,
          sync_to_thread=True, summary="Cancel a request the clinic has not started on")
    def cancel(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[RequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.cancel.{request_id}", {})
        return _answer(container.prescriptions.cancel(actor, request_id, now, key=key),
                       RequestView)


class StaffPrescriptionController(Controller):
    """The clinic's side: queues with context, the review steps, medication lists."""

    path = "/v1/staff"
    tags = ["prescriptions"]
    dependencies = signed_in()

    @get("/prescription-requests", sync_to_thread=True,
         summary="A clinic's open requests, oldest first (prescriber or coordinator queue)")
    def queue(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime],
              clinic_id: Annotated[str, QueryParameter(name="clinic_id")],
              queue: Annotated[Queue | None, QueryParameter(name="queue")] = None) -> QueueView:
        listed = container.prescriptions.queue(actor, clinic_id, queue, now)
        return QueueView([msgspec.convert(r, QueueEntry) for r in listed])

    @get("/prescription-requests/{request_id:uuid}", sync_to_thread=True,
         summary="A request with the patient's medications, earlier requests and notes")
    def one(self, request_id: FromPath[UUID], actor: NamedDependency[Actor],
            container: NamedDependency[Container],
            now: NamedDependency[datetime]) -> RequestWithContext:
        return msgspec.convert(container.prescriptions.staff_request(actor, request_id, now),
                               RequestWithContext)

    @post("/prescription-requests/{request_id:uuid}/review", status_code=200,
          sync_to_thread=True, summary="Start reviewing a request")
    def review(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[StaffRequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.review.{request_id}", {})
        return _answer(container.prescriptions.start_review(actor, request_id, now, key=key),
                       StaffRequestView)

    @post("/prescription-requests/{request_id:uuid}/approve", status_code=200,
          sync_to_thread=True, summary="Approve (a prescriber, when it needs review)")
    def approve(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[StaffRequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.approve.{request_id}", {})
        return _answer(container.prescriptions.approve(actor, request_id, now, key=key),
                       StaffRequestView)

    @post("/prescription-requests/{request_id:uuid}/reject", status_code=200,
          sync_to_thread=True, summary="Reject with a reason code and words for the patient")
    def reject(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
               data: JSONBody[Rejection], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[StaffRequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.reject.{request_id}", data)
        return _answer(container.prescriptions.reject(actor, request_id, data.reason_code,
                                                      data.explanation, now, key=key),
                       StaffRequestView)

    @post("/prescription-requests/{request_id:uuid}/escalate", status_code=200,
          sync_to_thread=True, summary="Send to a prescriber (it needs a clinical review)")
    def escalate(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
                 data: JSONBody[Note], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[StaffRequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.escalate.{request_id}", data)
        return _answer(container.prescriptions.escalate(actor, request_id, data.note, now,
                                                        key=key), StaffRequestView)

    @post("/prescription-requests/{request_id:uuid}/notes", status_code=200,
          sync_to_thread=True, summary="Add an internal note (staff only)")
    def note(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
             data: JSONBody[Note], actor: NamedDependency[Actor],
             container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[StaffRequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.note.{request_id}", data)
        return _answer(container.prescriptions.add_note(actor, request_id, data.note, now,
                                                        key=key), StaffRequestView)

    @post("/prescription-requests/{request_id:uuid}/ready", status_code=200,
          sync_to_thread=True, summary="Ready to collect at the clinic (the patient is told)")
    def ready(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
              actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[StaffRequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.ready.{request_id}", {})
        return _answer(container.prescriptions.ready_for_collection(actor, request_id, now,
                                                                    key=key), StaffRequestView)

    @post("/prescription-requests/{request_id:uuid}/complete", status_code=200,
          sync_to_thread=True, summary="Collected, or dispensed by the pharmacy")
    def complete(self, request: Request[Any, Any, State], request_id: FromPath[UUID],
                 actor: NamedDependency[Actor], container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[StaffRequestView]:
        key = idempotency_key(request, actor.ref, f"prescriptions.complete.{request_id}", {})
        return _answer(container.prescriptions.complete(actor, request_id, now, key=key),
                       StaffRequestView)

    @put("/patients/{patient_id:uuid}/medications/{medication_id:str}", sync_to_thread=True,
         summary="Add or change a repeat medication (staff entry)")
    def record(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
               medication_id: FromPath[str], data: JSONBody[MedicationEntry],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[MedicationRecorded]:
        key = idempotency_key(request, actor.ref,
                              f"medications.record.{patient_id}.{medication_id}", data)
        medication = Medication(medication_id, data.name, data.dose, data.quantity,
                                data.issues_remaining, data.review_date, data.needs_review,
                                data.controlled, data.min_days_between_issues,
                                data.last_issued_on)
        outcome = container.prescriptions.record_medication(actor, patient_id, medication, now,
                                                            key=key)
        return Response(MedicationRecorded(str(patient_id), medication_id,
                                           bool(outcome.result["changed"])),
                        headers=position_headers("prescriptions", outcome.position))

    @post("/patients/{patient_id:uuid}/medications/{medication_id:str}/stop",
          status_code=200, sync_to_thread=True, summary="Stop a repeat medication")
    def stop(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
             medication_id: FromPath[str], actor: NamedDependency[Actor],
             container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[MedicationRecorded]:
        key = idempotency_key(request, actor.ref,
                              f"medications.stop.{patient_id}.{medication_id}", {})
        outcome = container.prescriptions.stop_medication(actor, patient_id, medication_id, now,
                                                          key=key)
        return Response(MedicationRecorded(str(patient_id), medication_id,
                                           bool(outcome.result["changed"])),
                        headers=position_headers("prescriptions", outcome.position))


class MedicationImportController(Controller):
    """A clinic's export of repeat medications (CSV or a FHIR R4 Bundle), all or nothing."""

    path = "/v1/admin"
    tags = ["prescriptions"]
    dependencies = signed_in()

    @post("/medication-import", status_code=200, sync_to_thread=True,
          summary="Import repeat medications from the clinic's system (CSV or FHIR R4)")
    def import_medications(self, data: JSONBody[MedicationImport], actor: NamedDependency[Actor],
                           container: NamedDependency[Container],
                           now: NamedDependency[datetime]) -> ImportSummary:
        container.prescriptions.may_import(actor, data.clinic_id)
        if data.format == "csv":
            if not isinstance(data.content, str):
                raise InvalidInput([FieldError("content", "Send the CSV file's text.")])
            records = parse_csv(data.content)
        else:
            records = parse_fhir_bundle(data.content)
        return ImportSummary(**container.prescriptions.import_medications(
            actor, data.clinic_id, records, now))
