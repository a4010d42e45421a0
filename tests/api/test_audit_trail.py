"""Auditor tools: a patient's trail across every context with every read, an actor's trail, a
stream's state at any moment, what a patient could see on a day, and the trail as FHIR R4
AuditEvents (validated with the `fhir.resources` R4B models, whose AuditEvent is R4's). Auditors
only; secrets redacted; the auditor's own reading is logged for the patient to see."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click
import pytest
from click.testing import CliRunner
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle

from api.cli_audit import AUDIT_COMMANDS
from api.controllers.audit import AuditController, FhirAuditEventController
from commands.audit_trail import REDACTED
from tests.api.care_support import in_care_team, signed_in_again
from tests.api.message_support import started
from tests.api.record_support import entered, hba1c, release
from tests.api.support import assert_problem, auth, give, read
from tests.api.visits_support import book, open_riverside

PATHS = ("/v1/audit/patients/{p}/trail", "/v1/audit/actors/patient:{p}/trail",
         "/v1/audit/streams/{p}", "/v1/audit/patients/{p}/seen?day=2026-11-23")
FHIR_SEARCH = "/fhir/AuditEvent?patient={p}"


def with_audit_routes(client: Any) -> Any:
    """The auditor's routes on the test app (until api/app.py registers them itself)."""
    if not any(route.path.startswith("/v1/audit") for route in client.app.routes):
        client.app.register(AuditController)
        client.app.register(FhirAuditEventController)
    return client


@pytest.fixture
def audit(client, container, clock, sign_up, staff_member):
    """Ada, her doctor (in her care team) and an auditor, with the audit routes."""
    with_audit_routes(client)
    ada, doctor = sign_up(), staff_member("doctor")
    in_care_team(container, clock, ada["account_id"], doctor["account_id"])
    return ada, doctor, staff_member("auditor", clinics=())


def later(client: Any, container: Any, clock: Any, delta: timedelta,
          *people: dict[str, str]) -> list[dict[str, str]]:
    """Moves the clock on; everyone signs in again (their sessions have lapsed by then)."""
    clock.now += delta
    return [signed_in_again(client, container, person) for person in people]


def get(client: Any, person: dict[str, str], path: str) -> Any:
    response = client.get(path, headers=auth(person))
    assert response.status_code == 200, response.text
    return response.json()


def test_a_patients_trail_has_every_change_in_every_context_and_every_read(
        client, container, clock, audit):
    ada, doctor, auditor = audit
    assert give(client, ada).status_code == 201
    recorded = entered(client, doctor, ada["account_id"], release_now=True)
    record_id = recorded.json()["record_id"]
    ada, auditor = later(client, container, clock, timedelta(hours=2), ada, auditor)
    assert read(client, ada, f"/v1/records/{record_id}", after=recorded).status_code == 200

    trail = get(client, auditor, f"/v1/audit/patients/{ada['account_id']}/trail")

    changes = {(e["application"], e["event_type"]) for e in trail["entries"]
               if e["kind"] == "change"}
    assert {("identity", "identity.Account.Registered.v1"),
            ("consents", "consents.Consent.Given.v1"),
            ("care", "care.CareRelationship.Created.v1"),
            ("records", "records.Record.Entered.v1"),
            ("records", "records.Record.Released.v1")} <= changes, changes
    reads = [(e["actor"], e["event_type"], e["aggregate_id"]) for e in trail["entries"]
             if e["kind"] == "read"]
    assert (f"patient:{ada['account_id']}", "read:record", record_id) in reads
    registered = next(e for e in trail["entries"]
                      if e["event_type"] == "identity.Account.Registered.v1")
    assert registered["fields"]["password_hash"] == REDACTED
    assert "$argon2" not in json.dumps(trail)
    entry = next(e for e in trail["entries"] if e["event_type"] == "records.Record.Entered.v1")
    assert entry["actor"] == f"doctor:{doctor['account_id']}"
    assert entry["fields"]["content"]["observations"][0]["value"] == "48"  # auditors see content
    assert [e["at"] for e in trail["entries"]] == sorted(e["at"] for e in trail["entries"])
    assert {e["patient_id"] for e in trail["entries"]} == {ada["account_id"]}
    assert trail["total"] == len(trail["entries"]) and trail["next_offset"] is None


def test_a_patients_trail_reaches_her_appointments_and_conversations(
        client, container, sign_up, staff_member):
    with_audit_routes(client)
    riverside, ada = open_riverside(container, staff_member), sign_up()
    appointment_id = book(client, ada, riverside["doctor"]).json()["appointment_id"]
    thread_id = started(client, ada)["thread_id"]
    auditor = staff_member("auditor", clinics=())

    trail = get(client, auditor, f"/v1/audit/patients/{ada['account_id']}/trail")

    streams = {(e["application"], e["aggregate_id"]) for e in trail["entries"]}
    assert ("appointments", appointment_id) in streams
    assert ("messaging", thread_id) in streams
    types = {e["event_type"] for e in trail["entries"]}
    assert {"appointments.Appointment.Held.v1", "appointments.Appointment.Confirmed.v1"} <= types


