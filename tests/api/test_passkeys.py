"""Passkeys through the API: adding one, signing in and stepping up with it, and what is refused."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.housekeeping import purge_spent_webauthn_challenges
from commands.passkeys import Challenge
from domain.errors import InvalidInput
from domain.identity import LOCKOUT_THRESHOLD
from tests.api.support import assert_problem, auth, field_names
from tests.support_webauthn import SoftAuthenticator, b64url, unb64url


def step_up_by_email(client: Any, clock: Any, mailbox: Any, person: dict[str, str]) -> None:
    """Confirms it is them with a code we email (POST /v1/me/step-up). Codes are sent at most
    once a minute, and registering sent one already."""
    clock.now += timedelta(minutes=1)
    sent = client.post("/v1/me/step-up/code", headers=auth(person), json={"channel": "email"})
    assert sent.status_code == 202, sent.text
    code = mailbox.last(person["account_id"], "step_up_code")["code"]
    done = client.post("/v1/me/step-up", headers=auth(person), json={"code": code})
    assert done.status_code == 200, done.text


def registration_options(client: Any, person: dict[str, str]) -> dict[str, Any]:
    response = client.post("/v1/me/passkeys/registration-options", headers=auth(person))
    assert response.status_code == 200, response.text
    return response.json()


def add_passkey(client: Any, person: dict[str, str], phone: SoftAuthenticator,
                label: str = "Grace's iPhone", key: str | None = None, **knobs: Any) -> Any:
    options = registration_options(client, person)
    credential = phone.create(options["public_key"], **knobs)
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.post("/v1/me/passkeys", headers=headers, json={
        "options_token": options["options_token"], "credential": credential, "label": label})


def with_a_passkey(client: Any, clock: Any, mailbox: Any, sign_up: Any,
                   **knobs: Any) -> tuple[dict[str, str], SoftAuthenticator]:
    """Grace, stepped up, with a passkey on her phone."""
    grace = sign_up(given_name="Grace", family_name="Hopper")
    step_up_by_email(client, clock, mailbox, grace)
    phone = SoftAuthenticator(**knobs)
    added = add_passkey(client, grace, phone)
    assert added.status_code == 201, added.text
    grace["passkey_id"] = added.json()["passkey_id"]
    return grace, phone


def sign_in_options(client: Any, challenge_token: str | None = None) -> dict[str, Any]:
    body = {"challenge_token": challenge_token} if challenge_token else {}
    response = client.post("/v1/auth/passkey/options", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def passkey_sign_in(client: Any, phone: SoftAuthenticator, options: dict[str, Any] | None = None,
                    **knobs: Any) -> Any:
    options = options or sign_in_options(client)
    assertion = phone.get(options["public_key"], **knobs)
    return client.post("/v1/auth/passkey", json={
        "options_token": options["options_token"], "credential": assertion,
        "device_id": "grace-iphone", "device_label": "Grace's iPhone"})


def bearer(response: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def activity(client: Any, person: dict[str, str], until: str) -> list[dict[str, Any]]:
    """The account's security events, once the projection has recorded `until`."""
    events: list[dict[str, Any]] = []
    for _ in range(200):  # bounded: the projection follows moments after the commit
        events = client.get("/v1/me/security-events", headers=auth(person)).json()
        if any(e["kind"] == until for e in events):
            break
        time.sleep(0.02)
    return events


