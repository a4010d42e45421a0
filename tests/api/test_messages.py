"""Secure messaging through the API: threads with their context routed to the right team, whose
turn it is, the answer time promised and the ones that are late, staff notes that stay with
staff, attachments, proxies, and the live feed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.exceptions import WebSocketDisconnect

from tests.api.care_support import authorise_proxy, in_care_team, signed_in_again
from tests.api.message_support import (
    answer,
    new_message_notices,
    queue,
    start,
    started,
    thread_as,
)
from tests.api.record_support import entered
from tests.api.support import assert_problem, auth, field_names

MARKER = "INTERNAL-5d2a-thread-note"


def test_a_question_about_a_result_goes_to_the_nurses_and_whose_turn_it_is_follows(
        client, container, clock, sign_up, staff_member):
    ada, doctor, nurse = sign_up(), staff_member("doctor"), staff_member("nurse")
    reception = staff_member("reception")
    in_care_team(container, clock, ada["account_id"], doctor["account_id"])
    record_id = entered(client, doctor, ada["account_id"], release_now=True).json()["record_id"]
    thread = started(client, ada, category="lab_result", subject="My HbA1c",
                     body="What does 48 mean for me?",
                     context={"kind": "record", "id": record_id})
    assert (thread["team"], thread["state"]) == ("nurses", "open")

    mine = client.get("/v1/me/message-threads", headers=auth(ada) | {
        "CareBridge-Wait-For": thread["position"]}).json()
    assert [(t["subject"], t["team_words"], t["context_id"]) for t in mine] == [
        ("My HbA1c", "The nursing team", record_id)]
    assert mine[0]["expectation"] == "The clinic usually answers within 2 days."
    assert mine[0]["expected_answer_by"] is not None
    assert [t["thread_id"] for t in queue(client, nurse)] == [thread["thread_id"]]
    assert queue(client, reception) == []
    assert_problem(client.get(f"/v1/staff/message-threads/{thread['thread_id']}",
                              headers=auth(reception)), 403)

    note = client.post(f"/v1/staff/message-threads/{thread['thread_id']}/notes",
                       headers=auth(nurse), json={"note": f"{MARKER} call her if anxious"})
    assert note.status_code == 200, note.text
    answered = answer(client, nurse, thread["thread_id"],
                      "It is a little high. Please book a review with the practice nurse.")
    assert answered.json()["state"] == "pending_patient"
    detail = thread_as(client, ada, thread["thread_id"], after=answered)
    assert detail.status_code == 200, detail.text
    assert [(m["author"], m["from_patient"]) for m in detail.json()["messages"]] == [
        ("You", True), ("Sam Staff", False)]
    assert detail.json()["messages"][1]["author_role"] == "Nurse"
    assert MARKER not in detail.text
    [notice] = new_message_notices(container, ada["account_id"])
    assert notice["kind"] == "new_message"
    assert "HbA1c" not in notice["payload"] and "high" not in notice["payload"]
    staff_view = client.get(f"/v1/staff/message-threads/{thread['thread_id']}",
                            headers=auth(nurse)).json()
    assert staff_view["notes"][0]["note"].startswith(MARKER)

    replied = client.post(f"/v1/message-threads/{thread['thread_id']}/messages",
                          headers=auth(ada), json={"body": "Thank you, booked."})
    assert replied.json()["state"] == "pending_clinic"


def test_a_closed_thread_is_reopened_within_thirty_days_and_late_answers_show(
        client, container, clock, sign_up, staff_member):
    ada, reception = sign_up(), staff_member("reception")
    thread = started(client, ada, category="appointment", subject="Wheelchair access",
                     body="Is the entrance step-free?")
    assert thread["team"] == "reception"
    assert queue(client, reception, "&overdue=true") == []
    clock.now += timedelta(hours=25)
    reception, ada = (signed_in_again(client, container, p) for p in (reception, ada))
    [late] = queue(client, reception, "&overdue=true")
    assert late["overdue"] is True and late["thread_id"] == thread["thread_id"]

    answer(client, reception, thread["thread_id"], "Yes, there is a ramp at the side door.")
    closed = client.post(f"/v1/message-threads/{thread['thread_id']}/close", headers=auth(ada))
    assert closed.json()["state"] == "closed"
    refused = client.post(f"/v1/message-threads/{thread['thread_id']}/messages",
                          headers=auth(ada), json={"body": "One more thing"})
    assert_problem(refused, 409, "thread-closed")
    reopened = client.post(f"/v1/message-threads/{thread['thread_id']}/reopen",
                           headers=auth(ada))
    assert reopened.json()["state"] == "reopened"
    assert [t["state"] for t in queue(client, reception)] == ["reopened"]
    client.post(f"/v1/message-threads/{thread['thread_id']}/close", headers=auth(ada))
    clock.now += timedelta(days=31)
    ada = signed_in_again(client, container, ada)
    too_late = client.post(f"/v1/message-threads/{thread['thread_id']}/reopen",
                           headers=auth(ada))
    assert_problem(too_late, 409, "thread-not-reopenable")


def test_a_follow_up_about_an_appointment_goes_to_its_clinician_only(
        client, container, sign_up, staff_member):
    from tests.api.visits_support import MONDAY_NINE, book, open_riverside

    doctor = open_riverside(container, staff_member)["doctor"]
    other_doctor = staff_member("doctor")
    ada = sign_up()
    appointment_id = book(client, ada, doctor, MONDAY_NINE).json()["appointment_id"]
    thread = started(client, ada, category="care_follow_up", subject="After my visit",
                     body="The rash is fading.",
                     context={"kind": "appointment", "id": appointment_id})
    assert thread["team"] == "clinician"
    assert [t["thread_id"] for t in queue(client, doctor)] == [thread["thread_id"]]
    assert queue(client, other_doctor) == []


def test_what_a_thread_is_about_and_its_attachments_must_be_the_patients_own(
        client, container, clock, sign_up, staff_member):
    ada, bob, doctor = sign_up(), sign_up(given_name="Bob"), staff_member("doctor")
    in_care_team(container, clock, bob["account_id"], doctor["account_id"])
    bobs = entered(client, doctor, bob["account_id"], release_now=True).json()["record_id"]
    hidden = entered(client, doctor, bob["account_id"], code="histology").json()["record_id"]
    for record_id in (bobs, hidden):
        refused = start(client, ada, category="lab_result",
                        context={"kind": "record", "id": record_id})
        assert field_names(assert_problem(refused, 422)) == {"context.id"}
    own_unreleased = start(client, bob, category="lab_result",
                           context={"kind": "record", "id": hidden})
    assert field_names(assert_problem(own_unreleased, 422)) == {"context.id"}
    attached = start(client, ada, attachments=["00000000-0000-4000-8000-0000000000e2"])
    assert field_names(assert_problem(attached, 422)) == {"attachments[0]"}
    empty = client.post("/v1/message-threads", headers=auth(ada), json={
        "category": "gossip", "subject": "", "body": "x"})
    assert_problem(empty, 400)
    assert client.get("/v1/me/message-threads", headers=auth(ada)).json() == []


def test_a_clinic_routes_categories_to_the_team_it_chooses(client, sign_up, staff_member):
    admin, support, ada = staff_member("clinic_admin"), staff_member("support"), sign_up()
    routes = client.put("/v1/admin/clinics/riverside/message-routes", headers=auth(admin),
                        json={"general": {"team": "support"}})
    assert routes.status_code == 200, routes.text
    assert routes.json()["general"] == {"team": "support", "clinician_id": None}
    assert routes.json()["billing"]["team"] == "support"
    bad = client.put("/v1/admin/clinics/riverside/message-routes", headers=auth(admin),
                     json={"billing": {"team": "clinician"}})
    assert field_names(assert_problem(bad, 422)) == {"billing.clinician_id"}
    thread = started(client, ada)
    assert thread["team"] == "support"
    assert [t["thread_id"] for t in queue(client, support)] == [thread["thread_id"]]


def test_a_carer_writes_for_the_person_they_help_only_with_the_messaging_scope(
        client, sign_up, staff_member):
    ada, carer, booker = sign_up(), sign_up(given_name="Grace"), sign_up(given_name="Tom")
    authorise_proxy(client, ada, carer, ["messaging"])
    authorise_proxy(client, ada, booker, ["appointments"])
    thread = started(client, carer, patient_id=ada["account_id"])
    theirs = client.get(f"/v1/patients/{ada['account_id']}/message-threads",
                        headers=auth(carer) | {"CareBridge-Wait-For": thread["position"]})
    assert [t["thread_id"] for t in theirs.json()] == [thread["thread_id"]]
    detail = thread_as(client, ada, thread["thread_id"]).json()
    assert detail["messages"][0]["author"] == "Grace Lovelace"
    assert_problem(start(client, booker, patient_id=ada["account_id"]), 403)
    assert_problem(thread_as(client, booker, thread["thread_id"]), 403)


def test_a_retried_start_opens_one_thread(client, sign_up):
    ada = sign_up()
    first = started(client, ada, key="start-thread-0001")
    second = started(client, ada, key="start-thread-0001")
    assert first["thread_id"] == second["thread_id"]
    assert len(client.get("/v1/me/message-threads", headers=auth(ada) | {
        "CareBridge-Wait-For": first["position"]}).json()) == 1


def test_connected_clients_hear_of_their_own_conversations_only(client, sign_up, staff_member):
    ada, bob, reception = sign_up(), sign_up(given_name="Bob"), staff_member("reception")
    adas = started(client, ada, category="appointment")
    bobs = started(client, bob, category="appointment")
    with client.websocket_connect("/v1/messages/live", headers=auth(ada)) as ada_live, \
            client.websocket_connect("/v1/messages/live", headers=auth(bob)) as bob_live, \
            client.websocket_connect("/v1/messages/live", headers=auth(reception)) as desk:
        for socket in (ada_live, bob_live, desk):
            assert socket.receive_json() == {"type": "ready"}
        answer(client, reception, bobs["thread_id"], "Yes.")
        answer(client, reception, adas["thread_id"], "Of course.")
        assert bob_live.receive_json() == {"type": "thread", "thread_id": bobs["thread_id"],
                                           "event": "message", "state": "pending_patient"}
        assert ada_live.receive_json()["thread_id"] == adas["thread_id"]
        assert [desk.receive_json()["thread_id"] for _ in range(2)] == [
            bobs["thread_id"], adas["thread_id"]]
    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect("/v1/messages/live") as anonymous:
        anonymous.receive_json()
    assert refused.value.code == 4401


def test_a_rebuild_of_the_patients_conversations_reproduces_them(
        client, container, sign_up, staff_member):
    import psycopg

    ada, reception = sign_up(), staff_member("reception")
    for n in range(3):
        thread = started(client, ada, category="appointment", subject=f"Question {n}")
        answer(client, reception, thread["thread_id"], f"Answer {n}")
        client.post(f"/v1/staff/message-threads/{thread['thread_id']}/notes",
                    headers=auth(reception), json={"note": "staff only"})
    runner = container.runner("patient_threads")
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        runner.catch_up(conn)

        def tables() -> dict[str, list[Any]]:
            return {t: sorted(conn.execute(f"SELECT * FROM views.{t}").fetchall(), key=repr)
                    for t in ("patient_threads", "patient_messages")}

        live = tables()
        assert len(live["patient_messages"]) == 6
        runner.rebuild(conn)
        assert tables() == live


def test_messaging_is_offered_only_where_the_clinic_has_switched_it_on(client, sign_up):
    ada = sign_up()
    refused = client.post("/v1/message-threads", headers=auth(ada), json={
        "category": "general", "subject": "Hello", "body": "Is anyone there?",
        "clinic_id": "riverside"})
    problem = assert_problem(refused, 403, "feature-not-available")
    assert "Secure messages" in problem["detail"]
    assert started(client, ada)["state"] == "open"
