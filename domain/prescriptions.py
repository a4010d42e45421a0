"""Repeat prescriptions: a patient's repeat medications, what may be requested now (and why not),
and the request from submission to collection or the pharmacy.

A patient's `MedicationList` holds their repeat medications (imported from the clinic's system
or entered by staff) and which request each medication is open in. Every request records itself
on the list in the same transaction, so two requests for the same medication conflict on the
list's version and the second is refused naming the first: there is never a second open request
for a medication. Approval records the issue on the list (one issue fewer, last issued today).

The request moves: submitted → under_review → approved or rejected → ready_for_collection or
sent_to_pharmacy → completed; cancelled by the patient while still submitted. A request past its
promised date is marked delayed (once), which changes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput
from domain.ids import stream_id

CONTEXT = "prescriptions"
REVIEW_GRACE = timedelta(days=28)  # a review due for longer than this needs an appointment
TEXT_MAX = 1000


class Reason(StrEnum):
    """Why a medication cannot be requested now."""

    REVIEW_DUE = "review_due"
    TOO_SOON = "too_soon"
    NO_ISSUES_LEFT = "no_issues_left"
    CONTROLLED_DRUG = "controlled_drug"
    NEEDS_APPOINTMENT = "needs_appointment"
    ALREADY_REQUESTED = "already_requested"


class Status(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    READY_FOR_COLLECTION = "ready_for_collection"
    SENT_TO_PHARMACY = "sent_to_pharmacy"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


CLOSED = frozenset({Status.REJECTED, Status.COMPLETED, Status.CANCELLED})


class Queue(StrEnum):
    PRESCRIBER = "prescriber"        # needs a clinician's review before renewal
    COORDINATOR = "coordinator"      # a prescription coordinator may approve it


class RejectionReason(StrEnum):
    NEEDS_APPOINTMENT = "needs_appointment"
    NEEDS_REVIEW = "needs_review"
    TOO_SOON = "too_soon"
    MEDICATION_CHANGED = "medication_changed"
    NOT_APPROPRIATE = "not_appropriate"
    OTHER = "other"


class Fulfilment(StrEnum):
    PHARMACY = "pharmacy"
    COLLECTION = "collection"


class AlreadyRequested(Conflict):
    code = "already-requested"
    title = "This medication is already in an open request"


class RequestClosed(Conflict):
    code = "request-closed"
    title = "This request can no longer be changed"


class WrongStep(Conflict):
    code = "wrong-step"
    title = "This request is not at that step"


@dataclass(frozen=True)
class Medication:
    medication_id: str
    name: str
    dose: str
    quantity: str
    issues_remaining: int
    review_date: date | None
    needs_review: bool
    controlled: bool
    min_days_between_issues: int | None = None
    last_issued_on: date | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Medication:
        """From an event's payload (dates may come back as ISO strings)."""
        values = dict(data)
        for name in ("review_date", "last_issued_on"):
            if isinstance(values.get(name), str):
                values[name] = date.fromisoformat(values[name])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {"medication_id": self.medication_id, "name": self.name, "dose": self.dose,
                "quantity": self.quantity, "issues_remaining": self.issues_remaining,
                "review_date": self.review_date, "needs_review": self.needs_review,
                "controlled": self.controlled,
                "min_days_between_issues": self.min_days_between_issues,
                "last_issued_on": self.last_issued_on}


def medication_errors(m: Medication) -> list[FieldError]:
    """Every field of a medication record that needs fixing."""
    errors = []
    if not m.medication_id.strip() or len(m.medication_id) > 80:
        errors.append(FieldError("medication_id", "Give the clinic system's id (1 to 80 characters)."))
    for name, value in (("name", m.name), ("dose", m.dose), ("quantity", m.quantity)):
        if not value.strip() or len(value) > 200:
            errors.append(FieldError(name, f"Enter the {name} (1 to 200 characters)."))
    if not 0 <= m.issues_remaining <= 100:
        errors.append(FieldError("issues_remaining", "Enter 0 to 100 issues."))
    if m.min_days_between_issues is not None and not 1 <= m.min_days_between_issues <= 365:
        errors.append(FieldError("min_days_between_issues", "Enter 1 to 365 days, or leave it "
                                 "out for the clinic's default."))
    return errors


@dataclass(frozen=True)
class Eligibility:
    medication: Medication
    requestable: bool
    reason: Reason | None
    explanation: str | None
    requestable_from: date | None = None
    open_request_id: UUID | None = None

    @property
    def queue(self) -> Queue:
        return Queue.PRESCRIBER if self.medication.needs_review else Queue.COORDINATOR


