"""Step definitions for features/medical_records.feature, driven through the HTTP API (the
release run is called as the scheduler calls it)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.outbox import TEMPLATES
from tests.api.care_support import authorise_proxy, in_care_team, open_break_glass, signed_in_again
from tests.api.record_support import entered, hba1c, my_records, note, outbox, release, settle
from tests.api.support import assert_problem, auth, read

scenarios("medical_records.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {"texts": []}


def entry(client: Any, scene: dict[str, Any], **options: Any) -> None:
    """Dr Patel enters a result for Ada; the scene remembers it and the write's position."""
    scene["last_write"] = entered(client, scene["patel"], scene["ada"]["account_id"], **options)
    scene["record_id"] = scene["last_write"].json()["record_id"]


def opened(client: Any, scene: dict[str, Any]) -> dict[str, Any]:
    """The result as Ada reads it, once her record has caught up with the last write."""
    response = read(client, scene["ada"], f"/v1/records/{scene['record_id']}",
                    after=scene.get("last_write"))
    assert response.status_code == 200, response.text
    scene["texts"].append(response.text)
    return dict(response.json())


# ---- Background -------------------------------------------------------------------------------


@given("Ada is in Dr Patel's care at Riverside")
def ada_in_care(container, clock, sign_up, staff_member, scene):
    scene["ada"] = sign_up(given_name="Ada")
    scene["patel"] = staff_member("doctor")
    in_care_team(container, clock, scene["ada"]["account_id"], scene["patel"]["account_id"])


# ---- entering and releasing -------------------------------------------------------------------


@given(parsers.parse('Dr Patel enters Ada\'s HbA1c result of {value:d} mmol/mol, commenting '
                     '"{comment}" and asking her to "{follow_up}"'))
def enters_with_words(client, scene, value, comment, follow_up):
    entry(client, scene, content=hba1c(value, comment=comment, follow_up=follow_up))


@given(parsers.parse("Dr Patel enters Ada's HbA1c result of {value:d} mmol/mol without "
                     "releasing it"))
def enters_unreleased(client, scene, value):
    entry(client, scene, content=hba1c(value))
    assert scene["last_write"].json()["released_at"] is None


@given(parsers.parse("Dr Patel has released Ada's HbA1c result of {value:d} mmol/mol"))
def has_released(client, scene, value):
    entry(client, scene, content=hba1c(value), release_now=True)
    assert scene["last_write"].json()["released_at"] is not None


@given(parsers.parse('Dr Patel enters Ada\'s "{title}" result, which only a clinician may '
                     "release"))
def enters_for_clinician(client, scene, title):
    entry(client, scene, code="histology", title=title, content={"observations": [
        {"name": "Skin lesion histology", "value": "Benign compound naevus"}]})
    assert scene["last_write"].json()["release_due_at"] is None


@given(parsers.parse('Dr Patel adds a note for staff: "{words}"'))
def adds_note(client, scene, words):
    note(client, scene["patel"], scene["record_id"], words)
    scene["note"] = words


@when("Dr Patel releases the result to Ada")
def releases(client, scene):
    scene["last_write"] = release(client, scene["patel"], scene["record_id"])


# ---- what Ada is told and reads ---------------------------------------------------------------


@then(parsers.parse('Ada is told "{subject}", without any detail'))
def ada_told(container, mailbox, scene, subject):
    [message] = outbox(container, scene["ada"]["account_id"])
    assert message["kind"] == "result_available"
    assert TEMPLATES[message["kind"]].subject == subject
    assert json.loads(message["payload"]) == {
        "link": f"carebridge://records/{scene['record_id']}"}
    delivered = mailbox.last(scene["ada"]["account_id"], "result_available")
    assert set(delivered) <= {"message_id", "kind", "account_id", "link"}
    scene["texts"] += [message["payload"], str(delivered)]


@then(parsers.parse('Ada sees the result in her records as "{status_words}"'))
def ada_sees_listed(client, scene, status_words):
    listed = my_records(client, scene["ada"], after=scene.get("last_write"))
    assert [(r["record_id"], r["status_words"]) for r in listed] == [
        (scene["record_id"], status_words)]


