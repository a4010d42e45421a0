"""GET /v1/availability and GET /v1/clinicians/{id}/next-slots through the HTTP API."""

from __future__ import annotations

from typing import Any

import pytest

from commands.availability import Availability, PostgresBookings
from tests.api.support import assert_problem, auth, field_names
from tests.domain.test_availability import ASHA, BEN, network

# The test clock stands at Monday 23 November 2026, 09:00 UTC (09:00 in London).


@pytest.fixture
def schedule(container: Any) -> Any:
    """The test network (see tests/domain/test_availability.py) in place of the scheduling
    context's reference data."""
    built = network()
    container.availability = Availability(built, PostgresBookings(
        container.identity.factory.datastore))
    return built


def test_a_patient_finds_the_next_morning_slots_with_a_hindi_speaking_doctor(client, sign_up,
                                                                              schedule):
    grace = sign_up(given_name="Grace")
    response = client.get("/v1/availability", headers=auth(grace), params={
        "language": "hi", "time_of_day": "morning", "consultation_type_id": "gp-in-person",
        "limit": "3"})
    assert response.status_code == 200, response.text
    slots = response.json()
    assert [s["starts_at_local"] for s in slots] == [
        "2026-11-23T09:15:00+00:00", "2026-11-23T09:30:00+00:00", "2026-11-23T09:45:00+00:00"]
    assert {s["clinician_name"] for s in slots} == {"Dr Asha Patel"}
    assert slots[0]["clinic_name"] == "Riverside Health Centre"
    assert slots[0]["starts_at_patient"] is None
    assert slots[0]["places_left"] == 1


def test_a_patient_in_new_york_sees_both_zones(client, sign_up, schedule):
    grace = sign_up(given_name="Grace")
    response = client.get("/v1/availability", headers=auth(grace), params={
        "clinician_id": str(BEN), "patient_timezone": "America/New_York", "limit": "1"})
    assert response.status_code == 200, response.text
    [slot] = response.json()
    assert slot["starts_at_local"] == "2026-11-23T11:00:00+00:00"
    assert slot["starts_at_patient"] == "2026-11-23T06:00:00-05:00"


def test_summer_slots_show_the_london_and_utc_times_apart(client, sign_up, schedule):
    grace = sign_up(given_name="Grace")
    response = client.get("/v1/availability", headers=auth(grace), params={
        "clinician_id": str(ASHA), "date_from": "2027-03-29", "date_to": "2027-03-29",
        "consultation_type_id": "video", "limit": "1"})
    assert response.status_code == 200, response.text
    [slot] = response.json()
    assert slot["starts_at"] == "2027-03-29T08:00:00Z"
    assert slot["starts_at_local"] == "2027-03-29T09:00:00+01:00"


def test_every_wrong_filter_is_named(client, sign_up, schedule):
    grace = sign_up()
    response = client.get("/v1/availability", headers=auth(grace), params={
        "clinician_id": "not-a-uuid", "time_of_day": "night", "date_from": "30/03/2027",
        "limit": "500", "patient_timezone": "Mars/Olympus", "consultation_type_id": "massage",
        "clinic_id": "nowhere"})
    problem = assert_problem(response, 422, "invalid-input")
    assert field_names(problem) == {"clinician_id", "time_of_day", "date_from", "limit",
                                    "patient_timezone", "consultation_type_id", "clinic_id"}


def test_a_search_covers_at_most_twelve_weeks(client, sign_up, schedule):
    grace = sign_up()
    too_long = client.get("/v1/availability", headers=auth(grace), params={
        "date_from": "2026-12-01", "date_to": "2027-02-23"})
    assert field_names(assert_problem(too_long, 422)) == {"date_to"}
    backwards = client.get("/v1/availability", headers=auth(grace), params={
        "date_from": "2026-12-01", "date_to": "2026-11-30"})
    assert field_names(assert_problem(backwards, 422)) == {"date_to"}
    twelve_weeks = client.get("/v1/availability", headers=auth(grace), params={
        "date_from": "2026-12-01", "date_to": "2027-02-22"})
    assert twelve_weeks.status_code == 200, twelve_weeks.text


def test_signing_in_is_needed(client, schedule):
    assert_problem(client.get("/v1/availability"), 401)


def test_a_clinicians_profile_lists_their_next_slots(client, sign_up, staff_member, schedule):
    grace = sign_up()
    response = client.get(f"/v1/clinicians/{ASHA}/next-slots", headers=auth(grace),
                          params={"limit": "2", "consultation_type_id": "video"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["display_name"] == "Dr Asha Patel" and body["languages"] == ["en", "hi-IN"]
    assert [s["starts_at"] for s in body["next_slots"]] == ["2026-11-23T09:15:00Z",
                                                            "2026-11-23T09:30:00Z"]
    reception = staff_member("reception")
    assert client.get(f"/v1/clinicians/{BEN}/next-slots",
                      headers=auth(reception)).status_code == 200
    unknown = client.get("/v1/clinicians/00000000-0000-4000-8000-000000000000/next-slots",
                         headers=auth(grace))
    assert_problem(unknown, 404)