def my_passkeys(client: Any, person: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/v1/me/passkeys", headers=auth(person))
    assert response.status_code == 200, response.text
    return response.json()


def test_grace_adds_a_passkey_and_signs_in_with_it_without_her_email(client, mailbox, sign_up,
                                                                    clock):
    grace = sign_up(given_name="Grace", family_name="Hopper")
    step_up_by_email(client, clock, mailbox, grace)
    phone = SoftAuthenticator()
    options = registration_options(client, grace)
    selection = options["public_key"]["authenticatorSelection"]
    assert (selection["residentKey"], selection["userVerification"]) == ("required", "required")
    assert unb64url(options["public_key"]["user"]["id"]) == uuid.UUID(grace["account_id"]).bytes

    added = add_passkey(client, grace, phone, label="  Grace's   iPhone ")
    assert added.status_code == 201, added.text
    assert added.json()["label"] == "Grace's iPhone"
    clock.now += timedelta(minutes=1)

    signed_in = passkey_sign_in(client, phone)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["account_id"] == grace["account_id"]
    fresh = bearer(signed_in)
    # A passkey is a complete two-factor sign-in: sensitive actions need no further code.
    assert client.post("/v1/me/passkeys/registration-options", headers=fresh).status_code == 200
    [listed] = my_passkeys(client, fresh)
    assert listed["passkey_id"] == added.json()["passkey_id"]
    assert (listed["label"], listed["synced"], listed["blocked"]) == ("Grace's iPhone", True, False)
    assert listed["last_used_at"] is not None
    assert listed["transports"] == ["hybrid", "internal"]
    kinds = [(e["kind"], e["detail"]) for e in activity(client, grace, until="session_started")]
    assert ("passkey_added", "Grace's iPhone") in kinds
    assert ("signed_in", None) in kinds


def test_a_second_passkey_is_offered_only_for_new_credentials(client, clock, mailbox, sign_up):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)
    options = registration_options(client, grace)
    excluded = [c["id"] for c in options["public_key"]["excludeCredentials"]]
    assert excluded == [b64url(phone.credentials[0].credential_id)]


def test_adding_a_passkey_needs_a_recent_step_up(client, sign_up):
    ada = sign_up()
    options = client.post("/v1/me/passkeys/registration-options", headers=auth(ada))
    problem = assert_problem(options, 403, "step-up-required")
    assert problem["extensions"]["step_up"] == "/v1/me/step-up"
    added = client.post("/v1/me/passkeys", headers=auth(ada), json={
        "options_token": "made-up", "label": "My phone",
        "credential": SoftAuthenticator().create(_options_shape())})
    assert_problem(added, 403, "step-up-required")
    assert my_passkeys(client, ada) == []


def _options_shape() -> dict[str, Any]:
    return {"rp": {"id": "localhost"}, "user": {"id": "AAAA"}, "challenge": "AAAA"}


def test_a_retried_addition_with_the_same_idempotency_key_adds_one_passkey(client, clock,
                                                                            mailbox, sign_up):
    grace = sign_up()
    step_up_by_email(client, clock, mailbox, grace)
    phone = SoftAuthenticator()
    options = registration_options(client, grace)
    body = {"options_token": options["options_token"], "label": "Phone",
            "credential": phone.create(options["public_key"])}
    headers = auth(grace) | {"Idempotency-Key": "add-passkey-0001"}

    first = client.post("/v1/me/passkeys", headers=headers, json=body)
    again = client.post("/v1/me/passkeys", headers=headers, json=body)

    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert first.json() == again.json()
    assert len(my_passkeys(client, grace)) == 1
    # Without the key, the same answer is refused: its options were used up.
    replayed = client.post("/v1/me/passkeys", headers=auth(grace), json=body)
    assert field_names(assert_problem(replayed, 422)) == {"options_token"}


def test_a_passkey_needs_a_name_and_a_real_answer(client, clock, mailbox, sign_up):
    grace = sign_up()
    step_up_by_email(client, clock, mailbox, grace)
    unnamed = add_passkey(client, grace, SoftAuthenticator(), label="   ")
    assert field_names(assert_problem(unnamed, 422)) == {"label"}
    elsewhere = add_passkey(client, grace, SoftAuthenticator(), origin="https://carebridge.evil")
    problem = assert_problem(elsewhere, 422)
    assert field_names(problem) == {"credential"}
    assert "carebridge.evil" not in problem["detail"]  # no library internals
    unverified = add_passkey(client, grace, SoftAuthenticator(), user_verified=False)
    assert field_names(assert_problem(unverified, 422)) == {"credential"}
    assert my_passkeys(client, grace) == []


def test_an_answer_made_for_another_site_or_relying_party_does_not_sign_in(client, clock,
                                                                           mailbox, sign_up):
    _, phone = with_a_passkey(client, clock, mailbox, sign_up)

    phished = passkey_sign_in(client, phone, origin="https://carebridge-login.example")
    other_rp = passkey_sign_in(client, phone, rp_id="carebridge-login.example")
    unverified = passkey_sign_in(client, phone, user_verified=False)

    for refused in (phished, other_rp, unverified):
        assert "did not sign you in" in assert_problem(refused, 401)["detail"]
    assert passkey_sign_in(client, phone).status_code == 200


