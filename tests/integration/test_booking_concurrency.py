"""No double booking under concurrency, on the real PostgreSQL: threads race for the last
places and exactly as many win as there are places.

Each race spreads its threads over four application instances, as four API processes would
be: within one process requests for the same day take turns, so it is the day ledger's version
in the event store that has to stop the others."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest

from domain.access import Actor
from domain.appointments import SlotTaken
from domain.errors import ConcurrentChange
from domain.identity import Role
from tests.domain.test_appointments import ASHA, NINA, clinic_schedule

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MONDAY_NINE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Processes:
    """Four AppointmentsApplication instances on one database, used in turn."""

    def __init__(self, container: Any) -> None:
        from commands.appointments import AppointmentsApplication

        self.instances = [container.appointments] + [
            AppointmentsApplication(container.store, clinic_schedule(), container.care,
                                    container.feature_flags) for _ in range(3)]
        container.appointments.schedule = clinic_schedule()
        self.turn = itertools.count()

    def next(self) -> Any:
        return self.instances[next(self.turn) % len(self.instances)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.next(), name)


@pytest.fixture
def appointments(container: Any) -> Any:
    return Processes(container)


def patient() -> Actor:
    return Actor(uuid4(), Role.PATIENT)


def race(attempts: list[Callable[[], Any]]) -> tuple[list[Any], list[Exception]]:
    """Runs every attempt at once (released together by a barrier)."""
    barrier = threading.Barrier(len(attempts))
    won: list[Any] = []
    lost: list[Exception] = []
    lock = threading.Lock()

    def run(attempt: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            result = attempt()
        except (SlotTaken, ConcurrentChange) as refused:
            with lock:
                lost.append(refused)
        else:
            with lock:
                won.append(result)

    threads = [threading.Thread(target=run, args=(a,)) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return won, lost


def active_rows(container: Any, clinician_id: UUID) -> list[tuple[Any, ...]]:
    with psycopg.connect(container.database.url) as conn:
        return conn.execute(
            "SELECT starts_at, status FROM carebridge.slot_bookings WHERE clinician_id = %s"
            " AND status = 'booked' ORDER BY starts_at", (clinician_id,)).fetchall()


def book(appointments: Any, clinician: UUID, type_id: str, at: datetime = MONDAY_NINE,
         actor: Actor | None = None) -> Callable[[], Any]:
    someone = actor or patient()
    instance = appointments.next()
    return lambda: instance.book(someone, someone.account_id, clinician, type_id, at, NOW)


def test_twenty_people_race_for_three_vaccination_places_and_three_win(appointments,
                                                                       container):
    won, lost = race([book(appointments, NINA, "flu-vaccination") for _ in range(20)])
    assert len(won) == 3
    assert len(lost) == 17 and all(isinstance(e, SlotTaken) for e in lost)
    assert len(active_rows(container, NINA)) == 3
    assert all(e.extensions["alternatives"] for e in lost)  # each told where else to go


def test_ten_people_race_for_one_gp_slot_and_one_wins(appointments, container):
    won, lost = race([book(appointments, ASHA, "gp-in-person") for _ in range(10)])
    assert len(won) == 1 and len(lost) == 9
    assert [row[0] for row in active_rows(container, ASHA)] == [MONDAY_NINE]


def test_a_reschedule_racing_a_booking_for_the_same_slot_never_doubles_it(appointments,
                                                                         container):
    grace = patient()
    moving = appointments.book(grace, grace.account_id, ASHA, "gp-in-person", MONDAY_NINE, NOW)
    appointment_id = UUID(moving.result["appointment_id"])
    target = MONDAY_NINE + timedelta(minutes=15)
    other = patient()
    first, second = appointments.instances[1], appointments.instances[2]
    won, lost = race([
        lambda: first.reschedule(grace, appointment_id, target, NOW),
        lambda: second.book(other, other.account_id, ASHA, "gp-in-person", target, NOW)])
    assert len(won) == 1 and len(lost) == 1
    starts = [row[0] for row in active_rows(container, ASHA)]
    assert starts.count(target) == 1
    rescheduled = won[0].result["patient_id"] == str(grace.account_id)
    # Either Grace moved (and 09:00 is free again) or the other booking took 09:15.
    assert starts == ([target] if rescheduled else [MONDAY_NINE, target])