def eligibility(m: Medication, today: date, open_request: UUID | None,
                default_min_days: int) -> Eligibility:
    """Whether the patient may request this medication today, and if not, why in plain words."""
    def refuse(reason: Reason, words: str, from_: date | None = None) -> Eligibility:
        return Eligibility(m, False, reason, words, from_, open_request)

    if m.controlled:
        return refuse(Reason.CONTROLLED_DRUG, "This is a controlled medicine, so it cannot be "
                      "renewed online. Please contact the clinic.")
    if open_request is not None:
        return refuse(Reason.ALREADY_REQUESTED, "You have already requested this medicine; the "
                      "request is still open.")
    if m.review_date is not None and m.review_date + REVIEW_GRACE < today:
        return refuse(Reason.NEEDS_APPOINTMENT, "Your review for this medicine is overdue. Book "
                      "an appointment with your doctor to continue it.")
    if m.review_date is not None and m.review_date <= today:
        return refuse(Reason.REVIEW_DUE, f"Your review for this medicine was due on "
                      f"{m.review_date:%d %B %Y}. The clinic will contact you to arrange it; "
                      "until then it cannot be renewed online.")
    if m.issues_remaining <= 0:
        return refuse(Reason.NO_ISSUES_LEFT, "There are no repeat issues left on this "
                      "prescription. Your doctor needs to review it: book an appointment or "
                      "ask the clinic.")
    if m.last_issued_on is not None:
        next_date = m.last_issued_on + timedelta(days=m.min_days_between_issues or default_min_days)
        if today < next_date:
            return refuse(Reason.TOO_SOON, f"It is too soon since the last issue. You can "
                          f"request it again from {next_date:%d %B %Y}.", next_date)
    return Eligibility(m, True, None, None)


def medications_id(patient_id: UUID) -> UUID:
    return stream_id("medications", str(patient_id))


class MedicationList(CareAggregate):
    """One patient's repeat medications, and the request each is open in."""

    TOPIC = topic(CONTEXT, "MedicationList")

    @event("Created", topic=topic(CONTEXT, "MedicationList.Opened"))
    def __init__(self, patient_id: UUID, by: str, at: datetime) -> None:
        self.patient_id = patient_id
        self.medications: dict[str, Medication] = {}
        self.open_requests: dict[str, UUID] = {}

    @classmethod
    def create_id(cls, patient_id: UUID, **_: object) -> UUID:
        return medications_id(patient_id)

    def record(self, medication: Medication, source: str, by: str, at: datetime) -> bool:
        """Adds or updates a medication (an import or staff entry); unchanged: nothing."""
        errors = medication_errors(medication)
        if errors:
            raise InvalidInput(errors)
        current = self.medications.get(medication.medication_id)
        if current is not None and medication.last_issued_on is None:
            medication = _with_last_issue(medication, current.last_issued_on)
        if current == medication:
            return False
        self._recorded(medication=medication.as_dict(), source=source, by=by, at=at)
        return True

    def stop(self, medication_id: str, by: str, at: datetime) -> bool:
        if medication_id not in self.medications:
            return False
        self._stopped(medication_id=medication_id, by=by, at=at)
        return True

    def requested(self, request_id: UUID, medication_ids: list[str], by: str,
                  at: datetime) -> None:
        for medication_id in medication_ids:
            holder = self.open_requests.get(medication_id)
            if holder is not None and holder != request_id:
                raise AlreadyRequested(
                    f"{self.medications[medication_id].name} is already in your open request "
                    f"{holder}. You can follow it, or cancel it while it is still submitted.",
                    request_id=str(holder), medication_id=medication_id)
        self._requested(request_id=request_id, medication_ids=medication_ids, by=by, at=at)

    def issued(self, request_id: UUID, on: date, by: str, at: datetime) -> None:
        ids = [m for m, r in self.open_requests.items() if r == request_id]
        self._issued(request_id=request_id, medication_ids=ids, on=on, by=by, at=at)

    def request_closed(self, request_id: UUID, by: str, at: datetime) -> bool:
        if request_id not in self.open_requests.values():
            return False
        self._request_closed(request_id=request_id, by=by, at=at)
        return True

    @event("MedicationRecorded", topic=topic(CONTEXT, "MedicationList.MedicationRecorded"))
    def _recorded(self, medication: dict[str, Any], source: str, by: str, at: datetime) -> None:
        self.medications[medication["medication_id"]] = Medication.from_dict(medication)

    @event("MedicationStopped", topic=topic(CONTEXT, "MedicationList.MedicationStopped"))
    def _stopped(self, medication_id: str, by: str, at: datetime) -> None:
        self.medications.pop(medication_id, None)

    @event("Requested", topic=topic(CONTEXT, "MedicationList.Requested"))
    def _requested(self, request_id: UUID, medication_ids: list[str], by: str,
                   at: datetime) -> None:
        for medication_id in medication_ids:
            self.open_requests[medication_id] = request_id

    @event("Issued", topic=topic(CONTEXT, "MedicationList.Issued"))
    def _issued(self, request_id: UUID, medication_ids: list[str], on: date, by: str,
                at: datetime) -> None:
        for medication_id in medication_ids:
            m = self.medications.get(medication_id)
            if m is not None:
                self.medications[medication_id] = Medication(**{
                    **m.as_dict(), "issues_remaining": max(m.issues_remaining - 1, 0),
                    "last_issued_on": on})

    @event("RequestClosed", topic=topic(CONTEXT, "MedicationList.RequestClosed"))
    def _request_closed(self, request_id: UUID, by: str, at: datetime) -> None:
        self.open_requests = {m: r for m, r in self.open_requests.items() if r != request_id}


