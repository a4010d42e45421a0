"""Video consultations through the API: joining, the waiting room over the signaling WebSocket,
bad frames, tickets, cancellation while waiting, rejoining, and a second API process."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from litestar.exceptions import WebSocketDisconnect
from litestar.testing import TestClient

from tests.api.consultation_support import (
    ANSWER_SDP,
    OFFER_SDP,
    ORIGIN,
    START,
    admit,
    at,
    eventually,
    join,
    next_frame,
    next_state,
    socket_path,
    video_visit,
)
from tests.api.support import assert_problem, auth, field_names, give

NOTES = "Possible early COPD; consider spirometry"
FOLLOW_UP = "Take the inhaler twice a day and book a review in two weeks."


@pytest.fixture
def visit(client, container, sign_up, staff_member) -> dict[str, Any]:
    return video_visit(client, container, sign_up, staff_member)


def test_the_first_join_asks_for_consent_and_names_the_text_version(
        client, container, clock, sign_up, staff_member):
    visit = video_visit(client, container, sign_up, staff_member, consent=False)
    at(client, clock, START - timedelta(minutes=5), visit["patient"])
    problem = assert_problem(join(client, visit), 403, "consent-required")
    assert problem["extensions"] == {"consent_type": "telemedicine", "text_version": "2026-11"}
    assert give(client, visit["patient"]).status_code == 201
    joined = join(client, visit)
    assert joined.status_code == 200, joined.text
    assert joined.json()["state"] == "waiting"


def test_joining_too_early_says_when_the_waiting_room_opens(client, clock, visit):
    at(client, clock, START - timedelta(hours=2), visit["patient"])
    problem = assert_problem(join(client, visit), 409, "too-early")
    assert problem["extensions"]["opens_at"] == (START - timedelta(minutes=70)).isoformat()


def test_an_early_arrival_waits_until_the_window_opens(client, clock, visit):
    at(client, clock, START - timedelta(minutes=30), visit["patient"])
    joined = join(client, visit)
    assert joined.status_code == 200, joined.text
    grant = joined.json()
    assert grant["state"] == "early_arrival"
    assert "You are early" in grant["consultation"]["message"]
    assert grant["ice_servers"] == []
    at(client, clock, START - timedelta(minutes=10), visit["patient"])
    view = client.get(f"/v1/appointments/{visit['appointment_id']}/consultation",
                      headers=auth(visit["patient"]))
    assert view.status_code == 200 and view.json()["state"] == "waiting", view.text


def test_a_whole_call_waiting_clinician_joined_in_progress_ended_with_a_summary(
        client, clock, visit, mailbox):
    patient, doctor = visit["patient"], visit["doctor"]
    at(client, clock, START - timedelta(minutes=5), patient, doctor)
    grant = join(client, visit).json()
    cid = grant["consultation_id"]
    patient_frames: list[dict[str, Any]] = []
    with client.websocket_connect(socket_path(grant), headers=ORIGIN) as pws:
        welcome = next_frame(pws, "welcome", patient_frames)
        assert welcome["role"] == "patient" and welcome["peer_present"] is False
        assert welcome["state"]["state"] == "waiting"

        room = client.get("/v1/staff/consultations?date=2026-11-30", headers=auth(doctor))
        assert room.status_code == 200, room.text
        [entry] = room.json()["consultations"]
        assert entry["consultation_id"] == cid and entry["state"] == "waiting"
        assert entry["patient_present"] is True and entry["patient_name"] == "Amira Lovelace"

        admitted = admit(client, visit, cid)
        assert admitted.status_code == 200, admitted.text
        assert next_state(pws, "clinician_joined", patient_frames)["clinician_present"] is False
        told = mailbox.last(patient["account_id"], "clinician_joined")
        assert set(told) >= {"kind", "account_id"} and "COPD" not in str(told)

        with client.websocket_connect(socket_path(admitted.json()), headers=ORIGIN) as dws:
            assert next_frame(dws, "welcome")["peer_present"] is True
            next_frame(pws, "presence", patient_frames, role="clinician", present=True)
            dws.send_json({"type": "offer", "sdp": OFFER_SDP})
            offer = next_frame(pws, "offer", patient_frames)
            assert offer == {"type": "offer", "sdp": OFFER_SDP, "from": "clinician"}
            pws.send_json({"type": "answer", "sdp": ANSWER_SDP})
            assert next_frame(dws, "answer")["sdp"] == ANSWER_SDP
            candidate = {"type": "ice", "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 "
                         "50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
            pws.send_json(candidate)
            relayed = next_frame(dws, "ice")
            assert relayed["candidate"] == candidate["candidate"] and relayed["sdpMid"] == "0"
            dws.send_json({"type": "connected"})
            assert next_state(pws, "in_progress", patient_frames)["patient_present"] is True
            next_state(dws, "in_progress")
            pws.send_json({"type": "stats", "rtt_ms": 42.5, "packet_loss_pct": 0.5,
                           "inbound_fps": 29.0, "bitrate_kbps": 900.0})
            ended = client.post(f"/v1/staff/consultations/{cid}/end", headers=auth(doctor),
                                json={"outcome": "completed"})
            assert ended.status_code == 200 and ended.json()["state"] == "ended", ended.text
            next_state(pws, "ended", patient_frames)
            with pytest.raises(WebSocketDisconnect) as closed:
                next_frame(pws, "never", patient_frames)
            assert closed.value.code == 4409

    summary = client.put(f"/v1/staff/consultations/{cid}/summary", headers=auth(doctor),
                         json={"follow_up_instructions": FOLLOW_UP, "internal_notes": NOTES})
    assert summary.status_code == 200, summary.text
    staff_view = eventually(
        lambda: client.get(f"/v1/staff/consultations/{cid}", headers=auth(doctor)).json(),
        lambda view: sum(e["event"] == "left" for e in view["session_log"]) == 2)
    assert staff_view["internal_notes"] == NOTES
    log = [(e["event"], e.get("role")) for e in staff_view["session_log"]]
    assert ("joined", "patient") in log and ("joined", "clinician") in log
    assert ("left", "patient") in log and ("media_connected", "clinician") in log
    [patient_left] = [e for e in staff_view["session_log"]
                      if e["event"] == "left" and e["role"] == "patient"]
    assert patient_left["quality"]["rtt_ms_avg"] == 42.5
    assert patient_left["quality"]["samples"] == 1

    mine = client.get(f"/v1/appointments/{visit['appointment_id']}/consultation",
                      headers=auth(patient))
    assert mine.status_code == 200
    assert mine.json()["follow_up_instructions"] == FOLLOW_UP
    assert "COPD" not in mine.text and "internal_notes" not in mine.json()
    states = [f["state"]["state"] for f in patient_frames if f["type"] == "state"]
    assert _in_order(states, ["clinician_joined", "in_progress", "ended"]), states
    assert all("COPD" not in str(frame) for frame in patient_frames)
    assert all("COPD" not in str(message) for message in mailbox.messages())


def test_a_dropped_patient_rejoins_and_gets_a_fresh_offer(client, clock, visit):
    at(client, clock, START - timedelta(minutes=2), visit["patient"], visit["doctor"])
    grant = join(client, visit).json()
    cid = grant["consultation_id"]
    with client.websocket_connect(socket_path(admit(client, visit, cid).json()),
                                  headers=ORIGIN) as dws:
        next_frame(dws, "welcome")
        with client.websocket_connect(socket_path(grant), headers=ORIGIN) as pws:
            next_frame(pws, "welcome")
            next_frame(dws, "presence", role="patient", present=True)
            dws.send_json({"type": "offer", "sdp": OFFER_SDP})
            next_frame(pws, "offer")
            pws.send_json({"type": "answer", "sdp": ANSWER_SDP})
            pws.send_json({"type": "connected"})
            next_state(dws, "in_progress")
        # The patient's network dropped: the clinician sees it and the call falls back.
        assert next_state(dws, "clinician_joined")["patient_present"] is False
        next_frame(dws, "presence", role="patient", present=False)
        again = join(client, visit)
        assert again.status_code == 200, again.text
        assert again.json()["state"] == "clinician_joined"
        with client.websocket_connect(socket_path(again.json()), headers=ORIGIN) as pws:
            assert next_frame(pws, "welcome")["peer_present"] is True
            next_frame(dws, "presence", role="patient", present=True)
            dws.send_json({"type": "offer", "sdp": OFFER_SDP})
            next_frame(pws, "offer")
            pws.send_json({"type": "answer", "sdp": ANSWER_SDP})
            pws.send_json({"type": "connected"})
            assert next_state(pws, "in_progress")["patient_present"] is True


def test_bad_and_out_of_turn_frames_get_an_error_and_never_close_the_room(client, clock, visit):
    at(client, clock, START - timedelta(minutes=2), visit["patient"])
    grant = join(client, visit).json()
    with client.websocket_connect(socket_path(grant), headers=ORIGIN) as pws:
        next_frame(pws, "welcome")
        for raw, code, words in [
            ("not json", "bad-frame", "JSON"),
            ('{"type": "shout"}', "bad-frame", "`type` must be one of"),
            ('{"type": "offer", "sdp": 5}', "bad-frame", "$.sdp"),
            ('{"type": "offer", "sdp": "hello"}', "bad-frame", "session description"),
            ('{"type": "offer", "sdp": "v=0"}', "not-allowed", "Only the clinician"),
            ('{"type": "answer", "sdp": "v=0"}', "out-of-turn", "must follow an offer"),
            ('{"type": "ice", "candidate": null}', "out-of-turn", "after"),
            ('{"type": "stats", "rtt_ms": "fast"}', "bad-frame", "$.rtt_ms"),
            ('{"type": "offer", "sdp": "v=0' + "x" * 70_000 + '"}', "bad-frame", "limited"),
        ]:
            pws.send_text(raw)
            error = next_frame(pws, "error")
            assert error["code"] == code and words in error["detail"], (raw[:40], error)
        pws.send_json({"type": "ping"})
        assert next_frame(pws, "pong") == {"type": "pong"}
        for _ in range(25):
            pws.send_text("{")
        with pytest.raises(WebSocketDisconnect) as closed:
            next_frame(pws, "never")
        assert closed.value.code == 1008
    view = eventually(
        lambda: client.get(f"/v1/appointments/{visit['appointment_id']}/consultation",
                           headers=auth(visit["patient"])).json(),
        lambda view: view["patient_present"] is False)
    assert view["state"] == "waiting"


def test_tickets_work_once_for_one_consultation_and_origins_are_checked(client, clock, visit):
    at(client, clock, START - timedelta(minutes=2), visit["patient"])
    grant = join(client, visit).json()
    with client.websocket_connect(socket_path(grant), headers={"origin": "https://evil.test"}) \
            as ws, pytest.raises(WebSocketDisconnect) as refused:
        ws.receive_json(timeout=10)
    assert refused.value.code == 4403
    fresh = join(client, visit).json()
    with client.websocket_connect(socket_path(fresh), headers=ORIGIN) as ws:
        next_frame(ws, "welcome")
    for path, code in [(socket_path(fresh), 4401),  # used already
                       (fresh["websocket_path"] + "?ticket=forged", 4401),
                       (f"/v1/consultations/{uuid4()}/signal?ticket="
                        + join(client, visit).json()["ticket"], 4401)]:  # another consultation
        with client.websocket_connect(path) as ws, pytest.raises(WebSocketDisconnect) as refused:
            ws.receive_json(timeout=10)
        assert refused.value.code == code, path
    late = join(client, visit).json()
    clock.now += timedelta(seconds=61)
    with client.websocket_connect(socket_path(late)) as ws, \
            pytest.raises(WebSocketDisconnect) as refused:
        ws.receive_json(timeout=10)
    assert refused.value.code == 4401 and "expired" in (refused.value.detail or "")


def test_cancelled_while_waiting_the_patient_is_told_and_the_room_closes(
        client, clock, visit, staff_member, mailbox):
    at(client, clock, START - timedelta(minutes=5), visit["patient"])
    grant = join(client, visit).json()
    reception = staff_member("reception")
    with client.websocket_connect(socket_path(grant), headers=ORIGIN) as pws:
        next_frame(pws, "welcome")
        cancelled = client.post(f"/v1/staff/appointments/{visit['appointment_id']}/cancel",
                                headers=auth(reception),
                                json={"reason_code": "clinician_unavailable"})
        assert cancelled.status_code == 200, cancelled.text
        state = next_state(pws, "cancelled")
        assert "cancelled" in state["message"]
        with pytest.raises(WebSocketDisconnect) as closed:
            next_frame(pws, "never")
        assert closed.value.code == 4409
    mailbox.last(visit["patient"]["account_id"], "appointment_cancelled_by_clinic")
    assert_problem(join(client, visit), 409, "consultation-closed")


def test_a_moved_appointment_sends_the_patient_back_with_the_new_time(
        client, clock, visit, staff_member):
    at(client, clock, START - timedelta(minutes=5), visit["patient"])
    grant = join(client, visit).json()
    reception = staff_member("reception")
    with client.websocket_connect(socket_path(grant), headers=ORIGIN) as pws:
        next_frame(pws, "welcome")
        moved = client.post(f"/v1/staff/appointments/{visit['appointment_id']}/reschedule",
                            headers=auth(reception),
                            json={"starts_at": (START + timedelta(hours=1)).isoformat(),
                                  "reason": "Doctor delayed"})
        assert moved.status_code == 200, moved.text
        state = next_state(pws, "scheduled")
        assert state["starts_at"] == (START + timedelta(hours=1)).isoformat()
        assert "Doctor delayed" not in str(state)
        with pytest.raises(WebSocketDisconnect) as closed:
            next_frame(pws, "never")
        assert closed.value.code == 4409


def test_only_the_appointments_clinician_runs_the_call(client, clock, visit, staff_member,
                                                       sign_up):
    at(client, clock, START - timedelta(minutes=2), visit["patient"], visit["doctor"])
    cid = join(client, visit).json()["consultation_id"]
    other_doctor, nurse = staff_member("doctor"), staff_member("nurse")
    for person in (other_doctor, nurse):
        assert_problem(client.post(f"/v1/staff/consultations/{cid}/join", headers=auth(person)),
                       403)
    assert_problem(client.post(f"/v1/staff/consultations/{cid}/join",
                               headers=auth(staff_member("reception"))), 403)
    stranger = sign_up(given_name="Bob")
    assert_problem(client.post(f"/v1/appointments/{visit['appointment_id']}/consultation/join",
                               headers=auth(stranger)), 403)
    assert_problem(client.get(f"/v1/staff/consultations/{cid}", headers=auth(stranger)), 403)


def test_ending_and_summaries_name_every_wrong_field(client, clock, visit):
    at(client, clock, START - timedelta(minutes=2), visit["patient"], visit["doctor"])
    cid = join(client, visit).json()["consultation_id"]
    doctor = visit["doctor"]
    refused = client.post(f"/v1/staff/consultations/{cid}/end", headers=auth(doctor),
                          json={"outcome": "great"})
    assert field_names(assert_problem(refused, 400, "invalid-request")) == {"outcome"}
    assert_problem(client.put(f"/v1/staff/consultations/{cid}/summary", headers=auth(doctor),
                              json={"follow_up_instructions": "Rest"}), 409,
                   "consultation-not-over")
    assert_problem(client.post(f"/v1/staff/consultations/{cid}/end", headers=auth(doctor),
                               json={"outcome": "completed"}), 409, "consultation-not-over")
    failed = client.post(f"/v1/staff/consultations/{cid}/end", headers=auth(doctor),
                         json={"outcome": "technical_failure"})
    assert failed.status_code == 200 and failed.json()["state"] == "technical_failure"
    too_long = client.put(f"/v1/staff/consultations/{cid}/summary", headers=auth(doctor),
                          json={"follow_up_instructions": "x" * 8001, "internal_notes": "y"})
    assert field_names(assert_problem(too_long, 400)) == {"follow_up_instructions"}
    retried = [client.post(f"/v1/staff/consultations/{cid}/end",
                           headers=auth(doctor) | {"Idempotency-Key": "5b0c6f0e-end-call-retry-0001"},
                           json={"outcome": "technical_failure"}) for _ in range(2)]
    assert [r.status_code for r in retried] == [200, 200]


def test_signaling_crosses_api_processes(client, container, clock, visit, database, tmp_path):
    """The patient's socket is on one API process and the clinician's on another; offers,
    answers and state changes cross through PostgreSQL."""
    from api.app import create_app
    from api.container import Container
    from tests.conftest import ENCRYPTION_KEY, TOKEN_SECRET

    at(client, clock, START - timedelta(minutes=2), visit["patient"], visit["doctor"])
    grant = join(client, visit).json()
    cid = grant["consultation_id"]
    with Container(container.settings, database, ENCRYPTION_KEY) as second:
        second.appointments.schedule = container.appointments.schedule
        other = create_app(second, TOKEN_SECRET, clock=clock)
        with TestClient(other) as second_client:
            admitted = second_client.post(f"/v1/staff/consultations/{cid}/join",
                                          headers=auth(visit["doctor"]))
            assert admitted.status_code == 200, admitted.text
            with client.websocket_connect(socket_path(grant), headers=ORIGIN) as pws, \
                    second_client.websocket_connect(socket_path(admitted.json()),
                                                    headers=ORIGIN) as dws:
                next_frame(pws, "welcome")
                next_frame(dws, "welcome")
                next_frame(pws, "presence", role="clinician", present=True)
                big_offer = OFFER_SDP + "a=x-padding:" + "p" * 12_000 + "\r\n"  # > NOTIFY's 8000
                dws.send_json({"type": "offer", "sdp": big_offer})
                assert next_frame(pws, "offer")["sdp"] == big_offer
                pws.send_json({"type": "answer", "sdp": ANSWER_SDP})
                assert next_frame(dws, "answer")["sdp"] == ANSWER_SDP
                pws.send_json({"type": "connected"})
                next_state(dws, "in_progress")


def _in_order(states: list[str], expected: list[str]) -> bool:
    position = 0
    for state in states:
        if position < len(expected) and state == expected[position]:
            position += 1
    return position == len(expected)


def test_a_no_show_from_the_console_is_the_appointments_outcome(client, clock, visit):
    at(client, clock, START - timedelta(minutes=2), visit["doctor"])
    doctor = visit["doctor"]
    room = client.get("/v1/staff/consultations?date=2026-11-30", headers=auth(doctor)).json()
    [entry] = room["consultations"]
    assert entry["state"] == "scheduled" and entry["patient_name"] == "Amira Lovelace"
    cid = entry["consultation_id"]
    too_soon = client.post(f"/v1/staff/consultations/{cid}/no-show", headers=auth(doctor))
    assert_problem(too_soon, 409)
    at(client, clock, START + timedelta(minutes=12), doctor, visit["patient"])
    missed = client.post(f"/v1/staff/consultations/{cid}/no-show", headers=auth(doctor))
    assert missed.status_code == 200 and missed.json()["state"] == "no_show", missed.text
    appointment = client.get(f"/v1/appointments/{visit['appointment_id']}",
                             headers=auth(visit["patient"]))
    assert appointment.json()["status"] == "no_show", appointment.text
    assert_problem(join(client, visit), 409, "consultation-closed")


def test_every_view_of_a_summary_is_logged_and_the_log_cannot_be_changed(client, clock, visit):
    import psycopg

    at(client, clock, START - timedelta(minutes=2), visit["patient"], visit["doctor"])
    cid = join(client, visit).json()["consultation_id"]
    doctor, patient = visit["doctor"], visit["patient"]
    client.post(f"/v1/staff/consultations/{cid}/end", headers=auth(doctor),
                json={"outcome": "technical_failure"})
    before = client.get(f"/v1/appointments/{visit['appointment_id']}/consultation",
                        headers=auth(patient))
    assert before.json()["follow_up_instructions"] is None  # nothing of the record yet
    written = client.put(f"/v1/staff/consultations/{cid}/summary", headers=auth(doctor),
                         json={"follow_up_instructions": FOLLOW_UP, "internal_notes": NOTES})
    assert written.status_code == 200, written.text
    client.get(f"/v1/appointments/{visit['appointment_id']}/consultation", headers=auth(patient))
    client.get(f"/v1/staff/consultations/{cid}", headers=auth(doctor))
    url = client.app.state.container.database.url
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT actor, patient_id, resource, resource_id, action"
                            " FROM carebridge.record_access ORDER BY access_id").fetchall()
        assert [(actor.split(":")[0], str(resource_id), resource, action)
                for actor, _, resource, resource_id, action in rows] == [
            ("doctor", cid, "consultation_summary", "view"),   # the summary as saved
            ("patient", cid, "consultation_summary", "view"),
            ("doctor", cid, "consultation_summary", "view")]
        assert {str(patient_id) for _, patient_id, *_ in rows} == {patient["account_id"]}
        for statement in ("UPDATE carebridge.record_access SET actor = 'nobody'",
                          "DELETE FROM carebridge.record_access"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
