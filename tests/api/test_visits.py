"""Visits through the HTTP API: a patient's upcoming and past appointments (and a proxy's
view of them), staff day lists without clinical content, what an appointment still needs, and
the waitlist from joining to taking an offer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from tests.api.care_support import authorise_proxy
from tests.api.support import assert_problem, auth, field_names, give, read
from tests.api.visits_support import (
    MONDAY_NINE,
    TUESDAY_NINE,
    book,
    open_riverside,
    run_process_managers,
)

DAY_LIST_FIELDS = {"appointment_id", "starts_at", "starts_at_local", "ends_at", "patient_id",
                   "patient_name", "clinician_id", "clinician_name", "consultation_type_name",
                   "mode", "status"}


@pytest.fixture
def riverside(container: Any, staff_member: Any) -> dict[str, Any]:
    return open_riverside(container, staff_member)


def test_a_patient_sees_upcoming_and_past_visits(client, riverside, sign_up):
    grace = sign_up(given_name="Grace")
    book(client, grace, riverside["doctor"], MONDAY_NINE)
    second = book(client, grace, riverside["doctor"], MONDAY_NINE + timedelta(minutes=15))
    cancelled = client.post(f"/v1/appointments/{second.json()['appointment_id']}/cancel",
                            headers=auth(grace), json={"reason_code": "cannot_attend"})
    assert cancelled.status_code == 200, cancelled.text
    visits = read(client, grace, "/v1/me/appointments", after=cancelled).json()
    assert [v["starts_at_local"] for v in visits["upcoming"]] == ["2026-11-30T09:00:00+00:00"]
    assert visits["upcoming"][0]["clinic_name"] == "Riverside Health Centre"
    assert visits["upcoming"][0]["status"] == "booked"
    assert [(v["status"], v["cancelled_by"]) for v in visits["past"]] == [
        ("cancelled", "patient")]


def test_a_proxy_with_the_appointments_scope_sees_the_patients_visits(client, riverside,
                                                                      sign_up):
    grace, daughter, neighbour = sign_up(), sign_up(given_name="Ann"), sign_up(given_name="Ned")
    authorise_proxy(client, grace, daughter, ["appointments"])
    authorise_proxy(client, grace, neighbour, ["prescriptions"])
    booked = book(client, grace, riverside["doctor"])
    path = f"/v1/patients/{grace['account_id']}/appointments"
    assert len(read(client, daughter, path, after=booked).json()["upcoming"]) == 1
    assert_problem(client.get(path, headers=auth(neighbour)), 403)


def test_reception_sees_the_day_list_with_times_names_and_statuses_only(
        client, riverside, sign_up, staff_member):
    grace, bob = sign_up(given_name="Grace"), sign_up(given_name="Bob")
    book(client, grace, riverside["doctor"], MONDAY_NINE + timedelta(minutes=15))
    last = book(client, bob, riverside["doctor"], MONDAY_NINE)
    reception = staff_member("reception")
    day = read(client, reception, "/v1/staff/day-list?clinic_id=riverside&date=2026-11-30",
               after=last)
    assert day.status_code == 200, day.text
    entries = day.json()["appointments"]
    assert [(e["patient_name"], e["starts_at_local"], e["status"]) for e in entries] == [
        ("Bob Lovelace", "2026-11-30T09:00:00+00:00", "booked"),
        ("Grace Lovelace", "2026-11-30T09:15:00+00:00", "booked")]
    assert set(entries[0]) == DAY_LIST_FIELDS
    assert entries[0]["consultation_type_name"] is None  # reception: not the kind of visit
    assert entries[0]["mode"] == "in_person"
    doctors_view = client.get("/v1/staff/day-list?clinic_id=riverside&date=2026-11-30",
                              headers=auth(riverside["doctor"])).json()["appointments"]
    assert doctors_view[0]["consultation_type_name"] == "GP appointment"
    assert client.get("/v1/staff/day-list?clinic_id=riverside&date=2026-12-01",
                      headers=auth(reception)).json()["appointments"] == []


def test_staff_of_another_clinic_and_patients_see_no_day_list(client, riverside, sign_up,
                                                              staff_member):
    elsewhere = staff_member("reception", clinics=("hillside",))
    assert_problem(client.get("/v1/staff/day-list?clinic_id=riverside&date=2026-11-30",
                              headers=auth(elsewhere)), 403)
    assert_problem(client.get("/v1/staff/day-list?clinic_id=riverside&date=2026-11-30",
                              headers=auth(sign_up())), 403)
    doctor = riverside["doctor"]["account_id"]
    assert_problem(client.get(f"/v1/staff/clinicians/{doctor}/day-list?date=2026-11-30",
                              headers=auth(elsewhere)), 403)


def test_a_clinicians_day_list_shows_their_appointments(client, riverside, sign_up):
    booked = book(client, sign_up(given_name="Grace"), riverside["doctor"])
    doctor = riverside["doctor"]
    day = read(client, doctor, f"/v1/staff/clinicians/{doctor['account_id']}/day-list"
                               "?date=2026-11-30", after=booked)
    assert day.status_code == 200, day.text
    assert [e["patient_name"] for e in day.json()["appointments"]] == ["Grace Lovelace"]


def test_a_video_appointment_lists_the_telemedicine_consent_until_it_is_given(
        client, riverside, sign_up, staff_member):
    admin = staff_member("clinic_admin")
    enabled = client.put("/v1/admin/feature-flags/telemedicine/rules", headers=auth(admin),
                         json={"clinic_id": "riverside", "service_type": "video",
                               "percentage": 100, "patient_ids": [], "reason": "pilot"})
    assert enabled.status_code in (200, 201), enabled.text
    grace = sign_up()
    booked = book(client, grace, riverside["doctor"], type_id="video")
    path = f"/v1/appointments/{booked.json()['appointment_id']}/outstanding"
    outstanding = read(client, grace, path, after=booked).json()
    assert [c["id"] for c in outstanding["consents"]] == ["telemedicine"]
    assert outstanding["forms"] == []
    given = give(client, grace)
    assert read(client, grace, path, after=given).json()["consents"] == []
    assert_problem(client.get(path, headers=auth(sign_up(given_name="Bob"))), 404)


def test_joining_the_waitlist_names_every_wrong_field(client, riverside, sign_up):
    refused = client.post("/v1/me/waitlist", headers=auth(sign_up()), json={
        "clinic_id": "nowhere", "consultation_type_id": "gp-in-person",
        "date_from": "2026-11-30", "date_to": "2026-11-01"})
    problem = assert_problem(refused, 422)
    assert {"clinic_id"} <= field_names(problem)


def test_a_patient_takes_an_earlier_appointment_from_the_waitlist(client, clock, riverside,
                                                                  sign_up):
    grace, bob = sign_up(given_name="Grace"), sign_up(given_name="Bob")
    bobs = book(client, bob, riverside["doctor"], TUESDAY_NINE)
    joined = client.post("/v1/me/waitlist", headers=auth(grace) | {"Idempotency-Key": "waitlist-join-1"},
                         json={"clinic_id": "riverside", "consultation_type_id": "gp-in-person",
                               "clinician_id": riverside["doctor"]["account_id"],
                               "date_from": "2026-11-23", "date_to": "2026-11-27",
                               "urgency": "soon"})
    assert joined.status_code == 201, joined.text
    again = client.post("/v1/me/waitlist", headers=auth(grace) | {"Idempotency-Key": "waitlist-join-1"},
                        json={"clinic_id": "riverside", "consultation_type_id": "gp-in-person",
                              "clinician_id": riverside["doctor"]["account_id"],
                              "date_from": "2026-11-23", "date_to": "2026-11-27",
                              "urgency": "soon"})
    assert again.json()["entry_id"] == joined.json()["entry_id"]
    cancelled = client.post(f"/v1/appointments/{bobs.json()['appointment_id']}/cancel",
                            headers=auth(bob), json={"reason_code": "feeling_better"})
    assert cancelled.status_code == 200, cancelled.text
    run_process_managers(client.app.state.container, clock)
    waiting = client.get("/v1/me/waitlist", headers=auth(grace)).json()
    assert [(w["status"], w["offer_starts_at"]) for w in waiting] == [
        ("offered", "2026-11-24T09:00:00Z")]
    entry_id = joined.json()["entry_id"]
    taken = client.post(f"/v1/me/waitlist/offers/{entry_id}/accept", headers=auth(grace))
    assert taken.status_code == 200, taken.text
    assert taken.json()["status"] == "fulfilled"
    assert client.get("/v1/me/waitlist", headers=auth(grace)).json() == []
    container = client.app.state.container
    appointment = container.appointments.appointment(UUID(taken.json()["appointment_id"]))
    assert (appointment.patient_id, appointment.starts_at, appointment.status) == (
        UUID(grace["account_id"]), TUESDAY_NINE, "booked")


def test_someone_elses_waitlist_entry_is_not_found(client, riverside, sign_up):
    grace = sign_up()
    joined = client.post("/v1/me/waitlist", headers=auth(grace), json={
        "clinic_id": "riverside", "consultation_type_id": "gp-in-person",
        "date_from": "2026-11-23", "date_to": "2026-11-27"})
    assert joined.status_code == 201, joined.text
    entry = joined.json()["entry_id"]
    bob = sign_up(given_name="Bob")
    assert_problem(client.delete(f"/v1/me/waitlist/{entry}", headers=auth(bob)), 404)
    left = client.delete(f"/v1/me/waitlist/{entry}", headers=auth(grace))
    assert left.status_code == 200 and left.json()["status"] == "left", left.text
