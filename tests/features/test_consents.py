"""Step definitions for features/consents.feature, driven through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from domain.consents import CONSENT_LABELS, ConsentType
from tests.api.care_support import in_care_team
from tests.api.support import CURRENT_VERSION, assert_problem, auth, consent_of, give, read, withdraw

scenarios("consents.feature")

CONSENT_TYPES = {label: consent_type.value for consent_type, label in CONSENT_LABELS.items()}
NEW_WORDING = "I agree to video consultations under the clinic's updated terms of January 2027."


@pytest.fixture
def scene() -> dict[str, Any]:
    """What happened so far in a scenario: who is who, and the last answers the app got."""
    return {}


def status(words: str) -> str:
    return words.replace(" ", "_")


def consents_of_ada(client: Any, scene: dict[str, Any]) -> list[dict[str, Any]]:
    response = read(client, scene["ada"], "/v1/me/consents", after=scene.get("last_write"))
    assert response.status_code == 200, response.text
    return response.json()


@given("Ada is registered with the clinic")
def ada_registers(sign_up, scene):
    scene["ada"] = sign_up(given_name="Ada", family_name="Lovelace")


@given(parsers.parse('Ada has agreed to "{label}"'))
@when(parsers.parse('Ada agrees to the current text for "{label}"'))
def ada_agrees(client, scene, label):
    text = client.get(f"/v1/consent-texts/{CONSENT_TYPES[label]}", headers=auth(scene["ada"]))
    scene["last_write"] = give(client, scene["ada"], CONSENT_TYPES[label], text.json()["version"])
    assert scene["last_write"].status_code == 201, scene["last_write"].text


@given(parsers.parse('the clinic administrator publishes version "{version}" of the "{label}" text'))
def administrator_publishes(client, staff_member, scene, version, label):
    response = client.post(f"/v1/staff/consent-texts/{CONSENT_TYPES[label]}",
                           headers=auth(staff_member("clinic_admin")),
                           json={"version": version, "text": NEW_WORDING})
    assert response.status_code == 201, response.text
    scene["last_write"] = response


@when(parsers.parse('Ada agrees to version "{version}" of the "{label}" text'))
def ada_agrees_to_a_version(client, scene, version, label):
    scene["answer"] = give(client, scene["ada"], CONSENT_TYPES[label], version)


@when(parsers.parse('Ada withdraws her consent to "{label}" because "{reason}"'))
def ada_withdraws(client, scene, label, reason):
    scene["last_write"] = withdraw(client, scene["ada"], CONSENT_TYPES[label], reason=reason)
    assert scene["last_write"].status_code == 200, scene["last_write"].text


@when(parsers.parse('Ada agrees to "{label}" and her app sends the same request again'))
def ada_agrees_twice(client, scene, label):
    key = "ada-agrees-once-0001"
    scene["answers"] = [give(client, scene["ada"], CONSENT_TYPES[label], CURRENT_VERSION, key=key)
                        for _ in range(2)]
    scene["last_write"] = scene["answers"][-1]


@then(parsers.parse('Ada\'s consent to "{label}" is "{words}"'))
def ada_consent_is(client, scene, label, words):
    assert consent_of(consents_of_ada(client, scene), CONSENT_TYPES[label])["status"] == status(words)


@then("Ada has not given any other consent")
def no_other_consent(client, scene):
    given_types = {c["consent_type"] for c in consents_of_ada(client, scene) if c["status"] == "given"}
    assert given_types == {"telemedicine"}


@then("Ada's history shows, newest first:")
def ada_history(client, scene, datatable):
    response = read(client, scene["ada"], "/v1/me/consents/history", after=scene["last_write"])
    header, *rows = datatable
    expected = [dict(zip(header, row, strict=True)) for row in rows]
    assert [{"what": entry["action"], "consent": CONSENT_LABELS[ConsentType(entry["consent_type"])],
             "by her": "yes" if entry["by_you"] else "no", "reason": entry["reason"] or ""}
            for entry in response.json()] == expected


@then(parsers.parse('Ada is told the text has changed and the current version is "{version}"'))
def told_text_changed(scene, version):
    problem = assert_problem(scene["answer"], 409, "consent-text-outdated")
    assert f"current text is version {version}" in problem["detail"]


@then(parsers.parse('a nurse sees that Ada\'s consent to "{label}" is "{words}"'))
def nurse_sees(client, container, clock, staff_member, scene, label, words):
    nurse = staff_member("nurse")
    in_care_team(container, clock, scene["ada"]["account_id"], nurse["account_id"])
    response = read(client, nurse,
                    f"/v1/staff/patients/{scene['ada']['account_id']}/consents",
                    after=scene["last_write"])
    assert response.status_code == 200, response.text
    assert consent_of(response.json(), CONSENT_TYPES[label])["status"] == status(words)


@then("a receptionist is told they do not have access to Ada's consents")
def receptionist_refused(client, staff_member, scene):
    response = read(client, staff_member("reception"),
                    f"/v1/staff/patients/{scene['ada']['account_id']}/consents")
    problem = assert_problem(response, 403, "forbidden")
    assert "do not have access" in problem["detail"]


@then("both answers are the same")
def same_answers(scene):
    first, second = scene["answers"]
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()


@then(parsers.parse('Ada\'s history shows that she agreed to "{label}" once'))
def agreed_once(client, scene, label):
    response = read(client, scene["ada"], "/v1/me/consents/history", after=scene["last_write"])
    assert [(e["action"], e["consent_type"]) for e in response.json()] == [
        ("given", CONSENT_TYPES[label])]
