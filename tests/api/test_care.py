"""Care teams, proxy access and break-glass through the API."""

from __future__ import annotations

import logging
import uuid

import pytest

from tests.api.care_support import (
    REASON,
    authorise_proxy,
    later,
    offer,
    open_break_glass,
    put_in_care_team,
    signed_in_again,
)
from tests.api.support import PASSWORD, assert_problem, auth, field_names, give, read, sign_in


def consents_of(client, caller, patient, staff=False):
    prefix = "/v1/staff/patients" if staff else "/v1/patients"
    return client.get(f"{prefix}/{patient['account_id']}/consents", headers=auth(caller))


def register_child(client, born="2015-06-01"):
    email = f"child.{uuid.uuid4().hex[:8]}@patients.test"
    response = client.post("/v1/auth/register", json={
        "email": email, "password": PASSWORD, "given_name": "Lily", "family_name": "Patel",
        "date_of_birth": born})
    assert response.status_code == 201, response.text
    return {"account_id": response.json()["account_id"], "email": email} | sign_in(client, email)


# ---- care teams ------------------------------------------------------------------------------

def test_a_doctor_sees_a_patients_consents_only_while_in_the_care_team(
        client, container, clock, sign_up, staff_member):
    ada, doctor, manager = sign_up(), staff_member("doctor"), staff_member("care_manager")
    give(client, ada)
    assert_problem(consents_of(client, doctor, ada, staff=True), 403, "forbidden")

    added = put_in_care_team(client, manager, ada["account_id"], doctor["account_id"],
                             later(clock, days=30))
    assert added.status_code == 201, added.text
    assert added.json()["basis"] == "assignment"
    assert consents_of(client, doctor, ada, staff=True).status_code == 200

    clock.now = later(clock, days=31)  # past the end date
    doctor = signed_in_again(client, container, doctor)
    assert_problem(consents_of(client, doctor, ada, staff=True), 403, "forbidden")


def test_ending_a_care_relationship_takes_effect_on_the_next_request(
        client, clock, sign_up, staff_member):
    ada, nurse, admin = sign_up(), staff_member("nurse"), staff_member("clinic_admin")
    added = put_in_care_team(client, admin, ada["account_id"], nurse["account_id"],
                             later(clock, days=30)).json()
    assert consents_of(client, nurse, ada, staff=True).status_code == 200
    ended = client.post(f"/v1/staff/patients/{ada['account_id']}/care-team/"
                        f"{added['relationship_id']}/end", headers=auth(admin),
                        json={"reason": "moved to another practice"})
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended_at"] is not None
    assert_problem(consents_of(client, nurse, ada, staff=True), 403, "forbidden")


def test_the_care_team_lists_members_of_my_clinics_with_their_role(
        client, clock, sign_up, staff_member):
    ada, doctor, manager = sign_up(), staff_member("doctor"), staff_member("care_manager")
    far_doctor = staff_member("doctor", clinics=("hillside",))
    far_manager = staff_member("care_manager", clinics=("hillside",))
    put_in_care_team(client, manager, ada["account_id"], doctor["account_id"],
                     later(clock, days=10))
    put_in_care_team(client, far_manager, ada["account_id"], far_doctor["account_id"],
                     later(clock, days=10), clinic_id="hillside")
    team = client.get(f"/v1/staff/patients/{ada['account_id']}/care-team", headers=auth(doctor))
    assert team.status_code == 200, team.text
    assert [(m["clinician_id"], m["clinician_role"], m["clinic_id"], m["active"])
            for m in team.json()] == [(doctor["account_id"], "doctor", "riverside", True)]


def test_a_clinician_of_another_clinic_and_a_past_end_date_are_refused_together(
        client, clock, sign_up, staff_member):
    ada, admin = sign_up(), staff_member("clinic_admin")
    elsewhere = staff_member("doctor", clinics=("hillside",))
    response = put_in_care_team(client, admin, ada["account_id"], elsewhere["account_id"],
                                later(clock, days=-1))
    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"clinician_id", "ends_at"}