def test_options_work_once(client, clock, mailbox, sign_up):
    _, phone = with_a_passkey(client, clock, mailbox, sign_up)
    options = sign_in_options(client)
    assert passkey_sign_in(client, phone, options).status_code == 200

    replayed = passkey_sign_in(client, phone, options)

    assert field_names(assert_problem(replayed, 422)) == {"options_token"}


def test_options_expire_after_five_minutes(client, mailbox, sign_up, clock):
    _, phone = with_a_passkey(client, clock, mailbox, sign_up)
    options = sign_in_options(client)
    clock.now += timedelta(minutes=5)
    assert field_names(assert_problem(passkey_sign_in(client, phone, options), 422)) == {
        "options_token"}


def test_a_cloned_authenticator_is_refused_blocked_and_shown(client, mailbox, sign_up, clock):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)
    copy = phone.clone()
    for _ in range(2):
        clock.now += timedelta(minutes=1)
        assert passkey_sign_in(client, phone).status_code == 200
    clock.now += timedelta(minutes=1)

    cloned = passkey_sign_in(client, copy)  # its counter lags behind the genuine phone's

    assert_problem(cloned, 401)
    [listed] = my_passkeys(client, grace)
    assert listed["blocked"] is True
    # Nobody can tell the copy from the original any more, so neither signs in.
    assert_problem(passkey_sign_in(client, phone), 401)
    kinds = [(e["kind"], e["detail"]) for e in activity(client, grace, until="passkey_blocked")]
    assert ("passkey_blocked", "Grace's iPhone") in kinds


def test_synced_passkeys_that_never_count_keep_working(client, mailbox, sign_up, clock):
    _, phone = with_a_passkey(client, clock, mailbox, sign_up, counting=False)
    for _ in range(3):
        clock.now += timedelta(minutes=1)
        assert passkey_sign_in(client, phone).status_code == 200


def test_a_removed_passkey_no_longer_signs_in(client, clock, mailbox, sign_up):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)

    removed = client.delete(f"/v1/me/passkeys/{grace['passkey_id']}", headers=auth(grace))

    assert removed.status_code == 204, removed.text
    assert my_passkeys(client, grace) == []
    assert_problem(passkey_sign_in(client, phone), 401)
    again = client.delete(f"/v1/me/passkeys/{grace['passkey_id']}", headers=auth(grace))
    assert again.status_code == 204  # already gone: nothing more happens
    events = activity(client, grace, until="passkey_removed")
    assert [e["detail"] for e in events if e["kind"] == "passkey_removed"] == ["Grace's iPhone"]


def test_nobody_else_can_rename_or_remove_a_passkey(client, clock, mailbox, sign_up):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)
    bob = sign_up(given_name="Bob")
    step_up_by_email(client, clock, mailbox, bob)
    path = f"/v1/me/passkeys/{grace['passkey_id']}"

    renamed = client.post(f"{path}/rename", headers=auth(bob), json={"label": "Bob's now"})
    removed = client.delete(path, headers=auth(bob))
    nonexistent = client.delete(f"/v1/me/passkeys/{uuid.uuid4()}", headers=auth(bob))
    a_session = client.delete(f"/v1/me/passkeys/{grace['account_id']}", headers=auth(bob))

    for refused in (renamed, removed, nonexistent, a_session):  # the same answer for all
        assert assert_problem(refused, 404)["detail"] == "We could not find that passkey among yours."
    assert [p["label"] for p in my_passkeys(client, grace)] == ["Grace's iPhone"]
    assert passkey_sign_in(client, phone).status_code == 200


def test_grace_renames_her_passkey(client, clock, mailbox, sign_up):
    grace, _ = with_a_passkey(client, clock, mailbox, sign_up)
    renamed = client.post(f"/v1/me/passkeys/{grace['passkey_id']}/rename", headers=auth(grace),
                          json={"label": "Old iPhone"})
    assert renamed.status_code == 200, renamed.text
    assert [p["label"] for p in my_passkeys(client, grace)] == ["Old iPhone"]


