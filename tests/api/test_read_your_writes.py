"""Reads that come from projections honour CareBridge-Wait-For, so a client sees its own write."""

from __future__ import annotations

import pytest

from tests.api.care_support import in_care_team
from tests.api.support import assert_problem, auth, field_names

PROJECTED_READS = ["/v1/me/consents", "/v1/me/consents/history",
                   "/v1/consent-texts/telemedicine", "/v1/staff/patients/{patient_id}/consents",
                   "/v1/me/records", "/v1/patients/{patient_id}/records", "/v1/me/care-plans",
                   "/v1/patients/{patient_id}/care-plans",
                   "/v1/records/00000000-0000-4000-8000-0000000000e2"]


@pytest.mark.parametrize("path", PROJECTED_READS)
def test_every_projected_read_checks_the_position_it_is_asked_to_wait_for(
        client, container, clock, sign_up, staff_member, path):
    ada, nurse = sign_up(), staff_member("nurse")
    in_care_team(container, clock, ada["account_id"], nurse["account_id"])
    reader = nurse if "/staff/" in path else ada
    response = client.get(path.format(patient_id=ada["account_id"]),
                          headers=auth(reader) | {"CareBridge-Wait-For": "soon please"})
    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"CareBridge-Wait-For"}


def test_a_new_consent_text_is_readable_as_soon_as_its_position_is_waited_for(
        client, sign_up, staff_member):
    ada, admin = sign_up(), staff_member("clinic_admin")
    wording = "Video consultations are now offered on weekends as well as weekdays."
    published = client.post("/v1/staff/consent-texts/telemedicine", headers=auth(admin),
                            json={"version": "2027-01", "text": wording})
    assert published.status_code == 201, published.text
    text = client.get("/v1/consent-texts/telemedicine", headers=auth(ada) | {
        "CareBridge-Wait-For": published.headers["CareBridge-Position"]})
    assert (text.json()["version"], text.json()["text"]) == ("2027-01", wording)
