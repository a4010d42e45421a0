"""Availability search over an in-memory schedule and in-memory bookings: what a patient is
offered, decided by the same `fits` rule booking uses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from commands.availability import Availability, FreeSlot
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    Occupancy,
    RoomInfo,
    StaticSchedule,
)

ASHA = UUID("00000000-0000-4000-8000-00000000a5a1")  # GP, speaks Hindi, mornings
BEN = UUID("00000000-0000-4000-8000-00000000b3e1")  # GP, afternoons and evenings
KIM = UUID("00000000-0000-4000-8000-00000000c1a1")  # nurse, flu vaccinations
MONDAY = date(2026, 11, 30)
BEFORE = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def network() -> StaticSchedule:
    """Riverside: one consulting room, one vaccination room; three clinicians on weekdays."""
    weekdays = range(5)
    return StaticSchedule(
        clinic_list=[ClinicInfo("riverside", "Riverside Health Centre", ("1 River Lane",),
                                "Riverton", "RT1 2AB", "Europe/London")],
        type_list=[
            ConsultationTypeInfo("gp-in-person", "GP appointment", Mode.IN_PERSON, 15,
                                 room_kind="consulting"),
            ConsultationTypeInfo("video", "Video consultation", Mode.VIDEO, 15),
            ConsultationTypeInfo("long", "Long appointment", Mode.IN_PERSON, 30,
                                 room_kind="consulting"),
            ConsultationTypeInfo("flu-vaccination", "Flu vaccination", Mode.IN_PERSON, 10,
                                 room_kind="vaccination", capacity_per_slot=3),
        ],
        clinician_list=[
            ClinicianInfo(ASHA, "Dr Asha Patel", "general practice", ("en", "hi-IN"),
                          ("riverside",), ("gp-in-person", "video", "long")),
            ClinicianInfo(BEN, "Dr Ben Jones", "general practice", ("en",), ("riverside",),
                          ("gp-in-person", "video")),
            ClinicianInfo(KIM, "Kim Lee", "nursing", ("en",), ("riverside",),
                          ("flu-vaccination",)),
        ],
        room_list=[RoomInfo("riverside-room-1", "riverside", "consulting", "Room 1"),
                   RoomInfo("riverside-vaccination", "riverside", "vaccination", "Vaccinations")],
        weekly={
            ASHA: {d: [("riverside", time(9), time(12), 15, ("gp-in-person", "video", "long"),
                        None)] for d in weekdays},
            BEN: {d: [("riverside", time(11), time(19), 15, ("gp-in-person", "video"), None)]
                  for d in weekdays},
            KIM: {d: [("riverside", time(9), time(10), 10, ("flu-vaccination",),
                       "riverside-vaccination")] for d in weekdays},
        },
    )


@dataclass
class Bookings:
    """The booking lookup table, in memory: (clinician, room, occupancy, status, hold expiry)."""

    rows: list[tuple[UUID, str | None, Occupancy, str, datetime | None]] = field(
        default_factory=list)
    reads: int = 0

    def book(self, clinician: UUID, start: datetime, kind: ConsultationTypeInfo,
             room: str | None = None, status: str = "booked",
             hold_expires_at: datetime | None = None) -> None:
        self.rows.append((clinician, room, Occupancy(start, start + kind.occupies, kind.type_id,
                                                     room), status, hold_expires_at))

    def active(self, clinician_ids: Sequence[UUID], room_ids: Sequence[str], start: datetime,
               end: datetime, at: datetime,
               spans: Sequence[tuple[datetime, datetime]] | None = None,
               ) -> list[tuple[UUID, str | None, Occupancy]]:
        self.reads += 1
        return [(c, r, o) for c, r, o, status, expires in self.rows
                if (status == "booked" or (status == "held" and expires and expires > at))
                and o.starts_at < end and o.ends_at > start
                and (spans is None or any(o.starts_at < e and o.ends_at > s for s, e in spans))
                and (c in clinician_ids or r in room_ids)]


def utc(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def search(schedule: StaticSchedule, bookings: Bookings, **criteria: object) -> list[FreeSlot]:
    criteria = {"date_from": MONDAY, "date_to": MONDAY + timedelta(days=6), "at": BEFORE,
                **criteria}
    return Availability(schedule, bookings).search(**criteria)  # type: ignore[arg-type]


def kind(schedule: StaticSchedule, type_id: str) -> ConsultationTypeInfo:
    found = schedule.consultation_type(type_id)
    assert found is not None
    return found


def test_the_earliest_slots_come_first_then_by_clinician_and_stop_at_the_limit():
    slots = search(network(), Bookings(), consultation_type_id="gp-in-person", limit=5)
    assert [(s.starts_at, s.clinician_id) for s in slots] == [
        (utc(MONDAY, 9), ASHA), (utc(MONDAY, 9, 15), ASHA), (utc(MONDAY, 9, 30), ASHA),
        (utc(MONDAY, 9, 45), ASHA), (utc(MONDAY, 10), ASHA)]
    at_eleven = search(network(), Bookings(), consultation_type_id="gp-in-person",
                       date_from=MONDAY, time_of_day="morning", limit=50)
    eleven = [s.clinician_id for s in at_eleven if s.starts_at == utc(MONDAY, 11)]
    assert eleven == sorted([ASHA, BEN], key=str)


def test_time_of_day_is_the_clinics_wall_clock():
    evening = search(network(), Bookings(), time_of_day="evening", limit=50)
    assert evening and all(s.starts_at.hour >= 17 for s in evening)
    assert {s.clinician_id for s in evening} == {BEN}
    afternoon = search(network(), Bookings(), time_of_day="afternoon", limit=50)
    assert afternoon and all(12 <= s.starts_at.hour < 17 for s in afternoon)


def test_language_and_specialty_choose_the_clinicians():
    hindi = search(network(), Bookings(), language="hi", limit=50)
    assert hindi and {s.clinician_id for s in hindi} == {ASHA}
    assert search(network(), Bookings(), specialty="General Practice", language="fr") == []
    nurses = search(network(), Bookings(), specialty="nursing", limit=3)
    assert {s.clinician_id for s in nurses} == {KIM}


def test_a_booked_slot_and_a_running_hold_are_not_offered_but_a_lapsed_hold_is():
    schedule, bookings = network(), Bookings()
    gp = kind(schedule, "gp-in-person")
    bookings.book(ASHA, utc(MONDAY, 9), gp, "riverside-room-1")
    bookings.book(ASHA, utc(MONDAY, 9, 15), gp, "riverside-room-1", status="held",
                  hold_expires_at=BEFORE + timedelta(minutes=5))
    starts = [s.starts_at for s in search(schedule, bookings, clinician_id=ASHA,
                                          consultation_type_id="gp-in-person", limit=3)]
    assert starts == [utc(MONDAY, 9, 30), utc(MONDAY, 9, 45), utc(MONDAY, 10)]
    later = BEFORE + timedelta(minutes=6)
    starts = [s.starts_at for s in search(schedule, bookings, clinician_id=ASHA, at=later,
                                          consultation_type_id="gp-in-person", limit=2)]
    assert starts == [utc(MONDAY, 9, 15), utc(MONDAY, 9, 30)]


def test_a_long_appointment_needs_the_following_slot_free_and_room_in_the_session():
    schedule, bookings = network(), Bookings()
    bookings.book(ASHA, utc(MONDAY, 9, 30), kind(schedule, "gp-in-person"), "riverside-room-1")
    slots = search(schedule, bookings, clinician_id=ASHA, consultation_type_id="long", limit=50,
                   date_to=MONDAY)
    starts = [s.starts_at for s in slots]
    assert utc(MONDAY, 9, 15) not in starts and utc(MONDAY, 9, 30) not in starts
    assert utc(MONDAY, 9) in starts and utc(MONDAY, 9, 45) in starts
    assert utc(MONDAY, 11, 45) not in starts  # would run past the end of the session


def test_a_group_slot_shows_the_places_left_and_disappears_when_full():
    schedule, bookings = network(), Bookings()
    flu = kind(schedule, "flu-vaccination")
    for _ in range(2):
        bookings.book(KIM, utc(MONDAY, 9), flu, "riverside-vaccination")
    first = search(schedule, bookings, consultation_type_id="flu-vaccination", limit=2)
    assert [(s.starts_at, s.places_left) for s in first] == [(utc(MONDAY, 9), 1),
                                                             (utc(MONDAY, 9, 10), 3)]
    bookings.book(KIM, utc(MONDAY, 9), flu, "riverside-vaccination")
    first = search(schedule, bookings, consultation_type_id="flu-vaccination", limit=1)
    assert first[0].starts_at == utc(MONDAY, 9, 10)


def test_a_slot_needing_a_room_is_not_offered_when_every_such_room_is_taken():
    schedule, bookings = network(), Bookings()
    # Ben's 11:00 patient is in the only consulting room: Asha can still see video patients.
    bookings.book(BEN, utc(MONDAY, 11), kind(schedule, "gp-in-person"), "riverside-room-1")
    in_person = search(schedule, bookings, clinician_id=ASHA, date_to=MONDAY,
                       consultation_type_id="gp-in-person", limit=50)
    assert utc(MONDAY, 11) not in [s.starts_at for s in in_person]
    assert {s.room_id for s in in_person} == {"riverside-room-1"}
    video = search(schedule, bookings, clinician_id=ASHA, date_to=MONDAY,
                   consultation_type_id="video", limit=50)
    assert utc(MONDAY, 11) in [s.starts_at for s in video]
    assert {s.room_id for s in video} == {None}


def test_without_a_type_a_slot_is_listed_once_with_the_first_type_that_fits():
    schedule, bookings = network(), Bookings()
    bookings.book(BEN, utc(MONDAY, 9), kind(schedule, "gp-in-person"), "riverside-room-1")
    nine = [s for s in search(schedule, bookings, clinician_id=ASHA, limit=1)]
    assert [(s.starts_at, s.consultation_type_id) for s in nine] == [(utc(MONDAY, 9), "video")]


def test_past_slots_and_days_off_are_not_offered():
    schedule = network()
    schedule.days_off[ASHA] = {MONDAY}
    slots = search(schedule, Bookings(), clinician_id=ASHA, at=utc(MONDAY + timedelta(days=1), 10),
                   limit=1)
    assert slots[0].starts_at == utc(MONDAY + timedelta(days=1), 10, 15)


def test_sessions_keep_their_local_time_across_the_clock_changes():
    schedule = network()
    march_before, march_after = date(2026, 3, 27), date(2026, 3, 30)  # Friday, Monday
    october_before, october_after = date(2026, 10, 23), date(2026, 10, 26)
    for day, hour in ((march_before, 9), (march_after, 8), (october_before, 8),
                      (october_after, 9)):
        slots = search(schedule, Bookings(), clinician_id=ASHA, date_from=day, date_to=day,
                       at=utc(day, 0), consultation_type_id="video", limit=1)
        assert slots[0].starts_at == utc(day, hour), day


def test_a_search_that_fills_in_its_first_hour_reads_bookings_for_that_hour_only():
    bookings = Bookings()
    slots = search(network(), bookings, limit=10, date_to=MONDAY + timedelta(days=83))
    assert len(slots) == 10 and slots[-1].starts_at < utc(MONDAY, 10)
    assert bookings.reads == 2  # the clinicians' own bookings, then the rooms'
    slots = search(network(), bookings, limit=10, consultation_type_id="video")
    assert len(slots) == 10 and bookings.reads == 4  # two stretches; video needs no room


def test_a_full_week_is_skipped_and_the_next_free_slot_found():
    schedule, bookings = network(), Bookings()
    video = kind(schedule, "video")
    for n in range(5):
        day = MONDAY + timedelta(days=n)
        for slot in range(12):
            bookings.book(ASHA, utc(day, 9) + timedelta(minutes=15 * slot), video)
    slots = search(schedule, bookings, clinician_id=ASHA, limit=1,
                   date_to=MONDAY + timedelta(days=20))
    assert slots[0].starts_at == utc(MONDAY + timedelta(days=7), 9)
