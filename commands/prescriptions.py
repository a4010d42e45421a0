"""Repeat prescriptions: medication history, eligibility, requests and the review workflow.

Each request is saved with its row in `carebridge.prescription_requests` (the queues read it),
the patient's medication list (which medications are in an open request), the patient's
notification (outbox) and, on approval for a pharmacy, the pharmacy handoff: all in one
transaction. Notifications never name a medication: "your repeat prescription request has
been approved" is all a lock screen shows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.care import CareAccessApplication
from commands.consents import ConsentsApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.feature_flags import FeatureFlagsApplication
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_retrying
from commands.outbox import Message, enqueue, local_when
from commands.record_access import record_access
from domain.access import (
    PRESCRIBERS,
    Action,
    Actor,
    ClinicResource,
    PatientResource,
    authorise,
    authorise_ever,
)
from domain.consents import ConsentType
from domain.errors import (
    Forbidden,
    NotFound,
    Rejections,
)
from domain.feature_flags import Feature
from domain.identity import Role
from domain.prescriptions import (
    Eligibility,
    Fulfilment,
    Medication,
    MedicationList,
    PrescriptionRequest,
    Queue,
    RejectionReason,
    Status,
    eligibility,
    medication_errors,
    medications_id,
    promised_by,
)

log = logging.getLogger("carebridge.prescriptions")

REQUESTS = "carebridge.prescription_requests"
MAX_ITEMS = 10

# What the patient is told at each step: no medication, dose or reason, ever.
NOTICE_OF = {
    Status.APPROVED: "prescription_approved",
    Status.REJECTED: "prescription_rejected",
    Status.READY_FOR_COLLECTION: "prescription_ready",
    Status.SENT_TO_PHARMACY: "prescription_sent",
}
WORDS = {
    Status.SUBMITTED: "Request received",
    Status.UNDER_REVIEW: "Being reviewed by the clinic",
    Status.APPROVED: "Approved",
    Status.REJECTED: "Not approved",
    Status.READY_FOR_COLLECTION: "Ready to collect at the clinic",
    Status.SENT_TO_PHARMACY: "Sent to your pharmacy",
    Status.COMPLETED: "Completed",
    Status.CANCELLED: "Cancelled by you",
}


class ConsentRequired(Forbidden):
    code = "consent-required"
    title = "Consent to repeat prescription requests is needed first"


class Pharmacies(Protocol):
    """The pharmacy directory and handoff (commands/pharmacy.py)."""

    def get(self, pharmacy_id: str) -> Any: ...

    def handoff(self, request_id: UUID, pharmacy_id: str, payload: dict[str, Any],
                at: datetime) -> list[Statement]: ...


@dataclass(frozen=True)
class RequestedItem:
    medication_id: str
    dosage_confirmed: bool


class PrescriptionsApplication(CareApplication):
    name = "prescriptions"

    def __init__(self, store: EventStoreSettings, care: CareAccessApplication,
                 consents: ConsentsApplication, feature_flags: FeatureFlagsApplication | None,
                 clinics: Callable[[str], Any], turnaround_days: int = 2,
                 default_min_days: int = 21) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.care, self.consents, self.feature_flags = care, consents, feature_flags
        self.clinics = clinics  # clinic_id -> ClinicInfo | None (the schedule's directory)
        self.turnaround_days, self.default_min_days = turnaround_days, default_min_days
        self.pharmacies: Pharmacies | None = None

    # ---- medication history -----------------------------------------------------------------

    def record_medication(self, actor: Actor, patient_id: UUID, medication: Medication,
                          at: datetime, source: str = "staff",
                          key: IdempotencyKey | None = None) -> Outcome:
        self._may_manage(actor, patient_id, at)

        def decide() -> tuple[dict[str, Any], list[Any]]:
            medications = self._medications(patient_id, actor, at)
            medications.record(medication, source, by=actor.ref, at=at)
            return {"patient_id": str(patient_id),
                    "medication_id": medication.medication_id}, [medications]

        return self._run(key, decide)

    def stop_medication(self, actor: Actor, patient_id: UUID, medication_id: str,
                        at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        self._may_manage(actor, patient_id, at)

        def decide() -> tuple[dict[str, Any], list[Any]]:
            medications = self._medications(patient_id, actor, at)
            if medication_id not in medications.medications:
                raise NotFound("This patient has no repeat medication with that id.")
            medications.stop(medication_id, by=actor.ref, at=at)
            return {"patient_id": str(patient_id), "medication_id": medication_id}, [medications]

        return self._run(key, decide)

    def import_medications(self, actor: Actor, clinic_id: str,
                           records: Sequence[tuple[UUID, Medication]], at: datetime,
                           source: str = "import") -> dict[str, int]:
        """An export from the clinic's system: all or nothing. Importing the same file again
        records nothing; a changed record is recorded as changed."""
        self.may_import(actor, clinic_id)
        errors = Rejections()
        for line, (patient_id, medication) in enumerate(records, start=1):
            if self.care.identity.find_account(patient_id) is None:
                errors.add(f"records[{line}].patient_id", "No patient has this id.")
            for error in medication_errors(medication):
                errors.add(f"records[{line}].{error.field}", error.message)
        errors.raise_if_any()
        by_patient: dict[UUID, list[Medication]] = {}
        for patient_id, medication in records:
            by_patient.setdefault(patient_id, []).append(medication)
        changed = 0
        lists = []
        for patient_id, medications in by_patient.items():
            medication_list = self._medications(patient_id, actor, at)
            for medication in medications:
                changed += medication_list.record(medication, source, by=actor.ref, at=at)
            if medication_list.pending_events:
                lists.append(medication_list)
        if lists:
            self.save_all(*lists)
        return {"records": len(records), "patients": len(by_patient), "changed": changed}

    @staticmethod
    def may_import(actor: Actor, clinic_id: str) -> None:
        authorise_ever(actor, Action.MEDICATIONS_MANAGE)
        if actor.role is not Role.CLINIC_ADMIN or clinic_id not in actor.clinic_ids:
            raise Forbidden("Only an administrator of this clinic can import its medication "
                            "lists.")

    def medications(self, actor: Actor, patient_id: UUID, at: datetime) -> list[dict[str, Any]]:
        """A patient's repeat medications, with what the patient may request now."""
        self._may_read(actor, patient_id, at)
        today = self._today(at, None)
        return [self._eligibility_view(e) for e in self._eligibility(patient_id, today)]

    # ---- the patient's request --------------------------------------------------------------

    def request(self, actor: Actor, patient_id: UUID, clinic_id: str,
                items: Sequence[RequestedItem], fulfilment: Fulfilment,
                pharmacy_id: str | None, note: str | None, at: datetime,
                key: IdempotencyKey | None = None) -> Outcome:
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.PRESCRIPTIONS_REQUEST, PatientResource(patient_id, relationship))
        clinic = self.clinics(clinic_id)
        errors = self._request_errors(patient_id, clinic, items, fulfilment, pharmacy_id, note,
                                      at)
        errors.raise_if_any()
        self._require_consent(patient_id)
        if self.feature_flags is not None:
            self.feature_flags.require(Feature.PRESCRIPTIONS, patient_id, clinic_id)
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            medications = self._medications(patient_id, actor, at)
            chosen = [medications.medications[i.medication_id] for i in items]
            queue = Queue.PRESCRIBER if any(m.needs_review for m in chosen) else Queue.COORDINATOR
            request = PrescriptionRequest(
                patient_id=patient_id, clinic_id=clinic_id,
                items=[{"medication_id": m.medication_id, "name": m.name, "dose": m.dose,
                        "quantity": m.quantity, "dosage_confirmed": True} for m in chosen],
                fulfilment=fulfilment.value, pharmacy_id=pharmacy_id,
                patient_note=(note or "").strip() or None, queue=queue.value,
                promised_by=promised_by(at, self.turnaround_days, clinic.zone),
                by=actor.ref, at=at)
            medications.requested(request.id, request.medication_ids, by=actor.ref, at=at)
            also = [_row(request, at)]
            if queue is Queue.PRESCRIBER:
                also += self._tell(request, "prescription_review_needed", at)
            return self._patient_view(request), [request, medications], also

        return self._run(key, decide)

    def _request_errors(self, patient_id: UUID, clinic: Any, items: Sequence[RequestedItem],
                        fulfilment: Fulfilment, pharmacy_id: str | None, note: str | None,
                        at: datetime) -> Rejections:
        """Every field of a request that needs fixing, at once."""
        errors = Rejections()
        if clinic is None:
            errors.add("clinic_id", "Choose your clinic from the clinic list.")
        self._item_errors(items, errors)
        if fulfilment is Fulfilment.PHARMACY:
            pharmacy = self.pharmacies.get(pharmacy_id) if self.pharmacies and pharmacy_id \
                else None
            if pharmacy is None or not getattr(pharmacy, "active", True):
                errors.add("pharmacy_id", "Choose a pharmacy from the pharmacy list, or collect "
                           "at the clinic.")
        elif pharmacy_id:
            errors.add("pharmacy_id", "Leave the pharmacy out when you collect at the clinic.")
        if note is not None and len(note) > 1000:
            errors.add("note", "Keep the note under 1000 characters.")
        current = {e.medication.medication_id: e
                   for e in self._eligibility(patient_id, self._today(at, clinic))}
        for n, item in enumerate(items):
            found = current.get(item.medication_id)
            if found is None:
                errors.add(f"items[{n}].medication_id", "This is not one of your repeat "
                           "medicines.")
            elif not found.requestable and found.open_request_id is None:
                errors.add(f"items[{n}].medication_id", found.explanation or "Not requestable.")
        return errors

    @staticmethod
    def _item_errors(items: Sequence[RequestedItem], errors: Rejections) -> None:
        if not items:
            errors.add("items", "Choose at least one medicine to request.")
        if len(items) > MAX_ITEMS:
            errors.add("items", f"Request at most {MAX_ITEMS} medicines at once.")
        seen: set[str] = set()
        for n, item in enumerate(items):
            if item.medication_id in seen:
                errors.add(f"items[{n}].medication_id", "This medicine is listed twice.")
            seen.add(item.medication_id)
            if not item.dosage_confirmed:
                errors.add(f"items[{n}].dosage_confirmed", "Confirm that you still take this "
                           "medicine as prescribed (same dose and how often).")

    def cancel(self, actor: Actor, request_id: UUID, at: datetime,
               key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.PRESCRIPTIONS_REQUEST)
        request = self._request(request_id)
        relationship = self.care.relationship(actor, request.patient_id, at)
        authorise(actor, Action.PRESCRIPTIONS_REQUEST,
                  PatientResource(request.patient_id, relationship))
        return self._change(key, request_id, actor, at,
                            lambda r: r.cancel(by=actor.ref, at=at), patient=True)

    def my_requests(self, actor: Actor, patient_id: UUID, at: datetime) -> list[dict[str, Any]]:
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.PRESCRIPTIONS_READ, PatientResource(patient_id, relationship))
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(f"SELECT request_id FROM {REQUESTS} WHERE patient_id = %s"
                                " ORDER BY submitted_at DESC LIMIT 100", (patient_id,)).fetchall()
        return [self._patient_view(self._request(row["request_id"])) for row in rows]

    def patient_request(self, actor: Actor, request_id: UUID, at: datetime) -> dict[str, Any]:
        authorise_ever(actor, Action.PRESCRIPTIONS_READ)
        request = self._request(request_id)
        relationship = self.care.relationship(actor, request.patient_id, at)
        if actor.role is Role.PATIENT:
            authorise(actor, Action.PRESCRIPTIONS_READ,
                      PatientResource(request.patient_id, relationship))
            return self._patient_view(request)
        raise Forbidden("Staff read requests from the prescription queues.")

    # ---- the clinic's side ------------------------------------------------------------------

    def start_review(self, actor: Actor, request_id: UUID, at: datetime,
                     key: IdempotencyKey | None = None) -> Outcome:
        self._may_process(actor, request_id)
        return self._change(key, request_id, actor, at,
                            lambda r: r.start_review(by=actor.ref, at=at))

    def escalate(self, actor: Actor, request_id: UUID, note: str, at: datetime,
                 key: IdempotencyKey | None = None) -> Outcome:
        self._may_process(actor, request_id)
        return self._change(key, request_id, actor, at,
                            lambda r: r.escalate(note, by=actor.ref, at=at),
                            notice="prescription_review_needed")

    def add_note(self, actor: Actor, request_id: UUID, note: str, at: datetime,
                 key: IdempotencyKey | None = None) -> Outcome:
        self._may_process(actor, request_id)

        def noted(request: PrescriptionRequest) -> bool:
            request.add_note(note, by=actor.ref, at=at)
            return True

        return self._change(key, request_id, actor, at, noted)

    def approve(self, actor: Actor, request_id: UUID, at: datetime,
                key: IdempotencyKey | None = None) -> Outcome:
        self._may_process(actor, request_id, deciding=True)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._request(request_id)
            if not current.approve(by=actor.ref, at=at):
                return self._staff_view(current), [], []
            medications = self._medications(current.patient_id, actor, at)
            medications.issued(current.id, self._today(at, self.clinics(current.clinic_id)),
                               by=actor.ref, at=at)
            also = [_row(current, at), *self._tell(current, "prescription_approved", at)]
            if current.fulfilment is Fulfilment.PHARMACY:
                also += self._handoff(current, actor, at)
            else:
                medications.request_closed(current.id, by=actor.ref, at=at)
            return self._staff_view(current), [current, medications], also

        return self._run(key, decide)

    def reject(self, actor: Actor, request_id: UUID, reason: RejectionReason,
               explanation: str, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        self._may_process(actor, request_id, deciding=True)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._request(request_id)
            if not current.reject(reason, explanation, by=actor.ref, at=at):
                return self._staff_view(current), [], []
            medications = self._medications(current.patient_id, actor, at)
            medications.request_closed(current.id, by=actor.ref, at=at)
            also = [_row(current, at), *self._tell(current, "prescription_rejected", at)]
            return self._staff_view(current), [current, medications], also

        return self._run(key, decide)

    def ready_for_collection(self, actor: Actor, request_id: UUID, at: datetime,
                             key: IdempotencyKey | None = None) -> Outcome:
        self._may_process(actor, request_id)
        return self._change(key, request_id, actor, at,
                            lambda r: r.ready_for_collection(by=actor.ref, at=at),
                            notice="prescription_ready")

    def complete(self, actor: Actor, request_id: UUID, at: datetime,
                 key: IdempotencyKey | None = None) -> Outcome:
        self._may_process(actor, request_id)
        return self._change(key, request_id, actor, at, lambda r: r.complete(by=actor.ref, at=at))

    def queue(self, actor: Actor, clinic_id: str, queue: Queue | None,
              at: datetime) -> list[dict[str, Any]]:
        """A clinic's open requests, oldest first, with their age and promised date."""
        authorise_ever(actor, Action.PRESCRIPTIONS_PROCESS)
        if clinic_id not in actor.clinic_ids:
            raise Forbidden("You can see the prescription queues of your own clinics only.")
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT request_id FROM {REQUESTS} WHERE clinic_id = %s"
                " AND (%s::text IS NULL OR queue = %s) AND status IN ('submitted',"
                " 'under_review', 'approved', 'ready_for_collection', 'sent_to_pharmacy')"
                " ORDER BY submitted_at LIMIT 500", (clinic_id, queue, queue)).fetchall()
        listed = []
        for row in rows:
            request = self._request(row["request_id"])
            listed.append(self._queue_entry(request, at))
        return listed

    def staff_request(self, actor: Actor, request_id: UUID, at: datetime) -> dict[str, Any]:
        """The request with its context: the patient's medications and earlier requests, and
        the internal notes."""
        request = self._may_process(actor, request_id)
        today = self._today(at, self.clinics(request.clinic_id))
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(f"SELECT request_id FROM {REQUESTS} WHERE patient_id = %s"
                                " AND request_id <> %s ORDER BY submitted_at DESC LIMIT 50",
                                (request.patient_id, request_id)).fetchall()
        history = [self._patient_view(self._request(r["request_id"])) for r in rows]
        record_access(self.factory.datastore, actor.ref,  # type: ignore[attr-defined]
                      request.patient_id, "prescription_request", request.id, at)
        return {**self._queue_entry(request, at), **self._staff_view(request),
                "medications": [self._eligibility_view(e)
                                for e in self._eligibility(request.patient_id, today)],
                "history": history}

    # ---- the pharmacy and time --------------------------------------------------------------

    def handed_off(self, request_id: UUID, handoff_id: UUID, at: datetime) -> None:
        """The pharmacy received it (callback of the handoff dispatcher; idempotent)."""
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._request(request_id)
            if not current.sent_to_pharmacy(handoff_id, by="system", at=at):
                return {}, [], []
            medications = self._medications(current.patient_id, None, at)
            medications.request_closed(current.id, by="system", at=at)
            return {}, [current, medications], [
                _row(current, at), *self._tell(current, "prescription_sent", at)]

        self._run(None, decide)

    def handoff_dead(self, request_id: UUID, handoff_id: UUID, reason: str,
                     at: datetime) -> None:
        """Every attempt failed: staff see it in the queue and the dead-letter view."""
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._request(request_id)
            if not current.handoff_failed_(handoff_id, reason, by="system", at=at):
                return {}, [], []
            return {}, [current], [_row(current, at)]

        self._run(None, decide)

    def reconcile_handoffs(self, now: datetime, limit: int = 200) -> int:
        """Catches up pharmacy handoffs whose delivery (or final failure) was recorded on the
        handoff but never reached the request (a crash between the two); returns how many."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            if conn.execute("SELECT to_regclass('carebridge.pharmacy_handoffs') IS NOT NULL"
                            " AS present").fetchone()["present"] is not True:
                return 0
            rows = conn.execute(
                f"SELECT h.request_id, h.handoff_id, h.status, h.last_error"
                f" FROM carebridge.pharmacy_handoffs h JOIN {REQUESTS} r USING (request_id)"
                " WHERE r.status = 'approved' AND (h.status = 'delivered'"
                " OR (h.status = 'dead' AND NOT r.handoff_failed)) LIMIT %s",
                (limit,)).fetchall()
        for row in rows:
            if row["status"] == "delivered":
                self.handed_off(row["request_id"], row["handoff_id"], now)
            else:
                self.handoff_dead(row["request_id"], row["handoff_id"],
                                  row["last_error"] or "unknown", now)
        return len(rows)

    def mark_delayed(self, now: datetime, limit: int = 200) -> int:
        """Marks open requests past their promised date as delayed and tells the patient."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT request_id FROM {REQUESTS} WHERE NOT delayed AND promised_by <= %s"
                " AND status IN ('submitted', 'under_review', 'approved') LIMIT %s",
                (now, limit)).fetchall()
        marked = 0
        for row in rows:
            def decide(request_id: UUID = row["request_id"],
                       ) -> tuple[dict[str, Any], list[Any], list[Statement]]:
                current = self._request(request_id)
                if not current.mark_delayed(now):
                    return {}, [], []
                return {}, [current], [_row(current, now),
                                       *self._tell(current, "prescription_delayed", now)]

            marked += bool(self._run(None, decide).result.get("changed"))
        return marked

    # ---- helpers ----------------------------------------------------------------------------

    def _change(self, key: IdempotencyKey | None, request_id: UUID, actor: Actor, at: datetime,
                change: Callable[[PrescriptionRequest], bool], patient: bool = False,
                notice: str | None = None) -> Outcome:
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._request(request_id)
            if not change(current):
                return self._view_for(current, patient), [], []
            touched: list[Any] = [current]
            if not current.is_open:
                medications = self._medications(current.patient_id, actor, at)
                if medications.request_closed(current.id, by=actor.ref, at=at):
                    touched.append(medications)
            also = [_row(current, at)] + (self._tell(current, notice, at) if notice else [])
            return self._view_for(current, patient), touched, also

        return self._run(key, decide)

    def _view_for(self, request: PrescriptionRequest, patient: bool) -> dict[str, Any]:
        return self._patient_view(request) if patient else self._staff_view(request)

    def _run(self, key: IdempotencyKey | None, decide: Any) -> Outcome:
        return run_retrying(self, self.idempotency, key, decide, "this request")

    def _handoff(self, request: PrescriptionRequest, actor: Actor,
                 at: datetime) -> list[Statement]:
        if self.pharmacies is None or request.pharmacy_id is None:
            raise NotFound("The pharmacy handoff is not configured.")
        account = self.care.identity.find_account(request.patient_id)
        payload = {
            "request_id": str(request.id), "clinic_id": request.clinic_id,
            "approved_by": actor.ref, "approved_at": at.isoformat(),
            "patient": {"id": str(request.patient_id),
                        "given_name": getattr(account, "given_name", None),
                        "family_name": getattr(account, "family_name", None),
                        "date_of_birth": str(getattr(account, "date_of_birth", "") or "")},
            "items": [{k: item[k] for k in ("medication_id", "name", "dose", "quantity")}
                      for item in request.items]}
        return self.pharmacies.handoff(request.id, request.pharmacy_id, payload, at)

    def _tell(self, request: PrescriptionRequest, kind: str, at: datetime) -> list[Statement]:
        account = self.care.identity.find_account(request.patient_id)
        if account is None:
            return []
        return enqueue(Message(kind, "email", account.id, account.email, {}), at,
                       about_id=request.id)

    def _require_consent(self, patient_id: UUID) -> None:
        if not self.consents.holds(patient_id, ConsentType.PRESCRIPTION_REQUESTS):
            text = self.consents.current_text(ConsentType.PRESCRIPTION_REQUESTS)
            raise ConsentRequired(
                "Before your first repeat prescription request, read and accept the consent to "
                "repeat prescription requests, then send the request again.",
                consent_type=ConsentType.PRESCRIPTION_REQUESTS.value,
                text_version=text.current_version)

    def _may_read(self, actor: Actor, patient_id: UUID, at: datetime) -> None:
        relationship = self.care.relationship(actor, patient_id, at)
        if actor.role is Role.PATIENT:
            authorise(actor, Action.PRESCRIPTIONS_READ, PatientResource(patient_id, relationship))
            return
        authorise_ever(actor, Action.MEDICATIONS_MANAGE)
        if not (relationship.care_team_clinics | relationship.patient_clinics) & actor.clinic_ids \
                and not relationship.break_glass:
            raise Forbidden("This patient is not known at your clinics.")

    def _may_manage(self, actor: Actor, patient_id: UUID, at: datetime) -> None:
        authorise_ever(actor, Action.MEDICATIONS_MANAGE)
        if actor.role is Role.PATIENT:
            raise Forbidden("Only clinic staff keep the medication list.")
        self._may_read(actor, patient_id, at)
        if self.care.identity.find_account(patient_id) is None:
            raise NotFound("No patient has this id.")

    def _may_process(self, actor: Actor, request_id: UUID,
                     deciding: bool = False) -> PrescriptionRequest:
        authorise_ever(actor, Action.PRESCRIPTIONS_PROCESS)
        request = self._request(request_id)
        authorise(actor, Action.PRESCRIPTIONS_PROCESS, ClinicResource(request.clinic_id))
        if deciding and request.queue is Queue.PRESCRIBER and actor.role not in PRESCRIBERS:
            raise Forbidden("This request needs a clinician's review: a doctor or a nurse "
                            "prescriber approves or rejects it.")
        return request

    def _medications(self, patient_id: UUID, actor: Actor | None,
                     at: datetime) -> MedicationList:
        try:
            found: MedicationList = self.repository.get(medications_id(patient_id))
            return found
        except AggregateNotFoundError:
            return MedicationList(patient_id=patient_id, by=actor.ref if actor else "system",
                                  at=at)

    def _eligibility(self, patient_id: UUID, today: date) -> list[Eligibility]:
        try:
            medications: MedicationList = self.repository.get(medications_id(patient_id))
        except AggregateNotFoundError:
            return []
        return [eligibility(m, today, medications.open_requests.get(m.medication_id),
                            self.default_min_days)
                for m in sorted(medications.medications.values(), key=lambda m: m.name.lower())]

    def _request(self, request_id: UUID) -> PrescriptionRequest:
        try:
            found: PrescriptionRequest = self.repository.get(request_id)
        except AggregateNotFoundError:
            raise NotFound("There is no such prescription request.") from None
        if not isinstance(found, PrescriptionRequest):
            raise NotFound("There is no such prescription request.")
        return found

    def _today(self, at: datetime, clinic: Any) -> date:
        zone = getattr(clinic, "zone", None) or UTC
        return at.astimezone(zone).date()

    def _eligibility_view(self, e: Eligibility) -> dict[str, Any]:
        m = e.medication
        return {"medication_id": m.medication_id, "name": m.name, "dose": m.dose,
                "quantity": m.quantity, "issues_remaining": m.issues_remaining,
                "review_date": m.review_date.isoformat() if m.review_date else None,
                "last_issued_on": m.last_issued_on.isoformat() if m.last_issued_on else None,
                "needs_review": m.needs_review, "controlled": m.controlled,
                "requestable": e.requestable, "reason": e.reason.value if e.reason else None,
                "explanation": e.explanation,
                "requestable_from": e.requestable_from.isoformat() if e.requestable_from
                else None,
                "open_request_id": str(e.open_request_id) if e.open_request_id else None}

    def _patient_view(self, r: PrescriptionRequest) -> dict[str, Any]:
        """What the patient sees: their request and its timeline, never the internal notes."""
        clinic = self.clinics(r.clinic_id)
        zone = getattr(clinic, "zone", None) or UTC
        return {
            "request_id": str(r.id), "patient_id": str(r.patient_id), "clinic_id": r.clinic_id,
            "status": r.status.value, "status_words": WORDS[r.status],
            "items": [{k: item[k] for k in ("medication_id", "name", "dose", "quantity")}
                      for item in r.items],
            "fulfilment": r.fulfilment.value, "pharmacy_id": r.pharmacy_id,
            "note": r.patient_note,
            "submitted_at": r.submitted_at.isoformat(),
            "promised_by": r.promised_by.isoformat(),
            "promised_by_local": local_when(r.promised_by, zone),
            "delayed": r.delayed,
            "rejection_reason": r.rejection_reason.value if r.rejection_reason else None,
            "explanation": r.explanation,
            "timeline": [{"status": status, "words": WORDS[Status(status)], "at": when.isoformat(),
                          "at_local": local_when(when, zone)} for status, when in r.timeline],
            "version": r.version,
        }

    def _staff_view(self, r: PrescriptionRequest) -> dict[str, Any]:
        return {**self._patient_view(r), "queue": r.queue.value,
                "handoff_failed": r.handoff_failed, "reviewer": r.reviewer,
                "internal_notes": [{"note": n["note"], "by": n["by"],
                                    "at": n["at"].isoformat()} for n in r.internal_notes]}

    def _queue_entry(self, r: PrescriptionRequest, at: datetime) -> dict[str, Any]:
        account = self.care.identity.find_account(r.patient_id)
        return {"request_id": str(r.id), "patient_id": str(r.patient_id),
                "patient_name": f"{account.given_name} {account.family_name}" if account
                else None,
                "queue": r.queue.value, "status": r.status.value, "delayed": r.delayed,
                "handoff_failed": r.handoff_failed,
                "medications": len(r.items), "submitted_at": r.submitted_at.isoformat(),
                "age_hours": round((at - r.submitted_at).total_seconds() / 3600, 1),
                "promised_by": r.promised_by.isoformat()}


def _row(r: PrescriptionRequest, at: datetime) -> Statement:
    return Statement(
        f"INSERT INTO {REQUESTS} (request_id, patient_id, clinic_id, queue, status, delayed,"
        " handoff_failed, submitted_at, promised_by, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (request_id) DO UPDATE SET"
        " queue = EXCLUDED.queue, status = EXCLUDED.status, delayed = EXCLUDED.delayed,"
        " handoff_failed = EXCLUDED.handoff_failed, updated_at = EXCLUDED.updated_at",
        (r.id, r.patient_id, r.clinic_id, r.queue.value, r.status.value, r.delayed,
         r.handoff_failed, r.submitted_at, r.promised_by, at))
