"""Step definitions for features/booking.feature, driven through the HTTP API."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.outbox import TEMPLATES
from domain.schedule_types import local_to_utc
from tests.api.care_support import STAFF_PASSWORD, in_care_team
from tests.api.support import PASSWORD, assert_problem, auth, sign_in
from tests.domain.test_appointments import clinic_schedule

scenarios("booking.feature")

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def moment(day: str, wall: str) -> datetime:
    """'Monday 30 November 2026' at '09:00' in London, as UTC."""
    return local_to_utc(datetime.strptime(day, "%A %d %B %Y").date(),
                        time.fromisoformat(wall), LONDON)


def signed_in(client: Any, container: Any, person: dict[str, str]) -> dict[str, str]:
    """A fresh session: the scenario may have moved the clock past the last one's idle end."""
    account = container.identity.find_account(UUID(person["account_id"]))
    password = PASSWORD if account.role == "patient" else STAFF_PASSWORD
    return person | sign_in(client, account.email, password)


def appointment_of_grace(client: Any, container: Any, scene: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/v1/appointments/{scene['appointment_id']}",
                          headers=auth(signed_in(client, container, scene["grace"])))
    assert response.status_code == 200, response.text
    return response.json()


@given("Riverside Health Centre, where Dr Asha Patel sees GP patients on weekday mornings")
def riverside(container, staff_member, scene):
    scene["doctor"] = staff_member("doctor")
    scene["nurse"] = staff_member("nurse")
    container.appointments.schedule = clinic_schedule(UUID(scene["doctor"]["account_id"]),
                                                      UUID(scene["nurse"]["account_id"]))


@given("cancelling or moving needs 24 hours' notice there")
def policy(container):
    clinic = container.appointments.schedule.clinic("riverside")
    assert clinic.policy.free_cancellation_hours == clinic.policy.reschedule_notice_hours == 24


@given("Grace is registered with the clinic")
def grace_registers(sign_up, scene):
    scene["grace"] = sign_up(given_name="Grace", family_name="Hopper")


@given(parsers.parse('it is "{day}" at "{wall}"'))
def it_is(clock, day, wall):
    clock.now = moment(day, wall)


@given("Grace is known at Riverside Health Centre")
def grace_is_known(container, clock, scene):
    in_care_team(container, clock, scene["grace"]["account_id"], scene["nurse"]["account_id"])


@when(parsers.parse('Grace holds "{day}" at "{wall}" with Dr Patel'))
def grace_holds(client, container, scene, day, wall):
    response = client.post("/v1/appointments/holds",
                           headers=auth(signed_in(client, container, scene["grace"])),
                           json={"clinician_id": scene["doctor"]["account_id"],
                                 "consultation_type_id": "gp-in-person",
                                 "starts_at": moment(day, wall).isoformat()})
    assert response.status_code == 201, response.text
    scene["appointment_id"] = response.json()["appointment_id"]


@when("Grace confirms the booking")
def grace_confirms(client, container, scene):
    response = client.post(f"/v1/appointments/{scene['appointment_id']}/confirm",
                           headers=auth(signed_in(client, container, scene["grace"])))
    assert response.status_code == 200, response.text


@given(parsers.parse('Grace has booked "{day}" at "{wall}" with Dr Patel'))
def grace_has_booked(client, container, scene, day, wall):
    grace_holds(client, container, scene, day, wall)
    grace_confirms(client, container, scene)


@when(parsers.parse('Grace moves it to "{day}" at "{wall}"'))
def grace_moves(client, container, scene, day, wall):
    scene["answer"] = client.post(
        f"/v1/appointments/{scene['appointment_id']}/reschedule",
        headers=auth(signed_in(client, container, scene["grace"])),
        json={"starts_at": moment(day, wall).isoformat()})


@when(parsers.parse('Grace cancels because she "{reason}"'))
def grace_cancels(client, container, scene, reason):
    scene["answer"] = client.post(f"/v1/appointments/{scene['appointment_id']}/cancel",
                                  headers=auth(signed_in(client, container, scene["grace"])),
                                  json={"reason_code": reason})
    assert scene["answer"].status_code == 200, scene["answer"].text


@when(parsers.parse('the receptionist books "{day}" at "{wall}" with Dr Patel for Grace'))
def reception_books(client, staff_member, scene, day, wall):
    scene["reception"] = staff_member("reception")
    response = client.post("/v1/staff/appointments", headers=auth(scene["reception"]), json={
        "patient_id": scene["grace"]["account_id"],
        "clinician_id": scene["doctor"]["account_id"], "consultation_type_id": "gp-in-person",
        "starts_at": moment(day, wall).isoformat()})
    assert response.status_code == 201, response.text
    scene["appointment_id"] = response.json()["appointment_id"]


