"""Step definitions for features/sessions.feature, driven through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import assert_problem
from tests.api.test_sessions import bearer, login, me, refresh, refreshed, registered, signed_in

scenarios("sessions.feature")

THIS_DEVICE = {"yes": True, "no": False}


@pytest.fixture
def scene() -> dict[str, Any]:
    """What happened so far in a scenario: Ada's address, her devices' tokens, the answers."""
    return {"devices": {}}


def only_device(scene: dict[str, Any]) -> str:
    (device,) = scene["devices"]
    return device


@given("Ada is registered with the clinic")
def ada_registers(client, scene):
    scene["email"] = registered(client)


@given(parsers.parse('Ada has signed in on "{device}"'))
def ada_signs_in(client, scene, device):
    scene["devices"][device] = signed_in(client, scene["email"], device)


@given(parsers.parse('someone has copied Ada\'s sign-in from "{device}"'))
def sign_in_copied(scene, device):
    scene["copy"] = dict(scene["devices"][device])


@when(parsers.parse("{minutes:d} minutes pass and Ada's app renews her sign-in"))
def app_renews(client, clock, scene, minutes):
    clock.now += timedelta(minutes=minutes)
    device = only_device(scene)
    scene["devices"][device] = refreshed(client, scene["devices"][device])


@when("a minute passes")
def a_minute_passes(clock):
    clock.now += timedelta(minutes=1)


@when(parsers.parse("{minutes:d} minutes pass and Ada's app renews her sign-in but the answer is "
                    "lost on the way"))
def renewal_lost(client, clock, scene, minutes):
    clock.now += timedelta(minutes=minutes)
    scene["sent"] = dict(scene["devices"][only_device(scene)])
    refreshed(client, scene["sent"])  # the answer never reaches the phone


@when("moments later the app sends the same renewal again")
def renewal_retried(client, clock, scene):
    clock.now += timedelta(seconds=5)
    scene["devices"][only_device(scene)] = refreshed(client, scene["sent"])


@then(parsers.parse('Ada is still signed in on "{device}"'))
def still_signed_in(client, scene, device):
    assert me(client, scene["devices"][device]).status_code == 200


@when("the copied sign-in is used to renew it")
def copy_used(client, scene):
    scene["answer"] = refresh(client, scene["copy"])


@when(parsers.parse("Ada does not use the app for {minutes:d} minutes"))
@when(parsers.parse("{minutes:d} minutes pass"))
def time_passes(clock, minutes):
    clock.now += timedelta(minutes=minutes)


@when(parsers.parse('Ada signs out on every device from "{device}"'))
def sign_out_everywhere(client, scene, device):
    response = client.post("/v1/me/sessions/sign-out-everywhere",
                           headers=bearer(scene["devices"][device]))
    assert response.status_code == 200, response.text


@when(parsers.parse("Ada signs in with a wrong passphrase {times:d} times"))
def wrong_passphrases(client, scene, times):
    for _ in range(times):
        assert_problem(login(client, scene["email"], password="not my passphrase"), 401)


@then(parsers.parse('the app on "{device}" greets her as "{name}"'))
def greeted(client, scene, device, name):
    response = me(client, scene["devices"][device])
    assert response.status_code == 200, response.text
    assert f"{response.json()['given_name']} {response.json()['family_name']}" == name


@then("the copy is refused")
def copy_refused(scene):
    assert "sign in again" in assert_problem(scene["answer"], 401, "session-ended")["detail"]


@then(parsers.parse('the app on "{device}" signs Ada out for her safety and suggests changing '
                    "her passphrase"))
def ada_signed_out_for_safety(client, scene, device):
    tokens = scene["devices"][device]
    for answer in (me(client, tokens), refresh(client, tokens)):
        detail = assert_problem(answer, 401, "session-ended")["detail"]
        assert "for your safety" in detail.lower()
        assert "change your password" in detail


@then(parsers.parse('the app on "{device}" cannot renew her sign-in'))
def cannot_renew(client, scene, device):
    assert_problem(me(client, scene["devices"][device]), 401)
    scene["answer"] = refresh(client, scene["devices"][device])


@then("Ada is told she was signed out after a period without activity")
def told_inactivity(scene):
    detail = assert_problem(scene["answer"], 401, "session-ended")["detail"]
    assert "signed out after a period without activity" in detail


@then(parsers.parse('on "{device}" Ada sees that she is signed in on'))
def sees_devices(client, scene, device, datatable):
    response = client.get("/v1/me/sessions", headers=bearer(scene["devices"][device]))
    assert response.status_code == 200, response.text
    seen = {entry["device_label"]: entry["current"] for entry in response.json()}
    assert seen == {label: THIS_DEVICE[current] for label, current in datatable[1:]}


@then(parsers.parse('Ada is signed out on "{device}"'))
def signed_out_on(client, scene, device):
    tokens = scene["devices"][device]
    for answer in (me(client, tokens), refresh(client, tokens)):
        assert "all devices" in assert_problem(answer, 401, "session-ended")["detail"]


@then("Ada cannot sign in even with her right passphrase")
def right_passphrase_refused(client, scene):
    scene["answer"] = login(client, scene["email"])
    assert_problem(scene["answer"], 401, "unauthenticated")


@then("she is told exactly what someone signing in with an unknown address is told")
def same_as_unknown_address(client, scene):
    paused = assert_problem(scene["answer"], 401, "unauthenticated")
    unknown = assert_problem(login(client, "nobody@patients.test"), 401, "unauthenticated")
    assert (paused["title"], paused["detail"]) == (unknown["title"], unknown["detail"])


@then("Ada can sign in with her right passphrase")
def right_passphrase_works(client, scene):
    response = login(client, scene["email"])
    assert response.status_code == 200, response.text
