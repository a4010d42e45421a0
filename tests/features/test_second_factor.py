"""Step definitions for features/second_factor.feature, through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, scenarios, then, when

from tests.api.test_second_factor import code_at, enrolled, password_step

scenarios("second_factor.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("Ada has set up an authenticator app")
def ada_enrolled(client, clock, sign_up, scene):
    scene["ada"] = enrolled(client, clock, sign_up)
    clock.now += timedelta(minutes=1)


@when("Ada signs in with her passphrase")
def ada_password(client, scene):
    scene["challenge"] = password_step(client, scene["ada"])


@then("she is asked for a code from her authenticator app")
def asked_for_code(scene):
    assert scene["challenge"]["second_factor_required"] is True
    assert "totp" in scene["challenge"]["methods"]


def answer(client: Any, scene: dict[str, Any], code: str) -> Any:
    return client.post("/v1/auth/second-factor", json={
        "challenge_token": scene["challenge"]["challenge_token"], "code": code})


@then("with the current code from her app she is signed in")
def signed_in_with_app(client, clock, scene):
    response = answer(client, scene, code_at(scene["ada"]["secret"], clock))
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]


@when("she enters one of her recovery codes")
def enters_recovery(client, scene):
    scene["response"] = answer(client, scene, scene["ada"]["recovery_codes"][3])


@then("she is signed in")
def is_signed_in(scene):
    assert scene["response"].status_code == 200, scene["response"].text


@then("the same recovery code does not work a second time")
def recovery_once(client, scene):
    scene["challenge"] = password_step(client, scene["ada"])
    assert answer(client, scene, scene["ada"]["recovery_codes"][3]).status_code == 401
