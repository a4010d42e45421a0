"""Emergency location sharing through the API: starting (with the consent in the same step,
behind the clinic's flag), live positions to the on-call screen and the emergency contact's
page, bad positions refused, stopping, closing, expiry, and positions never stored or logged."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from litestar.exceptions import WebSocketDisconnect

from tests.api.care_support import authorise_proxy, signed_in_again
from tests.api.emergency_support import (
    ALONG,
    BENCH,
    consent_version,
    contact_link,
    position,
    ready_to_share,
    sharing_on,
    start_sharing,
)
from tests.api.support import assert_problem, auth, give
from tests.api.test_logs import everything_logged


def started(client: Any, ada: dict[str, str], **body: Any) -> dict[str, Any]:
    ready_to_share(client, ada)
    response = start_sharing(client, ada, consent_version=consent_version(client, ada), **body)
    assert response.status_code == 201, response.text
    return response.json()


def page_path(container: Any, ada: dict[str, str]) -> str:
    return urlsplit(contact_link(container, ada["account_id"])).path


def test_a_share_reaches_the_on_call_screen_and_the_contacts_page_until_it_is_stopped(
        client, container, clock, sign_up, staff_member, caplog):
    caplog.set_level(logging.DEBUG)
    ada, nurse = sign_up(), staff_member("nurse")
    share = started(client, ada, note="Fell on the path, cannot get up")
    assert (share["state"], share["contact_told"]) == ("active", True)
    page = page_path(container, ada)
    assert client.get(page).status_code == 200
    assert "No position has arrived yet" in client.get(page).text

    live = f"/v1/emergency-shares/{share['share_id']}/positions"
    with client.websocket_connect("/v1/staff/emergency-shares/live?clinic_id=riverside",
                                  headers=auth(nurse)) as screen, \
            client.websocket_connect(live, headers=auth(ada)) as phone:
        assert screen.receive_json() == {"type": "ready"}
        assert phone.receive_json()["type"] == "ready"
        phone.send_json(position(clock.now - timedelta(seconds=5)))
        assert phone.receive_json() == {"type": "accepted",
                                        "at": (clock.now - timedelta(seconds=5)).isoformat()}
        seen = screen.receive_json()
        assert (seen["type"], seen["share_id"], seen["latitude"]) == (
            "position", share["share_id"], BENCH[0])
        phone.send_json(position(clock.now, where=(123.0, 0.0)))
        bad = phone.receive_json()
        assert bad["type"] == "error" and [e["field"] for e in bad["errors"]] == ["latitude"]
        phone.send_json(position(clock.now - timedelta(minutes=10)))
        assert [e["field"] for e in phone.receive_json()["errors"]] == ["at"]
        phone.send_json(position(clock.now, where=(48.8566, 2.3522)))  # Paris, 5 s later
        assert phone.receive_json()["type"] == "error"
        phone.send_json(position(clock.now, where=ALONG))
        assert phone.receive_json()["type"] == "accepted"
        assert screen.receive_json()["latitude"] == ALONG[0]

        [listed] = client.get("/v1/staff/emergency-shares?clinic_id=riverside",
                              headers=auth(nurse)).json()
        assert listed["note"] == "Fell on the path, cannot get up"
        assert listed["position"]["latitude"] == ALONG[0]
        assert 10 < listed["position"]["metres_moved"] < 25
        shown = client.get(page)
        assert f"{ALONG[0]:.6f},{ALONG[1]:.6f}" in shown.text
        assert "Accurate to about 12 m" in shown.text and "<script" not in shown.text

        stopped = client.post(f"/v1/emergency-shares/{share['share_id']}/stop",
                              headers=auth(ada))
        assert stopped.json()["state"] == "stopped"
        assert phone.receive_json() == {"type": "ended", "state": "stopped"}
        ended = screen.receive_json()
        assert (ended["type"], ended["state"]) == ("share", "stopped")
    gone = client.get(page)
    assert gone.status_code == 410 and "stopped sharing" in gone.text
    assert client.get("/v1/staff/emergency-shares?clinic_id=riverside",
                      headers=auth(nurse)).json() == []

    report = client.get("/v1/me/record-access", headers=auth(ada)).json()["accesses"]
    assert {a["who"] for a in report if a["what"] == "your emergency location share"} == {
        "Your emergency contact (from the link we sent)"}
    for record in caplog.records:
        assert f"{ALONG[0]}" not in everything_logged(record)
        assert f"{BENCH[0]}" not in everything_logged(record)


def test_no_position_is_ever_stored_in_the_event_store_or_any_table(
        client, container, clock, sign_up):
    ada = sign_up()
    share = started(client, ada)
    with client.websocket_connect(f"/v1/emergency-shares/{share['share_id']}/positions",
                                  headers=auth(ada)) as phone:
        phone.receive_json()
        phone.send_json(position(clock.now, where=(51.123456, -0.654321)))
        assert phone.receive_json()["type"] == "accepted"
    client.post(f"/v1/emergency-shares/{share['share_id']}/stop", headers=auth(ada))
    for app in container.applications.values():
        for notification in app.recorder.select_notifications(start=1, limit=100_000):
            event = app.mapper.to_domain_event(notification)
            text = repr(vars(event))
            assert "51.123456" not in text and "0.654321" not in text, type(event).__name__
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema IN ('views', 'analytics', 'pending', 'carebridge')"
            " AND table_type = 'BASE TABLE'").fetchall()
        assert tables
        for schema, table in tables:
            rows = conn.execute(f'SELECT t::text FROM "{schema}"."{table}" t').fetchall()
            assert not any("51.123456" in r[0] for r in rows), f"{schema}.{table}"


def test_consent_is_asked_for_at_the_moment_of_need_in_one_step(client, sign_up):
    ada = sign_up()
    ready_to_share(client, ada)
    refused = assert_problem(start_sharing(client, ada), 403, "consent-required")
    assert refused["extensions"]["consent_type"] == "data_sharing"
    version = refused["extensions"]["text_version"]
    assert refused["extensions"]["text"]
    shared = start_sharing(client, ada, consent_version=version)
    assert shared.status_code == 201, shared.text
    consents = client.get("/v1/me/consents", headers=auth(ada)).json()
    assert {c["consent_type"]: c["status"] for c in consents}["data_sharing"] == "given"


def test_sharing_is_offered_only_where_the_clinic_switched_it_on(client, sign_up):
    ada = sign_up()
    for section, body in (("preferred-clinic", {"clinic_id": "riverside"}),):
        client.put(f"/v1/me/profile/{section}", json=body, headers=auth(ada))
    assert give(client, ada, "data_sharing").status_code == 201
    assert_problem(start_sharing(client, ada), 403, "feature-not-available")
    sharing_on(client)
    assert start_sharing(client, ada).status_code == 201


def test_a_share_expires_unless_extended_and_the_link_dies_with_it(
        client, container, clock, sign_up):
    ada = sign_up()
    share = started(client, ada)
    page = page_path(container, ada)
    clock.now += timedelta(minutes=50)
    ada = signed_in_again(client, container, ada)
    extended = client.post(f"/v1/emergency-shares/{share['share_id']}/extend",
                           headers=auth(ada))
    assert extended.json()["expires_at"] == (clock.now + timedelta(minutes=60)).isoformat()
    clock.now += timedelta(minutes=59)
    assert container.emergency.expire_due(clock.now) == 0
    assert client.get(page).status_code == 200
    clock.now += timedelta(minutes=2)
    assert container.emergency.expire_due(clock.now) == 1
    assert client.get(page).status_code == 410
    with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(
            f"/v1/emergency-shares/{share['share_id']}/positions",
            headers=auth(signed_in_again(client, container, ada))) as phone:
        phone.receive_json()
    assert refused.value.code == 4410


def test_on_call_staff_close_a_share_with_its_outcome_and_only_they_see_it(
        client, container, sign_up, staff_member):
    ada, doctor, reception = sign_up(), staff_member("doctor"), staff_member("reception")
    share = started(client, ada)
    assert_problem(client.get("/v1/staff/emergency-shares?clinic_id=riverside",
                              headers=auth(reception)), 403)
    assert_problem(client.get(f"/v1/staff/emergency-shares/{share['share_id']}",
                              headers=auth(ada)), 403)
    closed = client.post(f"/v1/staff/emergency-shares/{share['share_id']}/close",
                         headers=auth(doctor), json={"outcome": "help_arrived"})
    assert closed.json()["state"] == "closed"
    view = client.get(f"/v1/staff/emergency-shares/{share['share_id']}",
                      headers=auth(doctor)).json()
    assert view["outcome"] == "help_arrived"
    assert client.get(page_path(container, ada)).status_code == 410


def test_a_carer_starts_a_share_for_the_person_they_help_with_the_messaging_scope(
        client, container, sign_up):
    ada, carer, booker = sign_up(), sign_up(given_name="Grace"), sign_up(given_name="Tom")
    ready_to_share(client, ada, contact=False)
    assert give(client, ada, "data_sharing").status_code == 201
    authorise_proxy(client, ada, carer, ["messaging"])
    authorise_proxy(client, ada, booker, ["appointments"])
    shared = start_sharing(client, carer, patient_id=ada["account_id"])
    assert shared.status_code == 201, shared.text
    assert shared.json()["contact_told"] is False
    assert_problem(start_sharing(client, booker, patient_id=ada["account_id"]), 403)


def test_a_made_up_or_tampered_link_shows_nothing(client, container, sign_up):
    ada = sign_up()
    started(client, ada)
    page = page_path(container, ada)
    assert client.get(page[:-3] + "abc").status_code == 404
    assert client.get("/emergency/not-a-link").status_code == 404