@then(parsers.parse('Ada reads {value} mmol/mol, with the usual range "{usual_range}", marked '
                    '"{flag_words}"'))
def ada_reads_value(client, scene, value, usual_range, flag_words):
    [observation] = opened(client, scene)["observations"]
    assert (observation["name"], observation["value"], observation["unit"]) == (
        "HbA1c", value, "mmol/mol")
    assert observation["usual_range"] == usual_range
    assert observation["flag_words"] == flag_words


@then(parsers.parse('Ada reads the comment "{comment}"'))
def ada_reads_comment(client, scene, comment):
    assert opened(client, scene)["comment"] == comment


@then(parsers.parse('Ada reads what to do next: "{follow_up}"'))
def ada_reads_follow_up(client, scene, follow_up):
    assert opened(client, scene)["follow_up"] == follow_up


@then(parsers.parse('nothing Ada can see mentions "{word}"'))
def nothing_mentions(client, mailbox, scene, word):
    assert my_records(client, scene["ada"], query=f"?q={word}") == []
    for path in ("/v1/me/records", f"/v1/records/{scene['record_id']}", "/v1/me/care-plans",
                 "/v1/me/record-access"):
        response = client.get(path, headers=auth(scene["ada"]))
        assert response.status_code == 200, (path, response.text)
        scene["texts"].append(response.text)
    scene["texts"] += [str(m) for m in mailbox.messages()]
    assert all(word.lower() not in text.lower() for text in scene["texts"])


@then("Dr Patel still sees the note for staff")
def patel_sees_note(client, scene):
    staff = client.get(f"/v1/staff/records/{scene['record_id']}", headers=auth(scene["patel"]))
    assert staff.status_code == 200, staff.text
    assert [n["note"] for n in staff.json()["internal_notes"]] == [scene["note"]]


# ---- a result that waits ----------------------------------------------------------------------


@then("Ada's records do not show it")
def ada_does_not_see(client, scene):
    assert my_records(client, scene["ada"], after=scene.get("last_write")) == []


@then(parsers.parse('searching Ada\'s records for "{words}" finds nothing'))
def search_finds_nothing(client, scene, words):
    assert my_records(client, scene["ada"], query=f"?q={words}") == []


@then("when Ada opens it by its id she is told there is no such record")
def no_such_record(client, scene):
    response = client.get(f"/v1/records/{scene['record_id']}", headers=auth(scene["ada"]))
    problem = assert_problem(response, 404, "not-found")
    assert problem["detail"].startswith("There is no such record")
    assert "biopsy" not in response.text.lower()


@then("it waits in Riverside's list of records to release")
def waits_for_release(client, scene):
    queue = client.get("/v1/staff/clinics/riverside/records-to-release",
                       headers=auth(scene["patel"]))
    assert queue.status_code == 200, queue.text
    assert [r["record_id"] for r in queue.json()["records"]] == [scene["record_id"]]


@given(parsers.parse("a lab result is shown to the patient {hours:d} hours after it is "
                     "entered, unless a doctor releases it sooner"))
def release_delay(container, hours):
    assert container.records.release_delays["lab_result"] == hours


@when(parsers.parse("{hours:d} hours pass and the release run goes by"))
@when(parsers.parse("{hours:d} more hours pass and the release run goes by"))
def hours_pass(client, container, clock, scene, hours):
    clock.now += timedelta(hours=hours)
    container.records.release_due(clock.now)
    settle(container)
    scene["ada"] = signed_in_again(client, container, scene["ada"])


# ---- a correction -----------------------------------------------------------------------------


@when(parsers.parse('Dr Patel corrects it to {value:d} mmol/mol because "{reason}"'))
def corrects(client, scene, value, reason):
    path = f"/v1/staff/records/{scene['record_id']}"
    held = client.get(path, headers=auth(scene["patel"]))
    assert held.status_code == 200, held.text
    corrected = client.put(path, headers=auth(scene["patel"]) | {"If-Match": held.headers["ETag"]},
                           json={"content": hba1c(value), "reason": reason})
    assert corrected.status_code == 200, corrected.text
    scene["last_write"] = corrected


