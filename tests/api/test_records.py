"""Medical records through the API: what the patient reads (released records only, in plain
words, never an internal note), release by a clinician or after the configured delay,
amendments shown as amendments, searches over what the patient may see, the access report,
and the clinic's side."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.api.care_support import (
    authorise_proxy,
    in_care_team,
    open_break_glass,
    signed_in_again,
)
from tests.api.record_support import (
    enter,
    entered,
    hba1c,
    my_records,
    note,
    outbox,
    release,
    settle,
)
from tests.api.support import assert_problem, auth, field_names, read

MARKER = "INTERNAL-7c1e-suspect-lab-error"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"result_release_delays": {"lab_result": 24, "lab_result:hiv": None}}


@pytest.fixture
def ada_and_doctor(client, container, clock, sign_up, staff_member):
    ada, doctor = sign_up(), staff_member("doctor")
    in_care_team(container, clock, ada["account_id"], doctor["account_id"])
    return ada, doctor


def test_a_released_result_reads_in_plain_words_and_its_internal_note_never_shows(
        client, container, ada_and_doctor):
    ada, doctor = ada_and_doctor
    result = entered(client, doctor, ada["account_id"], content=hba1c(
        48, comment="Your blood sugar has been a little high.",
        follow_up="Book a review with the nurse within four weeks."))
    record_id = result.json()["record_id"]
    note(client, doctor, record_id, f"{MARKER} query haemolysed sample")
    released = release(client, doctor, record_id)

    listed = my_records(client, ada, after=released)
    assert [r["record_id"] for r in listed] == [record_id]
    assert listed[0]["status_words"].startswith("Final result")
    assert listed[0]["outside_usual_range"] is True
    detail = read(client, ada, f"/v1/records/{record_id}")
    assert detail.status_code == 200, detail.text
    body = detail.json()
    assert body["observations"] == [{
        "name": "HbA1c", "value": "48", "unit": "mmol/mol", "flag": "high",
        "flag_words": "Above the usual range", "usual_range": "20 to 41 mmol/mol"}]
    assert body["follow_up"] == "Book a review with the nurse within four weeks."
    assert body["comment"] == "Your blood sugar has been a little high."
    assert MARKER not in detail.text and MARKER not in client.get(
        "/v1/me/records", headers=auth(ada)).text
    staff_view = client.get(f"/v1/staff/records/{record_id}", headers=auth(doctor)).json()
    assert [n["note"] for n in staff_view["internal_notes"]] == [
        f"{MARKER} query haemolysed sample"]
    assert [m["kind"] for m in outbox(container, ada["account_id"])] == ["result_available"]
    assert "HbA1c" not in outbox(container, ada["account_id"])[0]["payload"]


def test_an_unreleased_result_cannot_be_seen_found_counted_or_inferred(
        client, container, clock, ada_and_doctor):
    ada, doctor = ada_and_doctor
    hidden = entered(client, doctor, ada["account_id"], code="hiv", title="HIV antibody test",
                     content={"observations": [{"name": "HIV 1/2 antibody",
                                                "value": "Reactive", "flag": "abnormal"}]})
    shown = entered(client, doctor, ada["account_id"], release_now=True,
                    content=hba1c(35))
    hidden_id = hidden.json()["record_id"]
    assert hidden.json()["released_at"] is None and hidden.json()["release_due_at"] is None

    assert [r["title"] for r in my_records(client, ada, after=shown)] == [
        "HbA1c (blood sugar over 3 months)"]
    for query in ("?q=hiv", "?q=antibody", "?outside_usual_range=true", "?code=hiv",
                  "?status=final&kind=lab_result&q=reactive"):
        assert my_records(client, ada, query=query) == [], query
    missing = client.get(f"/v1/records/{hidden_id}", headers=auth(ada))
    assert_problem(missing, 404, "not-found")
    assert "HIV" not in missing.text
    queue = client.get("/v1/staff/clinics/riverside/records-to-release",
                       headers=auth(doctor)).json()["records"]
    assert [r["record_id"] for r in queue] == [hidden_id]
    # A clinician-only result is never released by the sweep, however long it waits.
    clock.now += timedelta(days=60)
    assert container.records.release_due(clock.now) == 0


def test_a_result_is_released_on_its_own_when_its_test_types_delay_has_passed(
        client, container, clock, ada_and_doctor):
    ada, doctor = ada_and_doctor
    record_id = entered(client, doctor, ada["account_id"]).json()["record_id"]
    clock.now += timedelta(hours=23)
    assert container.records.release_due(clock.now) == 0
    clock.now += timedelta(hours=2)
    assert container.records.release_due(clock.now) == 1
    settle(container)
    ada, doctor = (signed_in_again(client, container, p) for p in (ada, doctor))
    rows = client.get("/v1/me/records", headers=auth(ada)).json()["records"]
    assert [r["record_id"] for r in rows] == [record_id]
    staff = client.get(f"/v1/staff/records/{record_id}", headers=auth(doctor)).json()
    assert staff["released_by"] == "system"
    assert [m["kind"] for m in outbox(container, ada["account_id"])] == ["result_available"]


def test_a_preliminary_result_waits_for_a_clinician_and_its_final_version_starts_the_delay(
        client, container, clock, ada_and_doctor):
    ada, doctor = ada_and_doctor
    early = entered(client, doctor, ada["account_id"], status="preliminary").json()
    assert early["release_due_at"] is None
    clock.now += timedelta(days=10)
    assert container.records.release_due(clock.now) == 0
    doctor = signed_in_again(client, container, doctor)
    final = client.put(f"/v1/staff/records/{early['record_id']}", headers=auth(doctor),
                       json={"status": "final", "content": hba1c(44)})
    assert final.status_code == 200, final.text
    assert final.json()["status"] == "final"
    assert final.json()["release_due_at"] == (clock.now + timedelta(hours=24)).isoformat()


def test_a_correction_after_release_is_shown_as_an_amendment_with_what_it_was(
        client, container, ada_and_doctor):
    ada, doctor = ada_and_doctor
    first = entered(client, doctor, ada["account_id"], release_now=True)
    record_id, etag = first.json()["record_id"], first.headers["ETag"]
    stale = client.put(f"/v1/staff/records/{record_id}", headers=auth(doctor) | {
        "If-Match": '"1"'}, json={"content": hba1c(40), "reason": "Wrong sample."})
    assert_problem(stale, 409, "concurrent-change")
    no_reason = client.put(f"/v1/staff/records/{record_id}", headers=auth(doctor) | {
        "If-Match": etag}, json={"content": hba1c(40)})
    assert "reason" in field_names(assert_problem(no_reason, 422, "invalid-input"))
    amended = client.put(f"/v1/staff/records/{record_id}", headers=auth(doctor) | {
        "If-Match": etag}, json={"content": hba1c(40), "reason": "The laboratory re-ran the "
                                 "sample and corrected the value."})
    assert amended.status_code == 200, amended.text
    assert amended.json()["status"] == "amended"

    detail = read(client, ada, f"/v1/records/{record_id}", after=amended).json()
    assert detail["status"] == "amended" and detail["amended"] is True
    assert detail["status_words"].startswith("Corrected on")
    assert detail["amendment_reason"].startswith("The laboratory re-ran")
    assert detail["observations"][0]["value"] == "40"
    assert detail["observations"][0]["flag"] == "normal"
    assert [v["observations"][0]["value"] for v in detail["earlier_versions"]] == ["48"]


def test_a_record_entered_in_error_leaves_the_patients_record(client, ada_and_doctor):
    ada, doctor = ada_and_doctor
    record_id = entered(client, doctor, ada["account_id"], release_now=True).json()["record_id"]
    withdrawn = client.post(f"/v1/staff/records/{record_id}/entered-in-error",
                            headers=auth(doctor), json={"reason": "Another patient's sample."})
    assert withdrawn.status_code == 200, withdrawn.text
    assert my_records(client, ada, after=withdrawn) == []
    again = client.post(f"/v1/staff/records/{record_id}/release", headers=auth(doctor))
    assert_problem(again, 409, "record-entered-in-error")


def test_entries_are_checked_field_by_field_and_nothing_is_saved(client, ada_and_doctor):
    ada, doctor = ada_and_doctor
    bad = enter(client, doctor, ada["account_id"], content={"observations": [
        {"name": "", "value": True, "reference_low": 5, "reference_high": 1,
         "flag": "purple"}], "internal_note": "x"})
    problem = assert_problem(bad, 422, "invalid-input")
    assert field_names(problem) == {
        "content.observations[0].name", "content.observations[0].value",
        "content.observations[0].reference_high", "content.observations[0].flag",
        "content.internal_note"}
    naive = enter(client, doctor, ada["account_id"], occurred_at="2026-11-20T10:00:00")
    assert field_names(assert_problem(naive, 422)) == {"occurred_at"}
    vaccination = enter(client, doctor, ada["account_id"], kind="vaccination", code=None,
                        title=None, content={"vaccine": "Influenza"})
    assert field_names(assert_problem(vaccination, 422)) == {"content.given_on"}
    unknown_kind = enter(client, doctor, ada["account_id"], kind="horoscope")
    assert_problem(unknown_kind, 400)
    staff = client.get(f"/v1/staff/patients/{ada['account_id']}/records", headers=auth(doctor))
    assert staff.json()["records"] == []


def test_a_retried_entry_records_once(client, ada_and_doctor):
    ada, doctor = ada_and_doctor
    first = entered(client, doctor, ada["account_id"], key="enter-hba1c-0001")
    second = entered(client, doctor, ada["account_id"], key="enter-hba1c-0001")
    assert first.json()["record_id"] == second.json()["record_id"]
    staff = client.get(f"/v1/staff/patients/{ada['account_id']}/records", headers=auth(doctor))
    assert len(staff.json()["records"]) == 1


def test_only_the_care_teams_clinicians_write_and_only_they_read_internal_notes(
        client, container, clock, sign_up, staff_member, ada_and_doctor):
    ada, doctor = ada_and_doctor
    stranger, manager = staff_member("doctor"), staff_member("care_manager")
    in_care_team(container, clock, ada["account_id"], manager["account_id"])
    assert_problem(enter(client, stranger, ada["account_id"]), 403)
    assert_problem(enter(client, manager, ada["account_id"]), 403)
    record_id = entered(client, doctor, ada["account_id"]).json()["record_id"]
    note(client, doctor, record_id, "staff only")
    as_manager = client.get(f"/v1/staff/records/{record_id}", headers=auth(manager)).json()
    assert as_manager["internal_note_count"] == 1 and as_manager["internal_notes"] is None
    assert_problem(client.get(f"/v1/staff/records/{record_id}", headers=auth(ada)), 403)
    assert_problem(client.get(f"/v1/staff/records/{record_id}", headers=auth(stranger)), 403)


def test_a_proxy_reads_records_only_with_the_records_scope(
        client, container, sign_up, ada_and_doctor):
    ada, doctor = ada_and_doctor
    carer, booker = sign_up(given_name="Grace"), sign_up(given_name="Bob")
    authorise_proxy(client, ada, carer, ["records"])
    authorise_proxy(client, ada, booker, ["appointments"])
    released = entered(client, doctor, ada["account_id"], release_now=True)
    path = f"/v1/patients/{ada['account_id']}/records"
    as_carer = read(client, carer, path, after=released)
    assert [r["record_id"] for r in as_carer.json()["records"]] == [released.json()["record_id"]]
    assert_problem(client.get(path, headers=auth(booker)), 403)
    record = client.get(f"/v1/records/{released.json()['record_id']}", headers=auth(booker))
    assert_problem(record, 403)


def test_the_access_report_names_who_viewed_with_their_role_and_marks_break_glass(
        client, container, clock, sign_up, staff_member, ada_and_doctor):
    ada, doctor = ada_and_doctor
    carer = sign_up(given_name="Grace", family_name="Hopper")
    authorise_proxy(client, ada, carer, ["records"])
    emergency = staff_member("nurse")
    released = entered(client, doctor, ada["account_id"], release_now=True)
    record_id = released.json()["record_id"]
    assert read(client, ada, f"/v1/records/{record_id}", after=released).status_code == 200
    assert client.get(f"/v1/records/{record_id}", headers=auth(carer)).status_code == 200
    assert client.get(f"/v1/staff/records/{record_id}", headers=auth(doctor)).status_code == 200
    assert open_break_glass(client, emergency, ada["account_id"]).status_code == 201
    assert client.get(f"/v1/staff/records/{record_id}",
                      headers=auth(emergency)).status_code == 200

    report = client.get("/v1/me/record-access", headers=auth(ada))
    assert report.status_code == 200, report.text
    views = [(a["who"], a["role_words"], a["on_your_behalf"], a["break_glass"], a["record_id"])
             for a in report.json()["accesses"] if a["what"] == "a record"]
    assert views == [("Sam Staff", "Nurse", False, True, record_id),
                     ("Sam Staff", "Doctor", False, False, record_id),
                     ("Grace Hopper", "Patient", True, False, record_id),
                     ("You", "Patient", False, False, record_id)]
    as_carer = client.get(f"/v1/patients/{ada['account_id']}/record-access", headers=auth(carer))
    assert len(as_carer.json()["accesses"]) == len(report.json()["accesses"])
    page = client.get("/v1/me/record-access?limit=2", headers=auth(ada)).json()
    rest = client.get(f"/v1/me/record-access?cursor={page['next_cursor']}",
                      headers=auth(ada)).json()
    assert [a["at"] for a in page["accesses"] + rest["accesses"]] == [
        a["at"] for a in report.json()["accesses"]]


def test_care_plans_list_goals_actions_and_whether_the_review_is_due(
        client, clock, ada_and_doctor):
    ada, doctor = ada_and_doctor
    plan = entered(client, doctor, ada["account_id"], kind="care_plan", code=None, title=None,
                   content={"condition": "Type 2 diabetes", "goals": ["HbA1c under 48"],
                            "actions": ["Walk 30 minutes a day", "Annual eye check"],
                            "review_on": "2026-11-01",
                            "follow_up": "Bring your glucose diary to the review."})
    plans = read(client, ada, "/v1/me/care-plans", after=plan).json()
    assert [(p["title"], p["goals"], p["actions"], p["review_due"]) for p in plans] == [
        ("Care plan: Type 2 diabetes", ["HbA1c under 48"],
         ["Walk 30 minutes a day", "Annual eye check"], True)]


def test_a_patients_own_upload_is_part_of_their_record(client, container, clock, sign_up,
                                                       staff_member):
    from uuid import UUID

    from tests.api.document_support import Upload, uploaded
    from tests.api.support import give
    from tests.api.visits_support import MONDAY_NINE, book, open_riverside

    ada = sign_up()
    booked = book(client, ada, open_riverside(container, staff_member)["doctor"], MONDAY_NINE)
    assert give(client, ada, "document_review").status_code == 201
    document = uploaded(container, Upload(
        UUID(ada["account_id"]), filename="referral.pdf", document_type="referral_letter",
        content_type="application/pdf", appointment_id=UUID(booked.json()["appointment_id"])),
        clock.now)
    settle(container)
    rows = my_records(client, ada, query="?kind=document")
    assert [(r["record_id"], r["title"], r["kind_words"]) for r in rows] == [
        (document["document_id"], "referral.pdf", "Your upload")]
    assert my_records(client, ada, query="?q=referral")[0]["record_id"] == document["document_id"]


def test_bad_filters_are_named(client, ada_and_doctor):
    ada, _ = ada_and_doctor
    for query, name in (("?kind=horoscope", "kind"), ("?cursor=%%%", "cursor"),
                        ("?since=2026-11-02T00:00:00Z&until=2026-11-01T00:00:00Z", "until")):
        problem = assert_problem(client.get(f"/v1/me/records{query}", headers=auth(ada)), 422)
        assert field_names(problem) == {name}, query


def test_a_video_consultations_follow_up_is_in_the_record_and_its_internal_notes_are_not(
        client, container, clock, sign_up, staff_member):
    from tests.api.consultation_support import START, at, join, video_visit

    visit = video_visit(client, container, sign_up, staff_member)
    patient, doctor = visit["patient"], visit["doctor"]
    at(client, clock, START - timedelta(minutes=5), patient, doctor)
    consultation_id = join(client, visit).json()["consultation_id"]
    path = f"/v1/staff/consultations/{consultation_id}"
    assert client.post(f"{path}/end", headers=auth(doctor),
                       json={"outcome": "technical_failure"}).status_code == 200
    written = client.put(f"{path}/summary", headers=auth(doctor), json={
        "follow_up_instructions": "Rest, drink plenty, and book again if no better in a week.",
        "internal_notes": f"{MARKER} consider referral"})
    assert written.status_code == 200, written.text
    settle(container)
    [summary] = my_records(client, patient, query="?kind=appointment_summary")
    detail = client.get(f"/v1/records/{summary['record_id']}", headers=auth(patient))
    assert detail.json()["follow_up"].startswith("Rest, drink plenty")
    assert detail.json()["appointment_id"] == visit["appointment_id"]
    assert MARKER not in detail.text
    rewritten = client.put(f"{path}/summary", headers=auth(doctor), json={
        "follow_up_instructions": "Rest and book again if no better in five days.",
        "internal_notes": f"{MARKER} consider referral"})
    assert rewritten.status_code == 200, rewritten.text
    settle(container)
    again = client.get(f"/v1/records/{summary['record_id']}", headers=auth(patient)).json()
    assert again["follow_up"].startswith("Rest and book again")
    assert again["earlier_versions"][0]["title"] == summary["title"]


def test_an_import_from_the_clinics_system_files_results_once_and_corrections_as_amendments(
        client, container, clock, sign_up, staff_member):
    import json

    from tests.domain.test_record_import import ADA, INTERNAL, clinic_export, immunization

    ada, admin = sign_up(), staff_member("clinic_admin")
    export = json.loads(json.dumps(clinic_export()).replace(str(ADA), ada["account_id"]))

    def send(bundle: dict[str, Any]) -> Any:
        return client.post("/v1/admin/record-import", headers=auth(admin),
                           json={"clinic_id": "riverside", "bundle": bundle})

    first = send(export)
    assert first.status_code == 200, first.text
    assert first.json() == {"entries": 4, "created": 4, "revised": 0, "unchanged": 0}
    assert send(export).json() == {"entries": 4, "created": 0, "revised": 0, "unchanged": 4}
    settle(container)
    # Letters and vaccinations at once; results after the delay for their test type (24 h).
    shown = {r["kind"] for r in client.get("/v1/me/records", headers=auth(ada)).json()["records"]}
    assert shown == {"vaccination", "referral_letter"}
    assert INTERNAL not in client.get("/v1/me/records", headers=auth(ada)).text

    corrected = json.loads(json.dumps(export).replace('"lotNumber": "FLU-2026-118"',
                                                      '"lotNumber": "FLU-2026-119"'))
    assert send(corrected).json()["revised"] == 1
    settle(container)
    [vaccination] = my_records(client, ada, query="?kind=vaccination")
    assert vaccination["amended"] is True
    detail = client.get(f"/v1/records/{vaccination['record_id']}", headers=auth(ada)).json()
    assert detail["batch"] == "FLU-2026-119"
    assert detail["amendment_reason"] == "The clinic's records system sent a corrected version."

    stranger = json.loads(json.dumps(immunization(identifier=[{"value": "imm-99"}])).replace(
        str(ADA), "00000000-0000-4000-8000-0000000000e2"))
    refused = send({"resourceType": "Bundle", "type": "collection",
                    "entry": [{"resource": stranger}]})
    assert field_names(assert_problem(refused, 422)) == {"entry[0].resource.patient.reference"}
    nurse = staff_member("nurse")
    assert_problem(client.post("/v1/admin/record-import", headers=auth(nurse), json={
        "clinic_id": "riverside", "bundle": export}), 403)


def test_times_are_shown_in_the_clinics_zone_across_the_clock_change(
        client, container, clock, sign_up, staff_member):
    """Riverside is in London. A result taken just before the clocks went forward reads in GMT,
    one just after in BST; a care plan whose review is on 1 July is due at 00:30 BST on that
    day, while it is still 30 June in UTC."""
    from datetime import UTC, datetime

    from tests.api.visits_support import open_riverside

    doctor = open_riverside(container, staff_member)["doctor"]
    ada = sign_up()
    in_care_team(container, clock, ada["account_id"], doctor["account_id"], days=400)
    for taken in ("2026-03-29T00:30:00+00:00", "2026-03-29T01:30:00+00:00"):
        entered(client, doctor, ada["account_id"], release_now=True, occurred_at=taken)
    settle(container)
    local = sorted(r["occurred_at_local"] for r in my_records(client, ada))
    assert local == ["2026-03-29T00:30:00+00:00", "2026-03-29T02:30:00+01:00"]

    entered(client, doctor, ada["account_id"], kind="care_plan", code=None, title=None,
            content={"condition": "Asthma", "goals": ["No night-time symptoms"],
                     "review_on": "2027-07-01"})
    settle(container)
    for now, due in ((datetime(2027, 6, 30, 22, 59, tzinfo=UTC), False),
                     (datetime(2027, 6, 30, 23, 30, tzinfo=UTC), True)):
        clock.now = now
        ada = signed_in_again(client, container, ada)
        [plan] = client.get("/v1/me/care-plans", headers=auth(ada)).json()
        assert plan["review_due"] is due, now


def test_an_import_finds_the_patient_through_the_clinics_identifiers(
        client, container, sign_up, staff_member):
    """A clinic system names its patients by NHS number and its own record number: the import
    finds the CareBridge patient through the identifier cross-reference, and refuses (naming the
    entry) a patient it cannot match with certainty."""
    from tests.domain.test_record_import import immunization

    ada, admin = sign_up(), staff_member("clinic_admin")
    linked = client.put(f"/v1/admin/patients/{ada['account_id']}/identifiers",
                        headers=auth(admin), json={"identifiers": {"nhs": "943 476 5919"}})
    assert linked.status_code == 200, linked.text

    def bundle(nhs: str, number: str) -> dict[str, Any]:
        patient = {"resourceType": "Patient", "id": "emis-1",
                   "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs},
                                  {"system": "https://emis.example/mrn", "value": number}],
                   "name": [{"family": "Lovelace"}], "birthDate": "1958-12-10"}
        vaccine = immunization(patient={"reference": "Patient/emis-1"},
                               identifier=[{"value": f"imm-{number}"}])
        return {"resourceType": "Bundle", "type": "collection",
                "entry": [{"fullUrl": "Patient/emis-1", "resource": patient},
                          {"resource": vaccine}]}

    imported = client.post("/v1/admin/record-import", headers=auth(admin), json={
        "clinic_id": "riverside", "system": "riverside-emis",
        "bundle": bundle("9434765919", "R12345")})
    assert imported.status_code == 200, imported.text
    settle(container)
    assert [r["kind"] for r in my_records(client, ada)] == ["vaccination"]

    unknown = client.post("/v1/admin/record-import", headers=auth(admin), json={
        "clinic_id": "riverside", "system": "riverside-emis",
        "bundle": bundle("4010232137", "R99999")})
    problem = assert_problem(unknown, 422)
    assert field_names(problem) == {"entry[1].resource.patient.reference"}
