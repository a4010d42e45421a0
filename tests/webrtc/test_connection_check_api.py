"""The pre-call check's API, with a scripted server peer: who may start and finish a check,
what bad offers and reports get back, the limit on checks at once, and expiry."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.errors import InvalidInput, NotFound
from tests.api.support import assert_problem, auth, field_names
from tests.webrtc.support import GOOD_CONNECTION, OFFER, ScriptedPeers, precall_client, register
from webrtc.guidance import ClientReport
from webrtc.precall import ConnectionChecks

pytestmark = pytest.mark.integration

TURN_SECRET = "a shared secret for coturn in tests"
REPORT = {"camera": "granted", "microphone": "granted", "rtc_supported": True,
          "received_audio": True, "received_video": True, "data_channel_echoes": 5,
          "browser": {"name": "Firefox", "version": "128.0"}, "rtt_ms": 30.0,
          "packet_loss_pct": 0.0}


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"connection_check_max_concurrent": 2, "connection_check_seconds": 60,
            "stun_urls": ["stun:turn.clinic.test:3478"],
            "turn_urls": ["turn:turn.clinic.test:3478?transport=udp"],
            "turn_shared_secret": TURN_SECRET}


@pytest.fixture
def peers() -> ScriptedPeers:
    return ScriptedPeers()


@pytest.fixture
def api(container, clock, peers) -> Iterator[Any]:
    with precall_client(container, clock, peers) as client:
        yield client


def start(api: Any, person: dict[str, str], offer: str = OFFER, **extra: Any) -> Any:
    return api.post("/v1/connection-checks", headers=auth(person),
                    json={"offer_sdp": offer, **extra})


def test_a_check_answers_with_the_servers_and_when_it_ends(api, clock, peers):
    amira = register(api, "Amira")

    response = start(api, amira)

    assert response.status_code == 201, response.text
    body = response.json()
    assert uuid.UUID(body["check_id"])
    assert body["answer_sdp"].startswith("v=0")
    assert datetime.fromisoformat(body["expires_at"]) == clock.now + timedelta(seconds=60)
    stun, turn = body["ice_servers"]
    assert stun == {"urls": ["stun:turn.clinic.test:3478"]}
    assert turn["username"].endswith(":" + amira["account_id"]) and turn["credential"]
    assert len(peers.made) == 1 and not peers.made[0].closed


def test_the_ice_servers_to_make_the_offer_with_are_listed_first(api, clock):
    amira = register(api, "Amira")

    response = api.get("/v1/connection-checks/ice-servers", headers=auth(amira))

    assert response.status_code == 200, response.text
    servers = response.json()["ice_servers"]
    assert [s["urls"] for s in servers] == [["stun:turn.clinic.test:3478"],
                                            ["turn:turn.clinic.test:3478?transport=udp"]]
    expiry = int(servers[1]["username"].split(":")[0])
    assert expiry == int((clock.now + timedelta(minutes=120)).timestamp())


def test_the_owner_gets_the_outcome_and_the_server_peer_is_closed(api, peers):
    amira = register(api, "Amira")
    check_id = start(api, amira).json()["check_id"]

    response = api.post(f"/v1/connection-checks/{check_id}/result", headers=auth(amira),
                        json=REPORT)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["outcome"] == "ready" and result["guidance"] == []
    assert result["checks"]["connected"] and result["checks"]["rtt_ms"] == 35.0
    assert peers.made[0].closed
    again = api.post(f"/v1/connection-checks/{check_id}/result", headers=auth(amira), json=REPORT)
    assert_problem(again, 404, "not-found")


def test_nobody_else_can_finish_or_see_a_patients_check(api, peers):
    amira, bob = register(api, "Amira"), register(api, "Bob")
    check_id = start(api, amira).json()["check_id"]

    response = api.post(f"/v1/connection-checks/{check_id}/result", headers=auth(bob), json=REPORT)

    assert_problem(response, 404, "not-found")
    assert not peers.made[0].closed  # Amira's check carries on
    mine = api.post(f"/v1/connection-checks/{check_id}/result", headers=auth(amira), json=REPORT)
    assert mine.status_code == 200


def test_a_made_up_check_is_not_found(api):
    amira = register(api, "Amira")

    response = api.post(f"/v1/connection-checks/{uuid.uuid4()}/result", headers=auth(amira),
                        json=REPORT)

    assert_problem(response, 404, "not-found")


def test_signing_in_is_needed(api):
    assert_problem(api.post("/v1/connection-checks", json={"offer_sdp": OFFER}), 401)
    assert_problem(api.get("/v1/connection-checks/ice-servers"), 401)
    assert_problem(api.post(f"/v1/connection-checks/{uuid.uuid4()}/result", json=REPORT), 401)


@pytest.mark.parametrize("offer, words", [
    ("", "not an SDP offer"),
    ("hello, this is not SDP", "not an SDP offer"),
    ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio nine UDP/TLS/RTP/SAVPF 96\r\n",
     "not a valid session description"),
    (OFFER.replace("a=candidate:1 1 udp 2130706431 127.0.0.1 55249 typ host\r\n", ""),
     "once ICE gathering is complete"),
    (OFFER.replace("a=rtcp-mux\r\n", ""), "a=rtcp-mux"),
    (OFFER.replace("a=mid:0\r\n", ""), "a=mid"),
    (OFFER.replace("m=application 55249 UDP/DTLS/SCTP webrtc-datachannel",
                   "m=text 55249 RTP/AVP 98"), "not text"),
    (OFFER.replace("a=mid:1", "a=mid:3") + OFFER.split("a=group:BUNDLE 0 1 2\r\n")[1],
     "one section each"),
    (OFFER.replace("a=end-of-candidates", "".join(
        f"a=candidate:{n} 1 udp 2130706431 127.0.0.1 {5000 + n} typ host\r\n"
        for n in range(40)) + "a=end-of-candidates"), "more than 40 ICE candidates"),
])
def test_a_bad_offer_is_refused_naming_the_offer(api, peers, offer, words):
    amira = register(api, "Amira")

    problem = assert_problem(start(api, amira, offer), 422, "invalid-input")

    assert field_names(problem) == {"offer_sdp"}
    assert words in problem["errors"][0]["message"]
    assert peers.made == []  # refused before any peer was made


def test_a_report_with_an_unknown_permission_is_refused(api):
    amira = register(api, "Amira")
    check_id = start(api, amira).json()["check_id"]

    response = api.post(f"/v1/connection-checks/{check_id}/result", headers=auth(amira),
                        json=REPORT | {"camera": "maybe"})

    problem = assert_problem(response, 400)
    assert "camera" in field_names(problem)


def test_too_many_checks_at_once_are_told_when_to_try_again(api, peers):
    amira, bob, carol = register(api, "Amira"), register(api, "Bob"), register(api, "Carol")
    first = start(api, amira).json()["check_id"]
    assert start(api, bob).status_code == 201

    refused = start(api, carol)

    problem = assert_problem(refused, 429, "too-many-requests")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert problem["extensions"]["retry_after"] == int(refused.headers["retry-after"])
    assert len(peers.made) == 2
    # A finished check frees its place at once.
    assert api.post(f"/v1/connection-checks/{first}/result", headers=auth(amira),
                    json=REPORT).status_code == 200
    assert start(api, carol).status_code == 201


def test_the_browser_is_read_from_the_user_agent_when_the_app_does_not_say(api):
    amira = register(api, "Amira")
    check_id = start(api, amira, user_agent="Mozilla/5.0 (Windows NT 10.0; Trident/7.0; "
                     "rv:11.0) like Gecko").json()["check_id"]
    report = {k: v for k, v in REPORT.items() if k != "browser"}

    result = api.post(f"/v1/connection-checks/{check_id}/result", headers=auth(amira),
                      json=report).json()

    assert [g["code"] for g in result["guidance"]] == ["use_supported_browser"]


def test_what_the_server_saw_is_part_of_the_verdict(container, clock):
    """The same report from the app, with a server that received nothing."""
    import msgspec

    silent = msgspec.structs.replace(GOOD_CONNECTION, ice_connected=False, connected=False,
                                     audio_frames_received=0, video_frames_received=0)
    with precall_client(container, clock, ScriptedPeers(silent)) as api:
        amira = register(api, "Amira")
        check_id = start(api, amira).json()["check_id"]
        result = api.post(f"/v1/connection-checks/{check_id}/result", headers=auth(amira),
                          json=REPORT).json()

    assert result["outcome"] == "not_ready"
    assert [g["code"] for g in result["guidance"]] == ["better_connection", "ask_for_phone_call"]


REPORTED = ClientReport(camera="granted", microphone="granted", rtc_supported=True,
                        received_audio=True, received_video=True, data_channel_echoes=1)
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_check_nobody_reports_on_is_closed_when_its_time_is_up():
    async def scenario() -> tuple[list[bool], int]:
        peers = ScriptedPeers()
        checks = ConnectionChecks(max_concurrent=1, lifetime_seconds=0.01, peer_factory=peers)
        started = await checks.start(OFFER, [], "amira", NOW)
        await asyncio.sleep(0.2)  # well past its lifetime: the closer ran first
        with pytest.raises(NotFound):
            await checks.finish(started.check_id, "amira", REPORTED)
        await checks.start(OFFER, [], "bob", NOW)  # its place is free again
        running = checks.running
        await checks.close_all()
        return [p.closed for p in peers.made], running

    closed, running = asyncio.run(scenario())

    assert closed == [True, True]
    assert running == 1


def test_a_refused_offer_takes_no_place():
    async def scenario() -> int:
        checks = ConnectionChecks(max_concurrent=1, lifetime_seconds=60,
                                  peer_factory=ScriptedPeers())
        with pytest.raises(InvalidInput):
            await checks.start("v=0\r\n", [], "amira", NOW)
        await checks.start(OFFER, [], "amira", NOW)
        running = checks.running
        await checks.close_all()
        return running

    assert asyncio.run(scenario()) == 1


def test_the_result_may_reach_another_api_process(api, container, clock, peers, database):
    """Behind a load balancer the result lands on any process: it uses the observations the
    check's own process shared, and that process closes its peer."""
    import time

    from litestar.testing import TestClient

    from api.container import Container
    from tests.conftest import ENCRYPTION_KEY, TOKEN_SECRET
    from tests.webrtc.support import precall_app

    amira = register(api, "Amira")
    started = start(api, amira)
    assert started.status_code == 201, started.text
    check_id = started.json()["check_id"]
    [peer] = peers.made
    with Container(container.settings, database, ENCRYPTION_KEY) as second, \
            TestClient(precall_app(second, TOKEN_SECRET, clock, ScriptedPeers())) as other:
        deadline = time.monotonic() + 15
        while True:  # the owner shares its observations every second
            import psycopg

            with psycopg.connect(container.database.url) as conn:
                shared = conn.execute("SELECT observations FROM carebridge.connection_checks"
                                      " WHERE check_id = %s", (check_id,)).fetchone()
            if shared and shared[0]:
                break
            assert time.monotonic() < deadline, "the owner never shared its observations"
            time.sleep(0.1)
        bob = register(other, "Bob")
        assert_problem(other.post(f"/v1/connection-checks/{check_id}/result",
                                  headers=auth(bob), json=REPORT), 404)
        result = other.post(f"/v1/connection-checks/{check_id}/result", headers=auth(amira),
                            json=REPORT)
        assert result.status_code == 200, result.text
        assert result.json()["outcome"] == "ready"
        checks = result.json()["checks"]
        assert checks["connected"] is True and checks["video_sent"] is True
        while not peer.closed:  # the owner sees the result was taken and closes its peer
            assert time.monotonic() < deadline + 15, "the owner kept its peer open"
            time.sleep(0.1)
        assert_problem(api.post(f"/v1/connection-checks/{check_id}/result",
                                headers=auth(amira), json=REPORT), 404)
