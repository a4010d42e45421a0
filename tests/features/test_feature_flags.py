"""Step definitions for features/feature_flags.feature, driven through the HTTP API.

The share of patients is checked through the gate that other contexts call (the command
layer), over thousands of made-up patient ids: signing up that many patients through the API
would prove nothing more.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from domain.feature_flags import Feature, FeatureNotAvailable
from tests.api.support import assert_problem, auth

scenarios("feature_flags.feature")

FEATURES = {"video consultations": "telemedicine", "repeat prescriptions": "prescriptions",
            "medical records": "records", "secure messaging": "messaging"}
SAMPLE = [UUID(int=n * 0x9E3779B97F4A7C15 % 2**128, version=4) for n in range(4_000)]


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def rules_url(label: str) -> str:
    return f"/v1/admin/feature-flags/{FEATURES[label]}/rules"


def turn_on(client: Any, admin: dict[str, str], label: str, percentage: int,
            reason: str = "staged rollout", clinic_id: str = "riverside") -> Any:
    return client.put(rules_url(label), headers=auth(admin), json={
        "clinic_id": clinic_id, "percentage": percentage, "reason": reason})


def rollout(client: Any, admin: dict[str, str], label: str) -> dict[str, Any]:
    response = client.get("/v1/admin/feature-flags", headers=auth(admin))
    assert response.status_code == 200, response.text
    return next(f for f in response.json() if f["feature"] == FEATURES[label])


def with_video(container: Any) -> set[UUID]:
    return {p for p in SAMPLE
            if container.feature_flags.is_available(Feature.TELEMEDICINE, p, "riverside")}


@given("the Riverside administrator is signed in")
def riverside_administrator(staff_member, scene):
    scene["admin"] = staff_member("clinic_admin", clinics=("riverside",))


@when(parsers.parse('the administrator turns on "{label}" at Riverside for {percentage:d}% of '
                    'patients because "{reason}"'))
def administrator_turns_on(client, scene, label, percentage, reason):
    response = turn_on(client, scene["admin"], label, percentage, reason)
    assert response.status_code == 200, response.text


@given(parsers.parse('the administrator has turned on "{label}" at Riverside for every patient'))
def administrator_turned_on_for_everyone(client, scene, label):
    assert turn_on(client, scene["admin"], label, 100).status_code == 200


@when(parsers.parse('the administrator turns off "{label}" at Riverside because "{reason}"'))
def administrator_turns_off(client, scene, label, reason):
    response = client.post(rules_url(label) + "/remove", headers=auth(scene["admin"]),
                           json={"clinic_id": "riverside", "reason": reason})
    assert (response.status_code, response.json()["changed"]) == (200, True), response.text


@then(parsers.parse('the rollout of "{label}" at Riverside shows {percentage:d}% of patients'))
def rollout_shows(client, scene, label, percentage):
    assert [(r["clinic_id"], r["service_type"], r["percentage"])
            for r in rollout(client, scene["admin"], label)["rules"]] == [
        ("riverside", None, percentage)]


@then("about 20% of Riverside's patients can have video consultations")
def about_a_fifth(container, scene):
    scene["pilot"] = with_video(container)
    assert 0.17 * len(SAMPLE) <= len(scene["pilot"]) <= 0.23 * len(SAMPLE)


@then("every patient in the pilot keeps video consultations when it grows to 50%")
def pilot_grows(client, container, scene):
    assert turn_on(client, scene["admin"], "video consultations", 50).status_code == 200
    grown = with_video(container)
    assert scene["pilot"] < grown
    assert 0.45 * len(SAMPLE) <= len(grown) <= 0.55 * len(SAMPLE)


@given("Ada is a patient of Hillview")
def ada_at_hillview(sign_up, scene):
    scene["ada"] = sign_up(given_name="Ada", family_name="Lovelace")


@when("Ada asks which features she can use at Hillview")
def ada_asks(client, scene):
    scene["answer"] = client.get("/v1/me/features", headers=auth(scene["ada"]),
                                 params={"clinic_id": "hillview"})


@then("she is told that video consultations are not available to her there")
def not_available_there(scene):
    assert scene["answer"].status_code == 200, scene["answer"].text
    assert scene["answer"].json()["telemedicine"] is False


@then(parsers.parse('when she asks for a video consultation at Hillview she is told "{words}"'))
def told_not_yet(container, scene, words):
    with pytest.raises(FeatureNotAvailable) as refusal:
        container.feature_flags.require(Feature.TELEMEDICINE, UUID(scene["ada"]["account_id"]),
                                        "hillview", "video")
    assert refusal.value.detail.startswith(words)


@then(parsers.parse('the history of "{label}" shows, newest first:'))
def history_shows(client, scene, label, datatable):
    response = client.get(f"/v1/admin/feature-flags/{FEATURES[label]}/history",
                          headers=auth(scene["admin"]))
    assert response.status_code == 200, response.text
    scene["history"] = response.json()
    header, *rows = datatable
    expected = [dict(zip(header, [cell.strip() for cell in row], strict=True)) for row in rows]
    assert [{"change": e["action"], "percentage": str(e["percentage"] or ""),
             "reason": e["reason"], "by": e["by_role"]} for e in scene["history"]] == expected


@then("each change names the administrator's account and when it was made")
def names_who_and_when(scene, clock):
    for entry in scene["history"]:
        assert entry["by_account_id"] == scene["admin"]["account_id"]
        assert entry["at"].startswith(clock.now.isoformat()[:16])
        assert entry["at_local"]


@when(parsers.parse('an administrator of Hillview tries to turn on "{label}" at Riverside'))
def hillview_tries(client, staff_member, scene, label):
    scene["answer"] = turn_on(client, staff_member("clinic_admin", clinics=("hillview",)), label,
                              100, "hillview wants it too")


@then("they are told they do not have access")
def told_no_access(scene):
    problem = assert_problem(scene["answer"], 403, "forbidden")
    assert "do not have access" in problem["detail"]


@then(parsers.parse('Riverside\'s rollout of "{label}" is unchanged'))
def unchanged(client, scene, label):
    assert rollout(client, scene["admin"], label) | {"label": ""} == {
        "feature": FEATURES[label], "label": "", "version": 0, "rules": []}
