"""Helpers for visit, day-list and waitlist API tests: Riverside's schedule, booking through
the API, and running the process managers by hand on the test's clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from projections.process_managers import followers_for
from tests.api.support import auth
from tests.domain.test_appointments import clinic_schedule

TUESDAY_NINE = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # 09:00 in London, tomorrow
MONDAY_NINE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def open_riverside(container: Any, staff_member: Any) -> dict[str, Any]:
    """Riverside with Dr Patel as a real staff account, as booking sees it."""
    doctor = staff_member("doctor")
    container.appointments.schedule = clinic_schedule(UUID(doctor["account_id"]))
    return {"doctor": doctor}


def book(client: Any, person: dict[str, str], clinician: dict[str, str],
         starts_at: datetime = MONDAY_NINE, type_id: str = "gp-in-person") -> Any:
    """Holds and confirms; returns the confirmation response."""
    held = client.post("/v1/appointments/holds", headers=auth(person), json={
        "clinician_id": clinician["account_id"], "consultation_type_id": type_id,
        "starts_at": starts_at.isoformat()})
    assert held.status_code == 201, held.text
    confirmed = client.post(f"/v1/appointments/{held.json()['appointment_id']}/confirm",
                            headers=auth(person))
    assert confirmed.status_code == 200, confirmed.text
    return confirmed


def run_process_managers(container: Any, clock: Any) -> None:
    """What the waitlist and reminder followers do, once, on the test's clock."""
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        for follower in followers_for(container.applications, container.waitlist,
                                      container.identity, container.settings,
                                      container.database.url, clock=clock):
            follower.catch_up(conn)
