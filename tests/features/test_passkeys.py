"""Step definitions for features/passkeys.feature, through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import auth
from tests.api.test_passkeys import (
    activity,
    add_passkey,
    bearer,
    my_passkeys,
    passkey_sign_in,
    step_up_by_email,
)
from tests.support_webauthn import SoftAuthenticator

scenarios("passkeys.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("Grace has confirmed it is her with a code we emailed her")
def grace_stepped_up(client, clock, mailbox, sign_up, scene):
    scene["grace"] = sign_up(given_name="Grace", family_name="Hopper")
    step_up_by_email(client, clock, mailbox, scene["grace"])


@given(parsers.parse('Grace has added a passkey on her phone called "{label}"'))
def grace_adds_passkey(client, clock, scene, label):
    scene["phone"] = SoftAuthenticator()
    added = add_passkey(client, scene["grace"], scene["phone"], label=label)
    assert added.status_code == 201, added.text
    scene["passkeys"] = {label: added.json()["passkey_id"]}
    clock.now += timedelta(minutes=1)


@when("Grace signs in with her face on her phone, without typing her email address")
def grace_signs_in_with_face(client, scene):
    scene["signed_in"] = passkey_sign_in(client, scene["phone"])


@then("she is signed in")
def she_is_signed_in(scene):
    response = scene["signed_in"]
    assert response.status_code == 200, response.text
    assert response.json()["account_id"] == scene["grace"]["account_id"]


@then("she can change sensitive settings without being asked for another code")
def no_step_up_needed(client, scene):
    session = bearer(scene["signed_in"])
    response = client.post("/v1/me/passkeys/registration-options", headers=session)
    assert response.status_code == 200, response.text


@then("her account activity shows that she added the passkey and signed in")
def activity_shows_passkey(client, scene):
    kinds = [(e["kind"], e["detail"])
             for e in activity(client, scene["grace"], until="session_started")]
    assert ("passkey_added", "Grace's iPhone") in kinds
    assert ("signed_in", None) in kinds


@given("Grace has lost her phone")
def grace_loses_phone(scene):
    scene["finder"] = scene.pop("phone")


@when(parsers.parse('Grace removes the passkey "{label}"'))
def grace_removes(client, scene, label):
    response = client.delete(f"/v1/me/passkeys/{scene['passkeys'][label]}",
                             headers=auth(scene["grace"]))
    assert response.status_code == 204, response.text


@then(parsers.parse('"{label}" is no longer among her passkeys'))
def not_listed(client, scene, label):
    assert label not in [p["label"] for p in my_passkeys(client, scene["grace"])]


@then("whoever finds the phone cannot sign in with it")
def finder_refused(client, scene):
    response = passkey_sign_in(client, scene["finder"])
    assert response.status_code == 401, response.text
