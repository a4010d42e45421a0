"""Step definitions for features/availability.feature, driven through the HTTP API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.availability import Availability, PostgresBookings
from tests.api.support import auth
from tests.domain.test_availability import ASHA, BEN, kind, network

scenarios("availability.feature")

NAMES = {"Dr Asha Patel": ASHA, "Dr Ben Jones": BEN}


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("the Riverside Health Centre in London, where Dr Asha Patel (English and Hindi) sees "
       "patients on weekday mornings and Dr Ben Jones (English) from 11:00 to 19:00")
def riverside(container, scene):
    scene["schedule"] = network()
    container.availability = Availability(scene["schedule"], PostgresBookings(
        container.identity.factory.datastore))


@given("Grace is registered with the clinic")
def grace_registers(sign_up, scene):
    scene["grace"] = sign_up(given_name="Grace", family_name="Hopper")


@given("Dr Asha Patel's 09:15 appointment today is already booked")
def asha_is_booked(database, scene):
    gp = kind(scene["schedule"], "gp-in-person")
    start = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
            " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status, updated_at)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), %s, 'riverside', 'riverside-room-1',"
            " 'gp-in-person', %s, %s, 'booked', %s)", (ASHA, start, start + gp.occupies, start))


def look(client: Any, scene: dict[str, Any], **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/availability", headers=auth(scene["grace"]), params=params)
    assert response.status_code == 200, response.text
    return response.json()


@when(parsers.parse("Grace looks for the next {count:d} morning GP appointments with a doctor "
                    "who speaks Hindi"))
def morning_hindi(client, scene, count):
    scene["slots"] = look(client, scene, time_of_day="morning", language="hi",
                          specialty="general practice", consultation_type_id="gp-in-person",
                          limit=str(count))


@when(parsers.parse('Grace, who is in "{zone}", looks for the next appointment with {name}'))
def from_abroad(client, scene, zone, name):
    scene["slots"] = look(client, scene, clinician_id=str(NAMES[name]), patient_timezone=zone,
                          limit="1")


@when(parsers.parse("Grace looks for Dr Asha Patel's first video appointment on \"{first}\" and "
                    "on \"{second}\""))
def either_side_of_the_change(client, scene, first, second):
    scene["slots"] = [
        look(client, scene, clinician_id=str(ASHA), consultation_type_id="video",
             date_from=day, date_to=day, limit="1")[0] for day in (first, second)]


@then(parsers.parse("Grace is offered, all with {name}:"))
def offered(scene, name, datatable):
    expected = [row[0] for row in datatable[1:]]
    assert [s["starts_at_local"] for s in scene["slots"]] == expected
    assert {s["clinician_name"] for s in scene["slots"]} == {name}


@then(parsers.parse('the first appointment offered is at "{local}" clinic time'))
def first_in_clinic_time(scene, local):
    assert scene["slots"][0]["starts_at_local"] == local


@then(parsers.parse('it is at "{own}" in Grace\'s own time'))
def first_in_her_time(scene, own):
    assert scene["slots"][0]["starts_at_patient"] == own


@then("both start at 09:00 London time")
def both_at_nine(scene):
    assert [s["starts_at_local"][11:16] for s in scene["slots"]] == ["09:00", "09:00"]


@then(parsers.parse('the first is at "{first}" and the second at "{second}"'))
def in_utc(scene, first, second):
    assert [s["starts_at"] for s in scene["slots"]] == [first, second]


@given(parsers.parse('Grace has a GP appointment with Dr Asha Patel on "{starts}"'))
def grace_has_an_appointment(database, scene, starts):
    start = datetime.fromisoformat(starts)
    gp = kind(scene["schedule"], "gp-in-person")
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
            " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status, updated_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'riverside', 'riverside-room-1',"
            " 'gp-in-person', %s, %s, 'booked', %s)",
            (scene["grace"]["account_id"], ASHA, start, start + gp.occupies, start))


@when("Grace turns on her private calendar feed")
def feed_on(client, scene):
    response = client.post("/v1/me/calendar-feed", headers=auth(scene["grace"]))
    assert response.status_code == 201, response.text
    scene["feed_url"] = response.json()["url"]
    scene["feed"] = client.get(scene["feed_url"])  # a calendar app sends no sign-in
    assert scene["feed"].status_code == 200, scene["feed"].text


@then(parsers.parse('her calendar app shows "{title}" from "{start}"'))
def calendar_shows(scene, title, start):
    lines = scene["feed"].text.replace("\r\n ", "").split("\r\n")
    assert f"SUMMARY:{title}" in lines and f"DTSTART:{start}" in lines


@then("nothing in the feed names a specialty or the type of appointment")
def nothing_medical(scene):
    text = scene["feed"].text.lower()
    assert "general practice" not in text and "gp appointment" not in text


@when("Grace turns her calendar feed off")
def feed_off(client, scene):
    assert client.delete("/v1/me/calendar-feed", headers=auth(scene["grace"])).status_code == 204


@then("her calendar app is told there is no feed at that address")
def feed_gone(client, scene):
    assert client.get(scene["feed_url"]).status_code == 404