def test_a_trail_comes_a_page_at_a_time(client, audit):
    ada, _, auditor = audit
    path = f"/v1/audit/patients/{ada['account_id']}/trail"
    whole = get(client, auditor, path)["entries"]
    first = get(client, auditor, path + "?limit=2")
    rest = get(client, auditor, f"{path}?offset={first['next_offset']}&limit=1000")
    assert first["next_offset"] == 2
    # Each read of the trail is itself logged, so later pages may have grown at the end.
    assert [e["event_type"] for e in first["entries"] + rest["entries"]][:len(whole)] == [
        e["event_type"] for e in whole]


def test_an_actors_trail_has_what_they_changed_and_read_and_nothing_of_anyone_else(
        client, clock, audit, sign_up):
    ada, doctor, auditor = audit
    grace = sign_up(given_name="Grace", family_name="Hopper")
    assert give(client, grace).status_code == 201
    record_id = entered(client, doctor, ada["account_id"]).json()["record_id"]
    release(client, doctor, record_id)
    assert client.get(f"/v1/staff/records/{record_id}", headers=auth(doctor)).status_code == 200

    trail = get(client, auditor, f"/v1/audit/actors/doctor:{doctor['account_id']}/trail")

    assert {e["actor"] for e in trail["entries"]} == {f"doctor:{doctor['account_id']}"}
    kinds = [(e["kind"], e["event_type"]) for e in trail["entries"]]
    assert ("change", "records.Record.Entered.v1") in kinds
    assert ("change", "records.Record.Released.v1") in kinds
    assert ("read", "read:record") in kinds
    by_account_id = get(client, auditor, f"/v1/audit/actors/{doctor['account_id']}/trail")
    assert by_account_id["entries"] == trail["entries"]


def test_a_streams_state_as_of_a_moment_shows_the_version_then(client, container, clock, audit):
    ada, doctor, auditor = audit
    first = entered(client, doctor, ada["account_id"], release_now=True)
    record_id = first.json()["record_id"]
    monday_evening = clock.now + timedelta(hours=8)
    doctor, auditor = later(client, container, clock, timedelta(days=1), doctor, auditor)
    corrected = client.put(f"/v1/staff/records/{record_id}", headers=auth(doctor) | {
        "If-Match": first.headers["ETag"]}, json={"content": hba1c(40), "reason": "Re-run."})
    assert corrected.status_code == 200, corrected.text

    stream = get(client, auditor, f"/v1/audit/streams/{record_id}?as_of="
                 + monday_evening.isoformat().replace("+00:00", "Z"))

    assert stream["application"] == "records"
    assert [e["event_type"] for e in stream["entries"]] == [
        "records.Record.Entered.v1", "records.Record.Released.v1", "records.Record.Revised.v1"]
    assert stream["version_as_of"] == 2
    assert stream["state_as_of"]["content"]["observations"][0]["value"] == "48"
    now = get(client, auditor, f"/v1/audit/streams/{record_id}")
    assert now["state_as_of"] is None and len(now["entries"]) == 3
    missing = client.get("/v1/audit/streams/00000000-0000-0000-0000-000000000000",
                         headers=auth(auditor))
    assert_problem(missing, 404, "not-found")


