"""Intake forms through the API: publishing versions, what a visit asks for, drafts resumed on
another device with a version check, submission with every error at once, what is still
outstanding, preparation reminders, and the clinician's pre-consultation view."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from tests.api.care_support import authorise_proxy
from tests.api.support import assert_problem, auth, field_names, read
from tests.api.visits_support import MONDAY_NINE, book, open_riverside, run_process_managers
from tests.domain.test_forms import complete_answers

FORM = "pre-consultation"
PRIVATE_WORDS = "my private words"


def ask_before_visits(client: Any, admin: dict[str, str], forms: list[str],
                      uploads: list[str], type_id: str = "gp-in-person") -> None:
    done = client.put(f"/v1/admin/consultation-types/{type_id}/requirements",
                      headers=auth(admin), json={"forms": forms, "uploads": uploads})
    assert done.status_code == 200, done.text


def form_path(appointment_id: str, suffix: str = "") -> str:
    return f"/v1/appointments/{appointment_id}/forms/{FORM}{suffix}"


def answers(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "QuestionnaireResponse", "item": items}


def save(client: Any, person: dict[str, str], appointment_id: str, items: list[dict[str, Any]],
         if_match: str | None = None) -> Any:
    headers = auth(person) | ({"If-Match": if_match} if if_match is not None else {})
    return client.put(form_path(appointment_id, "/draft"), headers=headers, json=answers(items))


def submit(client: Any, person: dict[str, str], appointment_id: str,
           items: list[dict[str, Any]], key: str | None = None) -> Any:
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.post(form_path(appointment_id, "/submit"), headers=headers, json=answers(items))


def visit_with_forms(client: Any, container: Any, sign_up: Any, staff_member: Any,
                     uploads: tuple[str, ...] = ("referral_letter",)) -> dict[str, Any]:
    """Riverside asks GP patients for the pre-consultation form (and uploads); Grace books."""
    riverside = open_riverside(container, staff_member)
    admin = staff_member("clinic_admin")
    ask_before_visits(client, admin, [FORM], list(uploads))
    grace = sign_up(given_name="Grace")
    booked = book(client, grace, riverside["doctor"], MONDAY_NINE)
    return {"patient": grace, "doctor": riverside["doctor"], "admin": admin,
            "appointment_id": booked.json()["appointment_id"], "booked": booked}


@pytest.fixture
def visit(client, container, sign_up, staff_member) -> dict[str, Any]:
    return visit_with_forms(client, container, sign_up, staff_member)


def test_the_default_form_is_published_and_anyone_signed_in_reads_it(client, sign_up):
    form = client.get(f"/v1/forms/{FORM}", headers=auth(sign_up()))
    assert form.status_code == 200, form.text
    assert form.json()["resourceType"] == "Questionnaire" and form.json()["version"] == "1"
    assert form.headers["etag"] == '"1"'
    assert_problem(client.get(f"/v1/forms/{FORM}"), 401)
    assert_problem(client.get("/v1/forms/no-such-form", headers=auth(sign_up())), 404)


def test_an_administrator_publishes_a_new_version_and_a_bad_one_is_refused_whole(
        client, staff_member):
    admin = staff_member("clinic_admin")
    published = client.put("/v1/admin/forms/travel", headers=auth(admin), json={
        "resourceType": "Questionnaire", "title": "Travel", "item": [
            {"linkId": "abroad", "type": "boolean", "text": "Have you been abroad lately?"}]})
    assert published.status_code == 200, published.text
    assert published.json() == {"form_id": "travel", "version": 1, "title": "Travel"}
    refused = client.put("/v1/admin/forms/travel", headers=auth(admin), json={
        "resourceType": "Questionnaire", "item": [{"linkId": "x", "type": "url", "text": "?"}]})
    assert field_names(assert_problem(refused, 422)) == {"title", "item[0].type"}
    assert_problem(client.put("/v1/admin/forms/travel", headers=auth(staff_member("doctor")),
                              json={}), 403)


def test_a_draft_is_resumed_on_another_device_and_a_stale_save_is_refused(client, visit):
    grace, appointment_id = visit["patient"], visit["appointment_id"]
    fresh = client.get(form_path(appointment_id), headers=auth(grace))
    assert fresh.status_code == 200, fresh.text
    assert (fresh.json()["status"], fresh.json()["version"]) == ("not_started", 0)
    first = complete_answers()[:2]
    phone = save(client, grace, appointment_id, first, if_match=fresh.headers["etag"])
    assert phone.status_code == 200, phone.text
    assert phone.headers["cache-control"] == "no-store"
    laptop = client.get(form_path(appointment_id), headers=auth(grace)).json()
    assert laptop["status"] == "draft" and laptop["questionnaire_response"]["item"] == first
    assert laptop["questionnaire_response"]["status"] == "in-progress"
    assert (laptop["answered"], laptop["version"]) == (5, phone.json()["version"])
    on_laptop = save(client, grace, appointment_id, complete_answers()[:3],
                     if_match=str(laptop["version"]))
    assert on_laptop.status_code == 200, on_laptop.text
    stale = save(client, grace, appointment_id, [*first, {"linkId": "family"}],
                 if_match=str(laptop["version"]))
    problem = assert_problem(stale, 409, "concurrent-change")
    assert problem["extensions"]["current_version"] == on_laptop.json()["version"]
    import psycopg

    with psycopg.connect(client.app.state.container.database.url) as conn:
        reads = conn.execute("SELECT actor, patient_id::text, resource FROM"
                             " carebridge.record_access ORDER BY access_id").fetchall()
    # Reading saved answers (the laptop's read) is recorded; the empty form before is not.
    assert reads == [(f"patient:{grace['account_id']}", grace["account_id"], "form_response")]


def test_submission_names_every_wrong_answer_by_its_path_and_never_repeats_an_answer(
        client, visit):
    refused = submit(client, visit["patient"], visit["appointment_id"], [
        {"linkId": "reason", "item": [{"linkId": "reason.text", "answer": [
            {"valueString": PRIVATE_WORDS * 200}]}]},
        {"linkId": "symptoms", "item": [{"linkId": "symptoms.any",
                                         "answer": [{"valueInteger": 1}]}]}])
    problem = assert_problem(refused, 422)
    assert field_names(problem) == {"reason/reason.text", "symptoms/symptoms.any",
                                    "allergies/allergies.any", "medications/medications.any"}
    assert PRIVATE_WORDS not in refused.text
    state = client.get(form_path(visit["appointment_id"]), headers=auth(visit["patient"]))
    assert state.json()["status"] == "not_started"


def test_a_submitted_form_leaves_the_outstanding_list_and_is_final(client, visit):
    grace, appointment_id = visit["patient"], visit["appointment_id"]
    path = f"/v1/appointments/{appointment_id}/outstanding"
    before = read(client, grace, path, after=visit["booked"]).json()
    assert [(f["id"], f["status"], f["label"]) for f in before["forms"]] == [
        (FORM, "not_started", "Before your consultation")]
    assert [(u["id"], u["label"]) for u in before["uploads"]] == [
        ("referral_letter", "Referral letter")]
    save(client, grace, appointment_id, complete_answers()[:1])
    during = client.get(path, headers=auth(grace)).json()["forms"]
    assert (during[0]["status"], during[0]["answered"], during[0]["questions"]) == ("draft", 1, 7)
    sent = submit(client, grace, appointment_id, complete_answers(), key="submit-form-0001")
    assert sent.status_code == 200, sent.text
    assert sent.json()["questionnaire_response"]["status"] == "completed"
    again = submit(client, grace, appointment_id, complete_answers(), key="submit-form-0001")
    assert again.json()["version"] == sent.json()["version"]
    assert client.get(path, headers=auth(grace)).json()["forms"] == []
    assert_problem(save(client, grace, appointment_id, []), 409, "form-submitted")


def test_a_proxy_for_appointments_fills_in_the_form_and_staff_cannot(client, visit, sign_up,
                                                                      staff_member):
    daughter, neighbour = sign_up(given_name="Ann"), sign_up(given_name="Ned")
    authorise_proxy(client, visit["patient"], daughter, ["appointments"])
    authorise_proxy(client, visit["patient"], neighbour, ["prescriptions"])
    appointment_id = visit["appointment_id"]
    assert save(client, daughter, appointment_id, complete_answers()[:1]).status_code == 200
    assert_problem(save(client, neighbour, appointment_id, []), 404)
    assert_problem(save(client, visit["doctor"], appointment_id, []), 403)
    assert_problem(client.get(form_path(appointment_id), headers=auth(
        staff_member("reception"))), 403)


def test_a_form_the_visit_does_not_ask_for_cannot_be_filled(client, visit):
    other = f"/v1/appointments/{visit['appointment_id']}/forms/travel/draft"
    assert_problem(client.put(other, headers=auth(visit["patient"]), json=answers([])), 404)


def test_the_clinician_sees_the_answers_and_the_view_is_recorded(client, container, visit,
                                                                  staff_member):
    submit(client, visit["patient"], visit["appointment_id"], complete_answers())
    path = f"/v1/staff/appointments/{visit['appointment_id']}/pre-consultation"
    seen = client.get(path, headers=auth(visit["doctor"]))
    assert seen.status_code == 200, seen.text
    [form] = seen.json()["forms"]
    assert (form["status"], form["incomplete"], form["title"]) == (
        "submitted", False, "Before your consultation")
    lines = {line["link_id"]: line for line in form["answers"]}
    assert lines["symptoms/symptoms.severity"]["question"] == "How much do they trouble you?"
    assert lines["symptoms/symptoms.severity"]["answers"] == ["Moderate"]
    assert lines["symptoms/symptoms.any"]["answers"] == ["Yes"]
    assert lines["medications/medications.medication[1]/medications.medication.name"][
        "answers"] == ["Ibuprofen"]
    assert seen.json()["required_uploads"] == [{"document_type": "referral_letter",
                                                "label": "Referral letter"}]
    assert seen.json()["documents"] == []
    with psycopg.connect(container.database.owner_url) as conn:
        logged = conn.execute("SELECT actor, resource, resource_id FROM carebridge.record_access"
                              " WHERE patient_id = %s", (UUID(visit["patient"]["account_id"]),)
                              ).fetchall()
    assert logged == [(f"doctor:{visit['doctor']['account_id']}", "pre_consultation",
                       UUID(visit["appointment_id"]))]
    for role in ("reception", "nurse"):  # not in Grace's care team
        assert_problem(client.get(path, headers=auth(staff_member(role))), 403)


def test_a_draft_shows_as_incomplete_without_its_answers(client, visit):
    save(client, visit["patient"], visit["appointment_id"], complete_answers()[:2])
    seen = client.get(f"/v1/staff/appointments/{visit['appointment_id']}/pre-consultation",
                      headers=auth(visit["doctor"])).json()
    [form] = seen["forms"]
    assert (form["status"], form["incomplete"], form["answered"], form["answers"]) == (
        "draft", True, 5, [])


def planned(container: Any, appointment_id: str) -> list[Any]:
    with psycopg.connect(container.database.owner_url) as conn:
        return [row[0] for row in conn.execute(
            "SELECT not_before FROM carebridge.outbox WHERE about_id = %s AND kind ="
            " 'visit_preparation_reminder' AND withdrawn_at IS NULL ORDER BY not_before",
            (UUID(appointment_id),)).fetchall()]


def test_preparation_reminders_are_planned_and_withdrawn_once_nothing_is_missing(
        client, container, clock, sign_up, staff_member):
    visit = visit_with_forms(client, container, sign_up, staff_member, uploads=())
    run_process_managers(container, clock)
    assert planned(container, visit["appointment_id"]) == [
        MONDAY_NINE - timedelta(hours=72), MONDAY_NINE - timedelta(hours=24)]
    submit(client, visit["patient"], visit["appointment_id"], complete_answers())
    assert planned(container, visit["appointment_id"]) == []


def test_preparation_reminders_stay_while_an_upload_is_missing_and_go_with_a_cancellation(
        client, container, clock, visit):
    run_process_managers(container, clock)
    submit(client, visit["patient"], visit["appointment_id"], complete_answers())
    assert len(planned(container, visit["appointment_id"])) == 2
    cancelled = client.post(f"/v1/appointments/{visit['appointment_id']}/cancel",
                            headers=auth(visit["patient"]), json={"reason_code": "cannot_attend"})
    assert cancelled.status_code == 200, cancelled.text
    run_process_managers(container, clock)
    assert planned(container, visit["appointment_id"]) == []
    assert_problem(submit(client, visit["patient"], visit["appointment_id"], complete_answers()),
                   409, "appointment-not-open")


def test_requirements_name_only_published_forms_and_known_types(client, container,
                                                                 staff_member):
    admin = staff_member("clinic_admin")
    unknown_type = client.put("/v1/admin/consultation-types/no-such-type/requirements",
                              headers=auth(admin), json={"forms": [], "uploads": []})
    assert_problem(unknown_type, 404)
    open_riverside(container, staff_member)
    refused = client.put("/v1/admin/consultation-types/gp-in-person/requirements",
                         headers=auth(admin), json={"forms": ["nothing-here"],
                                                    "uploads": ["passport"]})
    assert_problem(refused, 400)
    unknown = client.put("/v1/admin/consultation-types/gp-in-person/requirements",
                         headers=auth(admin), json={"forms": ["nothing-here"], "uploads": []})
    assert field_names(assert_problem(unknown, 422)) == {"forms[0]"}
    assert_problem(client.put("/v1/admin/consultation-types/gp-in-person/requirements",
                              headers=auth(staff_member("doctor")),
                              json={"forms": [], "uploads": []}), 403)


def test_an_upload_waiting_for_review_completes_the_visit_and_the_clinician_sees_it(
        client, container, clock, visit):
    """What the documents context writes when an upload for the appointment completes (its
    row, then `withdraw_preparation_when_done` in the same transaction)."""
    from commands.reminders import withdraw_preparation_when_done

    run_process_managers(container, clock)
    submit(client, visit["patient"], visit["appointment_id"], complete_answers())
    appointment_id = UUID(visit["appointment_id"])
    with psycopg.connect(container.database.url) as conn, conn.transaction():
        conn.execute("INSERT INTO carebridge.documents (document_id, patient_id, clinic_id,"
                     " appointment_id, document_type, status, filename, created_at, updated_at)"
                     " VALUES (gen_random_uuid(), %s, 'riverside', %s, 'referral_letter',"
                     " 'pending_review', 'letter.pdf', %s, %s)",
                     (UUID(visit["patient"]["account_id"]), appointment_id, clock.now,
                      clock.now))
        done = withdraw_preparation_when_done(appointment_id, clock.now, with_documents=True)
        conn.execute(done.sql, done.params)
    assert planned(container, visit["appointment_id"]) == []
    outstanding = client.get(f"/v1/appointments/{appointment_id}/outstanding",
                             headers=auth(visit["patient"])).json()
    assert (outstanding["forms"], outstanding["uploads"]) == ([], [])
    seen = client.get(f"/v1/staff/appointments/{appointment_id}/pre-consultation",
                      headers=auth(visit["doctor"])).json()
    assert [(d["label"], d["status"], d["filename"]) for d in seen["documents"]] == [
        ("Referral letter", "pending_review", "letter.pdf")]
