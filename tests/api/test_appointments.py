"""Booking through the HTTP API: hold, confirm, the confirmation, taken slots with alternatives,
policies for moving and cancelling, staff on a patient's behalf, arrivals and no-shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from tests.api.care_support import authorise_proxy, in_care_team
from tests.api.support import assert_problem, auth, field_names
from tests.domain.test_appointments import clinic_schedule

MONDAY_NINE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # 09:00 in London, a week ahead


@pytest.fixture
def clinic(container: Any, staff_member: Any) -> dict[str, Any]:
    """Riverside with Dr Patel (GP) and Nurse Okafor (vaccinations) as real staff accounts."""
    doctor, nurse = staff_member("doctor"), staff_member("nurse")
    container.appointments.schedule = clinic_schedule(UUID(doctor["account_id"]),
                                                      UUID(nurse["account_id"]))
    return {"doctor": doctor, "nurse": nurse}


def hold(client: Any, person: dict[str, str], clinician: dict[str, str],
         starts_at: datetime = MONDAY_NINE, type_id: str = "gp-in-person",
         key: str | None = None, **extra: Any) -> Any:
    headers = auth(person) | ({"Idempotency-Key": key} if key else {})
    return client.post("/v1/appointments/holds", headers=headers, json={
        "clinician_id": clinician["account_id"], "consultation_type_id": type_id,
        "starts_at": starts_at.isoformat(), **extra})


def book(client: Any, person: dict[str, str], clinician: dict[str, str],
         starts_at: datetime = MONDAY_NINE, type_id: str = "gp-in-person") -> dict[str, Any]:
    held = hold(client, person, clinician, starts_at, type_id)
    assert held.status_code == 201, held.text
    confirmed = client.post(f"/v1/appointments/{held.json()['appointment_id']}/confirm",
                            headers=auth(person))
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json()


def slot_row(container: Any, appointment_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(container.database.url) as conn:
        return conn.execute("SELECT status, starts_at, room_id FROM carebridge.slot_bookings"
                            " WHERE appointment_id = %s", (appointment_id,)).fetchone()


def test_a_patient_holds_then_confirms_and_sees_the_confirmation(client, clinic, sign_up,
                                                                  container):
    grace = sign_up(given_name="Grace")
    held = hold(client, grace, clinic["doctor"])
    assert held.status_code == 201, held.text
    body = held.json()
    assert body["status"] == "held"
    assert body["hold_expires_at"] == "2026-11-23T09:05:00Z"
    assert body["room_id"] == "riverside-room-1"
    assert slot_row(container, body["appointment_id"])[0] == "held"
    confirmed = client.post(f"/v1/appointments/{body['appointment_id']}/confirm",
                            headers=auth(grace))
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "booked"
    assert slot_row(container, body["appointment_id"])[0] == "booked"
    view = client.get(f"/v1/appointments/{body['appointment_id']}", headers=auth(grace)).json()
    assert view["clinic"]["name"] == "Riverside Health Centre"
    assert view["clinician_name"] == "Dr Asha Patel"
    assert view["starts_at_local"] == "2026-11-30T09:00:00+00:00"
    assert view["preparation"] == "Bring a list of your current medicines."
    assert "24 hours" in view["cancellation_policy"]
    assert view["free_cancellation_until"] == "2026-11-29T09:00:00Z"
    # The booked clinician joined Grace's care team, so the doctor may now read it.
    seen = client.get(f"/v1/appointments/{body['appointment_id']}", headers=auth(clinic["doctor"]))
    assert seen.status_code == 200, seen.text


def test_a_taken_slot_is_refused_with_the_nearest_alternatives(client, clinic, sign_up):
    book(client, sign_up(), clinic["doctor"])
    refused = hold(client, sign_up(), clinic["doctor"])
    problem = assert_problem(refused, 409, "slot-taken")
    starts = [a["starts_at"] for a in problem["extensions"]["alternatives"]]
    assert starts[:2] == ["2026-11-30T09:15:00+00:00", "2026-11-30T09:30:00+00:00"]
    assert len(starts) == 5


def test_an_unconfirmed_hold_lapses_and_frees_the_slot(client, clinic, clock, sign_up,
                                                        container):
    grace, bob = sign_up(), sign_up(given_name="Bob")
    held = hold(client, grace, clinic["doctor"]).json()
    clock.now += timedelta(minutes=5)
    late = client.post(f"/v1/appointments/{held['appointment_id']}/confirm", headers=auth(grace))
    assert_problem(late, 409, "hold-not-live")
    assert slot_row(container, held["appointment_id"])[0] == "released"
    assert hold(client, bob, clinic["doctor"]).status_code == 201


def test_housekeeping_records_lapsed_holds(client, clinic, clock, sign_up, container):
    held = hold(client, sign_up(), clinic["doctor"]).json()
    assert container.appointments.lapse_expired_holds(clock.now) == 0
    clock.now += timedelta(minutes=5)
    assert container.appointments.lapse_expired_holds(clock.now) == 1
    assert slot_row(container, held["appointment_id"])[0] == "released"
    assert container.appointments.appointment(UUID(held["appointment_id"])).status == "lapsed"


def test_a_retried_hold_with_the_same_key_holds_once(client, clinic, sign_up):
    grace = sign_up()
    first = hold(client, grace, clinic["doctor"], key="grace-hold-0001")
    again = hold(client, grace, clinic["doctor"], key="grace-hold-0001")
    assert first.status_code == 201 and again.status_code == 201, again.text
    assert first.json()["appointment_id"] == again.json()["appointment_id"]


def test_a_patient_holds_a_few_slots_at_most(client, clinic, sign_up):
    grace = sign_up()
    for n in range(3):
        assert hold(client, grace, clinic["doctor"],
                    MONDAY_NINE + timedelta(minutes=15 * n)).status_code == 201
    fourth = hold(client, grace, clinic["doctor"], MONDAY_NINE + timedelta(minutes=45))
    assert "Confirm the one you want" in assert_problem(fourth, 409, "too-many-holds")["detail"]


def test_every_wrong_field_is_named(client, clinic, sign_up):
    response = client.post("/v1/appointments/holds", headers=auth(sign_up()), json={
        "clinician_id": clinic["doctor"]["account_id"], "consultation_type_id": "surgery",
        "starts_at": "2026-11-23T08:00:00Z"})
    problem = assert_problem(response, 422)
    assert field_names(problem) == {"consultation_type_id", "starts_at"}
    off_grid = hold(client, sign_up(), clinic["doctor"], MONDAY_NINE + timedelta(minutes=7))
    assert field_names(assert_problem(off_grid, 422)) == {"starts_at"}
    naive = client.post("/v1/appointments/holds", headers=auth(sign_up()), json={
        "clinician_id": clinic["doctor"]["account_id"], "consultation_type_id": "gp-in-person",
        "starts_at": "2026-11-30T09:00:00"})
    assert "starts_at" in field_names(assert_problem(naive, 400))  # not a time without a zone


def test_a_late_cancellation_is_allowed_and_recorded_as_late(client, clinic, clock, sign_up):
    grace = sign_up()
    booked = book(client, grace, clinic["doctor"])
    clock.now = MONDAY_NINE - timedelta(hours=3)
    grace = grace | _fresh(client, grace)
    cancelled = client.post(f"/v1/appointments/{booked['appointment_id']}/cancel",
                            headers=auth(grace), json={"reason_code": "cannot_attend"})
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["late"] is True and body["status"] == "cancelled"
    assert "ended at 29 November 2026 at 09:00 GMT" in body["message"]


def test_rescheduling_moves_the_booking_and_frees_the_old_time(client, clinic, sign_up,
                                                               container):
    grace, bob = sign_up(), sign_up(given_name="Bob")
    booked = book(client, grace, clinic["doctor"])
    moved = client.post(f"/v1/appointments/{booked['appointment_id']}/reschedule",
                        headers=auth(grace),
                        json={"starts_at": (MONDAY_NINE + timedelta(days=1)).isoformat()})
    assert moved.status_code == 200, moved.text
    assert moved.json()["reschedule_count"] == 1
    assert slot_row(container, booked["appointment_id"])[1] == MONDAY_NINE + timedelta(days=1)
    assert hold(client, bob, clinic["doctor"]).status_code == 201


def test_rescheduling_with_less_notice_than_the_policy_is_refused_with_guidance(
        client, clinic, clock, sign_up):
    grace = sign_up()
    booked = book(client, grace, clinic["doctor"])
    clock.now = MONDAY_NINE - timedelta(hours=20)
    grace = grace | _fresh(client, grace)
    refused = client.post(f"/v1/appointments/{booked['appointment_id']}/reschedule",
                          headers=auth(grace),
                          json={"starts_at": (MONDAY_NINE + timedelta(days=1)).isoformat()})
    problem = assert_problem(refused, 409, "reschedule-refused")
    assert "call the clinic" in problem["detail"]


def test_reception_books_for_a_patient_known_at_its_clinic(client, clinic, clock, sign_up,
                                                            staff_member, container):
    grace, reception = sign_up(), staff_member("reception")
    in_care_team(container, clock, grace["account_id"], clinic["doctor"]["account_id"])
    booked = client.post("/v1/staff/appointments", headers=auth(reception), json={
        "patient_id": grace["account_id"], "clinician_id": clinic["doctor"]["account_id"],
        "consultation_type_id": "gp-in-person", "starts_at": MONDAY_NINE.isoformat()})
    assert booked.status_code == 201, booked.text
    assert booked.json()["status"] == "booked"
    view = client.get(f"/v1/appointments/{booked.json()['appointment_id']}",
                      headers=auth(reception)).json()
    assert view["consultation_type"] is None and view["preparation"] is None  # not clinical
    stranger = sign_up()
    denied = client.post("/v1/staff/appointments", headers=auth(reception), json={
        "patient_id": stranger["account_id"], "clinician_id": clinic["doctor"]["account_id"],
        "consultation_type_id": "gp-in-person",
        "starts_at": (MONDAY_NINE + timedelta(minutes=15)).isoformat()})
    assert_problem(denied, 403)


def test_a_proxy_with_the_appointments_scope_books_for_the_patient(client, clinic, sign_up):
    grace, daughter = sign_up(), sign_up(given_name="Ann")
    authorise_proxy(client, grace, daughter, ["appointments"])
    held = hold(client, daughter, clinic["doctor"], patient_id=grace["account_id"])
    assert held.status_code == 201, held.text
    assert held.json()["patient_id"] == grace["account_id"]


def test_the_clinic_cancels_and_the_patient_is_told_without_medical_detail(
        client, clinic, clock, sign_up, staff_member, container):
    grace = sign_up()
    booked = book(client, grace, clinic["doctor"])
    reception = staff_member("reception")
    cancelled = client.post(f"/v1/staff/appointments/{booked['appointment_id']}/cancel",
                            headers=auth(reception),
                            json={"reason_code": "clinician_unavailable",
                                  "note_for_patient": "Sorry, Dr Patel is unwell."})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["late"] is False
    with psycopg.connect(container.database.url) as conn:
        kind, payload = conn.execute(
            "SELECT kind, payload FROM carebridge.outbox WHERE account_id = %s"
            " AND kind = 'appointment_cancelled_by_clinic'", (grace["account_id"],)).fetchone()
    from commands.outbox import TEMPLATES

    text = TEMPLATES[kind].body.format(**payload)
    assert "30 November 2026 at 09:00" in text and "Riverside Health Centre" in text
    for medical in ("GP", "general practice", "medicines", "Patel", "unwell"):
        assert medical not in text


def test_the_clinic_moves_an_appointment_with_a_reason_and_the_patient_is_told(
        client, clinic, clock, sign_up, staff_member, container):
    grace = sign_up()
    booked = book(client, grace, clinic["doctor"])
    reception = staff_member("reception")
    path = f"/v1/staff/appointments/{booked['appointment_id']}/reschedule"
    later = MONDAY_NINE + timedelta(minutes=30)

    by_patient = client.post(path, headers=auth(grace),
                             json={"starts_at": later.isoformat(), "reason": "x"})
    moved = client.post(path, headers=auth(reception),
                        json={"starts_at": later.isoformat(),
                              "reason": "Dr Patel is on a course that morning"})

    assert_problem(by_patient, 403)
    assert moved.status_code == 200, moved.text
    event = list(container.appointments.events.get(UUID(booked["appointment_id"])))[-1]
    assert (type(event).__name__, event.reason) == ("Rescheduled",
                                                    "Dr Patel is on a course that morning")
    with psycopg.connect(container.database.url) as conn:
        kind, payload = conn.execute(
            "SELECT kind, payload FROM carebridge.outbox WHERE account_id = %s"
            " AND kind = 'appointment_moved_by_clinic'", (grace["account_id"],)).fetchone()
    from commands.outbox import TEMPLATES

    text = TEMPLATES[kind].body.format(**payload)
    assert "Riverside Health Centre" in text and "09:30" in text
    assert "course" not in text and "Patel" not in text
    view = client.get(f"/v1/appointments/{booked['appointment_id']}", headers=auth(grace))
    assert "course" not in view.text


def test_reception_records_an_arrival_and_a_no_show(client, clinic, clock, sign_up,
                                                    staff_member):
    grace, bob = sign_up(), sign_up(given_name="Bob")
    first = book(client, grace, clinic["doctor"])
    second = book(client, bob, clinic["doctor"], MONDAY_NINE + timedelta(minutes=15))
    reception = staff_member("reception")
    too_early = client.post(f"/v1/staff/appointments/{first['appointment_id']}/arrived",
                            headers=auth(reception))
    assert_problem(too_early, 409, "not-yet")
    clock.now = MONDAY_NINE - timedelta(minutes=10)
    reception = reception | _fresh(client, reception, staff=True)
    arrived = client.post(f"/v1/staff/appointments/{first['appointment_id']}/arrived",
                          headers=auth(reception))
    assert arrived.status_code == 200 and arrived.json()["status"] == "arrived", arrived.text
    clock.now = MONDAY_NINE + timedelta(minutes=30)
    reception = reception | _fresh(client, reception, staff=True)
    no_show = client.post(f"/v1/staff/appointments/{second['appointment_id']}/no-show",
                          headers=auth(reception))
    assert no_show.status_code == 200 and no_show.json()["status"] == "no_show", no_show.text


def test_a_patient_cannot_see_or_change_someone_elses_appointment(client, clinic, sign_up):
    booked = book(client, sign_up(), clinic["doctor"])
    bob = sign_up(given_name="Bob")
    assert_problem(client.get(f"/v1/appointments/{booked['appointment_id']}", headers=auth(bob)),
                   403)
    assert_problem(client.post(f"/v1/appointments/{booked['appointment_id']}/cancel",
                               headers=auth(bob), json={"reason_code": "other"}), 403)


def _fresh(client: Any, person: dict[str, str], staff: bool = False) -> dict[str, str]:
    """A new session after the test moved the clock (sessions end when idle)."""
    from tests.api.care_support import STAFF_PASSWORD
    from tests.api.support import PASSWORD, sign_in

    container = client.app.state.container
    account = container.identity.find_account(UUID(person["account_id"]))
    return sign_in(client, account.email, STAFF_PASSWORD if staff else PASSWORD)


def test_a_video_booking_needs_video_consultations_switched_on_for_the_patient(
        client, clinic, sign_up, staff_member):
    grace = sign_up()
    refused = hold(client, grace, clinic["doctor"], type_id="video")
    assert_problem(refused, 403, "feature-not-available")
    switched_on = client.put("/v1/admin/feature-flags/telemedicine/rules",
                             headers=auth(staff_member("clinic_admin")),
                             json={"clinic_id": "riverside", "service_type": "video",
                                   "percentage": 100, "patient_ids": [],
                                   "reason": "video pilot"})
    assert switched_on.status_code in (200, 201), switched_on.text
    held = hold(client, grace, clinic["doctor"], type_id="video")
    assert held.status_code == 201, held.text
    assert held.json()["mode"] == "video" and held.json()["room_id"] is None
