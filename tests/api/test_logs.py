"""Logs carry identifiers, routes and statuses; never what a person typed or their secrets."""

from __future__ import annotations

import logging

from tests.api.support import auth, give, read, withdraw

MARKER = "MARKER-private-reason-7f3a"
EMAIL = "log.subject.4d1c@patients.test"
PASSWORD = "correct horse battery staple"


def everything_logged(record: logging.LogRecord) -> str:
    args = record.args if isinstance(record.args, tuple) else (record.args,)
    extras = {name: value for name, value in vars(record).items()
              if name not in ("msg", "args", "exc_info", "exc_text", "stack_info")}
    return " ".join([record.getMessage(), str(record.msg), *map(repr, args), repr(extras)])


def test_no_log_line_carries_a_reason_a_password_an_email_or_a_token(client, caplog):
    caplog.set_level(logging.DEBUG)
    registered = client.post("/v1/auth/register", json={
        "email": EMAIL, "password": PASSWORD, "given_name": "Lena", "family_name": "Marker",
        "date_of_birth": "1975-05-05"})
    assert registered.status_code == 201, registered.text
    signed_in = client.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    token = signed_in.json()["access_token"]
    lena = {"Authorization": f"Bearer {token}"}
    assert give(client, lena).status_code == 201
    withdrawn = withdraw(client, lena, reason=f"{MARKER} my own words about my health")
    assert withdrawn.status_code == 200, withdrawn.text
    history = read(client, lena, "/v1/me/consents/history", after=withdrawn).json()
    assert MARKER in history[0]["reason"]  # the reason was stored, just never logged
    client.post("/v1/auth/login", json={"email": EMAIL, "password": "wrong " + PASSWORD})
    client.get("/v1/me", headers=auth(lena))

    assert caplog.records, "nothing was logged, so nothing was checked"
    assert any(getattr(r, "route", None) == "/v1/me/consents/{consent_type}/withdraw"
               for r in caplog.records), "the access log names the route template"
    for record in caplog.records:
        logged = everything_logged(record)
        for secret in (MARKER, PASSWORD, EMAIL, token):
            assert secret not in logged, f"{record.name} logged something private"
