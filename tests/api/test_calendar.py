"""Calendar files: one appointment as .ics, and the patient's private, revocable feed."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from commands.availability import Availability, PostgresBookings
from commands.calendar import CalendarEntry, escape_text, fold, render
from tests.api.support import assert_problem, auth
from tests.domain.test_availability import ASHA, network

MEDICAL_WORDS = ("general practice", "gp", "video consultation", "flu", "vaccination",
                 "reason", "nursing")


@pytest.fixture
def schedule(container: Any) -> Any:
    built = network()
    container.availability = Availability(built, PostgresBookings(
        container.identity.factory.datastore))
    return built


@pytest.fixture
def booked(database: Any, schedule: Any) -> Any:
    """Puts a booked appointment in carebridge.slot_bookings as the appointments context does."""

    def book(patient_id: str, type_id: str = "gp-in-person",
             starts_at: datetime = datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
             status: str = "booked") -> UUID:
        kind = schedule.consultation_type(type_id)
        appointment_id = uuid.uuid4()
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
                " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status,"
                " updated_at) VALUES (%s, %s, %s, 'riverside', %s, %s, %s, %s, %s, %s)",
                (appointment_id, UUID(patient_id), ASHA,
                 "riverside-room-1" if kind.room_kind else None, type_id, starts_at,
                 starts_at + kind.occupies, status, starts_at))
        return appointment_id

    return book


def unfolded(text: str) -> list[str]:
    return text.replace("\r\n ", "").split("\r\n")


def assert_valid_calendar(text: str) -> None:
    assert text.startswith("BEGIN:VCALENDAR\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert "\n" not in text.replace("\r\n", "")  # every line ends with CRLF
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    lines = unfolded(text)
    assert "VERSION:2.0" in lines and any(line.startswith("PRODID:") for line in lines)
    assert lines.count("BEGIN:VEVENT") == lines.count("END:VEVENT")


def assert_no_medical_detail(text: str) -> None:
    lowered = text.lower()
    for word in MEDICAL_WORDS:
        assert word not in lowered.replace("carebridge", ""), word


def test_an_appointment_file_names_the_clinic_and_nothing_medical(client, sign_up, booked):
    grace = sign_up(given_name="Grace")
    appointment_id = booked(grace["account_id"])
    response = client.get(f"/v1/appointments/{appointment_id}/calendar.ics", headers=auth(grace))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/calendar")
    text = response.text
    assert_valid_calendar(text)
    assert_no_medical_detail(text)
    lines = unfolded(text)
    assert f"UID:{appointment_id}@carebridge" in lines
    assert "SUMMARY:Appointment at Riverside Health Centre" in lines
    assert "LOCATION:1 River Lane\\, Riverton\\, RT1 2AB" in lines
    assert "DTSTART:20261130T100000Z" in lines and "DTEND:20261130T101500Z" in lines
    assert "STATUS:CONFIRMED" in lines


def test_a_video_appointment_has_a_neutral_title_and_no_address(client, sign_up, booked):
    grace = sign_up(given_name="Grace")
    appointment_id = booked(grace["account_id"], type_id="video")
    text = client.get(f"/v1/appointments/{appointment_id}/calendar.ics",
                      headers=auth(grace)).text
    lines = unfolded(text)
    assert "SUMMARY:Video appointment (CareBridge)" in lines
    assert not any(line.startswith("LOCATION:") for line in lines)


def test_another_patients_appointment_file_is_refused(client, sign_up, booked, staff_member):
    grace, bob = sign_up(given_name="Grace"), sign_up(given_name="Bob")
    appointment_id = booked(grace["account_id"])
    assert_problem(client.get(f"/v1/appointments/{appointment_id}/calendar.ics",
                              headers=auth(bob)), 403)
    assert_problem(client.get(f"/v1/appointments/{appointment_id}/calendar.ics",
                              headers=auth(staff_member("support"))), 403)
    assert_problem(client.get(f"/v1/appointments/{uuid.uuid4()}/calendar.ics",
                              headers=auth(grace)), 404)


def test_the_private_feed_lists_appointments_until_it_is_replaced_or_turned_off(
        client, sign_up, booked, clock):
    grace, bob = sign_up(given_name="Grace"), sign_up(given_name="Bob")
    upcoming = booked(grace["account_id"])
    recent = booked(grace["account_id"], starts_at=clock.now - timedelta(days=10))
    long_ago = booked(grace["account_id"], starts_at=clock.now - timedelta(days=40))
    not_hers = booked(bob["account_id"])
    created = client.post("/v1/me/calendar-feed", headers=auth(grace) | {
        "Idempotency-Key": "feed-key-0001"})
    assert created.status_code == 201, created.text
    url = created.json()["url"]
    assert url.startswith("/v1/calendar-feeds/") and url.endswith(".ics")
    feed = client.get(url)  # no sign-in: the address is the credential
    assert feed.status_code == 200, feed.text
    assert_valid_calendar(feed.text)
    assert_no_medical_detail(feed.text)
    uids = [line for line in unfolded(feed.text) if line.startswith("UID:")]
    assert uids == [f"UID:{recent}@carebridge", f"UID:{upcoming}@carebridge"]
    assert str(long_ago) not in feed.text and str(not_hers) not in feed.text

    retried = client.post("/v1/me/calendar-feed", headers=auth(grace) | {
        "Idempotency-Key": "feed-key-0001"})
    assert retried.json()["url"] == url and retried.json()["changed"] is False

    rotated = client.post("/v1/me/calendar-feed", headers=auth(grace)).json()["url"]
    assert rotated != url
    assert_problem(client.get(url), 404)
    assert client.get(rotated).status_code == 200

    assert client.delete("/v1/me/calendar-feed", headers=auth(grace)).status_code == 204
    assert_problem(client.get(rotated), 404)
    assert client.delete("/v1/me/calendar-feed", headers=auth(grace)).status_code == 204


def test_the_token_is_stored_only_as_a_hash(client, sign_up, database, schedule):
    grace = sign_up(given_name="Grace")
    url = client.post("/v1/me/calendar-feed", headers=auth(grace)).json()["url"]
    token = url.removeprefix("/v1/calendar-feeds/").removesuffix(".ics")
    with psycopg.connect(database.owner_url) as conn:
        rows = conn.execute("SELECT token_sha256::text, account_id::text"
                            " FROM carebridge.calendar_feeds").fetchall()
        keys = conn.execute("SELECT result FROM carebridge.idempotency_keys").fetchall()
    assert rows and all(token not in row[0] for row in rows)
    assert all(token.encode() not in bytes(key[0]) for key in keys)


def test_staff_have_no_feed_and_a_made_up_address_finds_nothing(client, staff_member, schedule):
    assert_problem(client.post("/v1/me/calendar-feed", headers=auth(staff_member("reception"))),
                   403)
    assert_problem(client.get("/v1/calendar-feeds/" + "x" * 43 + ".ics"), 404)
    assert_problem(client.get("/v1/calendar-feeds/short.ics"), 404)


def test_text_is_escaped_and_long_lines_fold_inside_75_octets_without_splitting_characters():
    assert escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    line = "LOCATION:" + "Ünïcødé Street, " * 10
    folded = fold(line)
    assert all(len(part.encode()) <= 75 for part in folded.split("\r\n"))
    assert folded.replace("\r\n ", "") == line
    entry = CalendarEntry("x", datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
                          datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "Appointment at A; B",
                          None, "CANCELLED", sequence=1)
    text = render([entry], datetime(2026, 3, 1, tzinfo=UTC))
    assert_valid_calendar(text)
    assert "SUMMARY:Appointment at A\\; B\r\n" in text and "STATUS:CANCELLED\r\n" in text


def test_with_real_bookings_a_booked_slot_leaves_availability_and_a_cancellation_shows(
        client, container, sign_up, staff_member):
    """End to end with the appointments context: booking writes the lookup row availability
    and the calendar read; cancelling turns the entry into STATUS:CANCELLED."""
    from tests.api.visits_support import MONDAY_NINE, book, open_riverside
    from tests.domain.test_appointments import clinic_schedule

    doctor = open_riverside(container, staff_member)["doctor"]
    container.availability = Availability(
        clinic_schedule(UUID(doctor["account_id"])),
        PostgresBookings(container.identity.factory.datastore))
    grace = sign_up(given_name="Grace")
    search = {"clinician_id": doctor["account_id"], "consultation_type_id": "gp-in-person",
              "date_from": "2026-11-30", "date_to": "2026-11-30", "limit": "1"}
    first = client.get("/v1/availability", headers=auth(grace), params=search).json()
    assert first[0]["starts_at"] == "2026-11-30T09:00:00Z"
    appointment_id = book(client, grace, doctor, MONDAY_NINE).json()["appointment_id"]
    after = client.get("/v1/availability", headers=auth(grace), params=search).json()
    assert after[0]["starts_at"] == "2026-11-30T09:15:00Z"

    url = client.post("/v1/me/calendar-feed", headers=auth(grace)).json()["url"]
    path = f"/v1/appointments/{appointment_id}/calendar.ics"
    assert "STATUS:CONFIRMED" in unfolded(client.get(path, headers=auth(grace)).text)
    cancelled = client.post(f"/v1/appointments/{appointment_id}/cancel", headers=auth(grace),
                            json={"reason_code": "feeling_better"})
    assert cancelled.status_code == 200, cancelled.text
    for text in (client.get(path, headers=auth(grace)).text, client.get(url).text):
        lines = unfolded(text)
        assert "STATUS:CANCELLED" in lines and f"UID:{appointment_id}@carebridge" in lines
        assert_no_medical_detail(text)
        assert "feeling" not in text.lower()
    again = client.get("/v1/availability", headers=auth(grace), params=search).json()
    assert again[0]["starts_at"] == "2026-11-30T09:00:00Z"