def _with_last_issue(m: Medication, last: date | None) -> Medication:
    return Medication(**{**m.as_dict(), "last_issued_on": last})


class PrescriptionRequest(CareAggregate):
    """One repeat prescription request, from submission to collection or the pharmacy."""

    TOPIC = topic(CONTEXT, "PrescriptionRequest")

    @event("Created", topic=topic(CONTEXT, "PrescriptionRequest.Submitted"))
    def __init__(self, patient_id: UUID, clinic_id: str, items: list[dict[str, Any]],
                 fulfilment: str, pharmacy_id: str | None, patient_note: str | None,
                 queue: str, promised_by: datetime, by: str, at: datetime) -> None:
        self.patient_id, self.clinic_id, self.items = patient_id, clinic_id, items
        self.fulfilment, self.pharmacy_id = Fulfilment(fulfilment), pharmacy_id
        self.patient_note, self.queue = patient_note, Queue(queue)
        self.promised_by, self.submitted_at = promised_by, at
        self.status = Status.SUBMITTED
        self.delayed = False
        self.reviewer: str | None = None
        self.rejection_reason: RejectionReason | None = None
        self.explanation: str | None = None
        self.internal_notes: list[dict[str, Any]] = []
        self.handoff_failed = False
        self.timeline: list[tuple[str, datetime]] = [(Status.SUBMITTED.value, at)]

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED

    @property
    def medication_ids(self) -> list[str]:
        return [item["medication_id"] for item in self.items]

    # ---- decisions --------------------------------------------------------------------------

    def start_review(self, by: str, at: datetime) -> bool:
        if self.status is Status.UNDER_REVIEW:
            return False
        self._require(Status.SUBMITTED)
        self._review_started(by=by, at=at)
        return True

    def escalate(self, note: str, by: str, at: datetime) -> bool:
        """A coordinator sends the request to a prescriber (it needs a clinician's review)."""
        if self.queue is Queue.PRESCRIBER:
            return False
        self._require(Status.SUBMITTED, Status.UNDER_REVIEW)
        self._escalated(note=_text("note", note, required=True), by=by, at=at)
        return True

    def approve(self, by: str, at: datetime) -> bool:
        if self.status is Status.APPROVED:
            return False
        self._require(Status.SUBMITTED, Status.UNDER_REVIEW)
        self._approved(by=by, at=at)
        return True

    def reject(self, reason: RejectionReason, explanation: str, by: str, at: datetime) -> bool:
        if self.status is Status.REJECTED:
            return False
        words = _text("explanation", explanation, required=True)
        self._require(Status.SUBMITTED, Status.UNDER_REVIEW)
        self._rejected(reason=reason.value, explanation=words, by=by, at=at)
        return True

    def ready_for_collection(self, by: str, at: datetime) -> bool:
        if self.status is Status.READY_FOR_COLLECTION:
            return False
        if self.fulfilment is not Fulfilment.COLLECTION:
            raise WrongStep("This request goes to a pharmacy, not to collection at the clinic.")
        self._require(Status.APPROVED)
        self._ready(by=by, at=at)
        return True

    def sent_to_pharmacy(self, handoff_id: UUID, by: str, at: datetime) -> bool:
        if self.status is not Status.APPROVED or self.fulfilment is not Fulfilment.PHARMACY:
            return False  # a repeated delivery notice records nothing
        self._sent(handoff_id=handoff_id, by=by, at=at)
        return True

    def handoff_failed_(self, handoff_id: UUID, reason: str, by: str, at: datetime) -> bool:
        if self.status is not Status.APPROVED or self.handoff_failed:
            return False
        self._handoff_failed(handoff_id=handoff_id, reason=reason[:200], by=by, at=at)
        return True

    def complete(self, by: str, at: datetime) -> bool:
        if self.status is Status.COMPLETED:
            return False
        self._require(Status.READY_FOR_COLLECTION, Status.SENT_TO_PHARMACY)
        self._completed(by=by, at=at)
        return True

    def cancel(self, by: str, at: datetime) -> bool:
        if self.status is Status.CANCELLED:
            return False
        if self.status is not Status.SUBMITTED:
            raise RequestClosed("A request can be cancelled only before the clinic starts "
                                "reviewing it. Please contact the clinic.")
        self._cancelled(by=by, at=at)
        return True

    def mark_delayed(self, at: datetime) -> bool:
        if self.delayed or not self.is_open or at < self.promised_by \
                or self.status in (Status.READY_FOR_COLLECTION, Status.SENT_TO_PHARMACY):
            return False
        self._delayed(by="system", at=at)
        return True

    def add_note(self, note: str, by: str, at: datetime) -> None:
        self._noted(note=_text("note", note, required=True), by=by, at=at)

    def _require(self, *allowed: Status) -> None:
        if self.status in CLOSED:
            raise RequestClosed(f"This request is {self.status.value.replace('_', ' ')}.")
        if self.status not in allowed:
            raise WrongStep(f"This request is {self.status.value.replace('_', ' ')}; that step "
                            "is not possible now.")

    # ---- events -----------------------------------------------------------------------------

    def _step(self, status: Status, at: datetime) -> None:
        self.status = status
        self.timeline.append((status.value, at))

    @event("ReviewStarted", topic=topic(CONTEXT, "PrescriptionRequest.ReviewStarted"))
    def _review_started(self, by: str, at: datetime) -> None:
        self.reviewer = by
        self._step(Status.UNDER_REVIEW, at)

    @event("Escalated", topic=topic(CONTEXT, "PrescriptionRequest.Escalated"))
    def _escalated(self, note: str, by: str, at: datetime) -> None:
        self.queue = Queue.PRESCRIBER
        self.internal_notes.append({"note": note, "by": by, "at": at})
        if self.status is Status.UNDER_REVIEW:
            self._step(Status.SUBMITTED, at)

    @event("Approved", topic=topic(CONTEXT, "PrescriptionRequest.Approved"))
    def _approved(self, by: str, at: datetime) -> None:
        self.reviewer = by
        self._step(Status.APPROVED, at)

    @event("Rejected", topic=topic(CONTEXT, "PrescriptionRequest.Rejected"))
    def _rejected(self, reason: str, explanation: str, by: str, at: datetime) -> None:
        self.rejection_reason, self.explanation = RejectionReason(reason), explanation
        self._step(Status.REJECTED, at)

    @event("ReadyForCollection", topic=topic(CONTEXT, "PrescriptionRequest.ReadyForCollection"))
    def _ready(self, by: str, at: datetime) -> None:
        self._step(Status.READY_FOR_COLLECTION, at)

    @event("SentToPharmacy", topic=topic(CONTEXT, "PrescriptionRequest.SentToPharmacy"))
    def _sent(self, handoff_id: UUID, by: str, at: datetime) -> None:
        self.handoff_failed = False
        self._step(Status.SENT_TO_PHARMACY, at)

    @event("HandoffFailed", topic=topic(CONTEXT, "PrescriptionRequest.HandoffFailed"))
    def _handoff_failed(self, handoff_id: UUID, reason: str, by: str, at: datetime) -> None:
        self.handoff_failed = True

    @event("Completed", topic=topic(CONTEXT, "PrescriptionRequest.Completed"))
    def _completed(self, by: str, at: datetime) -> None:
        self._step(Status.COMPLETED, at)

    @event("Cancelled", topic=topic(CONTEXT, "PrescriptionRequest.Cancelled"))
    def _cancelled(self, by: str, at: datetime) -> None:
        self._step(Status.CANCELLED, at)

    @event("Delayed", topic=topic(CONTEXT, "PrescriptionRequest.Delayed"))
    def _delayed(self, by: str, at: datetime) -> None:
        self.delayed = True

    @event("NoteAdded", topic=topic(CONTEXT, "PrescriptionRequest.NoteAdded"))
    def _noted(self, note: str, by: str, at: datetime) -> None:
        self.internal_notes.append({"note": note, "by": by, "at": at})


def _text(field: str, value: str | None, required: bool = False) -> str:
    words = (value or "").strip()
    if required and not words:
        raise InvalidInput([FieldError(field, "Write a few words.")])
    if len(words) > TEXT_MAX:
        raise InvalidInput([FieldError(field, f"Keep it under {TEXT_MAX} characters.")])
    return words


def promised_by(submitted: datetime, working_days: int, zone: Any) -> datetime:
    """The end of the clinic-local working day `working_days` after submission (Monday to
    Friday), in UTC: a Friday evening request promised for two working days is due Tuesday."""
    local = submitted.astimezone(zone)
    day, left = local.date(), working_days
    while left:
        day += timedelta(days=1)
        if day.weekday() < 5:
            left -= 1
    end = datetime(day.year, day.month, day.day, 18, 0, tzinfo=zone)
    return end.astimezone(submitted.tzinfo)
