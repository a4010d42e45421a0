"""Helpers the API tests share: reading problem documents, signing in, giving consent."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPES = "https://carebridge.example/problems/"
CURRENT_VERSION = "2026-11"
PASSWORD = "a long enough passphrase"  # the `sign_up` fixture's default


def auth(person: dict[str, str]) -> dict[str, str]:
    return {"Authorization": person["Authorization"]}


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with the request id the response header carries; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    problem = response.json()
    for member in ("type", "title", "status", "detail"):
        assert problem.get(member), f"problem lacks {member}: {problem}"
    assert problem["status"] == status
    assert problem["type"].startswith(PROBLEM_TYPES)
    assert "x-request-id" in response.headers, "error response without X-Request-ID"
    assert problem.get("request_id") == response.headers["x-request-id"], problem
    if code is not None:
        assert problem["type"] == PROBLEM_TYPES + code, problem
    return problem


def field_names(problem: dict[str, Any]) -> set[str]:
    return {error["field"] for error in problem.get("errors") or []}


def sign_in(client: Any, email: str, password: str = PASSWORD) -> dict[str, str]:
    response = client.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def give(client: Any, person: dict[str, str], consent_type: str = "telemedicine",
         version: str = CURRENT_VERSION, key: str | None = None) -> Any:
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.post("/v1/me/consents", headers=headers,
                       json={"consent_type": consent_type, "text_version": version})


def withdraw(client: Any, person: dict[str, str], consent_type: str = "telemedicine",
             reason: str | None = None, key: str | None = None) -> Any:
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/v1/me/consents/{consent_type}/withdraw", headers=headers,
                       json={"reason": reason} if reason is not None else {})


def read(client: Any, person: dict[str, str], path: str, after: Any = None) -> Any:
    """A GET that waits until the projection has applied the write `after` returned."""
    headers = auth(person)
    position = after.headers.get("CareBridge-Position") if after is not None else None
    if position:
        headers["CareBridge-Wait-For"] = position
    return client.get(path, headers=headers)


def consent_of(states: list[dict[str, Any]], consent_type: str) -> dict[str, Any]:
    return next(state for state in states if state["consent_type"] == consent_type)
