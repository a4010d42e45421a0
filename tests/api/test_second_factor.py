"""Signing in with an authenticator app, recovery codes, and what is refused."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pyotp

from tests.api.support import assert_problem

PASSPHRASE = "a long enough passphrase"


def code_at(secret: str, clock: Any, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock.now + timedelta(seconds=30 * offset_steps))


def enrolled(client: Any, clock: Any, sign_up: Any) -> dict[str, Any]:
    """A patient who has set up an authenticator app; returns their secret and recovery codes."""
    ada = sign_up(password=PASSPHRASE)
    auth = {"Authorization": ada["Authorization"]}
    started = client.post("/v1/me/second-factor/totp", headers=auth)
    assert started.status_code == 201, started.text
    enrolment = started.json()
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/CareBridge:")
    assert enrolment["qr_svg"].startswith("<svg")
    confirmed = client.post("/v1/me/second-factor/totp/confirm", headers=auth,
                            json={"code": code_at(enrolment["secret"], clock)})
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    return {**ada, "secret": enrolment["secret"], "recovery_codes": codes}


def password_step(client: Any, ada: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/auth/login", json={"email": ada["email"], "password": PASSPHRASE,
                                                   "device_label": "Ada's phone"})
    assert response.status_code == 200, response.text
    return response.json()


def test_after_setting_up_an_app_sign_in_needs_its_code(client, clock, sign_up):
    ada = enrolled(client, clock, sign_up)
    clock.now += timedelta(minutes=1)

    challenge = password_step(client, ada)
    assert challenge["second_factor_required"] is True
    assert "access_token" not in challenge

    done = client.post("/v1/auth/second-factor", json={
        "challenge_token": challenge["challenge_token"], "code": code_at(ada["secret"], clock)})
    assert done.status_code == 200, done.text
    fresh = {"Authorization": f"Bearer {done.json()['access_token']}"}
    assert client.get("/v1/me", headers=fresh).status_code == 200
    kinds: list[str] = []
    for _ in range(100):  # bounded: the projection follows moments after the commit
        kinds = [e["kind"] for e in client.get("/v1/me/security-events", headers=fresh).json()]
        if "second_factor_enabled" in kinds and kinds[0] == "identity_confirmed":
            break
        time.sleep(0.02)
    assert "second_factor_enabled" in kinds
    # Newest first: the session records the factor proved (by the authenticator app).
    assert kinds[:3] == ["identity_confirmed", "session_started", "signed_in"]


def test_a_code_works_once_and_a_wrong_one_is_refused(client, clock, sign_up):
    ada = enrolled(client, clock, sign_up)
    clock.now += timedelta(minutes=1)
    code = code_at(ada["secret"], clock)
    first = password_step(client, ada)
    assert client.post("/v1/auth/second-factor", json={
        "challenge_token": first["challenge_token"], "code": code}).status_code == 200

    second = password_step(client, ada)
    replayed = client.post("/v1/auth/second-factor", json={
        "challenge_token": second["challenge_token"], "code": code})
    assert "already used" in assert_problem(replayed, 401)["detail"]
    wrong = client.post("/v1/auth/second-factor", json={
        "challenge_token": second["challenge_token"], "code": "000000"
        if code != "000000" else "111111"})
    assert_problem(wrong, 401)


def test_each_recovery_code_works_once(client, clock, sign_up):
    ada = enrolled(client, clock, sign_up)
    recovery = ada["recovery_codes"][0]
    first = password_step(client, ada)
    assert client.post("/v1/auth/second-factor", json={
        "challenge_token": first["challenge_token"], "code": recovery}).status_code == 200
    again = password_step(client, ada)
    assert_problem(client.post("/v1/auth/second-factor", json={
        "challenge_token": again["challenge_token"], "code": recovery}), 401)


def test_a_challenge_expires_after_five_minutes(client, clock, sign_up):
    ada = enrolled(client, clock, sign_up)
    challenge = password_step(client, ada)
    clock.now += timedelta(minutes=6)
    late = client.post("/v1/auth/second-factor", json={
        "challenge_token": challenge["challenge_token"], "code": code_at(ada["secret"], clock)})
    assert "too long" in assert_problem(late, 401)["detail"]


def test_an_access_token_is_not_a_challenge(client, clock, sign_up):
    ada = enrolled(client, clock, sign_up)
    token = ada["Authorization"].split()[1]
    assert_problem(client.post("/v1/auth/second-factor", json={
        "challenge_token": token, "code": code_at(ada["secret"], clock)}), 401)


def test_a_mistyped_code_while_setting_up_says_what_to_do(client, sign_up):
    ada = sign_up()
    auth = {"Authorization": ada["Authorization"]}
    assert client.post("/v1/me/second-factor/totp", headers=auth).status_code == 201
    problem = assert_problem(client.post("/v1/me/second-factor/totp/confirm", headers=auth,
                                         json={"code": "abcdef"}), 422)
    assert problem["errors"][0]["field"] == "code"
    unset = sign_up()
    assert_problem(client.post("/v1/me/second-factor/totp/confirm",
                               headers={"Authorization": unset["Authorization"]},
                               json={"code": "123456"}), 409)
