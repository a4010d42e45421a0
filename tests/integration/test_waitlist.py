"""The waitlist process manager on a real PostgreSQL: who is offered a freed slot, what
happens when they answer or stay silent, and that one slot is never offered twice at once."""

from __future__ import annotations

import threading
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest

from commands.waitlist import CANCELLED, HOLD_LAPSED, RESCHEDULED, SlotTaken
from domain.appointments import CancellationReason
from domain.errors import Conflict, NotFound
from domain.waitlist import Urgency
from projections.process_managers import followers_for
from tests.domain.test_appointments import clinic_schedule

from .support import MONDAY, eventually, rows
from .waitlist_support import (
    FRIDAY_TEN,
    PATEL,
    SCHEDULE,
    FakeBooking,
    event,
    join,
    patient,
    slot_booking,
)

SOON = MONDAY + timedelta(minutes=5)


@pytest.fixture
def booking(container: Any) -> FakeBooking:
    fake = FakeBooking(container.database.owner_url)
    container.waitlist.connect(SCHEDULE, fake, container.identity, container.care)
    return fake


def cancelled(container: Any, at: Any = SOON, starts_at: Any = FRIDAY_TEN) -> Any:
    """Somebody else's Friday 10:00 appointment is cancelled; returns the event."""
    other = patient(container, "Other")
    appointment = slot_booking(container.database.owner_url, other.account_id, starts_at,
                               status="released")
    return event(appointment, at, cancelled_by="patient", reason_code="cannot_attend")


def status_of(container: Any, entry_id: Any) -> str:
    return str(container.waitlist.entry(entry_id).status)


def test_a_freed_slot_goes_to_the_most_urgent_patient_first(container, booking):
    routine = join(container, patient(container, "Ada"), Urgency.ROUTINE)
    urgent = join(container, patient(container, "Grace"), Urgency.URGENT,
                  at=MONDAY + timedelta(minutes=1))
    offered = container.waitlist.handle(CANCELLED, cancelled(container), SOON)
    assert offered == urgent
    assert status_of(container, urgent) == "offered"
    assert status_of(container, routine) == "waiting"
    messages = rows(container.database.owner_url,
                    "SELECT kind, payload::text FROM carebridge.outbox WHERE kind = 'waitlist_offer'")
    assert len(messages) == 1
    assert "GP" not in messages[0][1] and "Patel" not in messages[0][1]


def test_among_equally_urgent_patients_whoever_joined_first_is_offered(container, booking):
    first = join(container, patient(container, "Ada"))
    join(container, patient(container, "Grace"), at=MONDAY + timedelta(minutes=1))
    assert container.waitlist.handle(CANCELLED, cancelled(container), SOON) == first


def test_handling_the_same_event_again_offers_nothing_more(container, booking):
    join(container, patient(container, "Ada"))
    join(container, patient(container, "Grace"), at=MONDAY + timedelta(minutes=1))
    freed = cancelled(container)
    assert container.waitlist.handle(CANCELLED, freed, SOON) is not None
    assert container.waitlist.handle(CANCELLED, freed, SOON) is None
    assert rows(container.database.owner_url, "SELECT count(*) FROM carebridge.waitlist_entries"
                " WHERE status = 'offered'") == [(1,)]


def test_a_lapsed_offer_passes_to_the_next_patient(container, booking):
    first = join(container, patient(container, "Ada"))
    second = join(container, patient(container, "Grace"), at=MONDAY + timedelta(minutes=1))
    container.waitlist.handle(CANCELLED, cancelled(container), SOON)
    assert container.waitlist.tick(SOON + timedelta(minutes=29)) == 0
    assert container.waitlist.tick(SOON + timedelta(minutes=30)) == 1
    assert status_of(container, first) == "waiting"
    assert status_of(container, second) == "offered"
    # The first patient is not offered the slot they let lapse again.
    assert container.waitlist.tick(SOON + timedelta(minutes=60)) == 1
    assert status_of(container, first) == "waiting"
    assert status_of(container, second) == "waiting"


def test_a_declined_offer_passes_to_the_next_patient(container, booking):
    ada, grace = patient(container, "Ada"), patient(container, "Grace")
    first = join(container, ada)
    second = join(container, grace, at=MONDAY + timedelta(minutes=1))
    container.waitlist.handle(CANCELLED, cancelled(container), SOON)
    container.waitlist.decline(ada, first, SOON + timedelta(minutes=1))
    assert status_of(container, second) == "offered"


