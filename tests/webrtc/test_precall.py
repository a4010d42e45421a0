"""A real pre-call check: an aiortc client with a tone, a coloured camera and a data channel
calls the server's echo peer through the API, inside a loopback-only network namespace."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ENCRYPTION_KEY
from tests.support_netns import python_in_loopback_namespace

pytestmark = pytest.mark.integration


def run_driver(database: Any, scenario: str) -> dict[str, Any]:
    finished = python_in_loopback_namespace(
        "tests.webrtc.precall_driver", database.url, database.owner_url, scenario, timeout=120,
        env={"CAREBRIDGE_TEST_ENCRYPTION_KEY": ENCRYPTION_KEY})
    assert finished.returncode == 0, finished.stderr[-4000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_a_patient_with_camera_microphone_and_a_good_connection_is_ready(database):
    seen = run_driver(database, "full")

    assert seen["result"]["outcome"] == "ready", seen
    assert seen["result"]["guidance"] == []
    checks = seen["result"]["checks"]
    assert checks["connected"] and checks["data_channel"] and checks["browser_supported"]
    assert checks["audio_sent"] and checks["audio_received"], checks
    assert checks["video_sent"] and checks["video_received"], checks
    assert checks["rtt_ms"] is not None and checks["packet_loss_pct"] is not None
    # The echo is the patient's own media: the tone is audible, the colour is the one sent.
    client = seen["client"]
    assert client["frames"]["audio"] > 0 and client["frames"]["video"] > 0
    assert client["loudest_echo"] > 1000, client
    assert all(abs(got - sent) <= 24 for got, sent in
               zip(client["echoed_colour"], client["sent_colour"], strict=True)), client
    assert client["data_channel_echoes"] == 5 and client["pings_answered"] >= 6
    assert seen["client_connection_state"] == "connected"
    assert seen["answer_has_candidates"]
    assert seen["started"]["ice_servers"] == []  # none configured: nothing leaves the machine
    assert seen["checks_running_after"] == 0  # the server peer is closed once reported


def test_a_patient_without_a_camera_can_go_ahead_by_sound_only(database):
    seen = run_driver(database, "audio_only")

    result = seen["result"]
    assert result["outcome"] == "audio_only", seen
    assert [g["code"] for g in result["guidance"]] == ["allow_camera", "switch_to_audio_only"]
    assert all(g["message"] for g in result["guidance"])
    checks = result["checks"]
    assert checks["audio_sent"] and checks["audio_received"], checks
    assert not checks["video_sent"] and not checks["video_received"]
    assert checks["camera"] == "denied"
    assert seen["client"]["frames"]["video"] == 0 and seen["client"]["loudest_echo"] > 1000
