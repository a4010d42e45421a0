"""Step definitions for features/day_list.feature, driven through the HTTP API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import assert_problem, auth, read
from tests.api.visits_support import MONDAY_NINE, book, open_riverside

scenarios("day_list.feature")

SHOWN = {"appointment_id", "starts_at", "starts_at_local", "ends_at", "patient_id",
         "patient_name", "clinician_id", "clinician_name", "consultation_type_name", "mode",
         "status"}


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("Dr Patel sees patients at Riverside")
def riverside(container, staff_member, scene):
    scene.update(open_riverside(container, staff_member))


@given(parsers.parse("{name} has an appointment with Dr Patel on Monday at 09:{minute:d}"))
def books(client, sign_up, scene, name, minute):
    person = sign_up(given_name=name)
    scene["last_write"] = book(client, person, scene["doctor"],
                               MONDAY_NINE + timedelta(minutes=minute))


@when("the receptionist at Riverside opens Monday's day list")
def reception_opens(client, staff_member, scene):
    reception = staff_member("reception", clinics=("riverside",))
    scene["answer"] = read(client, reception, "/v1/staff/day-list?clinic_id=riverside"
                                              "&date=2026-11-30", after=scene["last_write"])


@when("a receptionist at Hillside asks for Riverside's day list for Monday")
def another_clinic_asks(client, staff_member, scene):
    reception = staff_member("reception", clinics=("hillside",))
    scene["answer"] = client.get("/v1/staff/day-list?clinic_id=riverside&date=2026-11-30",
                                 headers=auth(reception))


@then("the day list shows, in order:")
def day_list_shows(scene, datatable):
    assert scene["answer"].status_code == 200, scene["answer"].text
    rows = datatable[1:]
    shown = [[e["starts_at_local"][11:16], e["patient_name"], e["mode"],
              e["status"]] for e in scene["answer"].json()["appointments"]]
    assert shown == rows


@then("the day list holds nothing but times, names, how and statuses")
def nothing_clinical(scene):
    for entry in scene["answer"].json()["appointments"]:
        assert set(entry) == SHOWN
        assert entry["consultation_type_name"] is None  # the kind of visit is for clinicians


@then("they are told they do not have access")
def denied(scene):
    assert_problem(scene["answer"], 403)
