"""The real call: Chromium on the clinician console and an aiortc patient, media over loopback only.

The call runs in `tests/e2e/call_driver.py` inside a network namespace this test makes (only
`lo` up; ARCHITECTURE.md, "Testing WebRTC"), against the API served on the test's database.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
from psycopg.conninfo import conninfo_to_dict

from api.database import Database
from tests.conftest import ENCRYPTION_KEY
from tests.support_netns import python_in_loopback_namespace

CHROMIUM = "/usr/bin/chromium"


def chromium_of(run_id: str) -> list[psutil.Process]:
    marker = f"--carebridge-run={run_id}"
    found = []
    for process in psutil.process_iter(attrs=["cmdline"]):
        if marker in (process.info["cmdline"] or []):
            found.append(process)
    return found


@pytest.fixture
def real_call(database: Database, tmp_path: Path) -> dict[str, Any]:
    """Runs the call; returns what the driver printed. Leaves no Chromium of its own behind."""
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install -y chromium"
    assert shutil.which("unshare"), "util-linux's unshare is needed for WebRTC tests"
    host = conninfo_to_dict(database.url).get("host") or ""
    assert all(part.startswith("/") for part in str(host).split(",")), (
        "the call runs in a loopback-only network namespace and reaches PostgreSQL through its "
        "Unix socket (the embedded default); a database reached over TCP is out of its reach")
    run_id = uuid.uuid4().hex
    env = {"CAREBRIDGE_CALL_DATABASE": json.dumps({"url": database.url,
                                                   "owner_url": database.owner_url}),
           "CAREBRIDGE_CALL_ENCRYPTION_KEY": ENCRYPTION_KEY,
           "CAREBRIDGE_CALL_DATA_DIR": str(tmp_path),
           "CAREBRIDGE_CALL_RUN_ID": run_id}
    try:
        finished = python_in_loopback_namespace("tests.e2e.call_driver", timeout=120, env=env)
    finally:
        leftovers = chromium_of(run_id)
        for process in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
    assert not leftovers, "the driver left Chromium running"
    lines = [line for line in finished.stdout.splitlines() if line.startswith("CALL-RESULT ")]
    assert finished.returncode == 0 and lines, (
        f"the call driver failed ({finished.returncode}):\n{finished.stderr[-6000:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("CALL-RESULT "))
    return result


def folded(states: list[str]) -> list[str]:
    """States as the patient lived them: a repeated state frame is the same moment."""
    return [state for i, state in enumerate(states) if i == 0 or states[i - 1] != state]


def test_a_clinician_in_chromium_and_a_patient_on_aiortc_hold_a_consultation(real_call):
    call = real_call
    assert not call["page_errors"], call["page_errors"]
    # The console page, with a policy that allows nothing but its own origin.
    for directive in ("default-src 'self'", "media-src 'self' blob:", "connect-src 'self' ws: wss:",
                      "img-src 'self' data:", "style-src 'self'", "script-src 'self'"):
        assert directive in call["console_csp"]
    # The clinician signed in with an authenticator code; the token lives in sessionStorage only.
    assert call["second_factor_asked"] is True
    assert call["storage"] == {"session": ["carebridge.console.access_token"],
                               "local": ["carebridge.console.device_id"]}
    patient_cell, time_cell, state_cell, waiting_cell, action_cell = call["waiting_room_row"]
    assert (patient_cell, state_cell, action_cell) == ("Grace Hopper", "The patient is waiting", "Admit")
    assert time_cell and waiting_cell.endswith("min)")
    # Consent first, then the waiting room; the patient's peer had no ICE servers at all.
    assert call["state_before_joining"] == "scheduled"
    assert call["consent_asked_first"] is True
    assert call["patient_grant_role"] == "patient"
    assert call["patient_ice_servers"] == []
    # Every candidate either side offered was loopback: nothing left the namespace.
    assert call["remote_candidates"] > 0
    assert call["candidate_addresses"] == ["127.0.0.1"]
    # Frames flowed both ways: Chromium's fake camera to aiortc, aiortc's frames to the console.
    first_call, after_rejoin = call["patient_frames_by_offer"]
    assert first_call["video"] > 0 and first_call["audio"] > 0
    assert call["console_remote_video_frames"] > 0
    assert call["console_frames_decoded"] > 0
    assert call["console_remote_video_size"][0] > 0
    assert call["console_connection"] == "connected"
    assert "connected" in call["patient_connection_states"]
    assert call["patient_error_frames"] == []
    # Mute and camera off stop sending (the tracks are disabled) and come back on.
    assert call["toggles"] == {"audio": [["true", False], ["false", True]],
                               "video": [["true", False], ["false", True]]}
    # A dropped patient rejoined: the console called again on a fresh connection, media flowed.
    assert "The patient left the call" in call["banner_after_drop"]
    assert after_rejoin["video"] > 0 and after_rejoin["audio"] > 0
    assert call["console_frame_after_rejoin"][0] > 0
    assert call["state_after_rejoin"] == "in_progress"
    # The patient was told every state in order; the room closed after the last one.
    before_drop, rejoined = (folded(states) for states in call["patient_states_by_socket"])
    assert before_drop == ["waiting", "clinician_joined", "in_progress"]
    assert rejoined[-2:] == ["in_progress", "ended"]
    assert set(rejoined) <= {"clinician_joined", "in_progress", "ended"}
    assert call["patient_close_codes"][-1] == 4409
    # After the call: the patient sees the follow-up instructions and nothing internal.
    assert call["summary_status"].startswith("Saved")
    view = call["patient_view_after"]
    assert view["state"] == "ended"
    assert view["follow_up_instructions"] == call["follow_up_written"]
    assert call["internal_notes_written"] not in call["patient_view_text"]
    assert not any("internal" in key for key in view)
    # The session log: who joined and left when, the drop, the outcome, quality figures.
    staff = call["staff_view"]
    assert call["staff_view_status"] == 200, staff
    assert staff["state"] == "ended" and staff["internal_notes"] == call["internal_notes_written"]
    log = staff["session_log"]
    events = [(entry["event"], entry.get("role"), entry.get("reason")) for entry in log]
    assert events.count(("joined", "patient", None)) == 2
    assert ("left", "patient", "dropped") in events
    assert {"event": "ended", "outcome": "completed"}.items() <= next(
        entry for entry in log if entry["event"] == "ended").items()
    clinician_left = next(entry for entry in log
                          if entry["event"] == "left" and entry.get("role") == "clinician")
    assert clinician_left["quality"]["samples"] >= 1
    assert "inbound_fps_avg" in clinician_left["quality"]
    assert call["internal_notes_written"] not in json.dumps(log)


def test_the_console_is_three_static_files_under_a_strict_policy():
    from litestar import Litestar
    from litestar.testing import TestClient

    from webrtc.console_routes import CONTENT_SECURITY_POLICY, ConsoleController

    with TestClient(Litestar(route_handlers=[ConsoleController])) as client:
        page = client.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert page.headers["x-content-type-options"] == "nosniff"
        for element_id in ("email", "password", "sign-in", "waiting-room", "local-video",
                           "remote-video", "state", "end-call", "follow-up", "internal-notes",
                           "save-summary"):
            assert f'id="{element_id}"' in page.text
        assert 'aria-live="polite"' in page.text
        assert "http" not in page.text.replace("http-equiv", "")  # nothing from elsewhere
        script = client.get("/console/console.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert "sessionStorage" in script.text and "localStorage.setItem(TOKEN_KEY" not in script.text
        style = client.get("/console/console.css")
        assert style.status_code == 200
        assert style.headers["content-type"].startswith("text/css")
        assert "@import" not in style.text and "url(" not in style.text
