"""The waitlist: patients waiting for an earlier appointment, and the offers of freed slots.

These event types are the storage format and are versioned with care. A `WaitlistEntry` is one
patient waiting for a clinician (or any clinician of a consultation type) at a clinic within a
range of days. A `SlotOffer` is the guard that keeps one freed slot offered to one patient at
a time: its stream id is the slot itself, so two process managers offering the same slot at
once conflict on its version and only one offer is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput
from domain.ids import stream_id

LONGEST_WAIT = timedelta(days=183)  # a waitlist entry covers at most about six months


class Urgency(StrEnum):
    URGENT = "urgent"
    SOON = "soon"
    ROUTINE = "routine"


# Offers go to the most urgent patient first, then to whoever joined first.
URGENCY_RANK = {Urgency.URGENT: 0, Urgency.SOON: 1, Urgency.ROUTINE: 2}


@dataclass(frozen=True)
class FreedSlot:
    """A slot that became free: who, what, where and when (UTC)."""

    clinician_id: UUID
    clinic_id: str
    consultation_type_id: str
    starts_at: datetime

    @property
    def key(self) -> str:
        return f"{self.clinician_id}/{self.starts_at.isoformat()}"


def slot_offer_id(clinician_id: UUID, starts_at: datetime) -> UUID:
    return stream_id("slot-offer", clinician_id, starts_at.isoformat())


class NotOnWaitlist(Conflict):
    code = "not-on-waitlist"
    title = "This waitlist entry is no longer waiting"


class NoOpenOffer(Conflict):
    code = "no-open-offer"
    title = "There is no offer to answer"


class OfferExpired(Conflict):
    code = "offer-expired"
    title = "The offer has expired"


class SlotAlreadyOffered(Conflict):
    code = "slot-already-offered"
    title = "This slot is already offered to someone"


def check_request(date_from: date, date_to: date, today: date) -> None:
    """Every problem with a request to join, at once."""
    errors = []
    if date_from < today:
        errors.append(FieldError("date_from", "Choose today or a later day."))
    if date_to < date_from:
        errors.append(FieldError("date_to", "Choose a day on or after the first day."))
    elif date_to - date_from > LONGEST_WAIT:
        errors.append(FieldError("date_to", "A waitlist entry can cover at most six months."))
    if errors:
        raise InvalidInput(errors)


class WaitlistEntry(CareAggregate):
    """One patient waiting for an earlier appointment."""

    TOPIC = topic("waitlist", "WaitlistEntry")

    @event("Created", topic=topic("waitlist", "WaitlistEntry.Joined"))
    def __init__(self, patient_id: UUID, clinic_id: str, clinician_id: UUID | None,
                 consultation_type_id: str, date_from: date, date_to: date, urgency: str,
                 by: str, at: datetime) -> None:
        self.patient_id, self.clinic_id, self.clinician_id = patient_id, clinic_id, clinician_id
        self.consultation_type_id = consultation_type_id
        self.date_from, self.date_to, self.urgency = date_from, date_to, Urgency(urgency)
        self.joined_at = at
        self.status = "waiting"  # waiting | offered | fulfilled | left
        self.offer: FreedSlot | None = None
        self.offer_expires_at: datetime | None = None
        self.passed: set[str] = set()  # slots this patient declined or let lapse
        self.appointment_id: UUID | None = None

    def wants(self, slot: FreedSlot, day: date) -> bool:
        """Is this entry waiting for this slot (`day` is the slot's clinic-local day)?"""
        return (self.status == "waiting" and slot.key not in self.passed
                and slot.clinic_id == self.clinic_id
                and slot.consultation_type_id == self.consultation_type_id
                and self.clinician_id in (None, slot.clinician_id)
                and self.date_from <= day <= self.date_to)

    # ---- offers --------------------------------------------------------------------------

    def offer_slot(self, slot: FreedSlot, expires_at: datetime, by: str, at: datetime) -> None:
        if self.status == "offered" and self.offer == slot:
            return  # offered already: a repeated decision records nothing
        if self.status != "waiting":
            raise NotOnWaitlist("This patient is not waiting for an appointment.")
        self._offered(clinician_id=slot.clinician_id, clinic_id=slot.clinic_id,
                      consultation_type_id=slot.consultation_type_id, starts_at=slot.starts_at,
                      offer_expires_at=expires_at, by=by, at=at)

    @event("Offered", topic=topic("waitlist", "WaitlistEntry.Offered"))
    def _offered(self, clinician_id: UUID, clinic_id: str, consultation_type_id: str,
                 starts_at: datetime, offer_expires_at: datetime, by: str, at: datetime) -> None:
        self.status = "offered"
        self.offer = FreedSlot(clinician_id, clinic_id, consultation_type_id, starts_at)
        self.offer_expires_at = offer_expires_at

    def open_offer(self, at: datetime) -> FreedSlot:
        """The slot offered now; refuses when there is none or it has run out."""
        if self.status != "offered" or self.offer is None:
            raise NoOpenOffer("There is no appointment on offer for this waitlist entry.")
        if self.offer_expires_at is not None and at >= self.offer_expires_at:
            raise OfferExpired("The time to take this appointment has run out. You stay on "
                               "the waiting list.")
        return self.offer

    def accept(self, appointment_id: UUID, by: str, at: datetime) -> None:
        if self.status == "fulfilled" and self.appointment_id == appointment_id:
            return
        self.open_offer(at)
        self._accepted(appointment_id=appointment_id, by=by, at=at)
        self._fulfilled(by=by, at=at)

    @event("OfferAccepted", topic=topic("waitlist", "WaitlistEntry.OfferAccepted"))
    def _accepted(self, appointment_id: UUID, by: str, at: datetime) -> None:
        self.appointment_id = appointment_id

    @event("Fulfilled", topic=topic("waitlist", "WaitlistEntry.Fulfilled"))
    def _fulfilled(self, by: str, at: datetime) -> None:
        self.status = "fulfilled"
        self.offer, self.offer_expires_at = None, None

    def decline(self, by: str, at: datetime) -> FreedSlot:
        slot = self.open_offer(at)
        self._declined(by=by, at=at)
        return slot

    @event("OfferDeclined", topic=topic("waitlist", "WaitlistEntry.OfferDeclined"))
    def _declined(self, by: str, at: datetime) -> None:
        self._pass_on()

    def lapse(self, by: str, at: datetime) -> FreedSlot | None:
        """Records that an offer ran out; returns the slot to pass on (None if nothing lapsed)."""
        if self.status != "offered" or self.offer is None or self.offer_expires_at is None \
                or at < self.offer_expires_at:
            return None
        slot = self.offer
        self._lapsed(by=by, at=at)
        return slot

    @event("OfferLapsed", topic=topic("waitlist", "WaitlistEntry.OfferLapsed"))
    def _lapsed(self, by: str, at: datetime) -> None:
        self._pass_on()

    def _pass_on(self) -> None:
        if self.offer is not None:
            self.passed.add(self.offer.key)
        self.status, self.offer, self.offer_expires_at = "waiting", None, None

    def withdraw_offer(self, by: str, at: datetime) -> None:
        """The offered slot was taken by someone else: the patient waits on."""
        if self.status == "offered":
            self._withdrawn(by=by, at=at)

    @event("OfferWithdrawn", topic=topic("waitlist", "WaitlistEntry.OfferWithdrawn"))
    def _withdrawn(self, by: str, at: datetime) -> None:
        self._pass_on()

    # ---- leaving -------------------------------------------------------------------------

    def leave(self, by: str, at: datetime) -> FreedSlot | None:
        """Leaves the list; returns an open offer's slot, which passes on to the next."""
        if self.status == "left":
            return None
        if self.status == "fulfilled":
            raise NotOnWaitlist("This waitlist entry has already been turned into a booking.")
        slot = self.offer if self.status == "offered" else None
        self._left(by=by, at=at)
        return slot

    @event("Left", topic=topic("waitlist", "WaitlistEntry.Left"))
    def _left(self, by: str, at: datetime) -> None:
        self.status, self.offer, self.offer_expires_at = "left", None, None


class SlotOffer(CareAggregate):
    """The one open offer of one freed slot. Its version is what concurrent offers fight over."""

    TOPIC = topic("waitlist", "SlotOffer")

    @event("Created", topic=topic("waitlist", "SlotOffer.Created"))
    def __init__(self, clinician_id: UUID, starts_at: datetime, by: str, at: datetime) -> None:
        self.clinician_id, self.starts_at = clinician_id, starts_at
        self.open_entry_id: UUID | None = None

    @classmethod
    def create_id(cls, clinician_id: UUID, starts_at: datetime, **_: object) -> UUID:
        return slot_offer_id(clinician_id, starts_at)

    def open(self, entry_id: UUID, by: str, at: datetime) -> None:
        if self.open_entry_id == entry_id:
            return
        if self.open_entry_id is not None:
            raise SlotAlreadyOffered("This slot is already on offer to another patient.")
        self._opened(entry_id=entry_id, by=by, at=at)

    @event("Opened", topic=topic("waitlist", "SlotOffer.Opened"))
    def _opened(self, entry_id: UUID, by: str, at: datetime) -> None:
        self.open_entry_id = entry_id

    def close(self, entry_id: UUID, outcome: str, by: str, at: datetime) -> None:
        """Closes the open offer (accepted, declined, lapsed, withdrawn, left)."""
        if self.open_entry_id != entry_id:
            return
        self._closed(entry_id=entry_id, outcome=outcome, by=by, at=at)

    @event("Closed", topic=topic("waitlist", "SlotOffer.Closed"))
    def _closed(self, entry_id: UUID, outcome: str, by: str, at: datetime) -> None:
        self.open_entry_id = None