def test_accepting_books_the_slot_and_fulfils_the_entry(container, booking):
    grace = patient(container)
    entry = join(container, grace)
    container.waitlist.handle(CANCELLED, cancelled(container), SOON)
    outcome = container.waitlist.accept(grace, entry, SOON + timedelta(minutes=2))
    assert booking.booked == [(grace.account_id, FRIDAY_TEN)]
    assert outcome.result["status"] == "fulfilled"
    assert outcome.result["appointment_id"]
    assert container.waitlist.entries(grace.account_id) == []


def test_a_slot_taken_meanwhile_answers_a_conflict_and_the_patient_stays_on_the_list(
        container, booking):
    grace = patient(container)
    entry = join(container, grace)
    container.waitlist.handle(CANCELLED, cancelled(container), SOON)
    slot_booking(container.database.owner_url, patient(container, "Quick").account_id,
                 FRIDAY_TEN)  # reception booked the time by phone meanwhile
    with pytest.raises(SlotTaken):
        container.waitlist.accept(grace, entry, SOON + timedelta(minutes=2))
    assert status_of(container, entry) == "waiting"
    assert [e["status"] for e in container.waitlist.entries(grace.account_id)] == ["waiting"]


def test_an_expired_offer_cannot_be_accepted(container, booking):
    grace = patient(container)
    entry = join(container, grace)
    container.waitlist.handle(CANCELLED, cancelled(container), SOON)
    with pytest.raises(Conflict):
        container.waitlist.accept(grace, entry, SOON + timedelta(minutes=31))
    assert booking.booked == []


def test_a_slot_that_is_no_longer_free_is_not_offered(container, booking):
    join(container, patient(container))
    freed = cancelled(container)
    slot_booking(container.database.owner_url, patient(container, "Quick").account_id,
                 FRIDAY_TEN)
    assert container.waitlist.handle(HOLD_LAPSED, freed, SOON) is None


def test_the_old_time_of_a_moved_appointment_is_offered(container, booking):
    entry = join(container, patient(container))
    other = patient(container, "Other")
    moved = slot_booking(container.database.owner_url, other.account_id,
                         FRIDAY_TEN + timedelta(hours=1))
    assert container.waitlist.handle(
        RESCHEDULED, event(moved, SOON, from_starts_at=FRIDAY_TEN, from_clinician_id=PATEL,
                           starts_at=FRIDAY_TEN + timedelta(hours=1)), SOON) == entry


def test_two_managers_never_offer_one_slot_twice(container, booking):
    for i in range(4):
        join(container, patient(container, f"P{i}"), at=MONDAY + timedelta(minutes=i))
    freed = cancelled(container)
    results: list[Any] = []
    start = threading.Barrier(4)

    def manage() -> None:
        start.wait()
        results.append(container.waitlist.handle(CANCELLED, freed, SOON))

    threads = [threading.Thread(target=manage) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len([r for r in results if r is not None]) == 1
    assert rows(container.database.owner_url, "SELECT count(*) FROM carebridge.waitlist_entries"
                " WHERE status = 'offered'") == [(1,)]


def test_someone_elses_entry_reads_as_missing(container, booking):
    entry = join(container, patient(container, "Grace"))
    with pytest.raises(NotFound):
        container.waitlist.leave(patient(container, "Mallory"), entry, SOON)


def test_the_waitlist_follower_thread_offers_a_slot_freed_in_the_appointments_log(container):
    container.appointments.schedule = clinic_schedule(PATEL)
    container.waitlist.connect(None, container.appointments, container.identity, container.care)
    bob, grace = patient(container, "Bob"), patient(container, "Grace")
    booked = container.appointments.book(bob, bob.account_id, PATEL, "gp-in-person",
                                         FRIDAY_TEN, at=MONDAY)
    entry = container.waitlist.join(grace, grace.account_id, "riverside", PATEL, "gp-in-person",
                                    date(2026, 11, 23), date(2026, 11, 30), Urgency.SOON,
                                    at=MONDAY).result["entry_id"]
    followers = followers_for(container.applications, container.waitlist, container.identity,
                              container.settings, container.database.url, clock=lambda: SOON)
    for follower in followers:
        follower.start()
    try:
        container.appointments.cancel(bob, UUID(booked.result["appointment_id"]),
                                      CancellationReason.CANNOT_ATTEND, at=SOON)
        assert eventually(lambda: status_of(container, UUID(entry)) == "offered")
    finally:
        for follower in followers:
            follower.stop()
