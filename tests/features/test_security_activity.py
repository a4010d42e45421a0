"""Step definitions for features/security_activity.feature, through the HTTP API."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

scenarios("security_activity.feature")

PASSPHRASE = "a long enough passphrase"


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def activity(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/v1/me/security-events", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@given("Grace has registered and signed in on her phone")
def grace_signed_in(client, sign_up, scene):
    scene["grace"] = sign_up(password=PASSPHRASE, given_name="Grace", family_name="Hopper")
    scene["other"] = sign_up()


@given("someone typed a wrong passphrase for Grace's email address")
def wrong_passphrase(client, clock, scene):
    clock.now += timedelta(minutes=1)
    refused = client.post("/v1/auth/login", json={"email": scene["grace"]["email"],
                                                  "password": "not her passphrase"})
    assert refused.status_code == 401


@when(parsers.parse('Grace signs in on "{device}"'))
def grace_signs_in_on(client, clock, scene, device):
    clock.now += timedelta(minutes=1)
    response = client.post("/v1/auth/login", json={
        "email": scene["grace"]["email"], "password": PASSPHRASE, "device_label": device})
    assert response.status_code == 200, response.text
    scene["headers"] = {"Authorization": f"Bearer {response.json()['access_token']}"}


@then(parsers.parse('her account activity shows, newest first, "{kind}" on "{device}"'))
def newest_is(client, scene, kind, device):
    events: list[dict[str, Any]] = []
    for _ in range(100):  # bounded: the sign-in is projected moments after it is recorded
        events = activity(client, scene["headers"])
        if events and events[0]["kind"] == kind:
            break
        time.sleep(0.02)
    assert (events[0]["kind"], events[0]["detail"]) == (kind, device)
    scene["events"] = events


@then("her account activity shows a failed sign-in")
def shows_failure(scene):
    assert "sign_in_failed" in {e["kind"] for e in scene["events"]}


@then("her account activity does not show anything of another patient")
def nothing_of_others(client, scene):
    other = activity(client, {"Authorization": scene["other"]["Authorization"]})
    assert {e["at"] for e in other}.isdisjoint(
        {e["at"] for e in scene["events"] if e["kind"] == "sign_in_failed"})
    assert "sign_in_failed" not in {e["kind"] for e in other}
