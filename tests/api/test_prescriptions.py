"""Repeat prescriptions through the API: eligibility with reasons, requests, the review
workflow, queues with context, notifications without medicine names, delays."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.consultation_support import at
from tests.api.prescription_support import ask, pharmacy_patient, step
from tests.api.support import assert_problem, auth, field_names, give
from tests.api.visits_support import run_process_managers

MEDICINE_WORDS = ("Amlodipine", "Sertraline", "Salbutamol", "mg", "tablets")


@pytest.fixture
def rx(client, container, sign_up, staff_member) -> dict[str, Any]:
    return pharmacy_patient(client, container, sign_up, staff_member)


def test_the_eligible_list_says_why_each_other_medicine_cannot_be_requested(client, rx):
    listed = client.get("/v1/me/medications", headers=auth(rx["patient"]))
    assert listed.status_code == 200, listed.text
    by_id = {m["medication_id"]: m for m in listed.json()["medications"]}
    assert by_id["amlodipine"]["requestable"] and by_id["sertraline"]["requestable"]
    reasons = {m: by_id[m]["reason"] for m in by_id if not by_id[m]["requestable"]}
    assert reasons == {"salbutamol": "too_soon", "ramipril": "review_due",
                       "metformin": "needs_appointment", "atorvastatin": "no_issues_left",
                       "codeine": "controlled_drug"}
    assert by_id["salbutamol"]["requestable_from"] == "2026-12-18"
    assert "from 18 December 2026" in by_id["salbutamol"]["explanation"]
    assert "controlled medicine" in by_id["codeine"]["explanation"]
    assert "Book an appointment" in by_id["metformin"]["explanation"]


def test_every_wrong_field_is_named_at_once_and_nothing_is_saved(client, rx):
    refused = client.post("/v1/prescription-requests", headers=auth(rx["patient"]), json={
        "clinic_id": "nowhere", "fulfilment": "pharmacy", "pharmacy_id": "no-such-pharmacy",
        "items": [{"medication_id": "amlodipine", "dosage_confirmed": False},
                  {"medication_id": "codeine", "dosage_confirmed": True},
                  {"medication_id": "aspirin", "dosage_confirmed": True}]})
    problem = assert_problem(refused, 422)
    assert field_names(problem) == {"clinic_id", "pharmacy_id", "items[0].dosage_confirmed",
                                    "items[1].medication_id", "items[2].medication_id"}
    mine = client.get("/v1/me/prescription-requests", headers=auth(rx["patient"]))
    assert mine.json() == []


def test_the_first_request_asks_for_consent(client, container, sign_up, staff_member):
    rx = pharmacy_patient(client, container, sign_up, staff_member, consent=False)
    problem = assert_problem(ask(client, rx["patient"], "amlodipine"), 403, "consent-required")
    assert problem["extensions"]["consent_type"] == "prescription_requests"
    assert give(client, rx["patient"], "prescription_requests").status_code == 201
    assert ask(client, rx["patient"], "amlodipine").status_code == 201


def test_collection_at_the_clinic_from_request_to_completed(client, rx, mailbox):
    patient, coordinator = rx["patient"], rx["coordinator"]
    made = ask(client, patient, "amlodipine", note="I am away next week")
    assert made.status_code == 201, made.text
    request = made.json()
    assert request["status"] == "submitted" and request["status_words"] == "Request received"
    assert request["promised_by"] == "2026-11-25T18:00:00+00:00"  # two working days
    rid = request["request_id"]
    queue = client.get("/v1/staff/prescription-requests?clinic_id=riverside&queue=coordinator",
                       headers=auth(coordinator))
    assert queue.status_code == 200, queue.text
    [entry] = queue.json()["requests"]
    assert entry["request_id"] == rid and entry["patient_name"] == "Grace Lovelace"
    for action in ("review", "approve", "ready", "complete"):
        done = step(client, coordinator, rid, action)
        assert done.status_code == 200, (action, done.text)
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(patient)).json()
    assert [t["status"] for t in mine["timeline"]] == [
        "submitted", "under_review", "approved", "ready_for_collection", "completed"]
    kinds = [m["kind"] for m in mailbox.messages() if m["account_id"] == patient["account_id"]]
    assert "prescription_approved" in kinds and "prescription_ready" in kinds
    from commands.outbox import TEMPLATES

    for kind in ("prescription_approved", "prescription_ready", "prescription_rejected",
                 "prescription_sent", "prescription_delayed", "prescription_review_needed"):
        words = TEMPLATES[kind].body + (TEMPLATES[kind].sms or "")
        assert not any(w in words for w in MEDICINE_WORDS), kind
    listed = client.get("/v1/me/medications", headers=auth(patient)).json()["medications"]
    amlodipine = next(m for m in listed if m["medication_id"] == "amlodipine")
    assert amlodipine["issues_remaining"] == 4 and amlodipine["last_issued_on"] == "2026-11-23"
    assert amlodipine["reason"] == "too_soon"


def test_a_second_open_request_for_the_same_medicine_names_the_first(client, rx):
    first = ask(client, rx["patient"], "amlodipine").json()
    again = ask(client, rx["patient"], "amlodipine", "sertraline")
    problem = assert_problem(again, 409, "already-requested")
    assert problem["extensions"]["request_id"] == first["request_id"]
    assert first["request_id"] in problem["detail"]
    listed = client.get("/v1/me/medications", headers=auth(rx["patient"])).json()["medications"]
    assert next(m for m in listed if m["medication_id"] == "amlodipine")["reason"] == \
        "already_requested"


def test_a_retried_request_acts_once(client, rx):
    key = "3f1c2e0a-retry-prescription-0001"
    answers = [ask(client, rx["patient"], "amlodipine", key=key) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201]
    assert answers[0].json()["request_id"] == answers[1].json()["request_id"]
    assert len(client.get("/v1/me/prescription-requests", headers=auth(rx["patient"])).json()) == 1


def test_a_request_that_needs_review_goes_to_a_prescriber(client, rx, mailbox):
    made = ask(client, rx["patient"], "sertraline").json()
    rid = made["request_id"]
    coordinators = client.get("/v1/staff/prescription-requests?clinic_id=riverside&queue="
                              "coordinator", headers=auth(rx["coordinator"])).json()
    assert coordinators["requests"] == []
    prescribers = client.get("/v1/staff/prescription-requests?clinic_id=riverside&queue="
                             "prescriber", headers=auth(rx["doctor"])).json()
    assert [r["request_id"] for r in prescribers["requests"]] == [rid]
    mailbox.last(rx["patient"]["account_id"], "prescription_review_needed")
    assert_problem(step(client, rx["coordinator"], rid, "approve"), 403)
    approved = step(client, rx["doctor"], rid, "approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"


def test_a_rejection_gives_the_patient_its_explanation_never_the_internal_notes(client, rx):
    rid = ask(client, rx["patient"], "amlodipine").json()["request_id"]
    noted = step(client, rx["coordinator"], rid, "notes",
                 {"note": "Blood pressure readings missing since June"})
    assert noted.status_code == 200, noted.text
    context = client.get(f"/v1/staff/prescription-requests/{rid}",
                         headers=auth(rx["coordinator"]))
    assert context.status_code == 200, context.text
    assert context.json()["internal_notes"][0]["note"].startswith("Blood pressure")
    assert {m["medication_id"] for m in context.json()["medications"]} >= {"amlodipine"}
    refused = step(client, rx["coordinator"], rid, "reject", {"reason_code": "needs_review",
                   "explanation": "Please book a blood pressure check before we renew this."})
    assert refused.status_code == 200, refused.text
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"]))
    assert mine.json()["status"] == "rejected"
    assert mine.json()["explanation"].startswith("Please book a blood pressure check")
    assert "Blood pressure readings" not in mine.text and "internal_notes" not in mine.json()
    again = ask(client, rx["patient"], "amlodipine")
    assert again.status_code == 201, "a rejected request frees the medicine"


def test_the_patient_cancels_only_before_the_review_starts(client, rx):
    first = ask(client, rx["patient"], "amlodipine").json()["request_id"]
    cancelled = client.post(f"/v1/prescription-requests/{first}/cancel",
                            headers=auth(rx["patient"]))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    second = ask(client, rx["patient"], "amlodipine").json()["request_id"]
    step(client, rx["coordinator"], second, "review")
    assert_problem(client.post(f"/v1/prescription-requests/{second}/cancel",
                               headers=auth(rx["patient"])), 409, "request-closed")


def test_a_request_past_its_promised_date_is_marked_delayed_and_the_patient_told(
        client, container, clock, rx, mailbox):
    rid = ask(client, rx["patient"], "amlodipine").json()["request_id"]
    # Wednesday 19:00: past the promised 18:00.
    at(client, clock, clock.now + timedelta(days=2, hours=10), rx["patient"])
    run_process_managers(container, clock)
    assert container.prescriptions.mark_delayed(clock.now) == 0, "marked once only"
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"])).json()
    assert mine["delayed"] is True and mine["status"] == "submitted"
    mailbox.last(rx["patient"]["account_id"], "prescription_delayed")


def test_other_clinics_and_other_patients_see_nothing(client, rx, sign_up, staff_member):
    rid = ask(client, rx["patient"], "amlodipine").json()["request_id"]
    hillview = staff_member("prescription_coordinator", clinics=("hillview",))
    assert_problem(client.get(f"/v1/staff/prescription-requests/{rid}", headers=auth(hillview)),
                   403)
    assert_problem(client.get("/v1/staff/prescription-requests?clinic_id=riverside",
                              headers=auth(hillview)), 403)
    bob = sign_up(given_name="Bob")
    assert_problem(client.get(f"/v1/prescription-requests/{rid}", headers=auth(bob)), 403)
    assert_problem(client.get(f"/v1/patients/{rx['patient']['account_id']}/medications",
                              headers=auth(bob)), 403)
    assert_problem(client.get("/v1/staff/prescription-requests?clinic_id=riverside",
                              headers=auth(staff_member("reception"))), 403)


def test_a_pharmacy_request_is_handed_off_and_the_patient_told(client, container, rx, mailbox,
                                                              staff_member):
    import json

    admin = rx["admin"]
    saved = client.put("/v1/admin/pharmacies/dockside", headers=auth(admin), json={
        "name": "Dockside Chemist", "address": "5 Harbour Walk, Bristol", "postcode": "BS8 4RU",
        "phone": "+44 117 496 0001", "channel": "file", "endpoint": "dockside"})
    assert saved.status_code in (200, 201), saved.text
    made = ask(client, rx["patient"], "amlodipine", fulfilment="pharmacy", pharmacy_id="dockside")
    assert made.status_code == 201, made.text
    rid = made.json()["request_id"]
    approved = step(client, rx["coordinator"], rid, "approve")
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert container.pharmacy_handoffs.deliver_due() == 1
    drop = container.settings.data_dir / "pharmacy-drop" / "dockside"
    [written] = list(drop.glob("*.json"))
    sent = json.loads(written.read_text())
    assert sent["request_id"] == rid
    assert [i["medication_id"] for i in sent["prescription"]["items"]] == ["amlodipine"]
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"])).json()
    assert mine["status"] == "sent_to_pharmacy" and mine["status_words"] == \
        "Sent to your pharmacy"
    mailbox.last(rx["patient"]["account_id"], "prescription_sent")
    done = step(client, rx["coordinator"], rid, "complete")
    assert done.status_code == 200 and done.json()["status"] == "completed"


def test_a_handoff_outcome_lost_in_a_crash_is_caught_up(client, container, clock, rx):
    import psycopg

    client.put("/v1/admin/pharmacies/dockside", headers=auth(rx["admin"]), json={
        "name": "Dockside Chemist", "address": "5 Harbour Walk, Bristol", "postcode": "BS8 4RU",
        "phone": "+44 117 496 0001", "channel": "file", "endpoint": "dockside"})
    rid = ask(client, rx["patient"], "amlodipine", fulfilment="pharmacy",
              pharmacy_id="dockside").json()["request_id"]
    step(client, rx["coordinator"], rid, "approve")
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        # As if the process died after delivering, before telling the request.
        conn.execute("UPDATE carebridge.pharmacy_handoffs SET status = 'delivered',"
                     " delivered_at = now() WHERE request_id = %s", (rid,))
    assert container.prescriptions.reconcile_handoffs(clock.now) == 1
    assert container.prescriptions.reconcile_handoffs(clock.now) == 0
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"])).json()
    assert mine["status"] == "sent_to_pharmacy"


def test_a_dead_handoff_flags_the_request_in_the_queue(client, container, clock, rx):
    client.put("/v1/admin/pharmacies/dockside", headers=auth(rx["admin"]), json={
        "name": "Dockside Chemist", "address": "5 Harbour Walk, Bristol", "postcode": "BS8 4RU",
        "phone": "+44 117 496 0001", "channel": "file", "endpoint": "dockside"})
    rid = ask(client, rx["patient"], "amlodipine", fulfilment="pharmacy",
              pharmacy_id="dockside").json()["request_id"]
    step(client, rx["coordinator"], rid, "approve")
    from uuid import UUID, uuid4

    container.prescriptions.handoff_dead(UUID(rid), uuid4(), "HTTP 410", clock.now)
    queue = client.get("/v1/staff/prescription-requests?clinic_id=riverside",
                       headers=auth(rx["coordinator"])).json()["requests"]
    assert [(r["request_id"], r["handoff_failed"]) for r in queue] == [(rid, True)]
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"])).json()
    assert mine["status"] == "approved" and "410" not in str(mine)


def test_a_clinic_imports_medications_all_or_nothing(client, container, sign_up, staff_member):
    from tests.api.prescription_support import switch_on_prescriptions

    admin = switch_on_prescriptions(client, staff_member)
    ada = sign_up(given_name="Ada")
    header = ("patient_id,medication_id,name,dose,quantity,issues_remaining,review_date,"
              "needs_review,controlled,min_days_between_issues,last_issued_on\n")
    good = f"{ada['account_id']},amlodipine,Amlodipine 5 mg tablets,One a day,28 tablets,5," \
           "2027-03-01,no,no,,\n"
    bad = f"{ada['account_id']},ramipril,Ramipril 2.5 mg,One a day,28 capsules,2,1st March," \
          "maybe,no,,\n"
    refused = client.post("/v1/admin/medication-import", headers=auth(admin), json={
        "clinic_id": "riverside", "format": "csv", "content": header + good + bad})
    problem = assert_problem(refused, 422)
    assert {"line 3.review_date", "line 3.needs_review"} <= field_names(problem)
    assert client.get("/v1/me/medications", headers=auth(ada)).json()["medications"] == []
    imported = client.post("/v1/admin/medication-import", headers=auth(admin), json={
        "clinic_id": "riverside", "format": "csv", "content": header + good})
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"records": 1, "patients": 1, "changed": 1}
    again = client.post("/v1/admin/medication-import", headers=auth(admin), json={
        "clinic_id": "riverside", "format": "csv", "content": header + good})
    assert again.json()["changed"] == 0
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "courseOfTherapyType": {"coding": [{"code": "continuous"}]},
        "subject": {"reference": f"Patient/{ada['account_id']}"},
        "identifier": [{"value": "sertraline"}],
        "medicationCodeableConcept": {"text": "Sertraline 50 mg tablets"},
        "dosageInstruction": [{"text": "One in the morning"}],
        "dispenseRequest": {"quantity": {"value": 28, "unit": "tablet"},
                            "numberOfRepeatsAllowed": 3},
        "meta": {"tag": [{"code": "needs-review"}]}}}]}
    fhir = client.post("/v1/admin/medication-import", headers=auth(admin), json={
        "clinic_id": "riverside", "format": "fhir", "content": bundle})
    assert fhir.status_code == 200, fhir.text
    listed = {m["medication_id"]: m for m in
              client.get("/v1/me/medications", headers=auth(ada)).json()["medications"]}
    assert listed["sertraline"]["needs_review"] is True
    assert listed["amlodipine"]["requestable"] is True
    assert_problem(client.post("/v1/admin/medication-import", headers=auth(
        staff_member("doctor")), json={"clinic_id": "riverside", "format": "csv",
                                       "content": header + good}), 403)


def test_a_coordinator_sends_a_request_to_a_prescriber_and_the_patient_is_told(
        client, rx, mailbox):
    rid = ask(client, rx["patient"], "amlodipine").json()["request_id"]
    escalated = step(client, rx["coordinator"], rid, "escalate",
                     {"note": "Dose changed at the hospital last month"})
    assert escalated.status_code == 200 and escalated.json()["queue"] == "prescriber"
    mailbox.last(rx["patient"]["account_id"], "prescription_review_needed")
    assert_problem(step(client, rx["coordinator"], rid, "approve"), 403)
    assert step(client, rx["doctor"], rid, "approve").status_code == 200
    mine = client.get(f"/v1/prescription-requests/{rid}", headers=auth(rx["patient"]))
    assert "hospital" not in mine.text