def test_a_care_manager_cannot_manage_another_clinics_care_team(
        client, clock, sign_up, staff_member):
    ada, manager = sign_up(), staff_member("care_manager")
    hillside_doctor = staff_member("doctor", clinics=("hillside",))
    response = put_in_care_team(client, manager, ada["account_id"],
                                hillside_doctor["account_id"], later(clock, days=5),
                                clinic_id="hillside")
    assert_problem(response, 403, "forbidden")


def test_a_doctor_in_the_care_team_refers_to_a_colleague(client, clock, sign_up, staff_member):
    ada, doctor, colleague = sign_up(), staff_member("doctor"), staff_member("nurse")
    outsider = staff_member("doctor")
    put_in_care_team(client, staff_member("clinic_admin"), ada["account_id"],
                     doctor["account_id"], later(clock, days=30))
    refused = put_in_care_team(client, outsider, ada["account_id"], colleague["account_id"],
                               later(clock, days=30), basis="referral", source_ref="letter-9")
    assert_problem(refused, 403, "forbidden")
    referred = put_in_care_team(client, doctor, ada["account_id"], colleague["account_id"],
                                later(clock, days=30), basis="referral", source_ref="letter-9")
    assert referred.status_code == 201, referred.text
    assert consents_of(client, colleague, ada, staff=True).status_code == 200


def test_a_retried_assignment_is_made_once(client, clock, sign_up, staff_member):
    ada, doctor, admin = sign_up(), staff_member("doctor"), staff_member("clinic_admin")
    answers = [put_in_care_team(client, admin, ada["account_id"], doctor["account_id"],
                                later(clock, days=30), key="assign-doctor-0001")
               for _ in range(2)]
    assert answers[0].status_code == answers[1].status_code == 201
    assert answers[0].json() == answers[1].json()
    team = client.get(f"/v1/staff/patients/{ada['account_id']}/care-team", headers=auth(admin))
    assert len(team.json()) == 1


def test_the_same_referral_again_extends_the_relationship(client, clock, sign_up, staff_member):
    ada, nurse, admin = sign_up(), staff_member("nurse"), staff_member("clinic_admin")
    first = put_in_care_team(client, admin, ada["account_id"], nurse["account_id"],
                             later(clock, days=10), basis="referral", source_ref="letter-1")
    again = put_in_care_team(client, admin, ada["account_id"], nurse["account_id"],
                             later(clock, days=20), basis="referral", source_ref="letter-1")
    assert again.status_code == 200, again.text  # extended, not created
    assert again.json()["relationship_id"] == first.json()["relationship_id"]
    assert again.json()["ends_at"] > first.json()["ends_at"]


# ---- proxies ---------------------------------------------------------------------------------

def test_an_offer_answers_the_same_whether_or_not_the_address_has_an_account(
        client, sign_up):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    known = offer(client, grace, daughter["email"], ["appointments"])
    unknown = offer(client, grace, "nobody.here@patients.test", ["appointments"])
    assert known.status_code == unknown.status_code == 202
    same = ("kind", "scopes", "status", "accepted_at", "expires_at", "ended_at", "changed")
    assert {k: known.json()[k] for k in same} == {k: unknown.json()[k] for k in same}
    assert set(known.json()) == set(unknown.json())
    listed = client.get("/v1/me/proxies", headers=auth(grace)).json()
    assert sorted(p["status"] for p in listed) == ["offered", "offered"]


def test_a_proxy_with_the_consents_scope_reads_the_patients_consents_until_revoked(
        client, sign_up):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    given = give(client, grace, "telemedicine")
    assert_problem(consents_of(client, daughter, grace), 403, "forbidden")
    grant_id = authorise_proxy(client, grace, daughter, ["appointments", "consents"])

    response = read(client, daughter, f"/v1/patients/{grace['account_id']}/consents", after=given)
    assert response.status_code == 200, response.text
    assert {c["consent_type"]: c["status"] for c in response.json()}["telemedicine"] == "given"

    revoked = client.post(f"/v1/me/proxies/{grant_id}/revoke", headers=auth(grace))
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"
    assert_problem(consents_of(client, daughter, grace), 403, "forbidden")