def outcome(response: Any, status: int, code: str) -> None:
    """A FHIR OperationOutcome with this status and issue code."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert [i["code"] for i in response.json()["issue"]] == [code], response.text


def test_only_auditors_read_the_audit_trail(client, audit, staff_member):
    ada, doctor, _ = audit
    admin = staff_member("clinic_admin")
    for template in PATHS:
        path = template.format(p=ada["account_id"])
        assert_problem(client.get(path), 401)
        for person in (ada, doctor, admin):
            assert_problem(client.get(path, headers=auth(person)), 403, "forbidden")
    search = FHIR_SEARCH.format(p=ada["account_id"])
    outcome(client.get(search), 401, "login")
    for person in (ada, doctor, admin):
        outcome(client.get(search, headers=auth(person)), 403, "forbidden")


def test_the_auditors_reading_is_in_the_patients_access_report(client, audit):
    ada, doctor, auditor = audit
    record_id = entered(client, doctor, ada["account_id"]).json()["record_id"]
    get(client, auditor, f"/v1/audit/patients/{ada['account_id']}/trail")
    get(client, auditor, f"/v1/audit/streams/{record_id}")
    report = get(client, ada, "/v1/me/record-access")
    assert [a["role_words"] for a in report["accesses"]] == ["Auditor", "Auditor"]


def test_the_trail_exports_as_fhir_audit_events(client, container, clock, audit):
    ada, doctor, auditor = audit
    recorded = entered(client, doctor, ada["account_id"], release_now=True, content=hba1c(
        48, comment="CLINICAL-canary-3f1"))
    record_id = recorded.json()["record_id"]
    ada, auditor = later(client, container, clock, timedelta(days=1), ada, auditor)
    assert read(client, ada, f"/v1/records/{record_id}", after=recorded).status_code == 200

    response = client.get(f"/fhir/AuditEvent?patient=Patient/{ada['account_id']}",
                          headers=auth(auditor))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    Bundle.model_validate(bundle)
    events = [e["resource"] for e in bundle["entry"]]
    for event in events:
        AuditEvent.model_validate(event)
    assert bundle["type"] == "searchset" and bundle["total"] == len(events) > 0
    assert "CLINICAL-canary" not in response.text  # the export names what, never its content
    the_read = next(e for e in events if e["action"] == "R")
    assert the_read["type"]["code"] == "rest" and the_read["subtype"][0]["code"] == "read"
    assert the_read["agent"][0]["who"] == {"reference": f"Patient/{ada['account_id']}"}
    assert the_read["entity"][0]["what"] == {"reference": f"Patient/{ada['account_id']}"}
    entered_event = next(e for e in events if e["action"] == "C" and any(
        d["valueString"] == "records.Record.Entered.v1" for d in e["entity"][1]["detail"]))
    assert entered_event["type"]["code"] == "110110"
    assert entered_event["agent"][0]["who"] == {
        "reference": f"Practitioner/{doctor['account_id']}"}
    assert entered_event["agent"][0]["role"][0]["coding"][0]["code"] == "doctor"
    assert entered_event["source"]["observer"]["display"] == "CareBridge"

    tuesday = client.get(f"/fhir/AuditEvent?patient={ada['account_id']}&date="
                         f"{clock.now.date().isoformat()}", headers=auth(auditor)).json()
    tuesdays = [e["resource"] for e in tuesday["entry"]]
    assert {e["recorded"][:10] for e in tuesdays} == {clock.now.date().isoformat()}
    assert the_read["id"] in {e["id"] for e in tuesdays}
    assert entered_event["id"] not in {e["id"] for e in tuesdays}
    by_doctor = client.get(f"/fhir/AuditEvent?agent=Practitioner/{doctor['account_id']}",
                           headers=auth(auditor)).json()
    assert by_doctor["total"] > 0 and all(
        e["resource"]["agent"][0]["who"]["reference"] == f"Practitioner/{doctor['account_id']}"
        for e in by_doctor["entry"])
    outcome(client.get("/fhir/AuditEvent", headers=auth(auditor)), 400, "invalid")
    outcome(client.get(f"/fhir/AuditEvent?patient={ada['account_id']}&date=Monday",
                       headers=auth(auditor)), 400, "invalid")


def test_the_command_line_prints_trails_and_exports_fhir(database, client, clock, audit):
    from tests.cli.test_cli import database_env

    ada, doctor, _ = audit
    record_id = entered(client, doctor, ada["account_id"], release_now=True).json()["record_id"]
    group = click.Group("audit", commands={c.name or "": c for c in AUDIT_COMMANDS})
    runner, env = CliRunner(), database_env(database)

    patient = runner.invoke(group, ["patient", ada["account_id"], "--as-of",
                                    clock.now.date().isoformat()], env=env)
    assert patient.exit_code == 0, patient.output
    assert "records.Record.Released.v1" in patient.output
    assert f"{record_id} v2  lab_result  final" in patient.output
    actor = runner.invoke(group, ["actor", f"doctor:{doctor['account_id']}"], env=env)
    assert actor.exit_code == 0, actor.output
    assert "records.Record.Entered.v1" in actor.output
    assert "identity.Account.Registered.v1" not in actor.output
    export = runner.invoke(group, ["export", "--patient", ada["account_id"], "--format", "fhir"],
                           env=env)
    assert export.exit_code == 0, export.output
    Bundle.model_validate(json.loads(export.output))


def test_fhir_date_searches_read_days_in_the_clinics_zone_and_prefixes():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from api.audit import date_filter

    london = ZoneInfo("Europe/London")
    summer_evening = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)  # 00:30 on 2 June in London
    assert date_filter(["2026-06-02"], london)(summer_evening)
    assert not date_filter(["2026-06-01"], london)(summer_evening)
    assert date_filter(["ge2026-06-01", "lt2026-06-03"], london)(summer_evening)
    assert not date_filter(["gt2026-06-02"], london)(summer_evening)
    assert date_filter(["le2026-06-01T23:30:00Z"], london)(summer_evening)
    assert not date_filter(["lt2026-06-01T23:30:00+00:00"], london)(summer_evening)
    assert date_filter([], london)(summer_evening)
    with pytest.raises(ValueError):
        date_filter(["last Tuesday"], london)
