"""Step definitions for features/intake_forms.feature, driven through the HTTP API."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import assert_problem, auth, read
from tests.api.test_forms import form_path, save, submit, visit_with_forms
from tests.domain.test_forms import complete_answers

scenarios("intake_forms.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("Riverside asks GP patients to fill in the pre-consultation form before the visit")
def forms_asked(scene):
    scene["uploads"] = ()


@given("Grace has a GP appointment with Dr Patel on Monday at 09:00")
def booked(client, container, sign_up, staff_member, scene):
    scene.update(visit_with_forms(client, container, sign_up, staff_member,
                                  uploads=scene["uploads"]))


@when("Grace answers why she is coming and her symptoms on her phone and saves a draft")
def phone_draft(client, scene):
    scene["phone"] = client.get(form_path(scene["appointment_id"]),
                                headers=auth(scene["patient"])).json()
    saved = save(client, scene["patient"], scene["appointment_id"], complete_answers()[:2],
                 if_match=str(scene["phone"]["version"]))
    assert saved.status_code == 200, saved.text
    scene["phone"] = saved.json()


@then(parsers.parse("the appointment still needs the pre-consultation form, with {answered:d} "
                    "of {questions:d} questions answered"))
def still_needed(client, scene, answered, questions):
    outstanding = read(client, scene["patient"],
                       f"/v1/appointments/{scene['appointment_id']}/outstanding",
                       after=scene["booked"]).json()
    [form] = outstanding["forms"]
    assert (form["id"], form["status"], form["answered"], form["questions"]) == (
        "pre-consultation", "draft", answered, questions)


@when("Grace opens the form on her laptop")
def laptop_opens(client, scene):
    scene["laptop"] = client.get(form_path(scene["appointment_id"]),
                                 headers=auth(scene["patient"])).json()


@then("she sees the answers she gave on her phone")
def same_answers(scene):
    assert scene["laptop"]["questionnaire_response"]["item"] == complete_answers()[:2]
    assert scene["laptop"]["version"] == scene["phone"]["version"]


@when("she adds her allergies, medicines and family history and sends the form")
def laptop_sends(client, scene):
    scene["sent"] = submit(client, scene["patient"], scene["appointment_id"], complete_answers())


@then("the form is sent to the clinic")
def sent(scene):
    assert scene["sent"].status_code == 200, scene["sent"].text
    assert scene["sent"].json()["status"] == "submitted"


@then("the appointment no longer needs any form")
def nothing_needed(client, scene):
    outstanding = client.get(f"/v1/appointments/{scene['appointment_id']}/outstanding",
                             headers=auth(scene["patient"])).json()
    assert outstanding["forms"] == [] and outstanding["uploads"] == []


@then("a save from her phone's old copy is refused because the form has been sent")
def old_copy_refused(client, scene):
    stale = save(client, scene["patient"], scene["appointment_id"], complete_answers()[:2],
                 if_match=str(scene["phone"]["version"]))
    assert_problem(stale, 409)


@given("Grace has sent the pre-consultation form")
def grace_sent(client, scene):
    assert submit(client, scene["patient"], scene["appointment_id"],
                  complete_answers()).status_code == 200


@when("Dr Patel opens the pre-consultation view of Monday's appointment")
def doctor_opens(client, scene):
    scene["view"] = client.get(
        f"/v1/staff/appointments/{scene['appointment_id']}/pre-consultation",
        headers=auth(scene["doctor"]))
    assert scene["view"].status_code == 200, scene["view"].text


@then(parsers.parse('Dr Patel sees "{question}" answered "{words}"'))
def doctor_sees(scene, question, words):
    [form] = scene["view"].json()["forms"]
    assert [words] in [line["answers"] for line in form["answers"]
                       if line["question"] == question]


@then("the view is recorded in the record access log")
def recorded(container, scene):
    with psycopg.connect(container.database.owner_url) as conn:
        rows = conn.execute("SELECT actor, resource FROM carebridge.record_access"
                            " WHERE resource_id = %s", (UUID(scene["appointment_id"]),)).fetchall()
    assert rows == [(f"doctor:{scene['doctor']['account_id']}", "pre_consultation")]


@when("the receptionist at Riverside asks for the same view")
def reception_asks(client, staff_member, scene):
    scene["view"] = client.get(
        f"/v1/staff/appointments/{scene['appointment_id']}/pre-consultation",
        headers=auth(staff_member("reception")))


@then("the receptionist is told they do not have access")
def reception_denied(scene):
    assert_problem(scene["view"], 403)