def test_a_proxy_without_the_consents_scope_is_refused(client, sign_up):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    authorise_proxy(client, grace, daughter, ["appointments"])
    assert_problem(consents_of(client, daughter, grace), 403, "forbidden")


def test_changing_scopes_takes_effect_at_once(client, sign_up):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    grant_id = authorise_proxy(client, grace, daughter, ["consents"])
    assert consents_of(client, daughter, grace).status_code == 200
    changed = client.post(f"/v1/me/proxies/{grant_id}/scopes", headers=auth(grace),
                          json={"scopes": ["appointments", "prescriptions"]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["scopes"] == ["appointments", "prescriptions"]
    assert_problem(consents_of(client, daughter, grace), 403, "forbidden")


def test_an_invitation_is_answered_only_by_the_invited_account(client, sign_up):
    grace, daughter, stranger = (sign_up(given_name=n) for n in ("Grace", "Emma", "Mallory"))
    grant_id = offer(client, grace, daughter["email"], ["consents"]).json()["grant_id"]
    invitations = client.get("/v1/me/represented", headers=auth(daughter)).json()
    assert [(i["grant_id"], i["status"], i["patient_name"]) for i in invitations] == [
        (grant_id, "offered", "Grace Lovelace")]
    for path in ("accept", "decline", "step-down"):
        assert_problem(client.post(f"/v1/me/represented/{grant_id}/{path}",
                                   headers=auth(stranger)), 404, "not-found")
    assert_problem(client.post(f"/v1/me/proxies/{grant_id}/revoke", headers=auth(daughter)),
                   404, "not-found")
    assert client.get("/v1/me/represented", headers=auth(stranger)).json() == []


def test_a_declined_invitation_gives_no_access_and_cannot_be_accepted_later(client, sign_up):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    grant_id = offer(client, grace, daughter["email"], ["consents"]).json()["grant_id"]
    declined = client.post(f"/v1/me/represented/{grant_id}/decline", headers=auth(daughter))
    assert declined.json()["status"] == "declined"
    assert_problem(client.post(f"/v1/me/represented/{grant_id}/accept", headers=auth(daughter)),
                   409, "relationship-ended")
    assert_problem(consents_of(client, daughter, grace), 403, "forbidden")


def test_a_proxy_steps_down(client, sign_up):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    grant_id = authorise_proxy(client, grace, daughter, ["consents"])
    stepped = client.post(f"/v1/me/represented/{grant_id}/step-down", headers=auth(daughter))
    assert (stepped.json()["status"], stepped.json()["ended_by"]) == ("revoked", "proxy")
    assert_problem(consents_of(client, daughter, grace), 403, "forbidden")
    assert client.get("/v1/me/represented", headers=auth(daughter)).json() == []


def test_an_offer_expires_on_its_end_date(client, container, clock, sign_up):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    offered = offer(client, grace, daughter["email"], ["consents"], expires_on="2026-11-30")
    client.post(f"/v1/me/represented/{offered.json()['grant_id']}/accept", headers=auth(daughter))
    assert consents_of(client, daughter, grace).status_code == 200
    clock.now = later(clock, days=8)  # 1 December
    grace, daughter = (signed_in_again(client, container, p) for p in (grace, daughter))
    assert_problem(consents_of(client, daughter, grace), 403, "forbidden")
    listed = client.get("/v1/me/proxies", headers=auth(grace)).json()
    assert [p["status"] for p in listed] == ["expired"]


def test_a_bad_offer_names_every_field(client, sign_up):
    grace = sign_up(given_name="Grace")
    response = client.post("/v1/me/proxies", headers=auth(grace), json={
        "email": grace["email"], "kind": "parent", "scopes": [], "expires_on": "2020-01-01"})
    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"email", "kind", "scopes", "expires_on"}


def test_a_retried_offer_invites_once(client, sign_up, mailbox):
    grace, daughter = sign_up(given_name="Grace"), sign_up(given_name="Emma")
    first, second = (offer(client, grace, daughter["email"], ["consents"], key="offer-emma-001")
                     for _ in range(2))
    assert first.json() == second.json()
    assert len(client.get("/v1/me/proxies", headers=auth(grace)).json()) == 1
    invitations = [m for m in mailbox.messages() if m["kind"] == "proxy_invitation"]
    assert [m["account_id"] for m in invitations] == [daughter["account_id"]]


def test_the_invitation_email_goes_only_to_a_registered_patient_and_names_nobody(
        client, sign_up, mailbox):
    from commands.outbox import TEMPLATES

    grace = sign_up(given_name="Grace")
    offer(client, grace, "nobody.here@patients.test", ["appointments"])
    assert not [m for m in mailbox.messages() if m["kind"] == "proxy_invitation"]
    wording = TEMPLATES["proxy_invitation"].subject + TEMPLATES["proxy_invitation"].body
    assert "Grace" not in wording and "Lovelace" not in wording


# ---- parental responsibility -----------------------------------------------------------------

def test_reception_records_a_parent_who_then_acts_for_the_child_until_sixteen(
        client, container, clock, sign_up, staff_member):
    child, parent = register_child(client, born="2015-06-01"), sign_up(given_name="Priya")
    reception, manager = staff_member("reception"), staff_member("care_manager")
    path = f"/v1/staff/patients/{child['account_id']}/parental-responsibility"
    # Reception acts only for patients known at its clinic.
    assert_problem(client.post(path, headers=auth(reception),
                               json={"parent_account_id": parent["account_id"]}), 403)
    put_in_care_team(client, manager, child["account_id"], staff_member("doctor")["account_id"],
                     later(clock, days=30))
    recorded = client.post(path, headers=auth(reception),
                           json={"parent_account_id": parent["account_id"]})
    assert recorded.status_code == 201, recorded.text
    body = recorded.json()
    assert (body["kind"], body["status"]) == ("parent", "active")
    assert body["expires_at"].startswith("2031-06-01T00:00:00")
    assert sorted(body["scopes"]) == sorted(
        ["appointments", "prescriptions", "records", "documents", "messaging", "consents"])
    represented = client.get("/v1/me/represented", headers=auth(parent)).json()
    assert [(r["patient_id"], r["kind"]) for r in represented] == [(child["account_id"], "parent")]
    assert consents_of(client, parent, child).status_code == 200

    clock.now = clock.now.replace(year=2031, month=6, day=1, hour=0)  # the 16th birthday
    parent = signed_in_again(client, container, parent)
    assert_problem(consents_of(client, parent, child), 403, "forbidden")


def test_parental_responsibility_is_refused_for_a_patient_of_sixteen_or_over(
        client, clock, sign_up, staff_member):
    teenager = register_child(client, born="2010-11-23")  # sixteen today
    parent, admin = sign_up(given_name="Priya"), staff_member("clinic_admin")
    put_in_care_team(client, admin, teenager["account_id"],
                     staff_member("nurse")["account_id"], later(clock, days=30))
    response = client.post(f"/v1/staff/patients/{teenager['account_id']}/parental-responsibility",
                           headers=auth(admin), json={"parent_account_id": parent["account_id"]})
    problem = assert_problem(response, 409, "not-a-child")
    assert "16 or over" in problem["detail"]


# ---- break-glass -----------------------------------------------------------------------------

def test_break_glass_opens_time_limited_access_with_a_reason(
        client, container, clock, sign_up, staff_member):
    ada, doctor = sign_up(), staff_member("doctor")
    assert_problem(consents_of(client, doctor, ada, staff=True), 403, "forbidden")
    opened = open_break_glass(client, doctor, ada["account_id"])
    assert opened.status_code == 201, opened.text
    assert opened.json()["expires_at"] == later(clock, minutes=60).isoformat().replace(
        "+00:00", "Z")
    assert "reason" not in opened.json()
    assert consents_of(client, doctor, ada, staff=True).status_code == 200
    clock.now = later(clock, minutes=60)
    doctor = signed_in_again(client, container, doctor)
    assert_problem(consents_of(client, doctor, ada, staff=True), 403, "forbidden")


def test_break_glass_closed_early_ends_access(client, sign_up, staff_member):
    ada, nurse = sign_up(), staff_member("nurse")
    access_id = open_break_glass(client, nurse, ada["account_id"]).json()["access_id"]
    assert_problem(client.post(f"/v1/staff/break-glass/{access_id}/close",
                               headers=auth(staff_member("nurse"))), 403, "forbidden")
    closed = client.post(f"/v1/staff/break-glass/{access_id}/close", headers=auth(nurse))
    assert closed.status_code == 200, closed.text
    assert closed.json()["active"] is False
    assert_problem(consents_of(client, nurse, ada, staff=True), 403, "forbidden")


@pytest.mark.parametrize("role", ["reception", "support", "auditor", "clinic_admin",
                                  "prescription_coordinator", "care_manager"])
def test_only_doctors_and_nurses_open_break_glass(client, sign_up, staff_member, role):
    ada = sign_up()
    assert_problem(open_break_glass(client, staff_member(role), ada["account_id"]), 403)


def test_break_glass_needs_a_reason_of_some_substance(client, sign_up, staff_member):
    response = open_break_glass(client, staff_member("doctor"), sign_up()["account_id"],
                                reason="urgent")
    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"reason"}


