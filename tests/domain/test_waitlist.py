"""The waitlist in memory: who gets an offer, what an answer does, and one offer per slot."""

from __future__ import annotations

from datetime import date, timedelta
from uuid import UUID

import pytest

from domain.errors import InvalidInput
from domain.waitlist import (
    FreedSlot,
    NoOpenOffer,
    NotOnWaitlist,
    OfferExpired,
    SlotAlreadyOffered,
    SlotOffer,
    WaitlistEntry,
    check_request,
)

from .support import ADA, ADA_REF, GRACE, MORNING, new_events

PATEL = UUID("00000000-0000-4000-8000-00000000da7e")
SYSTEM_REF = "system"
FRIDAY = date(2026, 11, 27)
SLOT = FreedSlot(PATEL, "riverside", "gp-in-person", MORNING + timedelta(days=4))
LATER = MORNING + timedelta(minutes=10)
EXPIRES = MORNING + timedelta(minutes=30)


def waiting(patient: UUID = ADA, clinician: UUID | None = None,
            urgency: str = "routine") -> WaitlistEntry:
    entry = WaitlistEntry(patient_id=patient, clinic_id="riverside", clinician_id=clinician,
                          consultation_type_id="gp-in-person", date_from=date(2026, 11, 23),
                          date_to=date(2026, 11, 30), urgency=urgency,
                          by=f"patient:{patient}", at=MORNING)
    entry.collect_events()
    return entry


def offered(entry: WaitlistEntry | None = None) -> WaitlistEntry:
    entry = entry or waiting()
    entry.offer_slot(SLOT, EXPIRES, by=SYSTEM_REF, at=MORNING)
    entry.collect_events()
    return entry


def test_an_entry_wants_a_matching_slot_within_its_days():
    entry = waiting(clinician=PATEL)
    assert entry.wants(SLOT, FRIDAY)
    assert not entry.wants(SLOT, date(2026, 12, 1))
    assert not entry.wants(FreedSlot(GRACE, "riverside", "gp-in-person", SLOT.starts_at), FRIDAY)
    assert not entry.wants(FreedSlot(PATEL, "riverside", "video", SLOT.starts_at), FRIDAY)


def test_an_entry_for_any_clinician_wants_the_slot_of_any_clinician():
    assert waiting(clinician=None).wants(FreedSlot(GRACE, "riverside", "gp-in-person",
                                                   SLOT.starts_at), FRIDAY)


def test_an_offer_runs_until_it_expires():
    entry = offered()
    assert entry.status == "offered"
    assert entry.open_offer(LATER) == SLOT
    with pytest.raises(OfferExpired):
        entry.open_offer(EXPIRES)


def test_offering_the_same_slot_again_records_nothing():
    entry = offered()
    entry.offer_slot(SLOT, EXPIRES, by=SYSTEM_REF, at=LATER)
    assert new_events(entry) == []


def test_an_entry_with_an_offer_cannot_get_another():
    entry = offered()
    other = FreedSlot(PATEL, "riverside", "gp-in-person", SLOT.starts_at + timedelta(hours=1))
    with pytest.raises(NotOnWaitlist):
        entry.offer_slot(other, EXPIRES, by=SYSTEM_REF, at=LATER)


def test_accepting_fulfils_the_entry_and_a_repeat_records_nothing():
    entry = offered()
    appointment = UUID("00000000-0000-4000-8000-0000000a9901")
    entry.accept(appointment, by=ADA_REF, at=LATER)
    entry.accept(appointment, by=ADA_REF, at=LATER)
    assert new_events(entry) == ["OfferAccepted", "Fulfilled"]
    assert entry.status == "fulfilled"


def test_declining_passes_the_slot_on_and_never_offers_it_to_this_patient_again():
    entry = offered()
    assert entry.decline(by=ADA_REF, at=LATER) == SLOT
    assert new_events(entry) == ["OfferDeclined"]
    assert entry.status == "waiting"
    assert not entry.wants(SLOT, FRIDAY)


def test_an_offer_lapses_only_once_its_time_has_run_out():
    entry = offered()
    assert entry.lapse(by=SYSTEM_REF, at=LATER) is None
    assert entry.lapse(by=SYSTEM_REF, at=EXPIRES) == SLOT
    assert new_events(entry) == ["OfferLapsed"]
    assert entry.status == "waiting" and not entry.wants(SLOT, FRIDAY)


def test_answering_without_an_offer_is_refused():
    with pytest.raises(NoOpenOffer):
        waiting().decline(by=ADA_REF, at=LATER)


def test_leaving_with_an_offer_hands_the_slot_back():
    entry = offered()
    assert entry.leave(by=ADA_REF, at=LATER) == SLOT
    assert entry.leave(by=ADA_REF, at=LATER) is None
    assert new_events(entry) == ["Left"]


def test_a_slot_is_offered_to_one_patient_at_a_time():
    guard = SlotOffer(clinician_id=PATEL, starts_at=SLOT.starts_at, by=SYSTEM_REF, at=MORNING)
    first, second = waiting(ADA), waiting(GRACE)
    guard.open(first.id, by=SYSTEM_REF, at=MORNING)
    guard.open(first.id, by=SYSTEM_REF, at=MORNING)
    with pytest.raises(SlotAlreadyOffered):
        guard.open(second.id, by=SYSTEM_REF, at=MORNING)
    guard.close(second.id, "lapsed", by=SYSTEM_REF, at=LATER)  # not the open one: nothing
    guard.close(first.id, "lapsed", by=SYSTEM_REF, at=LATER)
    guard.open(second.id, by=SYSTEM_REF, at=LATER)
    assert new_events(guard) == ["Created", "Opened", "Closed", "Opened"]


def test_the_slot_guard_of_a_slot_is_always_the_same_stream():
    one = SlotOffer(clinician_id=PATEL, starts_at=SLOT.starts_at, by=SYSTEM_REF, at=MORNING)
    two = SlotOffer(clinician_id=PATEL, starts_at=SLOT.starts_at, by=SYSTEM_REF, at=LATER)
    assert one.id == two.id


def test_a_request_names_every_wrong_field():
    with pytest.raises(InvalidInput) as refused:
        check_request(date(2026, 11, 1), date(2026, 10, 1), today=date(2026, 11, 23))
    assert {e.field for e in refused.value.errors} == {"date_from", "date_to"}
    with pytest.raises(InvalidInput):
        check_request(date(2026, 11, 23), date(2027, 11, 23), today=date(2026, 11, 23))
