"""Step definitions for features/waitlist.feature, driven through the HTTP API (the process
managers run by hand on the test's clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.api.support import auth, sign_in
from tests.api.visits_support import TUESDAY_NINE, book, open_riverside, run_process_managers

scenarios("waitlist.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


@given("Dr Patel sees patients at Riverside")
def riverside(container, staff_member, scene):
    scene.update(open_riverside(container, staff_member))


@given("Bob has an appointment with Dr Patel on Tuesday at 09:00")
def bob_books(client, sign_up, scene):
    scene["bob"] = sign_up(given_name="Bob")
    scene["bobs"] = book(client, scene["bob"], scene["doctor"], TUESDAY_NINE).json()


@given(parsers.parse('{name} is on the waitlist for Dr Patel this week as "{urgency}"'))
def joins(client, clock, sign_up, scene, name, urgency):
    person = scene[name.lower()] = sign_up(given_name=name)
    joined = client.post("/v1/me/waitlist", headers=auth(person), json={
        "clinic_id": "riverside", "consultation_type_id": "gp-in-person",
        "clinician_id": scene["doctor"]["account_id"], "date_from": "2026-11-23",
        "date_to": "2026-11-27", "urgency": urgency})
    assert joined.status_code == 201, joined.text
    person["entry_id"] = joined.json()["entry_id"]
    clock.now += timedelta(seconds=1)  # whoever joins first is first in line


@when("Bob cancels his appointment")
def bob_cancels(client, clock, scene):
    cancelled = client.post(f"/v1/appointments/{scene['bobs']['appointment_id']}/cancel",
                            headers=auth(scene["bob"]), json={"reason_code": "feeling_better"})
    assert cancelled.status_code == 200, cancelled.text
    run_process_managers(client.app.state.container, clock)


def entries(client: Any, person: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/v1/me/waitlist", headers=auth(person))
    assert response.status_code == 200, response.text
    return list(response.json())


@then(parsers.parse("{name} is offered Tuesday at 09:00 and has 30 minutes to take it"))
def offered(client, clock, scene, name):
    [entry] = entries(client, scene[name.lower()])
    assert entry["status"] == "offered"
    assert entry["offer_starts_at"] == "2026-11-24T09:00:00Z"
    expires = entry["offer_expires_at"].replace("Z", "+00:00")
    assert expires == (clock.now + timedelta(minutes=30)).isoformat()  # offered just now


@then("Grace is told that an earlier appointment is available, without any medical detail")
def grace_is_told(container, scene):
    import psycopg

    from commands.outbox import TEMPLATES

    with psycopg.connect(container.database.url) as conn:
        kind, payload = conn.execute(
            "SELECT kind, payload FROM carebridge.outbox WHERE account_id = %s"
            " AND kind = 'waitlist_offer'", (scene["grace"]["account_id"],)).fetchone()
    text = TEMPLATES[kind].body.format(**payload)
    assert "An earlier appointment is available" in text and "30 minutes" in text
    for medical in ("GP", "Patel", "general practice"):
        assert medical not in text


@when("Grace takes the offer")
def grace_takes_it(client, scene):
    grace = scene["grace"]
    taken = client.post(f"/v1/me/waitlist/offers/{grace['entry_id']}/accept",
                        headers=auth(grace))
    assert taken.status_code == 200, taken.text
    scene["taken"] = taken.json()


@then("Grace has an appointment with Dr Patel on Tuesday at 09:00")
def grace_has_it(container, scene):
    appointment = container.appointments.appointment(UUID(scene["taken"]["appointment_id"]))
    assert appointment.patient_id == UUID(scene["grace"]["account_id"])
    assert appointment.clinician_id == UUID(scene["doctor"]["account_id"])
    assert (appointment.starts_at, appointment.status) == (TUESDAY_NINE, "booked")


@then("Grace is no longer on the waitlist")
def grace_left(client, scene):
    assert entries(client, scene["grace"]) == []


@then("Ada has no offer")
def ada_waits(client, scene):
    assert [e["status"] for e in entries(client, scene["ada"])] == ["waiting"]


@when("30 minutes pass without Grace answering")
def time_passes(client, clock, scene):
    clock.now += timedelta(minutes=30)
    run_process_managers(client.app.state.container, clock)
    for name in ("grace", "ada"):  # sessions end when idle: sign in again
        scene[name] |= sign_in(client, scene[name]["email"])


@then("Grace is still waiting on the list without an offer")
def grace_still_waits(client, scene):
    assert [(e["status"], e["offer_starts_at"]) for e in entries(client, scene["grace"])] == [
        ("waiting", None)]