@then(parsers.parse('Ada sees the result marked as corrected, with the reason "{reason}"'))
def ada_sees_corrected(client, scene, reason):
    record = opened(client, scene)
    assert record["amended"] is True
    assert record["status_words"].startswith("Corrected on")
    assert record["amendment_reason"] == reason


@then(parsers.parse("Ada sees that it said {value} mmol/mol before the correction"))
def ada_sees_earlier(client, scene, value):
    earlier = opened(client, scene)["earlier_versions"]
    assert [[o["value"] for o in v["observations"]] for v in earlier] == [[value]]


# ---- who opened it ----------------------------------------------------------------------------


@when("Ada opens the result")
def ada_opens(client, scene):
    opened(client, scene)


@when("Dr Patel opens the result")
def patel_opens(client, scene):
    response = client.get(f"/v1/staff/records/{scene['record_id']}", headers=auth(scene["patel"]))
    assert response.status_code == 200, response.text


@when("a nurse at Riverside, outside Ada's care team, opens it with emergency access")
def nurse_opens(client, staff_member, scene):
    scene["the nurse"] = nurse = staff_member("nurse")
    path = f"/v1/staff/records/{scene['record_id']}"
    assert_problem(client.get(path, headers=auth(nurse)), 403)
    opened_access = open_break_glass(client, nurse, scene["ada"]["account_id"])
    assert opened_access.status_code == 201, opened_access.text
    response = client.get(path, headers=auth(nurse))
    assert response.status_code == 200, response.text


def name_of(container: Any, person: dict[str, str]) -> str:
    account = container.identity.find_account(UUID(person["account_id"]))
    return f"{account.given_name} {account.family_name}"


@then("Ada's access report shows who opened the result, newest first:")
def access_report(client, container, scene, datatable):
    people = {"the nurse": scene["the nurse"], "Dr Patel": scene["patel"], "Ada": scene["ada"]}
    report = client.get("/v1/me/record-access", headers=auth(scene["ada"]))
    assert report.status_code == 200, report.text
    shown = [(a["who"], a["role_words"], a["break_glass"], a["on_your_behalf"])
             for a in report.json()["accesses"]
             if a["what"] == "a record" and a["record_id"] == scene["record_id"]]
    expected = [(shown_as if shown_as == "You" else name_of(container, people[who]), role,
                 emergency == "yes", False) for who, shown_as, role, emergency in datatable[1:]]
    assert shown == expected


# ---- carers -----------------------------------------------------------------------------------


@given(parsers.parse('{name}, Ada\'s {relation}, may help her with "{scope}"'))
def may_help(client, sign_up, scene, name, relation, scope):
    scene[name] = sign_up(given_name=name)
    authorise_proxy(client, scene["ada"], scene[name], [scope])


@then("Grace sees the result in Ada's records and can open it")
def grace_sees(client, scene):
    grace = scene["Grace"]
    listed = read(client, grace, f"/v1/patients/{scene['ada']['account_id']}/records",
                  after=scene["last_write"])
    assert listed.status_code == 200, listed.text
    assert [r["record_id"] for r in listed.json()["records"]] == [scene["record_id"]]
    record = client.get(f"/v1/records/{scene['record_id']}", headers=auth(grace))
    assert record.status_code == 200, record.text
    assert record.json()["observations"][0]["flag_words"] == "Above the usual range"


@then("Tom is told he does not have access to Ada's records")
def tom_refused(client, scene):
    tom = scene["Tom"]
    assert_problem(client.get(f"/v1/patients/{scene['ada']['account_id']}/records",
                              headers=auth(tom)), 403, "forbidden")
    assert_problem(client.get(f"/v1/records/{scene['record_id']}", headers=auth(tom)), 403,
                   "forbidden")