def test_a_passkey_step_up_lets_a_sensitive_action_through(client, mailbox, sign_up, clock):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)
    clock.now += timedelta(minutes=1)
    later = client.post("/v1/auth/login", json={"email": grace["email"],
                                                "password": "a long enough passphrase"})
    session = bearer(later)  # signed in with the password only: not stepped up
    sensitive = client.post("/v1/me/passkeys/registration-options", headers=session)
    assert_problem(sensitive, 403, "step-up-required")

    options = client.post("/v1/me/step-up/passkey/options", headers=session)
    assert options.status_code == 200, options.text
    assertion = phone.get(options.json()["public_key"])
    confirmed = client.post("/v1/me/step-up/passkey", headers=session, json={
        "options_token": options.json()["options_token"], "credential": assertion})

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["method"] == "passkey"
    assert client.post("/v1/me/passkeys/registration-options", headers=session).status_code == 200


def test_step_up_needs_ones_own_passkey_on_ones_own_session(client, clock, mailbox, sign_up):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)
    bob = sign_up(given_name="Bob")
    assert_problem(client.post("/v1/me/step-up/passkey/options", headers=auth(bob)), 409,
                   "no-passkey")
    _, bobs_phone = with_a_passkey(client, clock, mailbox, sign_up)
    options = client.post("/v1/me/step-up/passkey/options", headers=auth(grace)).json()

    with_bobs = client.post("/v1/me/step-up/passkey", headers=auth(grace), json={
        "options_token": options["options_token"],
        "credential": bobs_phone.get({**options["public_key"], "allowCredentials": []})})
    options = client.post("/v1/me/step-up/passkey/options", headers=auth(grace)).json()
    on_bobs_session = client.post("/v1/me/step-up/passkey", headers=auth(bob), json={
        "options_token": options["options_token"], "credential": phone.get(options["public_key"])})

    assert field_names(assert_problem(with_bobs, 422)) == {"credential"}
    assert field_names(assert_problem(on_bobs_session, 422)) == {"options_token"}


def test_after_a_password_only_that_accounts_passkeys_finish_the_sign_in(client, mailbox,
                                                                        sign_up, clock):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)
    bob = sign_up(given_name="Bob")
    tokens = client.app.state.tokens
    # The token the password step hands out when a second factor is due.
    graces = tokens.issue_challenge(uuid.UUID(grace["account_id"]), "d", "Phone", clock.now)
    bobs = tokens.issue_challenge(uuid.UUID(bob["account_id"]), "d", "Phone", clock.now)

    options = sign_in_options(client, graces.token)
    allowed = [c["id"] for c in options["public_key"]["allowCredentials"]]
    assert allowed == [b64url(phone.credentials[0].credential_id)]
    assert passkey_sign_in(client, phone, options).status_code == 200
    bobs_options = sign_in_options(client, bobs.token)
    assert bobs_options["public_key"]["allowCredentials"] == []
    assert_problem(passkey_sign_in(client, phone, bobs_options), 401)


def test_repeated_failures_with_a_known_passkey_pause_sign_in(client, clock, mailbox, sign_up):
    grace, phone = with_a_passkey(client, clock, mailbox, sign_up)
    for _ in range(LOCKOUT_THRESHOLD):
        assert_problem(passkey_sign_in(client, phone, origin="https://evil.example"), 401)

    paused = passkey_sign_in(client, phone)  # even the genuine passkey, for a while

    assert_problem(paused, 401)
    kinds = [e["kind"] for e in activity(client, grace, until="sign_in_paused")]
    assert kinds.count("sign_in_failed") == LOCKOUT_THRESHOLD


def test_an_unknown_passkey_gets_the_same_answer_as_a_wrong_one(client, clock, mailbox, sign_up):
    _, phone = with_a_passkey(client, clock, mailbox, sign_up)
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": "localhost"}, "user": {"id": "AAAA"}, "challenge": "AAAA"})

    unknown = passkey_sign_in(client, stranger)
    wrong = passkey_sign_in(client, phone, origin="https://evil.example")

    assert assert_problem(unknown, 401)["detail"] == assert_problem(wrong, 401)["detail"]


def test_spent_challenges_are_purged_once_their_options_have_expired(container):
    passkeys = container.passkeys
    live = Challenge("live-challenge", datetime.now(UTC) + timedelta(minutes=5))
    passkeys.spend(Challenge("expired-challenge", datetime(2020, 1, 1, tzinfo=UTC)))
    passkeys.spend(live)

    assert purge_spent_webauthn_challenges(container.database.url) == 1
    assert purge_spent_webauthn_challenges(container.database.url) == 0
    with pytest.raises(InvalidInput):  # a live one is still remembered, so still refused
        passkeys.spend(live)
