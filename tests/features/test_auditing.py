"""Step definitions for features/auditing.feature, driven through the auditor's HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.care_support import in_care_team, signed_in_again
from tests.api.record_support import entered, hba1c
from tests.api.support import auth, read
from tests.api.test_audit_trail import with_audit_routes

scenarios("auditing.feature")

MONDAY_MORNING = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MONDAY_AFTERNOON = datetime(2026, 11, 23, 15, 30, tzinfo=UTC)
TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
DAYS = {"Monday": "2026-11-23", "Tuesday": "2026-11-24"}


@pytest.fixture
def scene(client) -> dict[str, Any]:
    with_audit_routes(client)
    return {}


def at(client: Any, container: Any, clock: Any, moment: datetime, person: dict[str, str]
       ) -> dict[str, str]:
    """The clock moves to `moment`, and the person signs in again then."""
    clock.now = moment
    return signed_in_again(client, container, person)


@given("Ada is in Dr Patel's care at Riverside")
def ada_in_care(container, clock, sign_up, staff_member, scene):
    clock.now = MONDAY_MORNING
    scene["ada"] = sign_up(given_name="Ada")
    scene["patel"] = staff_member("doctor")
    in_care_team(container, clock, scene["ada"]["account_id"], scene["patel"]["account_id"])


@given(parsers.parse("on Monday morning Dr Patel releases Ada's HbA1c result of {value:d} "
                     "mmol/mol"))
def releases_on_monday(client, scene, value):
    written = entered(client, scene["patel"], scene["ada"]["account_id"], content=hba1c(value),
                      release_now=True)
    scene["hba1c"], scene["etag"] = written.json()["record_id"], written.headers["ETag"]


@given("on Monday morning Dr Patel enters Ada's cholesterol result without releasing it")
def enters_unreleased(client, scene):
    written = entered(client, scene["patel"], scene["ada"]["account_id"], code="cholesterol",
                      title="Total cholesterol", content={"observations": [
                          {"name": "Total cholesterol", "value": 6.1, "unit": "mmol/L"}]})
    assert written.json()["released_at"] is None
    scene["cholesterol"] = written.json()["record_id"]


@given("on Monday afternoon Ada opens her HbA1c result")
def ada_opens(client, container, clock, scene):
    scene["ada"] = at(client, container, clock, MONDAY_AFTERNOON, scene["ada"])
    response = read(client, scene["ada"], f"/v1/records/{scene['hba1c']}")
    assert response.status_code == 200, response.text


@given(parsers.parse('on Tuesday Dr Patel corrects the HbA1c result to {value:d} mmol/mol '
                     'because "{reason}"'))
def corrects_on_tuesday(client, container, clock, scene, value, reason):
    scene["patel"] = at(client, container, clock, TUESDAY, scene["patel"])
    response = client.put(f"/v1/staff/records/{scene['hba1c']}", headers=auth(scene["patel"])
                          | {"If-Match": scene["etag"]},
                          json={"content": hba1c(value), "reason": reason})
    assert response.status_code == 200, response.text


@when(parsers.parse("the auditor asks what Ada could see on {day}"))
def auditor_asks(client, staff_member, scene, day):
    scene.setdefault("auditor", staff_member("auditor", clinics=()))
    response = client.get(f"/v1/audit/patients/{scene['ada']['account_id']}/seen?day={DAYS[day]}",
                          headers=auth(scene["auditor"]))
    assert response.status_code == 200, response.text
    scene["seen"] = response.json()["records"]
    trail = client.get(f"/v1/audit/patients/{scene['ada']['account_id']}/trail",
                       headers=auth(scene["auditor"]))
    assert trail.status_code == 200, trail.text
    scene["trail"] = trail.json()["entries"]


def only_the_hba1c(scene: dict[str, Any], value: int) -> dict[str, Any]:
    assert [r["record_id"] for r in scene["seen"]] == [scene["hba1c"]]
    record: dict[str, Any] = scene["seen"][0]
    assert record["content"]["observations"][0]["value"] == str(value)
    return record


@then(parsers.parse("the auditor sees only the HbA1c result, reading {value:d} mmol/mol as it "
                    "was released on Monday"))
def sees_monday_version(scene, value):
    record = only_the_hba1c(scene, value)
    assert (record["status"], record["version"]) == ("final", 2)  # entered, released
    assert record["released_at"].startswith(DAYS["Monday"])


@then(parsers.parse("the auditor sees only the HbA1c result, reading {value:d} mmol/mol, "
                    "marked as corrected"))
def sees_corrected_version(scene, value):
    assert (only_the_hba1c(scene, value)["status"], scene["seen"][0]["version"]) == ("amended", 3)


@then("the cholesterol result is not among what Ada could see")
def not_the_unreleased(scene):
    assert scene["cholesterol"] not in {r["record_id"] for r in scene["seen"]}


@then("Ada's trail shows that Ada opened the HbA1c result on Monday afternoon")
def trail_shows_the_read(scene):
    reads = [(e["actor"], e["aggregate_id"], e["at"]) for e in scene["trail"]
             if e["kind"] == "read" and e["event_type"] == "read:record"]
    assert reads == [(f"patient:{scene['ada']['account_id']}", scene["hba1c"],
                      MONDAY_AFTERNOON.isoformat().replace("+00:00", "Z"))]


@then("Ada's trail shows Dr Patel's correction on Tuesday")
def trail_shows_the_correction(scene):
    corrections = [(e["actor"], e["at"], e["fields"]["reason"]) for e in scene["trail"]
                   if e["event_type"] == "records.Record.Revised.v1"]
    assert corrections == [(f"doctor:{scene['patel']['account_id']}",
                            TUESDAY.isoformat().replace("+00:00", "Z"),
                            "The laboratory re-ran the sample.")]
