"""Registration, sign-in, the signed-in account and token expiry, through the HTTP API."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.api.support import PASSWORD, assert_problem, auth, field_names, sign_in

REGISTERED = "carebridge:identity.Account.Registered.v1"


def registration(email: str = "grace@patients.test", **changes: object) -> dict[str, object]:
    return {"email": email, "password": PASSWORD, "given_name": "Grace", "family_name": "Hopper",
            "date_of_birth": "1946-12-09", **changes}


def registered_accounts(container) -> int:
    return len(container.identity.recorder.select_notifications(
        start=None, limit=10_000, topics=[REGISTERED]))


def test_a_form_with_several_mistakes_names_every_field_at_once(client):
    response = client.post("/v1/auth/register", json={
        "email": "not-an-email", "password": "short", "given_name": " ", "family_name": "",
        "date_of_birth": "2999-01-01", "mobile_phone": "call me"})
    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"email", "password", "given_name", "family_name",
                                    "date_of_birth", "mobile_phone"}
    assert all(error["message"] for error in problem["errors"])
    assert "12 characters" in problem["detail"]


def test_wrongly_typed_and_unknown_fields_are_each_named(client):
    response = client.post("/v1/auth/register", json={
        "email": 5, "password": ["secret"], "given_name": {"first": "Grace"},
        "family_name": "Hopper", "date_of_birth": 19461209, "favourite_colour": "blue"})
    problem = assert_problem(response, 400)
    assert field_names(problem) == {"email", "password", "given_name", "date_of_birth",
                                    "favourite_colour"}
    messages = {error["field"]: error["message"] for error in problem["errors"]}
    assert messages["email"] == "must be text"
    assert "remove it" in messages["favourite_colour"]
    for name in field_names(problem):
        assert name in problem["detail"]


def test_a_birth_date_written_another_way_says_how_to_write_it(client):
    for written in ("10/12/1958", "1958-02-30", 19581210):
        problem = assert_problem(client.post("/v1/auth/register",
                                             json=registration(date_of_birth=written)), 400)
        assert problem["errors"] == [{"field": "date_of_birth",
                                      "message": "must be a date as YYYY-MM-DD"}], written


def test_a_missing_field_is_named(client):
    body = registration()
    del body["date_of_birth"]
    problem = assert_problem(client.post("/v1/auth/register", json=body), 400)
    assert field_names(problem) == {"date_of_birth"}


def test_an_email_address_registers_once(client):
    first = client.post("/v1/auth/register", json=registration())
    assert first.status_code == 201, first.text
    again = client.post("/v1/auth/register", json=registration(email="  GRACE@patients.test"))
    problem = assert_problem(again, 409, "email-already-registered")
    assert "already exists" in problem["detail"]


def test_a_retried_registration_returns_the_same_account_and_creates_no_second_one(
        client, container):
    headers = {"Idempotency-Key": "register-grace-0001"}
    first = client.post("/v1/auth/register", json=registration(), headers=headers)
    assert first.status_code == 201, first.text
    retry = client.post("/v1/auth/register", json=registration(), headers=headers)
    assert retry.status_code == 201, retry.text
    assert retry.json()["account_id"] == first.json()["account_id"]
    assert registered_accounts(container) == 1


def test_signing_in_returns_a_short_lived_bearer_token(client, clock, sign_up):
    ada = sign_up()
    response = client.post("/v1/auth/login", json={"email": ada["email"], "password": PASSWORD})
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["access_token"].count(".") == 2
    assert 0 < token["expires_in"] <= 600
    assert token["account_id"] == ada["account_id"]
    assert token["role"] == "patient"
    expires_at = datetime.fromisoformat(token["expires_at"])
    assert expires_at == clock.now + timedelta(seconds=token["expires_in"])


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(client, sign_up):
    ada = sign_up()
    wrong_password = client.post("/v1/auth/login",
                                 json={"email": ada["email"], "password": "not my passphrase"})
    unknown = client.post("/v1/auth/login",
                          json={"email": "nobody@patients.test", "password": PASSWORD})
    first = assert_problem(wrong_password, 401, "unauthenticated")
    second = assert_problem(unknown, 401, "unauthenticated")
    assert first["detail"] == second["detail"]
    assert "email address or password" in first["detail"]
    assert first["title"] == second["title"]
    assert wrong_password.headers["www-authenticate"].startswith("Bearer")


def test_me_describes_the_signed_in_account(client, sign_up):
    ada = sign_up(given_name="Ada", family_name="Lovelace")
    response = client.get("/v1/me", headers=auth(ada))
    assert response.status_code == 200, response.text
    assert response.json() == {"account_id": ada["account_id"], "role": "patient",
                               "email": ada["email"], "given_name": "Ada",
                               "family_name": "Lovelace", "clinic_ids": [],
                               "email_verified": False}


def test_a_token_stops_working_once_ten_minutes_have_passed(client, clock, sign_up):
    ada = sign_up()
    signed_in_at = clock.now
    clock.now = signed_in_at + timedelta(minutes=9, seconds=59)
    assert client.get("/v1/me", headers=auth(ada)).status_code == 200
    clock.now = signed_in_at + timedelta(minutes=10, seconds=1)
    problem = assert_problem(client.get("/v1/me", headers=auth(ada)), 401)
    assert "expired" in problem["detail"]
    assert client.get("/v1/me", headers=sign_in(client, ada["email"])).status_code == 200


def test_a_forged_token_is_refused(client, sign_up):
    ada = sign_up()
    header, payload, _ = ada["Authorization"].removeprefix("Bearer ").split(".")
    forged = {"Authorization": f"Bearer {header}.{payload}.c2lnbmF0dXJl"}
    assert_problem(client.get("/v1/me", headers=forged), 401, "unauthenticated")
