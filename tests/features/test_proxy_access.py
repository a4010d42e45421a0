"""Step definitions for features/proxy_access.feature, driven through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.care_support import authorise_proxy, in_care_team, offer
from tests.api.support import PASSWORD, assert_problem, auth, read, sign_in

scenarios("proxy_access.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def scopes(words: str) -> list[str]:
    return [w.strip() for w in words.split(",")]


def consents_of(client: Any, reader: dict[str, str], patient: dict[str, str]) -> Any:
    return client.get(f"/v1/patients/{patient['account_id']}/consents", headers=auth(reader))


def access_of_emma(client: Any, scene: dict[str, Any]) -> dict[str, Any]:
    grants = client.get("/v1/me/proxies", headers=auth(scene["grace"])).json()
    return next(g for g in grants if g["email"] == scene["emma"]["email"])


@given("Grace is registered with the clinic")
def grace_registers(sign_up, scene):
    scene["grace"] = sign_up(given_name="Grace", family_name="Hopper")


@given("her daughter Emma has an account too")
def emma_registers(sign_up, scene):
    scene["emma"] = sign_up(given_name="Emma", family_name="Hopper")


@when(parsers.parse('Grace invites Emma to help with "{what}"'))
def grace_invites_emma(client, scene, what):
    scene["invitation"] = offer(client, scene["grace"], scene["emma"]["email"], scopes(what))
    assert scene["invitation"].status_code == 202, scene["invitation"].text
    scene.setdefault("answers", []).append(scene["invitation"])


@when(parsers.parse('Grace invites "{email}" to help with "{what}"'))
def grace_invites_someone(client, scene, email, what):
    scene.setdefault("answers", []).append(offer(client, scene["grace"], email, scopes(what)))


@when("Emma accepts the invitation")
def emma_accepts(client, scene):
    grant_id = scene["invitation"].json()["grant_id"]
    response = client.post(f"/v1/me/represented/{grant_id}/accept", headers=auth(scene["emma"]))
    assert response.status_code == 200, response.text


@given(parsers.parse('Emma helps Grace with "{what}"'))
def emma_helps(client, scene, what):
    scene["grant_id"] = authorise_proxy(client, scene["grace"], scene["emma"], scopes(what))


@given("Emma can see Grace's consents")
def emma_sees_consents(client, scene):
    assert consents_of(client, scene["emma"], scene["grace"]).status_code == 200


@when("Grace revokes Emma's access")
def grace_revokes(client, scene):
    scene["last_write"] = client.post(f"/v1/me/proxies/{scene['grant_id']}/revoke",
                                      headers=auth(scene["grace"]))
    assert scene["last_write"].status_code == 200, scene["last_write"].text


@then(parsers.parse('Emma sees that she may act for Grace with "{what}"'))
def emma_may_act(client, scene, what):
    represented = client.get("/v1/me/represented", headers=auth(scene["emma"])).json()
    assert [(r["patient_id"], r["patient_name"], r["scopes"], r["status"]) for r in represented] \
        == [(scene["grace"]["account_id"], "Grace Hopper", scopes(what), "active")]


@then(parsers.parse("Grace sees that Emma's access is \"{status}\""))
def grace_sees_status(client, scene, status):
    assert access_of_emma(client, scene)["status"] == status


@then("Emma is told she does not have access to Grace's consents")
def emma_refused(client, scene):
    problem = assert_problem(consents_of(client, scene["emma"], scene["grace"]), 403, "forbidden")
    assert "do not have access" in problem["detail"]


@then("Grace's account activity shows that Emma's access began and ended")
def grace_activity(client, scene):
    response = read(client, scene["grace"], "/v1/me/security-events", after=scene["last_write"])
    kinds = [e["kind"] for e in response.json() if e["kind"].startswith("proxy_")]
    assert kinds == ["proxy_access_ended", "proxy_access_granted"]


@then("both invitations were answered the same way")
def same_answers(scene):
    unknown, known = scene["answers"]
    assert unknown.status_code == known.status_code == 202
    assert set(unknown.json()) == set(known.json())
    for field in ("kind", "scopes", "status", "accepted_at", "expires_at", "changed"):
        assert unknown.json()[field] == known.json()[field], field


@given(parsers.parse("Lily, born on {born}, is a patient at the clinic"))
def lily_registers(client, container, clock, staff_member, scene, born):
    email = "lily.patel@patients.test"
    registered = client.post("/v1/auth/register", json={
        "email": email, "password": PASSWORD, "given_name": "Lily", "family_name": "Patel",
        "date_of_birth": born})
    assert registered.status_code == 201, registered.text
    scene["lily"] = {"account_id": registered.json()["account_id"]} | sign_in(client, email)
    in_care_team(container, clock, scene["lily"]["account_id"],
                 staff_member("nurse")["account_id"])


@given("her mother Priya has an account")
def priya_registers(sign_up, scene):
    scene["priya"] = sign_up(given_name="Priya", family_name="Patel")


@when("the receptionist records, after checking in person, that Priya is Lily's parent")
def reception_records(client, staff_member, scene):
    response = client.post(
        f"/v1/staff/patients/{scene['lily']['account_id']}/parental-responsibility",
        headers=auth(staff_member("reception")),
        json={"parent_account_id": scene["priya"]["account_id"]})
    assert response.status_code == 201, response.text


@then(parsers.parse("Priya sees that she may act for Lily in everything until {day}"))
def priya_may_act(client, scene, day):
    represented = client.get("/v1/me/represented", headers=auth(scene["priya"])).json()
    assert len(represented) == 1
    lily = represented[0]
    assert (lily["patient_name"], lily["kind"], lily["status"]) == ("Lily Patel", "parent",
                                                                    "active")
    assert set(lily["scopes"]) == {"appointments", "prescriptions", "records", "documents",
                                   "messaging", "consents"}
    assert lily["expires_at"].startswith(day)


@then("Priya can see Lily's consents")
def priya_sees(client, scene):
    assert consents_of(client, scene["priya"], scene["lily"]).status_code == 200
