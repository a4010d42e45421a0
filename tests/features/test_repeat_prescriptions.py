"""Step definitions for features/repeat_prescriptions.feature, through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.outbox import TEMPLATES
from tests.api.consultation_support import at
from tests.api.prescription_support import ask, medicines, pharmacy_patient, step
from tests.api.support import auth
from tests.api.visits_support import run_process_managers

scenarios("repeat_prescriptions.feature")

NAMES = [m.name for m in medicines()]


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("Grace's repeat medicines were imported from Riverside's clinical system")
def imported(client, container, sign_up, staff_member, scene):
    scene.update(pharmacy_patient(client, container, sign_up, staff_member, consent=False))


@given("Grace has agreed to repeat prescription requests")
def agreed(client, scene):
    from tests.api.support import give

    assert give(client, scene["patient"], "prescription_requests").status_code == 201


def listed(client: Any, scene: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = client.get("/v1/me/medications", headers=auth(scene["patient"]))
    assert response.status_code == 200, response.text
    return {m["name"]: m for m in response.json()["medications"]}


@when("Grace opens her repeat medicines")
def opens(client, scene):
    scene["list"] = listed(client, scene)


@then(parsers.parse('she can request "{first}" and "{second}"'))
def can_request(scene, first, second):
    assert {n for n, m in scene["list"].items() if m["requestable"]} == {first, second}


@then("she is told for each of the others why not:")
def told_why(scene, datatable):
    header, *rows = datatable
    assert header == ["medicine", "reason"]
    for name, reason in rows:
        entry = scene["list"][name]
        assert entry["reason"] == reason and entry["explanation"], entry


@when(parsers.parse('Grace requests "{medication}" to collect at the clinic'))
def requests(client, scene, medication):
    made = ask(client, scene["patient"], medication)
    assert made.status_code == 201, made.text
    scene["request"] = made.json()


@then("her request waits in the prescriber queue, not the coordinator's")
def in_prescriber_queue(client, scene):
    def queue(name: str, person: dict[str, str]) -> list[str]:
        response = client.get(f"/v1/staff/prescription-requests?clinic_id=riverside&queue={name}",
                              headers=auth(person))
        assert response.status_code == 200, response.text
        return [r["request_id"] for r in response.json()["requests"]]

    rid = scene["request"]["request_id"]
    assert queue("prescriber", scene["doctor"]) == [rid]
    assert queue("coordinator", scene["coordinator"]) == []


def told(mailbox: Any, scene: dict[str, Any], kind: str) -> None:
    message = mailbox.last(scene["patient"]["account_id"], kind)
    text = TEMPLATES[kind].body + TEMPLATES[kind].subject + (TEMPLATES[kind].sms or "")
    assert not any(name.split()[0] in text for name in NAMES), kind
    assert set(message) <= {"message_id", "kind", "account_id"}


@then("Grace is told her request needs a review, without the medicine being named")
def told_review(mailbox, scene):
    told(mailbox, scene, "prescription_review_needed")


@when("the doctor approves it")
def doctor_approves(client, scene):
    approved = step(client, scene["doctor"], scene["request"]["request_id"], "approve")
    assert approved.status_code == 200, approved.text


def mine(client: Any, scene: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/v1/prescription-requests/{scene['request']['request_id']}",
                          headers=auth(scene["patient"]))
    assert response.status_code == 200, response.text
    scene["seen"] = response.text
    return dict(response.json())


@then("Grace sees her request as approved")
def sees_approved(client, scene):
    assert mine(client, scene)["status_words"] == "Approved"


@when(parsers.parse('the coordinator notes "{note}" and rejects it saying "{explanation}"'))
def rejects(client, scene, note, explanation):
    rid = scene["request"]["request_id"]
    assert step(client, scene["coordinator"], rid, "notes", {"note": note}).status_code == 200
    rejected = step(client, scene["coordinator"], rid, "reject",
                    {"reason_code": "needs_review", "explanation": explanation})
    assert rejected.status_code == 200, rejected.text


@then(parsers.parse('Grace sees that her request was not approved, with "{explanation}"'))
def sees_rejection(client, scene, explanation):
    request = mine(client, scene)
    assert request["status_words"] == "Not approved"
    assert request["explanation"] == explanation


@then(parsers.parse('nothing Grace can see mentions "{words}"'))
def nothing_mentions(client, mailbox, scene, words):
    assert words not in scene["seen"]
    everything = client.get("/v1/me/prescription-requests", headers=auth(scene["patient"]))
    assert words not in everything.text
    assert all(words not in str(m) for m in mailbox.messages())


@then(parsers.parse('Grace can request "{medication}" again'))
def can_again(client, scene, medication):
    assert ask(client, scene["patient"], medication).status_code == 201


@when("the coordinator reviews it, approves it and marks it ready to collect")
def coordinator_works(client, scene):
    for action in ("review", "approve", "ready"):
        done = step(client, scene["coordinator"], scene["request"]["request_id"], action)
        assert done.status_code == 200, (action, done.text)


@then("Grace is told it is ready to collect, without the medicine being named")
def told_ready(mailbox, scene):
    told(mailbox, scene, "prescription_ready")


@when("Grace collects it and the coordinator completes the request")
def completes(client, scene):
    done = step(client, scene["coordinator"], scene["request"]["request_id"], "complete")
    assert done.status_code == 200, done.text


@then("Grace's timeline shows received, being reviewed, approved, ready to collect and completed")
def timeline(client, scene):
    assert [t["words"] for t in mine(client, scene)["timeline"]] == [
        "Request received", "Being reviewed by the clinic", "Approved",
        "Ready to collect at the clinic", "Completed"]


@when(parsers.parse('Grace requests "{medication}" to collect at the clinic on Monday morning'))
def requests_monday(client, clock, scene, medication):
    assert clock.now.strftime("%A %H:%M") == "Monday 09:00"
    requests(client, scene, medication)


@then("she is promised an answer by Wednesday at 18:00")
def promised(scene):
    assert scene["request"]["promised_by_local"] == "25 November 2026 at 18:00 GMT"


@when("it is Wednesday at 19:00 and the request is still open")
def wednesday(client, container, clock, scene):
    at(client, clock, clock.now + timedelta(days=2, hours=10), scene["patient"])
    run_process_managers(container, clock)


@then("Grace's request is marked delayed and she is told, without the medicine being named")
def delayed(client, mailbox, scene):
    assert mine(client, scene)["delayed"] is True
    told(mailbox, scene, "prescription_delayed")


@given("Riverside lists Dockside Chemist, which collects prescriptions from a drop folder")
def dockside(client, scene):
    saved = client.put("/v1/admin/pharmacies/dockside", headers=auth(scene["admin"]), json={
        "name": "Dockside Chemist", "address": "5 Harbour Walk, Bristol", "postcode": "BS8 4RU",
        "phone": "+44 117 496 0001", "channel": "file", "endpoint": "dockside"})
    assert saved.status_code in (200, 201), saved.text
    found = client.get("/v1/pharmacies?q=dockside", headers=auth(scene["patient"]))
    assert [p["pharmacy_id"] for p in found.json()] == ["dockside"], found.text


@when(parsers.parse('Grace requests "{medication}" to be sent to Dockside Chemist'))
def to_pharmacy(client, scene, medication):
    made = ask(client, scene["patient"], medication, fulfilment="pharmacy",
               pharmacy_id="dockside")
    assert made.status_code == 201, made.text
    scene["request"] = made.json()


@when("the coordinator approves it")
def coordinator_approves(client, scene):
    approved = step(client, scene["coordinator"], scene["request"]["request_id"], "approve")
    assert approved.status_code == 200, approved.text


@then("the prescription reaches Dockside Chemist's folder")
def reaches(container, scene):
    import json

    assert container.pharmacy_handoffs.deliver_due() == 1
    drop = container.settings.data_dir / "pharmacy-drop" / "dockside"
    [written] = [json.loads(p.read_text()) for p in drop.glob("*.json")]
    assert written["request_id"] == scene["request"]["request_id"]


@then("Grace sees her request as sent to her pharmacy and is told, without the medicine being "
      "named")
def sent(client, mailbox, scene):
    assert mine(client, scene)["status_words"] == "Sent to your pharmacy"
    told(mailbox, scene, "prescription_sent")


@given("Ada is registered but Riverside has not imported her medicines yet")
def ada(client, sign_up, scene):
    scene["ada"] = sign_up(given_name="Ada")
    assert client.get("/v1/me/medications", headers=auth(scene["ada"])).json()[
        "medications"] == []


def medication_file(scene: dict[str, Any], review_date: str) -> str:
    return ("patient_id,medication_id,name,dose,quantity,issues_remaining,review_date,"
            "needs_review,controlled,min_days_between_issues,last_issued_on\n"
            f"{scene['ada']['account_id']},amlodipine,Amlodipine 5 mg tablets,One a day,"
            f"28 tablets,5,{review_date},no,no,,\n")


def import_file(client: Any, scene: dict[str, Any], content: str) -> Any:
    return client.post("/v1/admin/medication-import", headers=auth(scene["admin"]), json={
        "clinic_id": "riverside", "format": "csv", "content": content})


@when("Riverside's administrator imports a file with a mistake in Ada's review date")
def imports_bad(client, scene):
    scene["import"] = import_file(client, scene, medication_file(scene, "next spring"))


@then("the administrator is told which line and column to fix, and nothing is imported")
def told_where(client, scene):
    from tests.api.support import assert_problem, field_names

    assert field_names(assert_problem(scene["import"], 422)) == {"line 2.review_date"}
    assert client.get("/v1/me/medications", headers=auth(scene["ada"])).json()[
        "medications"] == []


@when("the administrator imports the corrected file")
def imports_good(client, scene):
    done = import_file(client, scene, medication_file(scene, "2027-03-01"))
    assert done.status_code == 200 and done.json()["changed"] == 1, done.text


@then("Ada sees her medicine and can request it")
def ada_can(client, scene):
    [medicine] = client.get("/v1/me/medications", headers=auth(scene["ada"])).json()[
        "medications"]
    assert medicine["name"] == "Amlodipine 5 mg tablets" and medicine["requestable"] is True
