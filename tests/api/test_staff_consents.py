"""What clinic staff see of a patient's consents, and publishing a new consent text."""

from __future__ import annotations

import pytest

from tests.api.support import CURRENT_VERSION, assert_problem, auth, consent_of, give, read

NEW_TEXT = "I agree to video consultations under the clinic's updated terms of January 2027."


@pytest.mark.parametrize("role", ["doctor", "nurse", "prescription_coordinator", "care_manager",
                                  "clinic_admin"])
def test_clinical_staff_and_administrators_see_a_patients_consents(client, sign_up,
                                                                   staff_member, role):
    ada = sign_up()
    given = give(client, ada, "telemedicine")
    staff = staff_member(role)
    response = read(client, staff, f"/v1/staff/patients/{ada['account_id']}/consents", after=given)
    assert response.status_code == 200, response.text
    assert consent_of(response.json(), "telemedicine")["status"] == "given"
    assert consent_of(response.json(), "data_sharing")["status"] == "not_given"


@pytest.mark.parametrize("role", ["reception", "support", "auditor"])
def test_non_clinical_staff_cannot_see_a_patients_consents(client, sign_up, staff_member, role):
    ada = sign_up()
    give(client, ada)
    response = read(client, staff_member(role), f"/v1/staff/patients/{ada['account_id']}/consents")
    problem = assert_problem(response, 403, "forbidden")
    assert "telemedicine" not in response.text
    assert "clinic administrator" in problem["detail"]


def test_patients_cannot_use_the_staff_view_even_for_themselves(client, sign_up):
    ada, bob = sign_up(), sign_up(given_name="Bob")
    for caller in (bob, ada):
        response = read(client, caller, f"/v1/staff/patients/{ada['account_id']}/consents")
        assert_problem(response, 403, "forbidden")


def test_an_administrator_publishes_a_new_version_that_patients_must_agree_to(
        client, sign_up, staff_member):
    ada, admin = sign_up(), staff_member("clinic_admin")
    assert give(client, ada, "telemedicine").status_code == 201
    published = client.post("/v1/staff/consent-texts/telemedicine", headers=auth(admin),
                            json={"version": "2027-01", "text": NEW_TEXT})
    assert published.status_code == 201, published.text
    assert published.json()["version"] == "2027-01"
    state = consent_of(read(client, ada, "/v1/me/consents", after=published).json(), "telemedicine")
    assert state["text_version"] == CURRENT_VERSION
    assert state["current_text_version"] == "2027-01"
    assert state["needs_renewal"] is True
    assert give(client, ada, "telemedicine", "2027-01").status_code == 201


def test_republishing_a_version_with_other_wording_is_refused(client, staff_member):
    admin = staff_member("clinic_admin")
    problem = assert_problem(client.post(
        "/v1/staff/consent-texts/telemedicine", headers=auth(admin),
        json={"version": CURRENT_VERSION, "text": NEW_TEXT}), 409, "consent-text-version-exists")
    assert CURRENT_VERSION in problem["detail"]


@pytest.mark.parametrize("role", ["doctor", "nurse", "reception", "prescription_coordinator",
                                  "care_manager", "support", "auditor"])
def test_only_a_clinic_administrator_publishes_consent_texts(client, staff_member, role):
    response = client.post("/v1/staff/consent-texts/telemedicine",
                           headers=auth(staff_member(role)),
                           json={"version": "2027-01", "text": NEW_TEXT})
    assert_problem(response, 403, "forbidden")
