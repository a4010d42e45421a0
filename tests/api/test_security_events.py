"""A patient can see what happened on their account, and only on theirs."""

from __future__ import annotations

import time
from datetime import timedelta

from tests.api.support import assert_problem


def kinds(client, headers, position=None):
    extra = {"CareBridge-Wait-For": position} if position else {}
    response = client.get("/v1/me/security-events", headers={**headers, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_patient_sees_sign_ins_failures_sessions_and_consents_newest_first(client, clock,
                                                                            sign_up):
    ada = sign_up(password="a long enough passphrase")
    auth = {"Authorization": ada["Authorization"]}
    clock.now += timedelta(minutes=1)
    refused = client.post("/v1/auth/login", json={"email": ada["email"], "password": "wrong one"})
    assert refused.status_code == 401
    clock.now += timedelta(minutes=1)
    given = client.post("/v1/me/consents", headers=auth,
                        json={"consent_type": "telemedicine", "text_version": "2026-11"})
    clock.now += timedelta(minutes=1)
    client.post("/v1/auth/logout", headers=auth)
    other = client.post("/v1/auth/login", json={"email": ada["email"],
                                                "password": "a long enough passphrase",
                                                "device_label": "Ada's tablet"}).json()
    fresh = {"Authorization": f"Bearer {other['access_token']}"}
    client.get("/v1/me/consents", headers={**fresh,
                                           "CareBridge-Wait-For": given.headers["CareBridge-Position"]})

    events = kinds(client, fresh)
    for _ in range(50):  # the identity log may still be projecting the last sign-in
        if events and events[0]["kind"] == "session_started":
            break
        time.sleep(0.02)
        events = kinds(client, fresh)
    listed = [(e["kind"], e["detail"]) for e in events]
    assert listed[:2] == [("session_started", "Ada's tablet"), ("signed_in", None)]
    assert ("session_ended", "signed_out") in listed
    assert ("consent_given", "telemedicine") in listed
    assert ("sign_in_failed", None) in listed
    assert listed[-1] == ("registered", None)
    assert all(e["at_local"].endswith("+00:00") for e in events)  # November: GMT


def test_another_patients_activity_is_never_listed(client, sign_up):
    ada, bob = sign_up(), sign_up()
    given = client.post("/v1/me/consents", headers={"Authorization": ada["Authorization"]},
                        json={"consent_type": "data_sharing", "text_version": "2026-11"})
    position = given.headers["CareBridge-Position"]

    ada_kinds = {e["kind"] for e in kinds(client, {"Authorization": ada["Authorization"]},
                                          position)}
    bob_kinds = {e["kind"] for e in kinds(client, {"Authorization": bob["Authorization"]},
                                          position)}

    assert "consent_given" in ada_kinds
    assert "consent_given" not in bob_kinds
    assert "registered" in bob_kinds


def test_the_list_needs_a_signed_in_caller_and_a_sane_limit(client, sign_up):
    assert_problem(client.get("/v1/me/security-events"), 401)
    ada = sign_up()
    assert_problem(client.get("/v1/me/security-events?limit=0",
                              headers={"Authorization": ada["Authorization"]}), 400)
