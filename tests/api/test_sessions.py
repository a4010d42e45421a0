"""Sign-in sessions through the HTTP API: refresh, theft detection, time limits, sign-out, lockout."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from tests.api.support import PASSWORD, assert_problem

MINUTE = timedelta(minutes=1)


def registered(client: Any, email: str | None = None) -> str:
    """A patient who has registered and not yet signed in anywhere; returns the address."""
    email = email or f"{uuid.uuid4().hex[:10]}@patients.test"
    response = client.post("/v1/auth/register", json={
        "email": email, "password": PASSWORD, "given_name": "Ada", "family_name": "Lovelace",
        "date_of_birth": "1958-12-10"})
    assert response.status_code == 201, response.text
    return email


def login(client: Any, email: str, device: str | None = None, password: str = PASSWORD) -> Any:
    body = {"email": email, "password": password}
    if device:
        body |= {"device_id": device.lower().replace(" ", "-"), "device_label": device}
    return client.post("/v1/auth/login", json=body)


def signed_in(client: Any, email: str, device: str | None = None) -> dict[str, Any]:
    """The tokens a successful sign-in returns."""
    response = login(client, email, device)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(client: Any, tokens: dict[str, Any]) -> Any:
    return client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


def refreshed(client: Any, tokens: dict[str, Any]) -> dict[str, Any]:
    response = refresh(client, tokens)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(tokens: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def me(client: Any, tokens: dict[str, Any]) -> Any:
    return client.get("/v1/me", headers=bearer(tokens))


def session_record(container: Any, tokens: dict[str, Any]) -> Any:
    return container.identity.repository.get(UUID(tokens["session_id"]))


def test_signing_in_returns_an_access_token_and_a_refresh_token_for_one_session(client, clock):
    email = registered(client)

    tokens = signed_in(client, email, "Ada's phone")

    assert tokens["token_type"] == "Bearer"
    assert tokens["access_token"].count(".") == 2
    assert tokens["refresh_token"].startswith(tokens["session_id"] + ".")
    assert len(tokens["refresh_token"]) > len(tokens["session_id"]) + 32
    assert datetime.fromisoformat(tokens["expires_at"]) == clock.now + timedelta(minutes=10)
    assert datetime.fromisoformat(tokens["session_ends_at"]) == clock.now + timedelta(hours=12)
    assert me(client, tokens).status_code == 200


def test_a_refresh_returns_a_new_pair_for_the_same_session(client, clock):
    tokens = signed_in(client, registered(client))
    clock.now += 9 * MINUTE

    renewed = refreshed(client, tokens)

    assert renewed["session_id"] == tokens["session_id"]
    assert renewed["access_token"] != tokens["access_token"]
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert datetime.fromisoformat(renewed["expires_at"]) == clock.now + timedelta(minutes=10)
    assert renewed["session_ends_at"] == tokens["session_ends_at"]
    clock.now += 9 * MINUTE  # past the first access token's ten minutes
    assert me(client, renewed).status_code == 200


def test_a_refresh_token_used_twice_ends_the_session_for_everyone(client, clock, container):
    tokens = signed_in(client, registered(client))
    clock.now += 5 * MINUTE
    renewed = refreshed(client, tokens)
    clock.now += MINUTE

    stolen = refresh(client, tokens)

    problem = assert_problem(stolen, 401, "session-ended")
    assert "used from two places" in problem["detail"]
    assert "change your password" in problem["detail"]
    # The newest tokens, whoever holds them, stop working too.
    assert assert_problem(me(client, renewed), 401, "session-ended")["detail"] == problem["detail"]
    assert assert_problem(refresh(client, renewed), 401, "session-ended")["detail"] == problem["detail"]
    assert session_record(container, tokens).ended_reason == "refresh_token_reused"


def test_a_refresh_retried_after_a_lost_answer_works_once_and_the_lost_tokens_do_not(client,
                                                                                      clock):
    tokens = signed_in(client, registered(client))
    clock.now += 5 * MINUTE
    lost = refreshed(client, tokens)  # the app never received this answer
    clock.now += timedelta(seconds=10)

    retried = refreshed(client, tokens)

    assert me(client, retried).status_code == 200
    assert_problem(refresh(client, lost), 401, "session-ended")  # a copy: treated as theft
    assert_problem(me(client, retried), 401, "session-ended")


def test_a_made_up_refresh_token_is_refused_and_the_session_carries_on(client, container):
    tokens = signed_in(client, registered(client))
    guessed = tokens["session_id"] + ".not-the-secret"

    for attempt in (guessed, "no-session-here", str(uuid.uuid4()) + ".secret"):
        response = client.post("/v1/auth/refresh", json={"refresh_token": attempt})
        assert "sign in again" in assert_problem(response, 401, "refresh-refused")["detail"]

    assert session_record(container, tokens).is_active
    assert me(client, tokens).status_code == 200
    assert refresh(client, tokens).status_code == 200


def test_an_access_token_stops_working_after_signing_out(client, clock, container):
    tokens = signed_in(client, registered(client))

    response = client.post("/v1/auth/logout", headers=bearer(tokens))

    assert response.status_code == 200, response.text
    assert response.json() == {"sessions_ended": 1}
    clock.now += MINUTE
    problem = assert_problem(me(client, tokens), 401, "session-ended")
    assert problem["detail"] == "You signed out. Please sign in again."
    assert_problem(refresh(client, tokens), 401, "session-ended")
    assert session_record(container, tokens).ended_reason == "signed_out"


def test_requests_count_as_activity_between_refreshes(client, clock):
    tokens = signed_in(client, registered(client))
    clock.now += 9 * MINUTE
    assert me(client, tokens).status_code == 200
    clock.now += 7 * MINUTE  # sixteen minutes after signing in, seven after the last request

    assert refresh(client, tokens).status_code == 200


def test_sixteen_minutes_without_activity_sign_the_patient_out(client, clock, container):
    tokens = signed_in(client, registered(client))
    clock.now += 9 * MINUTE
    renewed = refreshed(client, tokens)
    clock.now += 16 * MINUTE

    refused = assert_problem(me(client, renewed), 401)
    signed_out = assert_problem(refresh(client, renewed), 401, "session-ended")

    assert "signed out after a period without activity" in signed_out["detail"]
    assert "signed out after a period without activity" in refused["detail"]
    assert session_record(container, tokens).ended_reason == "inactivity"
    clock.now += MINUTE
    assert_problem(refresh(client, renewed), 401, "session-ended")


def test_a_session_ends_twelve_hours_after_sign_in_however_active(client, clock, container):
    tokens = signed_in(client, registered(client))
    ends_at = datetime.fromisoformat(tokens["session_ends_at"])
    while clock.now + 9 * MINUTE < ends_at:
        clock.now += 9 * MINUTE
        tokens = refreshed(client, tokens)
    assert me(client, tokens).status_code == 200
    clock.now = ends_at  # the last access token is still within its ten minutes

    refused = assert_problem(me(client, tokens), 401, "session-ended")
    ended = assert_problem(refresh(client, tokens), 401, "session-ended")

    assert "maximum length" in refused["detail"]
    assert ended["detail"] == refused["detail"]
    assert session_record(container, tokens).ended_reason == "lifetime"


def test_the_sessions_list_shows_each_device_and_which_one_is_asking(client, clock):
    email = registered(client)
    phone = signed_in(client, email, "Ada's phone")
    clock.now += MINUTE
    laptop = signed_in(client, email, "Ada's laptop")

    from_phone = client.get("/v1/me/sessions", headers=bearer(phone))
    from_laptop = client.get("/v1/me/sessions", headers=bearer(laptop))

    assert from_phone.status_code == 200, from_phone.text
    listed = {entry["device_label"]: entry for entry in from_phone.json()}
    assert set(listed) == {"Ada's phone", "Ada's laptop"}
    assert listed["Ada's phone"]["session_id"] == phone["session_id"]
    assert (listed["Ada's phone"]["current"], listed["Ada's laptop"]["current"]) == (True, False)
    assert datetime.fromisoformat(listed["Ada's laptop"]["started_at"]) == clock.now
    assert {e["device_label"]: e["current"] for e in from_laptop.json()} == {
        "Ada's phone": False, "Ada's laptop": True}


def test_a_device_idle_past_the_limit_is_no_longer_listed(client, clock):
    email = registered(client)
    signed_in(client, email, device="phone")
    clock.now += 16 * MINUTE
    laptop = signed_in(client, email, device="laptop")

    listed = client.get("/v1/me/sessions", headers=bearer(laptop)).json()

    assert [entry["device_label"] for entry in listed] == ["laptop"]


def test_the_sessions_list_shows_only_the_patients_own_devices(client):
    ada = signed_in(client, registered(client), "Ada's phone")
    signed_in(client, registered(client), "Grace's phone")

    listed = client.get("/v1/me/sessions", headers=bearer(ada)).json()

    assert [entry["device_label"] for entry in listed] == ["Ada's phone"]


def test_signing_out_everywhere_ends_every_session_of_the_account(client, clock, container):
    email = registered(client)
    phone = signed_in(client, email, "Ada's phone")
    laptop = signed_in(client, email, "Ada's laptop")
    grace = signed_in(client, registered(client), "Grace's phone")
    clock.now += MINUTE

    response = client.post("/v1/me/sessions/sign-out-everywhere", headers=bearer(phone))

    assert response.status_code == 200, response.text
    assert response.json() == {"sessions_ended": 2}
    for tokens in (phone, laptop):
        problem = assert_problem(me(client, tokens), 401, "session-ended")
        assert "all devices" in problem["detail"]
        assert_problem(refresh(client, tokens), 401, "session-ended")
        assert session_record(container, tokens).ended_reason == "signed_out_everywhere"
    assert me(client, grace).status_code == 200
    tablet = signed_in(client, email, "Ada's tablet")
    listed = client.get("/v1/me/sessions", headers=bearer(tablet)).json()
    assert [(e["device_label"], e["current"]) for e in listed] == [("Ada's tablet", True)]


def test_five_wrong_passwords_pause_sign_in_without_saying_so(client, clock):
    email = registered(client)
    unknown = assert_problem(login(client, "nobody@patients.test"), 401, "unauthenticated")

    for _ in range(5):
        wrong = assert_problem(login(client, email, password="not my passphrase"), 401)
        assert wrong == unknown | {"request_id": wrong["request_id"]}
    paused = assert_problem(login(client, email), 401, "unauthenticated")

    assert (paused["title"], paused["detail"]) == (unknown["title"], unknown["detail"])
    assert "15 minutes" in paused["detail"]
    clock.now += 14 * MINUTE
    assert_problem(login(client, email), 401, "unauthenticated")
    clock.now += MINUTE + timedelta(seconds=1)
    assert login(client, email).status_code == 200


def test_a_successful_sign_in_forgets_earlier_wrong_passwords(client):
    email = registered(client)
    for _ in range(4):
        assert_problem(login(client, email, password="not my passphrase"), 401)
    assert login(client, email).status_code == 200

    for _ in range(4):
        assert_problem(login(client, email, password="not my passphrase"), 401)

    assert login(client, email).status_code == 200


def test_session_endpoints_answer_every_mistake_with_a_problem(client):
    tokens = signed_in(client, registered(client))

    assert_problem(client.post("/v1/auth/refresh", json={}), 400, "invalid-request")
    assert_problem(client.post("/v1/auth/refresh", json={"refresh_token": ""}), 400)
    assert_problem(client.post("/v1/auth/logout"), 401, "unauthenticated")
    assert_problem(client.get("/v1/me/sessions"), 401, "unauthenticated")
    assert_problem(client.post("/v1/me/sessions/sign-out-everywhere",
                               headers={"Authorization": "Bearer not-a-token"}), 401)
    refresh_as_access = {"Authorization": f"Bearer {tokens['refresh_token']}"}
    assert_problem(client.get("/v1/me/sessions", headers=refresh_as_access), 401, "unauthenticated")
    assert_problem(client.post("/v1/auth/login", json={
        "email": "ada@patients.test", "password": PASSWORD, "device_label": ""}), 400)