def test_the_clinic_administrator_reviews_break_glass_at_their_clinic(
        client, sign_up, staff_member):
    ada, doctor = sign_up(), staff_member("doctor")
    admin, far_admin, auditor = (staff_member("clinic_admin"),
                                 staff_member("clinic_admin", clinics=("hillside",)),
                                 staff_member("auditor"))
    access_id = open_break_glass(client, doctor, ada["account_id"]).json()["access_id"]
    pending = client.get("/v1/staff/break-glass?reviewed=false", headers=auth(admin)).json()
    assert [(p["access_id"], p["reason"], p["clinician_id"]) for p in pending] == [
        (access_id, REASON, doctor["account_id"])]
    assert client.get("/v1/staff/break-glass", headers=auth(far_admin)).json() == []
    assert [p["access_id"] for p in client.get("/v1/staff/break-glass",
                                               headers=auth(auditor)).json()] == [access_id]
    assert_problem(client.get("/v1/staff/break-glass", headers=auth(doctor)), 403)
    assert_problem(client.post(f"/v1/staff/break-glass/{access_id}/review", headers=auth(far_admin),
                               json={"outcome": "appropriate"}), 403, "forbidden")

    refused = client.post(f"/v1/staff/break-glass/{access_id}/review", headers=auth(admin),
                          json={"outcome": "inappropriate"})
    assert field_names(assert_problem(refused, 422, "invalid-input")) == {"note"}
    reviewed = client.post(f"/v1/staff/break-glass/{access_id}/review", headers=auth(admin),
                           json={"outcome": "appropriate", "note": "Seen in A&E notes."})
    assert reviewed.status_code == 200, reviewed.text
    assert client.get("/v1/staff/break-glass?reviewed=false", headers=auth(admin)).json() == []
    done = client.get("/v1/staff/break-glass?reviewed=true", headers=auth(auditor)).json()
    assert [(d["review_outcome"], d["review_note"]) for d in done] == [
        ("appropriate", "Seen in A&E notes.")]
    again = client.post(f"/v1/staff/break-glass/{access_id}/review", headers=auth(auditor),
                        json={"outcome": "inappropriate", "note": "No emergency recorded."})
    assert_problem(again, 409, "already-reviewed")


def test_a_break_glass_reason_never_reaches_the_patient_or_the_logs(
        client, sign_up, staff_member, caplog):
    caplog.set_level(logging.DEBUG)
    ada, doctor = sign_up(), staff_member("doctor")
    opened = open_break_glass(client, doctor, ada["account_id"])
    activity = read(client, ada, "/v1/me/security-events", after=opened)
    emergency = [e for e in activity.json() if e["kind"] == "emergency_access"]
    assert [e["detail"] for e in emergency] == [None]
    for path in ("/v1/me/security-events", "/v1/me", "/v1/me/consents", "/v1/me/proxies",
                 "/v1/me/represented", f"/v1/patients/{ada['account_id']}/consents"):
        response = client.get(path, headers=auth(ada))
        assert response.status_code == 200, (path, response.text)
        assert "Unconscious" not in response.text and doctor["account_id"] not in response.text
    assert "Unconscious" not in caplog.text
