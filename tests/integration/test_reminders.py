"""Appointment reminders in the outbox: planned before the visit, withdrawn when it is
cancelled or moved, and never carrying medical detail."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from commands.outbox import TEMPLATES
from commands.reminders import CANCELLED, CONFIRMED, RESCHEDULED, ReminderPlanner
from projections.process_managers import followers_for
from tests.domain.test_appointments import clinic_schedule

from .support import MONDAY, rows
from .waitlist_support import FRIDAY_TEN, PATEL, SCHEDULE, event, patient, slot_booking


@pytest.fixture
def planner(container: Any) -> ReminderPlanner:
    return ReminderPlanner(lambda: SCHEDULE, container.identity, [48, 2])


def handle(container: Any, planner: ReminderPlanner, topic: str, happened: Any) -> None:
    """What the reminder follower does with one event, in one transaction."""
    with psycopg.connect(container.database.url) as conn, conn.transaction():
        cur = conn.cursor()
        for statement in planner.statements(topic, happened, cur):
            cur.execute(statement.sql, statement.params)


def planned(container: Any, appointment_id: Any) -> list[tuple[Any, ...]]:
    return rows(container.database.owner_url,
                "SELECT kind, not_before FROM carebridge.outbox WHERE about_id = %s"
                " AND withdrawn_at IS NULL ORDER BY not_before", (appointment_id,))


def test_reminders_are_planned_48_and_2_hours_before(container, planner):
    grace = patient(container)
    appointment = slot_booking(container.database.owner_url, grace.account_id, FRIDAY_TEN)
    handle(container, planner, CONFIRMED, event(appointment, MONDAY))
    assert planned(container, appointment) == [
        ("appointment_reminder", FRIDAY_TEN - timedelta(hours=48)),
        ("appointment_reminder", FRIDAY_TEN - timedelta(hours=2)),
    ]
    # Not due yet: the dispatcher leaves planned messages alone.
    assert container.outbox.deliver_due() == 0


def test_a_reminder_whose_time_has_passed_is_not_planned(container, planner):
    grace = patient(container)
    tomorrow = MONDAY + timedelta(hours=24)
    appointment = slot_booking(container.database.owner_url, grace.account_id, tomorrow)
    handle(container, planner, CONFIRMED, event(appointment, MONDAY))
    assert [kind for kind, _ in planned(container, appointment)] == ["appointment_reminder"]


def test_cancelling_withdraws_the_reminders(container, planner):
    grace = patient(container)
    appointment = slot_booking(container.database.owner_url, grace.account_id, FRIDAY_TEN)
    handle(container, planner, CONFIRMED, event(appointment, MONDAY))
    handle(container, planner, CANCELLED, event(appointment, MONDAY + timedelta(hours=1)))
    assert planned(container, appointment) == []
    assert rows(container.database.owner_url,
                "SELECT count(*) FROM carebridge.outbox WHERE about_id = %s"
                " AND withdrawn_at IS NOT NULL AND recipient IS NULL AND payload IS NULL",
                (appointment,)) == [(2,)]


def test_moving_an_appointment_plans_the_reminders_again_for_the_new_time(container, planner):
    grace = patient(container)
    appointment = slot_booking(container.database.owner_url, grace.account_id, FRIDAY_TEN)
    handle(container, planner, CONFIRMED, event(appointment, MONDAY))
    later = FRIDAY_TEN + timedelta(days=3)
    slot_booking(container.database.owner_url, grace.account_id, later,
                 appointment_id=appointment)
    handle(container, planner, RESCHEDULED, event(appointment, MONDAY + timedelta(hours=1),
                                                  from_starts_at=FRIDAY_TEN, starts_at=later))
    assert planned(container, appointment) == [
        ("appointment_reminder", later - timedelta(hours=48)),
        ("appointment_reminder", later - timedelta(hours=2)),
    ]


def test_a_video_visit_also_gets_a_join_reminder(container, planner):
    grace = patient(container)
    appointment = slot_booking(container.database.owner_url, grace.account_id, FRIDAY_TEN,
                               type_id="video", room_id=None)
    handle(container, planner, CONFIRMED, event(appointment, MONDAY))
    assert planned(container, appointment)[-1] == (
        "video_join_reminder", FRIDAY_TEN - timedelta(minutes=10))


def test_a_reminder_names_the_time_and_the_clinic_and_nothing_medical(container, planner):
    grace = patient(container)
    appointment = slot_booking(container.database.owner_url, grace.account_id, FRIDAY_TEN)
    handle(container, planner, CONFIRMED, event(appointment, MONDAY))
    payloads = rows(container.database.owner_url,
                    "SELECT payload FROM carebridge.outbox WHERE about_id = %s", (appointment,))
    assert payloads[0][0] == {"when": "27 November 2026 at 10:00 GMT",
                              "clinic": "Riverside Surgery"}
    for kind in ("appointment_reminder", "video_join_reminder", "waitlist_offer"):
        template = TEMPLATES[kind]
        wording = f"{template.subject} {template.body} {template.sms}".lower()
        for medical in ("gp", "general practice", "doctor", "dr ", "reason", "specialty",
                        "symptom"):
            assert medical not in wording, (kind, medical)


def test_the_reminder_follower_plans_from_the_appointments_log(container):
    container.appointments.schedule = clinic_schedule(PATEL)
    grace = patient(container)
    booked = container.appointments.book(grace, grace.account_id, PATEL, "gp-in-person",
                                         FRIDAY_TEN, at=MONDAY)
    appointment = UUID(booked.result["appointment_id"])
    reminders = next(f for f in followers_for(
        container.applications, container.waitlist, container.identity, container.settings,
        container.database.url) if f.projection.name == "appointment_reminders")
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        reminders.catch_up(conn)
        reminders.catch_up(conn)  # exactly once: a second round plans nothing more
    assert [kind for kind, _ in planned(container, appointment)] == ["appointment_reminder"] * 2
