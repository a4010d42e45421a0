"""Step definitions for features/new_device.feature, through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, scenarios, then, when

from tests.api.support import PASSWORD, auth, read
from tests.api.test_verification import (
    HEALTH_WORDS,
    password_step,
    register,
    sign_in_with_emailed_code,
    token_of,
)

scenarios("new_device.feature")
NEW_PASSPHRASE = "a brand new passphrase 2026"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"new_device_second_factor": True}


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("Grace has registered with her email address and mobile number")
def grace_registered(client, scene):
    scene["grace"] = register(client, mobile="+44 7700 900123")


@when("Grace opens the confirmation link from her email")
def opens_link(client, mailbox, scene):
    link = mailbox.last(scene["grace"]["account_id"], "verify_email")["link"]
    response = client.post("/v1/auth/verify-email", json={"token": token_of(link)})
    assert response.status_code == 200, response.text


@then("her email address is confirmed")
def email_confirmed(client, mailbox, scene):
    tokens = sign_in_with_emailed_code(client, mailbox, scene["grace"])
    assert client.get("/v1/me", headers=auth(tokens)).json()["email_verified"] is True


@given("Grace has signed in on her phone before")
@given("Grace signed in on her phone a while ago")
def signed_in_on_phone(client, mailbox, clock, scene):
    scene["phone"] = sign_in_with_emailed_code(client, mailbox, scene["grace"], device="phone")
    clock.now += timedelta(minutes=11)
    refreshed = client.post("/v1/auth/refresh",
                            json={"refresh_token": scene["phone"]["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    scene["phone"] = refreshed.json() | {
        "Authorization": f"Bearer {refreshed.json()['access_token']}"}


@when("Grace signs in on her new laptop with her passphrase")
def laptop_password(client, scene):
    scene["challenge"] = password_step(client, scene["grace"], device="laptop")


@then("she is asked for a code, by email or by text message")
def asked_for_code(scene):
    assert scene["challenge"]["second_factor_required"] is True
    assert {"email_code", "sms_code"} <= set(scene["challenge"]["methods"])


@then("with the code from her email she is signed in")
def code_from_email(client, mailbox, scene):
    challenge = scene["challenge"]["challenge_token"]
    assert client.post("/v1/auth/second-factor/code",
                       json={"challenge_token": challenge}).status_code == 202
    code = mailbox.last(scene["grace"]["account_id"], "sign_in_code")["code"]
    response = client.post("/v1/auth/second-factor", json={"challenge_token": challenge,
                                                           "code": code})
    assert response.status_code == 200, response.text
    scene["laptop"] = {"Authorization": f"Bearer {response.json()['access_token']}"}


@then("we email her that her account was signed in on a new device, without any medical detail")
def notice_sent(container, mailbox, scene):
    from commands.outbox import TEMPLATES

    assert mailbox.last(scene["grace"]["account_id"], "new_sign_in")
    wording = (TEMPLATES["new_sign_in"].subject + TEMPLATES["new_sign_in"].body).lower()
    assert not any(word in wording for word in HEALTH_WORDS)


@then("her account activity lists the sign-in on the new laptop")
def activity_lists_laptop(client, scene):
    events = read(client, scene["laptop"], "/v1/me/security-events").json()
    assert any(e["kind"] == "new_device_sign_in" and e["detail"] == "Grace's laptop"
               for e in events)


@given("Grace signed in on her tablet with a code and asked us to remember it")
def remembered_tablet(client, mailbox, scene):
    tokens = sign_in_with_emailed_code(client, mailbox, scene["grace"], device="tablet",
                                       remember=True)
    scene["device_token"] = tokens["device_token"]


@when("Grace signs in on her tablet with her passphrase")
def tablet_password(client, scene):
    scene["answer"] = password_step(client, scene["grace"], device="tablet",
                                    device_token=scene["device_token"])


@then("she is signed in without a code")
def no_code(scene):
    assert scene["answer"].get("access_token")


@when("Grace changes her mobile number")
def changes_mobile(client, scene):
    scene["change"] = {"mobile_phone": "+44 7700 900456"}
    scene["response"] = client.put("/v1/me/profile/contact", headers=auth(scene["phone"]),
                                   json=scene["change"])


@then("she is asked to confirm it is her")
def asked_to_confirm(scene):
    assert scene["response"].status_code == 403
    assert scene["response"].json()["type"].endswith("/step-up-required")


@then("after typing the code we text her the change goes through")
def texted_code(client, mailbox, scene):
    sent = client.post("/v1/me/step-up/code", headers=auth(scene["phone"]),
                       json={"channel": "sms"})
    assert sent.status_code == 202, sent.text
    code = mailbox.last(scene["grace"]["account_id"], "step_up_code", channel="sms")["code"]
    stepped = client.post("/v1/me/step-up", headers=auth(scene["phone"]), json={"code": code})
    assert stepped.status_code == 200, stepped.text
    response = client.put("/v1/me/profile/contact", headers=auth(scene["phone"]),
                          json=scene["change"])
    assert response.status_code == 200, response.text


@when("Grace asks for a password reset and follows the link to choose a new passphrase")
def resets(client, mailbox, scene):
    client.post("/v1/auth/password-reset", json={"email": scene["grace"]["email"]})
    link = mailbox.last(scene["grace"]["account_id"], "password_reset")["link"]
    response = client.post("/v1/auth/password-reset/complete",
                           json={"token": token_of(link), "new_password": NEW_PASSPHRASE})
    assert response.status_code == 200, response.text


@given("Grace has signed in on her laptop too")
def signed_in_on_laptop(client, mailbox, scene):
    scene["laptop"] = sign_in_with_emailed_code(client, mailbox, scene["grace"], device="laptop")


@when("Grace changes her passphrase on her laptop")
def changes_passphrase(client, scene):
    response = client.post("/v1/me/password", headers=auth(scene["laptop"]),
                           json={"current_password": PASSWORD, "new_password": NEW_PASSPHRASE})
    assert response.status_code == 200, response.text
    assert response.json() == {"other_sessions_ended": 1}


@then("her phone is signed out")
def phone_signed_out(client, scene):
    assert client.get("/v1/me", headers=auth(scene["phone"])).status_code == 401


@then("she signs in with the new passphrase")
def new_passphrase(client, scene):
    old = client.post("/v1/auth/login", json={"email": scene["grace"]["email"],
                                              "password": PASSWORD})
    new = client.post("/v1/auth/login", json={"email": scene["grace"]["email"],
                                              "password": NEW_PASSPHRASE, "device_id": "phone"})
    assert old.status_code == 401
    assert new.status_code == 200 and new.json()["second_factor_required"] is True
