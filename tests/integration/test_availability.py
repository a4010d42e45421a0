"""Availability against real PostgreSQL: the booking lookup table decides what is offered."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from commands.availability import Availability, PostgresBookings
from domain.schedule_types import ConsultationTypeInfo
from tests.domain.test_availability import ASHA, BEFORE, KIM, MONDAY, kind, network, utc


@pytest.fixture
def schedule() -> Any:
    return network()


@pytest.fixture
def availability(container: Any, schedule: Any) -> Availability:
    return Availability(schedule, PostgresBookings(container.identity.factory.datastore))


@pytest.fixture
def book(database: Any) -> Any:
    """Writes a row of carebridge.slot_bookings as the appointments context would."""

    def write(clinician: UUID, start: datetime, kind: ConsultationTypeInfo, room: str | None,
              status: str = "booked", hold_expires_at: datetime | None = None) -> UUID:
        appointment_id = uuid.uuid4()
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
                " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status,"
                " hold_expires_at, updated_at) VALUES (%s, %s, %s, 'riverside', %s, %s, %s, %s,"
                " %s, %s, %s)",
                (appointment_id, uuid.uuid4(), clinician, room, kind.type_id, start,
                 start + kind.occupies, status, hold_expires_at, BEFORE))
        return appointment_id

    return write


def starts(availability: Availability, at: datetime = BEFORE, **criteria: Any) -> list[datetime]:
    criteria = {"date_from": MONDAY, "date_to": MONDAY, "limit": 50, **criteria}
    return [s.starts_at for s in availability.search(at=at, **criteria)]


def test_a_hold_hides_its_slot_until_it_lapses_and_a_released_one_frees_it(availability, book,
                                                                           schedule):
    gp = kind(schedule, "gp-in-person")
    book(ASHA, utc(MONDAY, 9), gp, "riverside-room-1", status="held",
         hold_expires_at=BEFORE + timedelta(minutes=5))
    book(ASHA, utc(MONDAY, 9, 15), gp, "riverside-room-1", status="released")
    book(ASHA, utc(MONDAY, 9, 30), gp, "riverside-room-1")
    held = starts(availability, clinician_id=ASHA, consultation_type_id="gp-in-person")
    assert held[:2] == [utc(MONDAY, 9, 15), utc(MONDAY, 9, 45)]
    lapsed = starts(availability, at=BEFORE + timedelta(minutes=5), clinician_id=ASHA,
                    consultation_type_id="gp-in-person")
    assert lapsed[:3] == [utc(MONDAY, 9), utc(MONDAY, 9, 15), utc(MONDAY, 9, 45)]


def test_a_full_group_slot_disappears(availability, book, schedule):
    flu = kind(schedule, "flu-vaccination")
    for _ in range(3):
        book(KIM, utc(MONDAY, 9, 10), flu, "riverside-vaccination")
    slots = availability.search(date_from=MONDAY, date_to=MONDAY, at=BEFORE,
                                consultation_type_id="flu-vaccination", limit=3)
    assert [s.starts_at for s in slots] == [utc(MONDAY, 9), utc(MONDAY, 9, 20),
                                            utc(MONDAY, 9, 30)]
    assert all(s.places_left == 3 for s in slots)


def test_the_only_room_of_a_kind_taken_by_a_colleague_blocks_in_person_slots(availability, book,
                                                                               schedule):
    book(uuid.uuid4(), utc(MONDAY, 10), kind(schedule, "gp-in-person"), "riverside-room-1")
    assert utc(MONDAY, 10) not in starts(availability, clinician_id=ASHA,
                                         consultation_type_id="gp-in-person")
    assert utc(MONDAY, 10) in starts(availability, clinician_id=ASHA,
                                     consultation_type_id="video")


@pytest.mark.parametrize(("day", "hour"), [
    (datetime(2026, 3, 27).date(), 9),  # Friday before the March change: GMT
    (datetime(2026, 3, 30).date(), 8),  # Monday after: BST, 09:00 local is 08:00Z
    (datetime(2026, 10, 23).date(), 8),  # Friday before the October change: BST
    (datetime(2026, 10, 26).date(), 9),  # Monday after: GMT again
])
def test_the_nine_oclock_session_stays_at_nine_local_across_clock_changes(availability, book,
                                                                          schedule, day, hour):
    first = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
    book(ASHA, first, kind(schedule, "video"), None)
    slots = availability.search(date_from=day, date_to=day, at=first - timedelta(days=1),
                                clinician_id=ASHA, consultation_type_id="video", limit=1)
    assert slots[0].starts_at == first + timedelta(minutes=15)
    assert slots[0].starts_at.astimezone(schedule.clinic("riverside").zone).hour == 9


def test_the_containers_search_reads_the_scheduling_context_and_sees_each_change_at_once(
        container):
    """No stale display with the real reference data: the cache follows its log position."""
    from tests.integration.test_scheduling import ADMIN, FIRST_MONDAY, a_clinician

    doctor = a_clinician(container)
    container.scheduling.put_room(ADMIN, "riverside-room-1", {
        "clinic_id": "riverside", "kind": "consulting", "name": "Room 1"}, at=BEFORE)
    container.scheduling.put_working_pattern(ADMIN, doctor, FIRST_MONDAY, None, [
        {"weekday": "monday", "starts": "09:00", "ends": "12:00", "clinic_id": "riverside",
         "slot_minutes": 15, "consultation_type_ids": ["gp-in-person"]}], at=BEFORE)
    search = {"date_from": FIRST_MONDAY, "date_to": FIRST_MONDAY, "at": BEFORE, "limit": 2}
    first = container.availability.search(**search)
    assert [(s.clinician_id, s.starts_at, s.room_id) for s in first] == [
        (doctor, utc(FIRST_MONDAY, 9), "riverside-room-1"),
        (doctor, utc(FIRST_MONDAY, 9, 15), "riverside-room-1")]
    container.scheduling.record_leave(ADMIN, doctor, FIRST_MONDAY, FIRST_MONDAY, "leave",
                                      at=BEFORE)
    assert container.availability.search(**search) == []
