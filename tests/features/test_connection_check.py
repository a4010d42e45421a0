"""Step definitions for features/connection_check.feature, driven through the HTTP API with a
scripted clinic side (tests/webrtc/test_precall.py runs the same check with real media)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import assert_problem, auth
from tests.webrtc.support import GOOD_CONNECTION, OFFER, ScriptedPeers, precall_client, register

scenarios("connection_check.feature")

pytestmark = pytest.mark.integration

ADVICE = {"allow the camera": "allow_camera", "allow the microphone": "allow_microphone",
          "move to a better connection": "better_connection",
          "switch to audio only": "switch_to_audio_only",
          "use a supported browser": "use_supported_browser",
          "ask for a phone call": "ask_for_phone_call"}
EVERYTHING_CAME_BACK = {"camera": "granted", "microphone": "granted", "rtc_supported": True,
                        "received_audio": True, "received_video": True,
                        "data_channel_echoes": 5, "browser": {"name": "Firefox", "version": "128"}}
NOTHING_GOT_THROUGH = msgspec.structs.replace(
    GOOD_CONNECTION, ice_connected=False, connected=False, audio_frames_received=0,
    video_frames_received=0, data_messages_received=0, rtt_ms=None, packet_loss_pct=None,
    jitter_ms=None)


@pytest.fixture
def clinic_side() -> ScriptedPeers:
    """What the clinic's side of the check will have received (set by the Given steps)."""
    return ScriptedPeers()


@pytest.fixture
def app_client(container, clock, clinic_side) -> Iterator[Any]:
    with precall_client(container, clock, clinic_side) as client:
        yield client


@pytest.fixture
def scene() -> dict[str, Any]:
    return {"report": dict(EVERYTHING_CAME_BACK)}


@given("Amira is registered with the clinic")
def amira_registers(app_client, scene):
    scene["amira"] = register(app_client, "Amira")


@given("Amira has allowed her camera and her microphone")
def both_allowed(scene):
    scene["report"] |= {"camera": "granted", "microphone": "granted"}


@given("Amira has blocked her camera but allowed her microphone")
def camera_blocked(scene):
    scene["report"] |= {"camera": "denied", "microphone": "granted", "received_video": False}
    scene["no_video"] = True


@given("her connection to the clinic is good")
def good_connection(scene, clinic_side):
    clinic_side.observations = msgspec.structs.replace(
        GOOD_CONNECTION, offered_video=not scene.get("no_video"),
        video_frames_received=0 if scene.get("no_video") else GOOD_CONNECTION.video_frames_received)


@given(parsers.parse("her connection to the clinic takes {delay:d} milliseconds to answer"))
def slow_connection(scene, clinic_side, delay):
    clinic_side.observations = msgspec.structs.replace(GOOD_CONNECTION, rtt_ms=float(delay))
    scene["report"]["rtt_ms"] = float(delay)


@given("her network lets nothing through to the clinic")
def nothing_through(scene, clinic_side):
    clinic_side.observations = NOTHING_GOT_THROUGH
    scene["report"] |= {"received_audio": False, "received_video": False,
                        "data_channel_echoes": 0}


@given("Amira uses Internet Explorer 11, which cannot make video calls")
def old_browser(scene):
    scene["report"] |= {"rtc_supported": False,
                        "browser": {"name": "Internet Explorer", "version": "11.0"}}


@given("Amira has started a connection check")
def amira_starts(app_client, scene):
    started = app_client.post("/v1/connection-checks", headers=auth(scene["amira"]),
                              json={"offer_sdp": OFFER})
    assert started.status_code == 201, started.text
    scene["check_id"] = started.json()["check_id"]


@when("Amira checks her connection before her video visit")
def amira_checks(app_client, scene):
    amira_starts(app_client, scene)
    answer = app_client.post(f"/v1/connection-checks/{scene['check_id']}/result",
                             headers=auth(scene["amira"]), json=scene["report"])
    assert answer.status_code == 200, answer.text
    scene["result"] = answer.json()


@when("Bob, another patient, reports a result for Amira's check")
def bob_reports(app_client, scene):
    bob = register(app_client, "Bob")
    scene["answer"] = app_client.post(f"/v1/connection-checks/{scene['check_id']}/result",
                                      headers=auth(bob), json=EVERYTHING_CAME_BACK)


@then("she is told she is ready for her video visit")
def ready(scene):
    assert scene["result"]["outcome"] == "ready", scene["result"]


@then("she is told her visit can go ahead with sound only")
def audio_only(scene):
    assert scene["result"]["outcome"] == "audio_only", scene["result"]


@then("she is told she is not ready for a video visit")
def not_ready(scene):
    assert scene["result"]["outcome"] == "not_ready", scene["result"]


@then("she is given nothing to fix")
def nothing_to_fix(scene):
    assert scene["result"]["guidance"] == []


@then("she is advised, in this order, to:")
def advised(scene, datatable):
    _, *rows = datatable
    guidance = scene["result"]["guidance"]
    assert [g["code"] for g in guidance] == [ADVICE[row[0]] for row in rows]
    assert all(g["message"] for g in guidance)


@then("Bob is told there is no such check")
def bob_refused(scene):
    problem = assert_problem(scene["answer"], 404, "not-found")
    assert "start a new check" in problem["detail"]


@then("Amira still gets her own result")
def amira_gets_hers(app_client, scene):
    answer = app_client.post(f"/v1/connection-checks/{scene['check_id']}/result",
                             headers=auth(scene["amira"]), json=EVERYTHING_CAME_BACK)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "ready"
