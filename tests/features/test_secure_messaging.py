"""Step definitions for features/secure_messaging.feature, driven through the HTTP API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.outbox import TEMPLATES
from tests.api.care_support import in_care_team, signed_in_again
from tests.api.message_support import (
    answer,
    my_threads,
    new_message_notices,
    queue,
    started,
    thread_as,
)
from tests.api.record_support import entered
from tests.api.support import assert_problem, auth

scenarios("secure_messaging.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {"texts": []}


def member(staff_member: Any, scene: dict[str, Any], role: str) -> dict[str, str]:
    """The scene's one staff member with this role at Riverside."""
    if role not in scene:
        scene[role] = staff_member(role)
    return dict(scene[role])


def mine(client: Any, scene: dict[str, Any]) -> dict[str, Any]:
    """Ada's conversation as her list shows it, once her view has the last write."""
    [thread] = my_threads(client, scene["ada"], scene["position"])
    assert thread["thread_id"] == scene["thread_id"], thread
    scene["texts"].append(json.dumps(thread))
    return thread


def asks(client: Any, scene: dict[str, Any], **options: Any) -> None:
    thread = started(client, scene["ada"], **options)
    scene["thread_id"], scene["position"] = thread["thread_id"], thread["position"]
    scene["thread"] = thread


def answers(client: Any, scene: dict[str, Any], staff: dict[str, str], words: str) -> None:
    answered = answer(client, staff, scene["thread_id"], words)
    assert answered.json()["state"] == "pending_patient", answered.text
    scene["answered"], scene["position"] = answered, answered.headers["CareBridge-Position"]


def ids(threads: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(t["thread_id"], t["state"]) for t in threads]


# ---- Background -------------------------------------------------------------------------------


@given("Ada is a patient at Riverside")
def ada(sign_up, scene):
    scene["ada"] = sign_up(given_name="Ada")


# ---- a question about a result ----------------------------------------------------------------


@given("Dr Patel, who cares for Ada, has released her HbA1c result")
def released_result(client, container, clock, staff_member, scene):
    patel = member(staff_member, scene, "doctor")
    in_care_team(container, clock, scene["ada"]["account_id"], patel["account_id"])
    written = entered(client, patel, scene["ada"]["account_id"], release_now=True)
    scene["record_id"] = written.json()["record_id"]


@when(parsers.parse('Ada asks "{words}" from the result itself'))
def asks_about_result(client, scene, words):
    asks(client, scene, category="lab_result", subject="My HbA1c result", body=words,
         context={"kind": "record", "id": scene["record_id"]}, clinic_id=None)
    assert scene["thread"]["team"] == "nurses"


@then("her question waits in the nursing team's queue, not reception's")
def in_nurses_queue(client, staff_member, scene):
    nurse, reception = member(staff_member, scene, "nurse"), member(staff_member, scene, "reception")
    assert ids(queue(client, nurse)) == [(scene["thread_id"], "open")]
    assert queue(client, reception) == []
    refused = client.get(f"/v1/staff/message-threads/{scene['thread_id']}", headers=auth(reception))
    assert_problem(refused, 403)


@then(parsers.parse('Ada sees that it is about her result and with "{team_words}"'))
def about_the_result(client, scene, team_words):
    thread = mine(client, scene)
    assert (thread["context_kind"], thread["context_id"]) == ("record", scene["record_id"])
    assert thread["team_words"] == team_words


@given(parsers.parse('Ada is told "{expectation}"'))
@then(parsers.parse('Ada is told "{expectation}"'))
def told_when(client, scene, expectation):
    thread = mine(client, scene)
    assert thread["expectation"] == expectation
    assert thread["expected_answer_by"] is not None


@when(parsers.parse('a nurse adds a note for colleagues: "{words}"'))
def nurse_notes(client, staff_member, scene, words):
    nurse = member(staff_member, scene, "nurse")
    noted = client.post(f"/v1/staff/message-threads/{scene['thread_id']}/notes",
                        headers=auth(nurse), json={"note": words})
    assert noted.status_code == 200, noted.text
    scene["note"] = words


@when(parsers.parse('the nurse answers "{words}"'))
def nurse_answers(client, staff_member, scene, words):
    answers(client, scene, member(staff_member, scene, "nurse"), words)


@then(parsers.parse('Ada is told "{subject}", without any detail'))
def told_of_message(container, mailbox, scene, subject):
    [notice] = new_message_notices(container, scene["ada"]["account_id"])
    assert TEMPLATES[notice["kind"]].subject == subject
    assert json.loads(notice["payload"]) == {"link": f"carebridge://messages/{scene['thread_id']}"}
    delivered = mailbox.last(scene["ada"]["account_id"], "new_message")
    assert set(delivered) <= {"message_id", "kind", "account_id", "link"}, delivered
    scene["texts"] += [notice["payload"], json.dumps(delivered)]


@then(parsers.parse('Ada reads the answer "{words}" from a "{role_words}"'))
def reads_answer(client, scene, words, role_words):
    detail = thread_as(client, scene["ada"], scene["thread_id"], after=scene["answered"])
    assert detail.status_code == 200, detail.text
    scene["texts"].append(detail.text)
    messages = detail.json()["messages"]
    first, last = messages[0], messages[-1]
    assert (first["author"], first["from_patient"]) == ("You", True)
    assert (last["body"], last["from_patient"], last["author_role"]) == (words, False, role_words)


