"""What clinic staff see of a patient's consents (their care team, and the administrators of a
clinic that knows the patient), and publishing a new consent text."""

from __future__ import annotations

import pytest

from tests.api.care_support import in_care_team
from tests.api.support import CURRENT_VERSION, assert_problem, auth, consent_of, give, read

NEW_TEXT = "I agree to video consultations under the clinic's updated terms of January 2027."


CLINICAL = ["doctor", "nurse", "prescription_coordinator", "care_manager"]


def consents_path(patient):
    return f"/v1/staff/patients/{patient['account_id']}/consents"


@pytest.mark.parametrize("role", CLINICAL)
def test_clinical_staff_in_the_care_team_see_a_patients_consents(client, container, clock,
                                                                  sign_up, staff_member, role):
    ada = sign_up()
    given = give(client, ada, "telemedicine")
    staff = staff_member(role)
    in_care_team(container, clock, ada["account_id"], staff["account_id"])
    response = read(client, staff, consents_path(ada), after=given)
    assert response.status_code == 200, response.text
    assert consent_of(response.json(), "telemedicine")["status"] == "given"
    assert consent_of(response.json(), "data_sharing")["status"] == "not_given"


@pytest.mark.parametrize("role", CLINICAL)
def test_clinical_staff_outside_the_care_team_do_not_see_a_patients_consents(
        client, container, clock, sign_up, staff_member, role):
    ada, bob = sign_up(), sign_up(given_name="Bob")
    give(client, ada)
    staff = staff_member(role)
    in_care_team(container, clock, bob["account_id"], staff["account_id"])  # Bob's, not Ada's
    problem = assert_problem(read(client, staff, consents_path(ada)), 403, "forbidden")
    assert "telemedicine" not in str(problem)


def test_a_clinic_administrator_sees_consents_of_patients_known_at_their_clinic(
        client, container, clock, sign_up, staff_member):
    ada, admin = sign_up(), staff_member("clinic_admin")
    elsewhere = staff_member("clinic_admin", clinics=("hillside",))
    assert_problem(read(client, admin, consents_path(ada)), 403, "forbidden")
    in_care_team(container, clock, ada["account_id"], staff_member("doctor")["account_id"])
    assert read(client, admin, consents_path(ada)).status_code == 200
    assert_problem(read(client, elsewhere, consents_path(ada)), 403, "forbidden")


@pytest.mark.parametrize("role", ["reception", "support", "auditor"])
def test_non_clinical_staff_cannot_see_a_patients_consents(client, container, clock, sign_up,
                                                           staff_member, role):
    ada = sign_up()
    give(client, ada)
    in_care_team(container, clock, ada["account_id"], staff_member("doctor")["account_id"])
    response = read(client, staff_member(role), consents_path(ada))
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
