"""Step definitions for features/break_glass.feature, driven through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.care_support import REASON, in_care_team, open_break_glass, signed_in_again
from tests.api.support import assert_problem, auth, field_names, read

scenarios("break_glass.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def consents_path(scene: dict[str, Any]) -> str:
    return f"/v1/staff/patients/{scene['ada']['account_id']}/consents"


@given("Ada is a patient at the Riverside clinic")
def ada_at_riverside(container, clock, sign_up, staff_member, scene):
    scene["ada"] = sign_up(given_name="Ada")
    in_care_team(container, clock, scene["ada"]["account_id"],
                 staff_member("nurse")["account_id"])


@given("Dr Patel is a doctor at Riverside who is not in Ada's care team")
def dr_patel(staff_member, scene):
    scene["patel"] = staff_member("doctor")


@given("Dr Patel is told she does not have access to Ada's consents")
@then("Dr Patel is told she does not have access to Ada's consents")
def patel_refused(client, scene):
    assert_problem(client.get(consents_path(scene), headers=auth(scene["patel"])), 403,
                   "forbidden")


@when(parsers.parse('Dr Patel opens emergency access to Ada because "{reason}"'))
def patel_opens(client, scene, reason):
    scene["opened"] = open_break_glass(client, scene["patel"], scene["ada"]["account_id"], reason)
    assert scene["opened"].status_code == 201, scene["opened"].text
    scene["reason"] = reason


@given("Dr Patel has opened emergency access to Ada")
def patel_has_opened(client, scene):
    patel_opens(client, scene, REASON)


@when(parsers.parse('Dr Patel tries to open emergency access to Ada because "{reason}"'))
def patel_tries(client, scene, reason):
    scene["answer"] = open_break_glass(client, scene["patel"], scene["ada"]["account_id"], reason)


@then(parsers.parse("Dr Patel can see Ada's consents for the next {minutes:d} minutes"))
def patel_sees(client, container, clock, scene, minutes):
    assert client.get(consents_path(scene), headers=auth(scene["patel"])).status_code == 200
    assert scene["opened"].json()["expires_at"].startswith(
        (clock.now + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M"))
    start = clock.now
    clock.now = start + timedelta(minutes=minutes - 1)
    scene["patel"] = signed_in_again(client, container, scene["patel"])
    assert client.get(consents_path(scene), headers=auth(scene["patel"])).status_code == 200
    clock.now = start


@when(parsers.parse("{minutes:d} minutes pass"))
def time_passes(client, container, clock, scene, minutes):
    clock.now += timedelta(minutes=minutes)
    scene["patel"] = signed_in_again(client, container, scene["patel"])


@then("the clinic administrator sees it waiting for review, with Dr Patel's reason")
def administrator_sees(client, staff_member, scene):
    scene["admin"] = staff_member("clinic_admin")
    waiting = client.get("/v1/staff/break-glass?reviewed=false",
                         headers=auth(scene["admin"])).json()
    assert [(w["access_id"], w["clinician_id"], w["reason"]) for w in waiting] == [
        (scene["opened"].json()["access_id"], scene["patel"]["account_id"], scene["reason"])]


@when(parsers.parse('the clinic administrator reviews it as "{outcome}"'))
def administrator_reviews(client, scene, outcome):
    response = client.post(f"/v1/staff/break-glass/{scene['opened'].json()['access_id']}/review",
                           headers=auth(scene["admin"]), json={"outcome": outcome})
    assert response.status_code == 200, response.text


@then("nothing is waiting for review at Riverside")
def nothing_waiting(client, scene):
    assert client.get("/v1/staff/break-glass?reviewed=false",
                      headers=auth(scene["admin"])).json() == []


@then(parsers.parse('Ada\'s account activity shows "{kind}" without any detail'))
def ada_activity(client, scene, kind):
    response = read(client, scene["ada"], "/v1/me/security-events", after=scene["opened"])
    assert [e["detail"] for e in response.json() if e["kind"] == kind] == [None]


@then("nothing Ada's app can read mentions the reason or Dr Patel")
def nothing_mentions(client, scene):
    for path in ("/v1/me/security-events", "/v1/me", "/v1/me/consents", "/v1/me/consents/history",
                 "/v1/me/proxies", "/v1/me/represented",
                 f"/v1/patients/{scene['ada']['account_id']}/consents"):
        response = client.get(path, headers=auth(scene["ada"]))
        assert response.status_code == 200, (path, response.text)
        assert scene["reason"] not in response.text
        assert scene["patel"]["account_id"] not in response.text


@then(parsers.parse("Dr Patel is asked to say why in at least {minimum:d} characters"))
def asked_for_reason(scene, minimum):
    problem = assert_problem(scene["answer"], 422, "invalid-input")
    assert field_names(problem) == {"reason"}
    assert f"at least {minimum} characters" in problem["detail"]
