"""Step definitions for features/video_consultation.feature, through the HTTP API and the
signaling WebSocket (frames only; tests/e2e/test_real_call.py makes a real call)."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.consultation_support import (
    ANSWER_SDP,
    OFFER_SDP,
    ORIGIN,
    START,
    at,
    eventually,
    join,
    next_frame,
    next_state,
    socket_path,
    switch_on_video,
)
from tests.api.support import assert_problem, auth, give
from tests.api.visits_support import book, open_riverside

scenarios("video_consultation.feature")

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def scene() -> Any:
    with ExitStack() as sockets:
        yield {"sockets": sockets, "frames": []}


def local(hh_mm: str) -> datetime:
    """A time on the appointment's day, in the clinic's zone."""
    return datetime.combine(START.astimezone(LONDON).date(), time.fromisoformat(hh_mm),
                            tzinfo=LONDON)


def view(client: Any, scene: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/v1/appointments/{scene['appointment_id']}/consultation",
                          headers=auth(scene["patient"]))
    assert response.status_code == 200, response.text
    return dict(response.json())


def open_socket(client: Any, scene: dict[str, Any], grant: dict[str, Any], name: str) -> Any:
    ws = scene["sockets"].enter_context(client.websocket_connect(socket_path(grant),
                                                                 headers=ORIGIN))
    next_frame(ws, "welcome")
    scene[name] = ws
    return ws


@given("Dr Patel sees patients at Riverside and offers video consultations")
def riverside(client, container, staff_member, scene):
    scene["doctor"] = open_riverside(container, staff_member)["doctor"]
    switch_on_video(client, staff_member)


@given("Amira has a video appointment with Dr Patel on Monday at 09:00")
def amiras_appointment(client, sign_up, scene):
    scene["patient"] = sign_up(given_name="Amira")
    booked = book(client, scene["patient"], scene["doctor"], START, type_id="video")
    scene["appointment_id"] = booked.json()["appointment_id"]
    assert START.astimezone(LONDON).strftime("%A %H:%M") == "Monday 09:00"


@given("Amira has agreed to video consultations")
@when("Amira accepts the consent to video consultations")
def consents(client, scene):
    assert give(client, scene["patient"]).status_code == 201


@when(parsers.parse("Amira joins at {hh_mm}"))
def amira_joins(client, clock, scene, hh_mm):
    at(client, clock, local(hh_mm), scene["patient"])
    scene["joined"] = join(client, scene)


@then(parsers.parse("Amira is told she is early and that the call opens at {hh_mm}"))
def told_early(scene, hh_mm):
    assert scene["joined"].status_code == 200, scene["joined"].text
    grant = scene["joined"].json()
    assert grant["state"] == "early_arrival"
    assert f"The call opens at 30 November 2026 at {hh_mm}" in grant["consultation"]["message"]


@when(parsers.parse("it is {hh_mm}"))
def time_passes(client, clock, scene, hh_mm):
    at(client, clock, local(hh_mm), scene["patient"])


@then("Amira is in the waiting room and told her clinician has not joined yet")
def waiting(client, scene):
    state = view(client, scene)
    assert state["state"] == "waiting"
    assert state["message"] == "You are in the waiting room. Your clinician has not joined yet."


@then(parsers.parse("Amira is asked to accept the consent to video consultations, "
                    "version {version}"))
def asked_for_consent(scene, version):
    problem = assert_problem(scene["joined"], 403, "consent-required")
    assert problem["extensions"] == {"consent_type": "telemedicine", "text_version": version}


@given("Amira is waiting in the waiting room at 08:55")
def amira_waits(client, clock, scene):
    at(client, clock, local("08:55"), scene["patient"], scene["doctor"])
    grant = join(client, scene)
    assert grant.status_code == 200, grant.text
    scene["consultation_id"] = grant.json()["consultation_id"]
    open_socket(client, scene, grant.json(), "patient_ws")


@when("Dr Patel joins the call")
def doctor_joins(client, scene):
    admitted = client.post(f"/v1/staff/consultations/{scene['consultation_id']}/join",
                           headers=auth(scene["doctor"]))
    assert admitted.status_code == 200, admitted.text
    open_socket(client, scene, admitted.json(), "doctor_ws")


@then("Amira sees that her clinician has joined")
def sees_clinician(scene):
    state = next_state(scene["patient_ws"], "clinician_joined", scene["frames"])
    assert state["message"] == "Your clinician has joined. The call is connecting."


@then("Amira is sent a message that her clinician is ready, without any medical detail")
def told_by_message(mailbox, scene):
    message = mailbox.last(scene["patient"]["account_id"], "clinician_joined")
    from commands.outbox import TEMPLATES

    template = TEMPLATES["clinician_joined"]
    assert "Dr" not in template.body and "Patel" not in template.body
    assert set(message) <= {"message_id", "kind", "account_id"}, message


def connect(scene: dict[str, Any]) -> None:
    """What the console and the app do once both are in: offer, answer, media connected."""
    doctor_ws, patient_ws = scene["doctor_ws"], scene["patient_ws"]
    doctor_ws.send_json({"type": "offer", "sdp": OFFER_SDP})
    next_frame(patient_ws, "offer", scene["frames"])
    patient_ws.send_json({"type": "answer", "sdp": ANSWER_SDP})
    next_frame(doctor_ws, "answer")
    patient_ws.send_json({"type": "connected"})


@when("their video connects")
def video_connects(scene):
    connect(scene)


@then("Amira's call is in progress")
def in_progress(scene):
    assert next_state(scene["patient_ws"], "in_progress", scene["frames"])["message"] == \
        "Your call is in progress."


@given("Amira and Dr Patel are in the call")
def in_the_call(client, clock, scene):
    amira_waits(client, clock, scene)
    doctor_joins(client, scene)
    next_state(scene["patient_ws"], "clinician_joined", scene["frames"])
    connect(scene)
    in_progress(scene)


@when("Amira's connection drops")
def amira_drops(scene):
    scene["patient_ws"].close()


@then("Dr Patel sees that Amira has left and the call waits for her")
def doctor_sees_drop(scene):
    state = next_state(scene["doctor_ws"], "clinician_joined")
    assert state["patient_present"] is False
    next_frame(scene["doctor_ws"], "presence", role="patient", present=False)


@then("Dr Patel is asked to call Amira again")
def doctor_calls_again(client, scene):
    assert scene["joined"].status_code == 200, scene["joined"].text
    assert scene["joined"].json()["state"] == "clinician_joined"
    open_socket(client, scene, scene["joined"].json(), "patient_ws")
    next_frame(scene["doctor_ws"], "presence", role="patient", present=True)


@then("after their video connects again Amira's call is in progress")
def connects_again(scene):
    connect(scene)
    in_progress(scene)


@when("Dr Patel ends the call")
def doctor_ends(client, scene):
    ended = client.post(f"/v1/staff/consultations/{scene['consultation_id']}/end",
                        headers=auth(scene["doctor"]), json={"outcome": "completed"})
    assert ended.status_code == 200, ended.text


@then("Amira sees that the call has ended")
def sees_end(scene):
    state = next_state(scene["patient_ws"], "ended", scene["frames"])
    assert state["message"] == "This video consultation has ended."


@when(parsers.parse('Dr Patel writes "{follow_up}" for Amira and "{notes}" for staff'))
def writes_summary(client, scene, follow_up, notes):
    written = client.put(f"/v1/staff/consultations/{scene['consultation_id']}/summary",
                         headers=auth(scene["doctor"]),
                         json={"follow_up_instructions": follow_up, "internal_notes": notes})
    assert written.status_code == 200, written.text
    assert written.json()["internal_notes"] == notes


@then(parsers.parse('Amira reads "{follow_up}" after her video appointment'))
def reads_follow_up(client, scene, follow_up):
    scene["seen"] = view(client, scene)
    assert scene["seen"]["follow_up_instructions"] == follow_up


@then(parsers.parse('nothing Amira can see mentions "{word}"'))
def nothing_mentions(mailbox, scene, word):
    assert word not in str(scene["seen"])
    assert all(word not in str(frame) for frame in scene["frames"])
    assert all(word not in str(m) for m in mailbox.messages() + mailbox.messages("sms"))


@then("the session log shows when each of them joined and left")
def session_log(client, scene):
    def read() -> list[tuple[str, str | None]]:
        staff = client.get(f"/v1/staff/consultations/{scene['consultation_id']}",
                           headers=auth(scene["doctor"]))
        assert staff.status_code == 200, staff.text
        return [(e["event"], e.get("role")) for e in staff.json()["session_log"]]

    log = eventually(read, lambda log: ("left", "patient") in log and ("left", "clinician") in log)
    assert ("joined", "patient") in log and ("joined", "clinician") in log
    assert ("ended", None) in log
