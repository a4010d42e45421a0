"""Every error leaves the API as an RFC 9457 problem document carrying the request id."""

from __future__ import annotations

import pytest

from tests.api.support import assert_problem, auth, give


def test_an_unknown_address_is_a_404_problem(client):
    problem = assert_problem(client.get("/v1/no-such-thing"), 404, "not-found")
    assert "/schema" in problem["detail"]


def test_a_wrong_method_is_a_405_problem(client):
    assert_problem(client.delete("/v1/me/consents"), 405, "method-not-allowed")


def test_a_request_without_a_token_is_a_401_problem(client):
    response = client.get("/v1/me/consents")
    problem = assert_problem(response, 401, "unauthenticated")
    assert "Authorization: Bearer" in problem["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("scheme", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer not.a.token"])
def test_a_malformed_authorization_header_is_a_401_problem(client, scheme):
    assert_problem(client.get("/v1/me", headers={"Authorization": scheme}), 401, "unauthenticated")


def test_a_body_that_is_not_json_is_a_400_problem(client, sign_up):
    ada = sign_up()
    for path, headers in (("/v1/auth/register", {}), ("/v1/me/consents", auth(ada))):
        response = client.post(path, content=b'{"consent_type": "telemedicine",',
                               headers=headers | {"Content-Type": "application/json"})
        assert_problem(response, 400)


def test_a_body_that_is_not_an_object_is_a_400_problem(client, sign_up):
    response = client.post("/v1/me/consents", json=["telemedicine"], headers=auth(sign_up()))
    assert_problem(response, 400)


def test_a_body_over_the_size_limit_is_a_413_problem(client):
    oversized = b'{"email": "' + b"x" * 1_100_000 + b'"}'
    response = client.post("/v1/auth/register", content=oversized,
                           headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "too-large")


def test_the_callers_request_id_is_echoed_in_the_problem(client):
    response = client.get("/v1/me", headers={"X-Request-ID": "app-request-12345678"})
    problem = assert_problem(response, 401)
    assert problem["request_id"] == "app-request-12345678"


def test_an_unsafe_request_id_is_replaced(client):
    response = client.get("/v1/me", headers={"X-Request-ID": "<script>alert(1)</script>"})
    problem = assert_problem(response, 401)
    assert "script" not in problem["request_id"]


def test_an_unexpected_failure_is_a_500_problem_without_internal_detail(
        client, container, sign_up, monkeypatch):
    ada = sign_up()

    def fail(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(container.consents, "give", fail)
    response = give(client, ada, key="give-after-failure-01")
    problem = assert_problem(response, 500, "internal-error")
    for leak in ("secret internal detail", "RuntimeError", "Traceback", 'File "', ".py"):
        assert leak not in response.text
    assert "request id" in problem["detail"]
    assert "errors" not in problem


def test_after_an_unexpected_failure_the_same_key_can_be_retried(
        client, container, sign_up, monkeypatch):
    ada = sign_up()
    real_give = container.consents.give

    def fail(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(container.consents, "give", fail)
    assert give(client, ada, key="give-after-failure-02").status_code == 500
    monkeypatch.setattr(container.consents, "give", real_give)
    retried = give(client, ada, key="give-after-failure-02")
    assert retried.status_code == 201, retried.text