@then(parsers.parse('nothing Ada can see mentions "{word}"'))
def nothing_mentions(client, mailbox, scene, word):
    assert scene["note"].count(word) == 1  # the note really said it
    ada_id = scene["ada"]["account_id"]
    for path in ("/v1/me/message-threads", f"/v1/patients/{ada_id}/message-threads",
                 f"/v1/message-threads/{scene['thread_id']}", "/v1/me/record-access"):
        response = client.get(path, headers=auth(scene["ada"]))
        assert response.status_code == 200, (path, response.text)
        scene["texts"].append(response.text)
    scene["texts"] += [json.dumps(m) for m in mailbox.messages()]
    assert all(word.lower() not in text.lower() for text in scene["texts"])


@then(parsers.parse('the conversation reads "{state_words}"'))
def conversation_reads(client, scene, state_words):
    thread = mine(client, scene)
    assert (thread["state"], thread["state_words"]) == ("pending_patient", state_words)
    assert thread["expected_answer_by"] is None


# ---- closing and reopening --------------------------------------------------------------------


@given(parsers.parse('Ada asked reception "{words}"'))
def asked_reception(client, staff_member, scene, words):
    member(staff_member, scene, "reception")
    asks(client, scene, category="appointment", subject="Before my appointment", body=words)
    assert scene["thread"]["team"] == "reception"


@given(parsers.parse('reception answered "{words}"'))
@when(parsers.parse('reception answers "{words}"'))
def reception_answers(client, staff_member, scene, words):
    answers(client, scene, member(staff_member, scene, "reception"), words)


def ada_changes(client: Any, scene: dict[str, Any], action: str) -> Any:
    """Ada closes or reopens the conversation."""
    return client.post(f"/v1/message-threads/{scene['thread_id']}/{action}",
                       headers=auth(scene["ada"]))


@when("Ada closes the conversation")
def closes(client, scene):
    closed = ada_changes(client, scene, "close")
    assert (closed.status_code, closed.json()["state"]) == (200, "closed"), closed.text


@then(parsers.parse('writing in it is refused: "{detail}"'))
def writing_refused(client, scene, detail):
    refused = client.post(f"/v1/message-threads/{scene['thread_id']}/messages",
                          headers=auth(scene["ada"]), json={"body": "One more thing"})
    assert assert_problem(refused, 409, "thread-closed")["detail"] == detail


@when("Ada reopens the conversation")
def reopens(client, scene):
    reopened = ada_changes(client, scene, "reopen")
    assert (reopened.status_code, reopened.json()["state"]) == (200, "reopened"), reopened.text


@then("it is back in reception's queue as reopened")
def back_in_queue(client, staff_member, scene):
    reception = member(staff_member, scene, "reception")
    assert ids(queue(client, reception)) == [(scene["thread_id"], "reopened")]


@then("reopening it is refused and Ada is told to start a new one")
def too_late(client, scene):
    problem = assert_problem(ada_changes(client, scene, "reopen"), 409, "thread-not-reopenable")
    assert "Please start a new one" in problem["detail"], problem


# ---- time passing, and late answers -----------------------------------------------------------


@when(parsers.parse("{hours:d} hours pass"))
@when(parsers.parse("{hours:d} more hours pass"))
def hours_pass(client, container, clock, scene, hours):
    time_passes(client, container, clock, scene, timedelta(hours=hours))


@when(parsers.parse("{days:d} days pass"))
def days_pass(client, container, clock, scene, days):
    time_passes(client, container, clock, scene, timedelta(days=days))


def time_passes(client: Any, container: Any, clock: Any, scene: dict[str, Any],
                delta: timedelta) -> None:
    """Moves the clock; sessions end when idle, so everyone signs in again."""
    clock.now += delta
    for name in ("ada", "doctor", "nurse", "reception", "support", "clinic_admin"):
        if name in scene:
            scene[name] = signed_in_again(client, container, scene[name])


@then("reception's queue shows nothing overdue")
def nothing_overdue(client, staff_member, scene):
    reception = member(staff_member, scene, "reception")
    assert queue(client, reception, "&overdue=true") == []
    assert ids(queue(client, reception)) != []  # the question is there, only not late


@then("reception's queue shows Ada's question as overdue")
def overdue(client, staff_member, scene):
    [late] = queue(client, member(staff_member, scene, "reception"), "&overdue=true")
    assert (late["thread_id"], late["overdue"]) == (scene["thread_id"], True)
    assert late["patient_id"] == scene["ada"]["account_id"]


# ---- a clinic's own routing -------------------------------------------------------------------


@given(parsers.parse('Riverside\'s administrator sends "{category}" questions to patient support'))
def routes_to_support(client, staff_member, scene, category):
    admin = member(staff_member, scene, "clinic_admin")
    routes = client.put("/v1/admin/clinics/riverside/message-routes", headers=auth(admin),
                        json={category: {"team": "support"}})
    assert routes.status_code == 200, routes.text
    assert routes.json()[category] == {"team": "support", "clinician_id": None}


@when(parsers.parse('Ada asks a general question: "{words}"'))
def asks_general(client, scene, words):
    asks(client, scene, category="general", subject="A question", body=words)


@then("it waits in patient support's queue, not reception's")
def in_support_queue(client, staff_member, scene):
    support, reception = member(staff_member, scene, "support"), member(staff_member, scene, "reception")
    assert scene["thread"]["team"] == "support"
    assert ids(queue(client, support)) == [(scene["thread_id"], "open")]
    assert queue(client, reception) == []


@then(parsers.parse('Ada sees that it is with "{team_words}"'))
def with_team(client, scene, team_words):
    assert mine(client, scene)["team_words"] == team_words
