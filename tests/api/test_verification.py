"""Proving who you are, through the API: email confirmation, codes for new devices, remembered
devices, step-up, password change and reset. Emails and texts are read from the local logs."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import psycopg
import pytest

from tests.api.support import PASSWORD, assert_problem, auth, field_names, read

# Words that would say something about a person's health. "Appointment" and the clinic's name
# are allowed: they say when and where, not why.
HEALTH_WORDS = ("diagnos", "prescri", "medic", "result", "symptom", "treatment", "vaccin",
                "clinical", "specialty", "condition", "test ")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"new_device_second_factor": True}


def register(client: Any, email: str | None = None, mobile: str | None = None) -> dict[str, str]:
    email = email or f"{uuid.uuid4().hex[:10]}@patients.test"
    body = {"email": email, "password": PASSWORD, "given_name": "Grace",
            "family_name": "Hopper", "date_of_birth": "1946-12-09"}
    if mobile:
        body["mobile_phone"] = mobile
    response = client.post("/v1/auth/register", json=body)
    assert response.status_code == 201, response.text
    return {"account_id": response.json()["account_id"], "email": email}


def password_step(client: Any, person: dict[str, str], device: str = "phone-1",
                  device_token: str | None = None) -> dict[str, Any]:
    body = {"email": person["email"], "password": PASSWORD, "device_id": device,
            "device_label": f"Grace's {device}"}
    if device_token:
        body["device_token"] = device_token
    response = client.post("/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def sign_in_with_emailed_code(client: Any, mailbox: Any, person: dict[str, str],
                              device: str = "phone-1", remember: bool = False) -> dict[str, Any]:
    challenge = password_step(client, person, device)
    assert challenge["second_factor_required"] is True
    sent = client.post("/v1/auth/second-factor/code",
                       json={"challenge_token": challenge["challenge_token"], "channel": "email"})
    assert sent.status_code == 202, sent.text
    code = mailbox.last(person["account_id"], "sign_in_code")["code"]
    done = client.post("/v1/auth/second-factor", json={
        "challenge_token": challenge["challenge_token"], "code": code,
        "remember_device": remember})
    assert done.status_code == 200, done.text
    tokens = done.json()
    tokens["Authorization"] = f"Bearer {tokens['access_token']}"
    return tokens


def token_of(link: str) -> str:
    return parse_qs(urlparse(link).query)["token"][0]


# ---- email confirmation ----

def test_registration_sends_a_confirmation_link_that_confirms_the_address_once(client, mailbox,
                                                                                 clock):
    grace = register(client)
    message = mailbox.last(grace["account_id"], "verify_email")
    assert set(message) == {"message_id", "kind", "account_id", "link"}  # the link only
    assert grace["email"] not in str(message)

    first = client.post("/v1/auth/verify-email", json={"token": token_of(message["link"])})
    again = client.post("/v1/auth/verify-email", json={"token": token_of(message["link"])})

    assert first.status_code == 200 and first.json() == {"email_verified": True, "changed": True}
    assert again.status_code == 200 and again.json()["changed"] is False
    tokens = sign_in_with_emailed_code(client, mailbox, grace)
    assert client.get("/v1/me", headers=auth(tokens)).json()["email_verified"] is True


def test_a_wrong_or_expired_confirmation_link_is_refused_with_what_to_do(client, mailbox, clock):
    grace = register(client)
    link = mailbox.last(grace["account_id"], "verify_email")["link"]

    wrong = client.post("/v1/auth/verify-email", json={"token": f"{grace['account_id']}.nope"})
    broken = client.post("/v1/auth/verify-email", json={"token": "not-a-token-at-all"})
    clock.now += timedelta(hours=25)
    late = client.post("/v1/auth/verify-email", json={"token": token_of(link)})

    for response in (wrong, broken, late):
        problem = assert_problem(response, 409, "link-not-valid")
        assert "new one" in problem["detail"]


def test_delivered_messages_keep_no_address_and_no_content(client, mailbox, container):
    grace = register(client)
    mailbox.messages()
    with psycopg.connect(container.database.url) as conn:
        row = conn.execute("SELECT recipient, payload, delivered_at, attempts FROM"
                           " carebridge.outbox WHERE account_id = %s",
                           (grace["account_id"],)).fetchone()
    assert row is not None
    recipient, payload, delivered_at, attempts = row
    assert (recipient, payload, attempts) == (None, None, 1) and delivered_at is not None


# ---- a second factor on new devices ----

def test_a_new_device_needs_a_code_and_offers_the_ways_the_account_has(client, mailbox):
    with_phone = register(client, mobile="+44 7700 900123")
    without = register(client)

    assert password_step(client, with_phone)["methods"] == ["email_code", "sms_code"]
    assert password_step(client, without)["methods"] == ["email_code"]
    assert "access_token" not in password_step(client, without)


def test_a_code_by_text_message_finishes_signing_in(client, mailbox):
    grace = register(client, mobile="+44 7700 900123")
    challenge = password_step(client, grace)
    sent = client.post("/v1/auth/second-factor/code",
                       json={"challenge_token": challenge["challenge_token"], "channel": "sms"})
    assert sent.status_code == 202
    assert sent.json()["sent_to"] == "*** 123"
    code = mailbox.last(grace["account_id"], "sign_in_code", channel="sms")["code"]

    done = client.post("/v1/auth/second-factor",
                       json={"challenge_token": challenge["challenge_token"], "code": code})
    assert done.status_code == 200, done.text


def test_a_code_works_once_and_a_wrong_one_is_refused(client, mailbox):
    grace = register(client)
    challenge = password_step(client, grace)
    client.post("/v1/auth/second-factor/code",
                json={"challenge_token": challenge["challenge_token"]})
    code = mailbox.last(grace["account_id"], "sign_in_code")["code"]
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"

    refused = client.post("/v1/auth/second-factor",
                          json={"challenge_token": challenge["challenge_token"], "code": wrong})
    accepted = client.post("/v1/auth/second-factor",
                           json={"challenge_token": challenge["challenge_token"], "code": code})
    replayed = client.post("/v1/auth/second-factor",
                           json={"challenge_token": challenge["challenge_token"], "code": code})

    assert_problem(refused, 401, "second-factor-refused")
    assert accepted.status_code == 200
    assert_problem(replayed, 401, "second-factor-refused")


def test_asking_for_codes_too_often_is_slowed_down(client, mailbox, clock):
    grace = register(client)
    challenge = password_step(client, grace)
    body = {"challenge_token": challenge["challenge_token"]}
    first = client.post("/v1/auth/second-factor/code", json=body)
    too_soon = client.post("/v1/auth/second-factor/code", json=body)
    assert first.status_code == 202
    assert_problem(too_soon, 429, "too-many-codes")
    assert int(too_soon.headers["retry-after"]) > 0


def test_a_text_to_an_account_without_a_mobile_number_is_refused(client):
    grace = register(client)
    challenge = password_step(client, grace)
    response = client.post("/v1/auth/second-factor/code", json={
        "challenge_token": challenge["challenge_token"], "channel": "sms"})
    assert_problem(response, 409, "channel-not-available")


def test_a_sign_in_on_a_second_device_sends_a_notice_without_medical_detail(client, container,
                                                                             mailbox):
    grace = register(client)
    sign_in_with_emailed_code(client, mailbox, grace, device="phone-1")
    assert not [m for m in mailbox.messages() if m["kind"] == "new_sign_in"]

    tokens = sign_in_with_emailed_code(client, mailbox, grace, device="laptop-7")

    notice = mailbox.last(grace["account_id"], "new_sign_in")
    assert set(notice) == {"message_id", "kind", "account_id"}
    # A sign-in answers with no position to wait for: bring the activity list up to date now.
    runner = container.runner("security_events")
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        runner.catch_up(conn)
    events = read(client, tokens, "/v1/me/security-events").json()
    new_devices = [e for e in events if e["kind"] == "new_device_sign_in"]
    assert [e["detail"] for e in new_devices] == ["Grace's laptop-7", "Grace's phone-1"]


def test_the_notice_text_names_the_device_and_nothing_medical(container):
    from commands.outbox import TEMPLATES, Outgoing

    outgoing = Outgoing(uuid.uuid4(), uuid.uuid4(), "email", "new_sign_in", "g@example.com",
                        {"device": "Grace's laptop", "when": "23 November 2026 at 09:00 GMT"})
    text = (outgoing.subject() + outgoing.text()).lower()
    assert "grace's laptop" in text and "sign out everywhere" in text
    for template in TEMPLATES.values():
        wording = (template.subject + template.body + (template.sms or "")).lower()
        # The one phrase the product asks for when a result is released: that there is one,
        # never which test or what it showed.
        wording = wording.replace("a new result is available", "")
        assert not any(word in wording for word in HEALTH_WORDS), template


# ---- remembered devices ----

def test_a_remembered_device_skips_the_code_until_forgotten(client, mailbox, clock):
    grace = register(client)
    tokens = sign_in_with_emailed_code(client, mailbox, grace, device="tablet", remember=True)
    device_token = tokens["device_token"]
    assert device_token

    direct = password_step(client, grace, "tablet", device_token)
    elsewhere = password_step(client, grace, "other-device", device_token)
    listed = client.get("/v1/me/devices", headers=auth(tokens)).json()
    forgotten = client.post("/v1/me/devices/tablet/forget", headers=auth(tokens))
    after = password_step(client, grace, "tablet", device_token)

    assert "access_token" in direct
    assert elsewhere["second_factor_required"] is True  # the token belongs to the tablet only
    assert [d["device_id"] for d in listed] == ["tablet"]
    assert forgotten.json() == {"forgotten": True}
    assert after["second_factor_required"] is True


def test_a_remembered_device_needs_the_code_again_after_the_configured_days(client, mailbox,
                                                                            clock):
    grace = register(client)
    tokens = sign_in_with_emailed_code(client, mailbox, grace, device="tablet", remember=True)
    clock.now += timedelta(days=31)
    assert password_step(client, grace, "tablet", tokens["device_token"])[
        "second_factor_required"] is True


# ---- step-up ----

def test_a_sensitive_change_asks_to_step_up_and_goes_through_after_a_code(client, mailbox, clock):
    grace = register(client)
    tokens = sign_in_with_emailed_code(client, mailbox, grace)
    clock.now += timedelta(minutes=11)  # the sign-in's own verification has aged out
    refreshed = client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    tokens = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    contact = {"mobile_phone": "+44 7700 900456"}

    refused = client.put("/v1/me/profile/contact", headers=auth(tokens), json=contact)
    problem = assert_problem(refused, 403, "step-up-required")
    assert problem["extensions"]["step_up"] == "/v1/me/step-up"

    sent = client.post("/v1/me/step-up/code", headers=auth(tokens), json={"channel": "email"})
    assert sent.status_code == 202
    code = mailbox.last(grace["account_id"], "step_up_code")["code"]
    stepped = client.post("/v1/me/step-up", headers=auth(tokens), json={"code": code})
    assert stepped.status_code == 200, stepped.text
    assert stepped.json()["method"] == "email_code"

    allowed = client.put("/v1/me/profile/contact", headers=auth(tokens), json=contact)
    assert allowed.status_code == 200, allowed.text


def test_a_sign_in_code_cannot_confirm_a_sensitive_action(client, mailbox, clock):
    grace = register(client)
    tokens = sign_in_with_emailed_code(client, mailbox, grace)
    challenge = password_step(client, grace, device="other")
    client.post("/v1/auth/second-factor/code",
                json={"challenge_token": challenge["challenge_token"]})
    sign_in_code = mailbox.last(grace["account_id"], "sign_in_code")["code"]

    response = client.post("/v1/me/step-up", headers=auth(tokens), json={"code": sign_in_code})
    assert "code" in field_names(assert_problem(response, 422, "invalid-input"))


# ---- passwords ----

def test_changing_the_password_signs_out_other_devices_and_tells_the_owner(client, mailbox):
    grace = register(client)
    here = sign_in_with_emailed_code(client, mailbox, grace, device="phone-1")
    there = sign_in_with_emailed_code(client, mailbox, grace, device="laptop")
    new = "a brand new passphrase 2026"

    wrong = client.post("/v1/me/password", headers=auth(here),
                        json={"current_password": "not it at all", "new_password": new})
    weak = client.post("/v1/me/password", headers=auth(here),
                       json={"current_password": PASSWORD, "new_password": "password"})
    changed = client.post("/v1/me/password", headers=auth(here),
                          json={"current_password": PASSWORD, "new_password": new})

    assert field_names(assert_problem(wrong, 422)) == {"current_password"}
    assert field_names(assert_problem(weak, 422)) == {"new_password"}
    assert changed.status_code == 200 and changed.json() == {"other_sessions_ended": 1}
    assert_problem(client.get("/v1/me", headers=auth(there)), 401, "session-ended")
    assert client.get("/v1/me", headers=auth(here)).status_code == 200
    assert mailbox.last(grace["account_id"], "password_changed")
    kinds = [e["kind"] for e in read(client, here, "/v1/me/security-events").json()]
    assert "password_changed" in kinds


def test_a_password_reset_answers_the_same_for_unknown_addresses(client, mailbox):
    grace = register(client)
    known = client.post("/v1/auth/password-reset", json={"email": grace["email"]})
    unknown = client.post("/v1/auth/password-reset", json={"email": "nobody@patients.test"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [m["kind"] for m in mailbox.messages()].count("password_reset") == 1


def test_a_password_reset_link_sets_a_new_password_once_and_signs_out_everywhere(client, mailbox,
                                                                                 clock):
    grace = register(client)
    tokens = sign_in_with_emailed_code(client, mailbox, grace)
    client.post("/v1/auth/password-reset", json={"email": grace["email"]})
    token = token_of(mailbox.last(grace["account_id"], "password_reset")["link"])
    new = "a brand new passphrase 2026"

    weak = client.post("/v1/auth/password-reset/complete",
                       json={"token": token, "new_password": "short"})
    done = client.post("/v1/auth/password-reset/complete",
                       json={"token": token, "new_password": new})
    again = client.post("/v1/auth/password-reset/complete",
                        json={"token": token, "new_password": new + "!"})

    assert field_names(assert_problem(weak, 422)) == {"new_password"}
    assert done.status_code == 200
    assert_problem(again, 409, "link-not-valid")
    assert_problem(client.get("/v1/me", headers=auth(tokens)), 401, "session-ended")
    old = client.post("/v1/auth/login", json={"email": grace["email"], "password": PASSWORD})
    assert_problem(old, 401)
    assert client.post("/v1/auth/login", json={"email": grace["email"],
                                               "password": new}).status_code == 200


def test_no_code_or_link_reaches_the_application_log(client, mailbox, caplog):
    grace = register(client)
    with caplog.at_level("DEBUG"):
        challenge = password_step(client, grace)
        client.post("/v1/auth/second-factor/code",
                    json={"challenge_token": challenge["challenge_token"]})
        messages = mailbox.messages()
    secrets_sent = [m.get("code") or m.get("link") for m in messages]
    assert secrets_sent
    for secret in secrets_sent:
        assert secret not in caplog.text
    assert not re.search(re.escape(grace["email"]), caplog.text)