@when(parsers.parse('the receptionist cancels it because "{reason}"'))
def reception_cancels(client, staff_member, scene, reason):
    response = client.post(f"/v1/staff/appointments/{scene['appointment_id']}/cancel",
                           headers=auth(staff_member("reception")),
                           json={"reason_code": reason,
                                 "note_for_patient": "Dr Patel is unwell today."})
    assert response.status_code == 200, response.text


@when(parsers.parse('the receptionist moves it to "{day}" at "{wall}" because "{reason}"'))
def reception_moves(client, staff_member, scene, day, wall, reason):
    response = client.post(f"/v1/staff/appointments/{scene['appointment_id']}/reschedule",
                           headers=auth(staff_member("reception")),
                           json={"starts_at": moment(day, wall).isoformat(), "reason": reason})
    assert response.status_code == 200, response.text


@then(parsers.parse('Grace\'s appointment is "{status}"'))
def appointment_status(client, container, scene, status):
    assert appointment_of_grace(client, container, scene)["status"] == status


@then(parsers.parse('Grace\'s appointment is "{status}" at "{wall}" London time on "{day}"'))
def appointment_at(client, container, scene, status, wall, day):
    view = appointment_of_grace(client, container, scene)
    assert view["status"] == status
    local = datetime.fromisoformat(view["starts_at_local"])
    assert (local.date().isoformat(), local.strftime("%H:%M")) == (day, wall)


@then(parsers.parse('it starts at "{wall}" UTC'))
def starts_utc(client, container, scene, wall):
    view = appointment_of_grace(client, container, scene)
    assert datetime.fromisoformat(view["starts_at"]).strftime("%H:%M") == wall


@then(parsers.parse('her confirmation shows "{clinic}" at "{wall}" London time'))
def confirmation_shows(client, container, scene, clinic, wall):
    view = appointment_of_grace(client, container, scene)
    assert view["clinic"]["name"] == clinic
    assert datetime.fromisoformat(view["starts_at_local"]).strftime("%H:%M") == wall


@then(parsers.parse('her confirmation tells her to "{preparation}"'))
def confirmation_prepares(client, container, scene, preparation):
    assert appointment_of_grace(client, container, scene)["preparation"] == preparation


@then(parsers.parse('the time "{day}" at "{wall}" is free again'))
def time_is_free(client, sign_up, scene, day, wall):
    response = client.post("/v1/appointments/holds", headers=auth(sign_up(given_name="Bob")),
                           json={"clinician_id": scene["doctor"]["account_id"],
                                 "consultation_type_id": "gp-in-person",
                                 "starts_at": moment(day, wall).isoformat()})
    assert response.status_code == 201, response.text


@then("Grace is told she can move it online only up to 24 hours before")
def told_notice(scene):
    problem = assert_problem(scene["answer"], 409, "reschedule-refused")
    assert "up to 24 hours before" in problem["detail"]


@then("the cancellation is recorded as late")
def recorded_late(scene):
    assert scene["answer"].json()["late"] is True


@then(parsers.parse('Grace is told the free cancellation period ended at "{when}"'))
def told_late(scene, when):
    assert f"ended at {when}" in scene["answer"].json()["message"]


@then("the receptionist does not see what the appointment is for")
def reception_sees_no_detail(client, scene):
    view = client.get(f"/v1/appointments/{scene['appointment_id']}",
                      headers=auth(scene["reception"])).json()
    assert view["consultation_type"] is None and view["preparation"] is None


def _message_to_grace(container: Any, scene: dict[str, Any]) -> str:
    with psycopg.connect(container.database.url) as conn:
        kind, payload = conn.execute(
            "SELECT kind, payload FROM carebridge.outbox WHERE account_id = %s"
            " AND kind IN ('appointment_cancelled_by_clinic', 'appointment_moved_by_clinic')",
            (scene["grace"]["account_id"],)).fetchone()
    template = TEMPLATES[kind]
    return template.subject + template.body.format(**payload) + (template.sms or "").format(
        **payload)


@then(parsers.parse('Grace is sent a message naming "{when}" and "{clinic}"'))
def message_names(container, scene, when, clinic):
    text = _message_to_grace(container, scene)
    assert when in text and clinic in text


@then(parsers.parse('the message says nothing about "{a}", "{b}", "{c}" or "{d}"'))
def message_is_not_medical(container, scene, a, b, c, d):
    text = _message_to_grace(container, scene)
    for word in (a, b, c, d):
        assert word not in text
