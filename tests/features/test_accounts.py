"""Step definitions for features/accounts.feature, driven through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import PASSWORD, assert_problem, field_names

scenarios("accounts.feature")

FIELDS = {"email address": "email", "passphrase": "password", "given name": "given_name",
          "family name": "family_name", "date of birth": "date_of_birth"}


@pytest.fixture
def scene() -> dict[str, Any]:
    """What happened so far in a scenario: the answers the app got."""
    return {}


def registration(email: str) -> dict[str, str]:
    return {"email": email, "password": PASSWORD, "given_name": "Grace", "family_name": "Hopper",
            "date_of_birth": "1946-12-09"}


def login_attempt(client: Any, email: str, password: str = PASSWORD) -> Any:
    return client.post("/v1/auth/login", json={"email": email, "password": password})


@given(parsers.parse('Grace registered with the email address "{email}"'))
@when(parsers.parse('Grace registers with the email address "{email}"'))
def grace_registers(client, scene, email):
    response = client.post("/v1/auth/register", json=registration(email))
    assert response.status_code == 201, response.text
    scene["email"] = email


@when("Grace sends the registration form with")
def grace_sends_form(client, scene, datatable):
    form = {FIELDS[label]: value for label, value in datatable[1:]}
    scene["answer"] = client.post("/v1/auth/register", json=form)


@when(parsers.parse('someone registers again with the email address "{email}"'))
def someone_registers_again(client, scene, email):
    scene["answer"] = client.post("/v1/auth/register", json=registration(email))


@when(parsers.parse('Grace\'s app sends her registration for "{email}" twice with the same key'))
def registration_sent_twice(client, scene, email):
    headers = {"Idempotency-Key": "grace-registers-0001"}
    scene["answers"] = [client.post("/v1/auth/register", json=registration(email), headers=headers)
                        for _ in range(2)]


@when("Grace signs in with a wrong passphrase")
def wrong_passphrase(client, scene):
    scene.setdefault("answers", []).append(login_attempt(client, scene["email"], "not my passphrase"))


@when(parsers.parse('someone signs in as "{email}"'))
def unknown_address(client, scene, email):
    scene.setdefault("answers", []).append(login_attempt(client, email))


@given("Grace has signed in")
def grace_signed_in(client, scene):
    response = login_attempt(client, scene["email"])
    assert response.status_code == 200, response.text
    scene["session"] = {"Authorization": f"Bearer {response.json()['access_token']}"}


@when("eleven minutes pass")
def time_passes(clock):
    clock.now += timedelta(minutes=11)


@then("Grace can sign in with her passphrase")
def grace_can_sign_in(client, scene):
    grace_signed_in(client, scene)


@then(parsers.parse('the app greets her as "{name}"'))
def greeted(client, scene, name):
    me = client.get("/v1/me", headers=scene["session"])
    assert me.status_code == 200, me.text
    assert f"{me.json()['given_name']} {me.json()['family_name']}" == name
    assert me.json()["email"] == scene["email"]


@then("Grace is asked to correct her")
def asked_to_correct(scene, datatable):
    problem = assert_problem(scene["answer"], 422, "invalid-input")
    assert field_names(problem) == {FIELDS[label] for (label,) in datatable[1:]}
    assert all(error["message"].strip() for error in problem["errors"])


@then(parsers.parse('nobody can sign in as "{email}"'))
def nobody_signs_in(client, email):
    assert_problem(login_attempt(client, email), 401, "unauthenticated")


@then("they are told the address is already registered and to sign in instead")
def told_already_registered(scene):
    problem = assert_problem(scene["answer"], 409, "email-already-registered")
    assert "Sign in" in problem["detail"]


@then("both answers name the same account")
def same_account(scene):
    first, second = scene["answers"]
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["account_id"] == second.json()["account_id"]


@then(parsers.parse('both are told the same thing: that "{words}" may be wrong'))
def both_told_the_same(scene, words):
    details = {assert_problem(answer, 401, "unauthenticated")["detail"] for answer in scene["answers"]}
    assert len(details) == 1, details
    assert words in details.pop().lower()


@then("Grace is asked to sign in again")
def asked_to_sign_in_again(client, scene):
    problem = assert_problem(client.get("/v1/me", headers=scene["session"]), 401)
    assert "sign in again" in problem["detail"]
