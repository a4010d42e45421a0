"""Invariants of repeat prescriptions, proved by a state machine that drives the command handlers.

The machine drives `PrescriptionsApplication` in memory: patients request renewals (some
legal, some not: controlled medicines, reviews due, no issues left, too soon, duplicates,
unconfirmed doses, no consent, someone else's medicines), staff review, escalate, approve,
reject, hand over and complete them (with roles and clinics that may and may not), the
pharmacy reports deliveries and failures, the medication list changes, and time passes.
After every step:

- no double request: a medication is never in two requests that await a decision, and the
  medication list points each medication at the one open request that holds it;
- no illegal transition: the machine's own model judges each command first; an illegal one is
  refused with the domain's error and appends nothing, a legal one succeeds as modelled
  (the request's step, the issues left and the last issue date on the list);
- no lost event: every request and list replayed from its stored events equals the model, its
  version is its number of events, and the notification log holds exactly those, in order.

Settings: see tests/domain/invariants_support.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from commands.prescriptions import ConsentRequired, PrescriptionsApplication, RequestedItem
from domain.access import Actor
from domain.consents import ConsentType
from domain.errors import CareBridgeError, Forbidden, InvalidInput, NotFound
from domain.identity import Role
from domain.prescriptions import (
    AlreadyRequested,
    Fulfilment,
    Medication,
    MedicationList,
    PrescriptionRequest,
    RejectionReason,
    RequestClosed,
    WrongStep,
    medications_id,
)
from domain.schedule_types import ClinicInfo
from tests.domain.invariants_support import (
    CLINIC,
    MACHINE_SETTINGS,
    MIN_STEPS,
    Account,
    ClinicCare,
    Consents,
    EventLog,
    StepCounter,
    attempt,
    in_memory_store,
    person,
)

LONDON = ZoneInfo("Europe/London")
RIVERSIDE = ClinicInfo(CLINIC, "Riverside Health Centre", ("1 River Walk",), "London", "SE1 1AA",
                       "Europe/London")
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday
MIN_DAYS = 21
JUMPS = tuple(timedelta(hours=h) for h in (1, 1, 24, 24, 72, 8 * 24, 22 * 24))
MOSTLY = st.sampled_from((True, True, True, False))

GRACE, ADA = (person(Role.PATIENT, n).account_id for n in (0x6ACE, 0xADA))  # Ada never consented
PATIENTS = (GRACE, ADA)
DOCTOR = person(Role.DOCTOR, 0xD0C)
NURSE = person(Role.NURSE, 0x2125E)
COORDINATOR = person(Role.PRESCRIPTION_COORDINATOR, 0xC00D)
RECEPTION = person(Role.RECEPTION, 0xBEC1)
HILLSIDE_DOCTOR = person(Role.DOCTOR, 0xD0C2, clinic="hillside")
STAFF = (DOCTOR, NURSE, COORDINATOR, COORDINATOR, DOCTOR, RECEPTION, HILLSIDE_DOCTOR)
PHARMACY, CLOSED_PHARMACY = "high-street", "closed-pharmacy"

FAR = date(2027, 9, 1)
MEDICATIONS = (
    Medication("sertraline", "Sertraline", "50mg once a day", "28 tablets", 3, FAR, False, False),
    Medication("amlodipine", "Amlodipine", "5mg once a day", "28 tablets", 2, FAR, True, False),
    Medication("morphine", "Morphine sulfate", "10mg", "60 tablets", 5, FAR, True, True),
    Medication("atorvastatin", "Atorvastatin", "20mg at night", "28 tablets", 4,
               START.date() + timedelta(days=3), False, False),
    Medication("salbutamol", "Salbutamol inhaler", "2 puffs as needed", "1 inhaler", 1, FAR,
               False, False, min_days_between_issues=7),
)
MEDICATION_IDS = tuple(m.medication_id for m in MEDICATIONS)
AWAITING = ("submitted", "under_review")  # a decision is still to be made


@dataclass
class Request:
    """The model of one prescription request."""

    id: UUID
    patient: UUID
    medication_ids: list[str]
    fulfilment: Fulfilment
    queue: str
    status: str = "submitted"
    handoff_failed: bool = False
    handed_over: bool = False  # the pharmacy handoff was made (on approval)


class Pharmacies:
    def __init__(self) -> None:
        self.handoffs: list[UUID] = []

    def get(self, pharmacy_id: str) -> Any:
        return {PHARMACY: SimpleNamespace(active=True),
                CLOSED_PHARMACY: SimpleNamespace(active=False)}.get(pharmacy_id)

    def handoff(self, request_id: UUID, pharmacy_id: str, payload: dict[str, Any],
                at: datetime) -> list[Any]:
        self.handoffs.append(request_id)
        return []


STEPS = StepCounter()


class PrescriptionsMachine(RuleBasedStateMachine):
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        STEPS.machines += 1
        self.now = START
        self.care = ClinicCare()
        for patient in PATIENTS:
            self.care.identity.accounts[patient] = Account(patient, f"{patient.hex[-4:]}@example.org")
        consents = Consents({(GRACE, ConsentType.PRESCRIPTION_REQUESTS)})
        self.app = PrescriptionsApplication(
            in_memory_store(), self.care, consents, None,  # type: ignore[arg-type]
            lambda clinic_id: RIVERSIDE if clinic_id == CLINIC else None,
            turnaround_days=2, default_min_days=MIN_DAYS)
        self.pharmacies = Pharmacies()
        self.app.pharmacies = self.pharmacies
        self.log = EventLog(self.app)
        self.lists: dict[UUID, dict[str, Medication]] = {p: {} for p in PATIENTS}
        self.open: dict[UUID, dict[str, UUID]] = {p: {} for p in PATIENTS}
        self.requests_: dict[UUID, Request] = {}
        for patient in PATIENTS:
            for medication in MEDICATIONS:
                self.app.record_medication(DOCTOR, patient, medication, self.now)
                self.lists[patient][medication.medication_id] = medication
            assert self.log.appended() == {medications_id(patient): [
                "Created", *["MedicationRecorded"] * len(MEDICATIONS)]}

    # ---- the model's judgement ------------------------------------------------------------

    @property
    def today(self) -> date:
        return self.now.astimezone(LONDON).date()

    def requestable(self, medication: Medication) -> bool:
        """Written from the clinic's rules, not from `eligibility`."""
        last, wait = medication.last_issued_on, medication.min_days_between_issues or MIN_DAYS
        return not medication.controlled and medication.issues_remaining > 0 \
            and (medication.review_date is None or self.today < medication.review_date) \
            and (last is None or self.today >= last + timedelta(days=wait))

    def may_process(self, actor: Actor, request: Request, deciding: bool = False) -> bool:
        if actor.role not in (Role.DOCTOR, Role.NURSE, Role.PRESCRIPTION_COORDINATOR) \
                or CLINIC not in actor.clinic_ids:
            return False
        return not (deciding and request.queue == "prescriber"
                    and actor.role not in (Role.DOCTOR, Role.NURSE))

    def unless_processing(self, actor: Actor, request: Request,
                          deciding: bool = False) -> type[CareBridgeError] | None:
        return None if self.may_process(actor, request, deciding) else Forbidden

    def step(self, request: Request, allowed: tuple[str, ...]) -> type[CareBridgeError] | None:
        if request.status in ("rejected", "completed", "cancelled"):
            return RequestClosed
        return None if request.status in allowed else WrongStep

    def run(self, command: Any, refusal: type[CareBridgeError] | None, request: Request,
            names: Sequence[str], list_names: Sequence[str] = ()) -> bool:
        """Runs a command on a request; True when the model says it changed something."""
        appended: dict[UUID, list[str]] = {request.id: list(names) if refusal is None else []}
        appended[medications_id(request.patient)] = list(list_names) if refusal is None else []
        attempt(command, refusal, [self.log], {self.log: appended})
        return refusal is None and bool(names)

    # ---- the patient ----------------------------------------------------------------------

    @rule(target=requests, patient=st.sampled_from((GRACE, GRACE, GRACE, ADA)),
          who=st.sampled_from(("patient",) * 8 + ("another_patient", "doctor")),
          chosen=st.lists(st.sampled_from((*MEDICATION_IDS, "warfarin")), min_size=1,
                          max_size=2),
          confirmed=st.booleans(), fulfilment=st.sampled_from(Fulfilment), sensible=MOSTLY,
          pharmacy=st.sampled_from((None, PHARMACY, CLOSED_PHARMACY, "nowhere")))
    def request(self, patient: UUID, who: str, chosen: list[str], confirmed: bool,
                fulfilment: Fulfilment, sensible: bool, pharmacy: str | None) -> object:
        if sensible:  # no slip in the form: each medicine once, doses confirmed, a pharmacy
            chosen, confirmed = list(dict.fromkeys(chosen)), True
            pharmacy = PHARMACY if fulfilment is Fulfilment.PHARMACY else None
        actor = {"patient": Actor(patient, Role.PATIENT), "doctor": DOCTOR,
                 "another_patient": Actor(next(p for p in PATIENTS if p != patient),
                                          Role.PATIENT)}[who]
        medications, held = self.lists[patient], self.open[patient]
        refusal: type[CareBridgeError] | None = None
        if actor.account_id != patient:
            refusal = Forbidden
        elif len(set(chosen)) < len(chosen) or not confirmed \
                or (fulfilment is Fulfilment.PHARMACY) != (pharmacy is not None) \
                or pharmacy not in (None, PHARMACY) \
                or any(m not in medications or (m not in held
                                                and not self.requestable(medications[m]))
                       for m in chosen):
            refusal = InvalidInput
        elif patient != GRACE:
            refusal = ConsentRequired
        elif any(m in held for m in chosen):
            refusal = AlreadyRequested
        items = [RequestedItem(m, confirmed) for m in chosen]
        outcome = attempt(
            lambda: self.app.request(actor, patient, CLINIC, items, fulfilment, pharmacy, None,
                                     self.now),
            refusal, [self.log],
            lambda made: {self.log: {UUID(made.result["request_id"]): ["Created"],
                                     medications_id(patient): ["Requested"]}})
        if outcome is None:
            return multiple()
        request = Request(UUID(outcome.result["request_id"]), patient, list(chosen), fulfilment,
                          "prescriber" if any(medications[m].needs_review for m in chosen)
                          else "coordinator")
        self.requests_[request.id] = request
        held.update(dict.fromkeys(chosen, request.id))
        return request.id

    @rule(request_id=requests, who=st.sampled_from(("patient",) * 3 + ("another_patient",
                                                                        "doctor")))
    def cancel(self, request_id: UUID, who: str) -> None:
        request = self.requests_[request_id]
        actor = {"patient": Actor(request.patient, Role.PATIENT), "doctor": DOCTOR,
                 "another_patient": Actor(next(p for p in PATIENTS if p != request.patient),
                                          Role.PATIENT)}[who]
        refusal: type[CareBridgeError] | None = None
        if actor.account_id != request.patient:
            refusal = Forbidden
        elif request.status != "cancelled":
            refusal = RequestClosed if request.status != "submitted" else None
        changed = request.status != "cancelled"
        if self.run(lambda: self.app.cancel(actor, request_id, self.now), refusal, request,
                    ["Cancelled"] if changed else [], ["RequestClosed"] if changed else []):
            request.status = "cancelled"
            self.close(request)

    # ---- the clinic -----------------------------------------------------------------------

    @rule(request_id=requests, actor=st.sampled_from(STAFF), known=MOSTLY)
    def start_review(self, request_id: UUID, actor: Actor, known: bool = True) -> None:
        if not known:  # now and then, a request that does not exist
            self.process_an_unknown_request(actor)
            return
        request = self.requests_[request_id]
        refusal = self.unless_processing(actor, request)
        changes = refusal is None and request.status != "under_review"
        if changes:
            refusal = self.step(request, ("submitted",))
        if self.run(lambda: self.app.start_review(actor, request_id, self.now), refusal,
                    request, ["ReviewStarted"] if changes else []):
            request.status = "under_review"

    @rule(request_id=requests, actor=st.sampled_from(STAFF), written=MOSTLY)
    def escalate(self, request_id: UUID, actor: Actor, written: bool) -> None:
        request = self.requests_[request_id]
        refusal = self.unless_processing(actor, request)
        changes = refusal is None and request.queue != "prescriber"
        if changes:
            refusal = self.step(request, AWAITING) or (None if written else InvalidInput)
        note = "Blood pressure has been high; needs a review." if written else "  "
        if self.run(lambda: self.app.escalate(actor, request_id, note, self.now), refusal,
                    request, ["Escalated"] if changes else []):
            request.queue, request.status = "prescriber", "submitted"

    @rule(request_id=requests, actor=st.sampled_from(STAFF), written=MOSTLY)
    def add_note(self, request_id: UUID, actor: Actor, written: bool) -> None:
        request = self.requests_[request_id]
        refusal = self.unless_processing(actor, request) or (None if written else InvalidInput)
        self.run(lambda: self.app.add_note(actor, request_id, "Called the patient." if written
                                           else "", self.now),
                 refusal, request, ["NoteAdded"])

    @rule(request_id=requests, actor=st.sampled_from(STAFF))
    def approve(self, request_id: UUID, actor: Actor) -> None:
        request = self.requests_[request_id]
        refusal = self.unless_processing(actor, request, deciding=True)
        changes = refusal is None and request.status != "approved"
        if changes:
            refusal = self.step(request, AWAITING)
        collect = request.fulfilment is Fulfilment.COLLECTION
        if self.run(lambda: self.app.approve(actor, request_id, self.now), refusal, request,
                    ["Approved"] if changes else [],
                    (["Issued", "RequestClosed"] if collect else ["Issued"]) if changes else []):
            request.status, request.handed_over = "approved", not collect
            medications = self.lists[request.patient]
            for medication_id, holder in self.open[request.patient].items():
                if holder == request.id and medication_id in medications:
                    medication = medications[medication_id]
                    medications[medication_id] = replace(
                        medication, issues_remaining=max(medication.issues_remaining - 1, 0),
                        last_issued_on=self.today)
            if collect:
                self.close(request)

    @rule(request_id=requests, actor=st.sampled_from(STAFF),
          reason=st.sampled_from(RejectionReason), written=MOSTLY)
    def reject(self, request_id: UUID, actor: Actor, reason: RejectionReason,
               written: bool) -> None:
        request = self.requests_[request_id]
        refusal = self.unless_processing(actor, request, deciding=True)
        changes = refusal is None and request.status != "rejected"
        if changes:
            refusal = (None if written else InvalidInput) or self.step(request, AWAITING)
        explanation = "Please book a medication review first." if written else ""
        if self.run(lambda: self.app.reject(actor, request_id, reason, explanation, self.now),
                    refusal, request, ["Rejected"] if changes else [],
                    ["RequestClosed"] if changes else []):
            request.status = "rejected"
            self.close(request)

    @rule(request_id=requests, actor=st.sampled_from(STAFF))
    def ready_for_collection(self, request_id: UUID, actor: Actor) -> None:
        request = self.requests_[request_id]
        refusal = self.unless_processing(actor, request)
        changes = refusal is None and request.status != "ready_for_collection"
        if changes:
            refusal = WrongStep if request.fulfilment is Fulfilment.PHARMACY \
                else self.step(request, ("approved",))
        if self.run(lambda: self.app.ready_for_collection(actor, request_id, self.now), refusal,
                    request, ["ReadyForCollection"] if changes else []):
            request.status = "ready_for_collection"

    @rule(request_id=requests, actor=st.sampled_from(STAFF))
    def complete(self, request_id: UUID, actor: Actor) -> None:
        request = self.requests_[request_id]
        refusal = self.unless_processing(actor, request)
        changes = refusal is None and request.status != "completed"
        if changes:
            refusal = self.step(request, ("ready_for_collection", "sent_to_pharmacy"))
        if self.run(lambda: self.app.complete(actor, request_id, self.now), refusal, request,
                    ["Completed"] if changes else []):
            request.status = "completed"

    def process_an_unknown_request(self, actor: Actor) -> None:
        refusal = NotFound if actor.role is not Role.RECEPTION else Forbidden
        attempt(lambda: self.app.start_review(actor, uuid4(), self.now), refusal, [self.log])

    # ---- the pharmacy ---------------------------------------------------------------------

    @rule(request_id=requests, approve=MOSTLY)
    def the_clinic_moves_it_on(self, request_id: UUID, approve: bool) -> None:
        """The next step of the request's life, by a doctor: so that the machine reaches the
        far end of the workflow as often as the start."""
        status = self.requests_[request_id].status
        if status == "submitted":
            self.start_review(request_id, DOCTOR)
        elif status == "under_review" and approve:
            self.approve(request_id, DOCTOR)
        elif status == "under_review":
            self.reject(request_id, DOCTOR, RejectionReason.NEEDS_REVIEW, written=True)
        elif status == "approved":
            self.ready_for_collection(request_id, DOCTOR)
            self.pharmacy_reports(request_id, delivered=approve)
        else:
            self.complete(request_id, DOCTOR)

    @rule(request_id=requests, delivered=st.booleans())
    def pharmacy_reports(self, request_id: UUID, delivered: bool) -> None:
        """The handoff dispatcher's callbacks, for requests that were handed over."""
        request = self.requests_[request_id]
        if not request.handed_over:
            return
        handoff_id = uuid4()
        if delivered:
            changes = request.status == "approved"
            if self.run(lambda: self.app.handed_off(request_id, handoff_id, self.now), None,
                        request, ["SentToPharmacy"] if changes else [],
                        ["RequestClosed"] if changes else []):
                request.status, request.handoff_failed = "sent_to_pharmacy", False
                self.close(request)
        else:
            changes = request.status == "approved" and not request.handoff_failed
            if self.run(lambda: self.app.handoff_dead(request_id, handoff_id, "timed out",
                                                      self.now),
                        None, request, ["HandoffFailed"] if changes else []):
                request.handoff_failed = True

    # ---- the medication list --------------------------------------------------------------

    @rule(patient=st.sampled_from(PATIENTS), index=st.integers(0, len(MEDICATIONS) - 1),
          issues=st.integers(0, 3), review_in_days=st.sampled_from((None, -40, -1, 5, 300)),
          actor=st.sampled_from((DOCTOR, DOCTOR, COORDINATOR, COORDINATOR, RECEPTION,
                                 HILLSIDE_DOCTOR)))
    def record_medication(self, patient: UUID, index: int, issues: int,
                          review_in_days: int | None, actor: Actor) -> None:
        base = MEDICATIONS[index]
        review = None if review_in_days is None else self.today + timedelta(days=review_in_days)
        medication = replace(base, issues_remaining=issues, review_date=review)
        current = self.lists[patient].get(base.medication_id)
        kept = replace(medication, last_issued_on=current.last_issued_on) if current \
            else medication
        refusal = None if actor in (DOCTOR, COORDINATOR) else Forbidden
        changes = refusal is None and kept != current
        attempt(lambda: self.app.record_medication(actor, patient, medication, self.now),
                refusal, [self.log],
                {self.log: {medications_id(patient): ["MedicationRecorded"] if changes else []}})
        if changes:
            self.lists[patient][base.medication_id] = kept

    @rule(patient=st.sampled_from(PATIENTS), medication_id=st.sampled_from(MEDICATION_IDS),
          now_and_then=st.sampled_from((False, False, False, True)))
    def stop_medication(self, patient: UUID, medication_id: str, now_and_then: bool) -> None:
        if not now_and_then:
            return
        known = medication_id in self.lists[patient]
        attempt(lambda: self.app.stop_medication(DOCTOR, patient, medication_id, self.now),
                None if known else NotFound, [self.log],
                {self.log: {medications_id(patient): ["MedicationStopped"] if known else []}})
        self.lists[patient].pop(medication_id, None)

    @rule(jump=st.sampled_from(JUMPS))
    def time_passes(self, jump: timedelta) -> None:
        self.now += jump

    def close(self, request: Request) -> None:
        self.open[request.patient] = {m: r for m, r in self.open[request.patient].items()
                                      if r != request.id}

    # ---- invariants -----------------------------------------------------------------------

    @invariant()
    def count_step(self) -> None:
        STEPS.checks += 1

    @invariant()
    def requests_replay_as_modelled(self) -> None:
        for request in self.requests_.values():
            stored = self.log.replayed(request.id)
            assert isinstance(stored, PrescriptionRequest)
            assert (stored.status.value, stored.queue.value, stored.handoff_failed,
                    stored.medication_ids, stored.fulfilment) == (
                request.status, request.queue, request.handoff_failed, request.medication_ids,
                request.fulfilment), request

    @invariant()
    def lists_replay_as_modelled(self) -> None:
        for patient in PATIENTS:
            stored = self.log.replayed(medications_id(patient))
            assert isinstance(stored, MedicationList)
            assert stored.medications == self.lists[patient]
            assert stored.open_requests == self.open[patient]
            assert all(m.issues_remaining >= 0 for m in stored.medications.values())

    @invariant()
    def no_medication_is_in_two_open_requests(self) -> None:
        """Checked on the requests and lists as stored, not on the model."""
        for patient in PATIENTS:
            held = self.log.replayed(medications_id(patient)).open_requests
            awaiting: dict[str, UUID] = {}
            for request_id in self.requests_:
                stored = self.log.replayed(request_id)
                if stored.patient_id != patient:
                    continue
                if stored.status.value in AWAITING:
                    for medication_id in stored.medication_ids:
                        assert awaiting.setdefault(medication_id, stored.id) == stored.id
                        assert held[medication_id] == stored.id
            for request_id in held.values():
                stored = self.log.replayed(request_id)
                assert stored.status.value in AWAITING or (
                    stored.status.value == "approved"
                    and stored.fulfilment is Fulfilment.PHARMACY)

    @invariant()
    def nothing_lost_from_the_log(self) -> None:
        self.log.check_totals()


def test_repeat_prescriptions_keep_their_invariants() -> None:
    before = STEPS.steps
    run_state_machine_as_test(PrescriptionsMachine, settings=MACHINE_SETTINGS)
    print(f"PrescriptionsMachine: {STEPS.steps - before} steps")  # shown with -s
    assert STEPS.steps - before >= MIN_STEPS, STEPS
