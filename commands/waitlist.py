"""The waitlist context: patients join and leave it, and a process manager offers freed slots.

The process manager follows the appointments log (see `WaitlistFollower`): when a slot frees
(a cancellation, a lapsed hold, the old time of a moved appointment) it offers the slot to the
first eligible patient, most urgent first, then whoever joined first. An offer runs for
`offer_minutes`; declining or letting it lapse passes the slot to the next patient. The
`SlotOffer` aggregate keeps one open offer per slot, so concurrent managers never offer one
slot twice. Handling is at-least-once and idempotent: an event handled again finds its offer
already open and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import Decision, IdempotencyKey, IdempotencyStore, Outcome, run_once
from commands.outbox import Message, enqueue
from domain.access import SYSTEM, Action, Actor, PatientResource, authorise
from domain.errors import ConcurrentChange, Conflict, FieldError, InvalidInput, NotFound
from domain.schedule_types import Occupancy, ScheduleSource, fits, local_day
from domain.waitlist import (
    URGENCY_RANK,
    FreedSlot,
    SlotOffer,
    Urgency,
    WaitlistEntry,
    check_request,
    slot_offer_id,
)

log = logging.getLogger("carebridge.waitlist")

ENTRIES = "carebridge.waitlist_entries"
SLOT_BOOKINGS = "carebridge.slot_bookings"


def appointment_topic(name: str) -> str:
    return f"carebridge:appointments.Appointment.{name}.v1"


CANCELLED = appointment_topic("Cancelled")
HOLD_LAPSED = appointment_topic("HoldLapsed")
RESCHEDULED = appointment_topic("Rescheduled")
FREEING_TOPICS = (CANCELLED, HOLD_LAPSED, RESCHEDULED)


class SlotTaken(Conflict):
    code = "slot-taken"
    title = "This appointment has just been taken"


class Booking(Protocol):
    """What the waitlist needs of the appointments context."""

    def book(self, actor: Actor, patient_id: UUID, clinician_id: UUID, type_id: str,
             starts_at: datetime, at: datetime, key: IdempotencyKey | None = None) -> Outcome: ...


class Relationships(Protocol):
    def relationship(self, actor: Actor, patient_id: UUID, at: datetime) -> Any: ...


class Accounts(Protocol):
    def find_account(self, account_id: UUID) -> Any: ...


class WaitlistApplication(CareApplication):
    name = "waitlist"

    def __init__(self, store: EventStoreSettings, offer_minutes: int = 30) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.offer_minutes = offer_minutes
        self._schedule: ScheduleSource | None = None
        self.booking: Booking | None = None
        self.accounts: Accounts | None = None
        self.relationships: Relationships | None = None

    def connect(self, schedule: ScheduleSource | None, booking: Booking | None,
                accounts: Accounts | None, relationships: Relationships | None = None) -> None:
        """Wires the contexts the waitlist reads and commands (built after it). Without a
        schedule of its own, the waitlist reads the one booking uses."""
        self._schedule, self.booking = schedule, booking
        self.accounts, self.relationships = accounts, relationships

    @property
    def schedule(self) -> ScheduleSource | None:
        return self._schedule or getattr(self.booking, "schedule", None)

    # ---- patients ------------------------------------------------------------------------

    def _authorise(self, actor: Actor, patient_id: UUID, at: datetime) -> None:
        relationship = (self.relationships.relationship(actor, patient_id, at)
                        if self.relationships and actor.account_id != patient_id else None)
        authorise(actor, Action.APPOINTMENTS_BOOK, PatientResource(patient_id, relationship))

    def join(self, actor: Actor, patient_id: UUID, clinic_id: str, clinician_id: UUID | None,
             consultation_type_id: str, date_from: date, date_to: date, urgency: Urgency,
             at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        self._authorise(actor, patient_id, at)

        def decide() -> tuple[dict[str, Any], list[Any]]:
            clinic = self.schedule.clinic(clinic_id) if self.schedule else None
            errors = []
            if clinic is None:
                errors.append(FieldError("clinic_id", "There is no clinic with this id."))
            if self.schedule and self.schedule.consultation_type(consultation_type_id) is None:
                errors.append(FieldError("consultation_type_id",
                                         "There is no consultation type with this id."))
            if clinician_id is not None and self.schedule and \
                    self.schedule.clinician(clinician_id) is None:
                errors.append(FieldError("clinician_id", "There is no clinician with this id."))
            if errors:
                raise InvalidInput(errors)
            assert clinic is not None
            check_request(date_from, date_to, local_day(at, clinic.zone))
            entry = WaitlistEntry(patient_id=patient_id, clinic_id=clinic_id,
                                  clinician_id=clinician_id,
                                  consultation_type_id=consultation_type_id, date_from=date_from,
                                  date_to=date_to, urgency=urgency.value, by=actor.ref, at=at)
            return _view(entry), [entry]

        return run_once(self, self.idempotency, key, _with_rows(decide))

    def leave(self, actor: Actor, entry_id: UUID, at: datetime,
              key: IdempotencyKey | None = None) -> Outcome:
        entry = self._entry_of(actor, entry_id, at)
        freed: list[FreedSlot] = []

        def decide() -> tuple[dict[str, Any], list[Any]]:
            current = self.entry(entry.id)
            slot = current.leave(by=actor.ref, at=at)
            touched: list[Any] = [current]
            if slot is not None:
                touched.append(self._close(current, slot, "left", actor, at))
                freed.append(slot)
            return _view(current), touched

        outcome = run_once(self, self.idempotency, key, _with_rows(decide))
        for slot in freed:
            self.offer_next(slot, at)
        return outcome

    def decline(self, actor: Actor, entry_id: UUID, at: datetime,
                key: IdempotencyKey | None = None) -> Outcome:
        entry = self._entry_of(actor, entry_id, at)
        freed: list[FreedSlot] = []

        def decide() -> tuple[dict[str, Any], list[Any]]:
            current = self.entry(entry.id)
            slot = current.decline(by=actor.ref, at=at)
            freed.append(slot)
            return _view(current), [current, self._close(current, slot, "declined", actor, at)]

        outcome = run_once(self, self.idempotency, key, _with_rows(decide))
        for slot in freed:
            self.offer_next(slot, at)
        return outcome

    def accept(self, actor: Actor, entry_id: UUID, at: datetime,
               key: IdempotencyKey | None = None) -> Outcome:
        """Books the offered slot for the patient; a slot taken meanwhile answers SlotTaken
        and the patient stays on the list."""
        entry = self._entry_of(actor, entry_id, at)
        if self.booking is None:
            raise NotFound("Booking is not available.")
        booking = self.booking

        def decide() -> tuple[dict[str, Any], list[Any]]:
            current = self.entry(entry.id)
            if current.status == "fulfilled":
                return _view(current), []
            slot = current.open_offer(at)
            book_key = IdempotencyKey("waitlist", f"accept:{current.id}:{slot.key}", slot.key)
            try:
                booked = booking.book(actor, current.patient_id, slot.clinician_id,
                                      slot.consultation_type_id, slot.starts_at, at, key=book_key)
            except Conflict as error:
                self._withdraw(current, slot, at)
                raise SlotTaken("Someone else has just taken this appointment. You stay on the "
                                "waiting list and we will tell you about the next one.") \
                    from error
            appointment_id = UUID(str(booked.result["appointment_id"]))
            current.accept(appointment_id, by=actor.ref, at=at)
            return {**_view(current), "appointment_id": str(appointment_id)}, \
                [current, self._close(current, slot, "accepted", actor, at)]

        return run_once(self, self.idempotency, key, _with_rows(decide))

    def entries(self, patient_id: UUID) -> list[dict[str, Any]]:
        """The patient's waitlist entries still waiting or holding an offer."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT entry_id, clinic_id, clinician_id, consultation_type_id, date_from,"
                f" date_to, urgency_rank, joined_at, status, offer_clinician_id, offer_starts_at,"
                f" offer_expires_at FROM {ENTRIES} WHERE patient_id = %s"
                " AND status IN ('waiting', 'offered') ORDER BY joined_at", (patient_id,)
            ).fetchall()
        ranks = {rank: urgency.value for urgency, rank in URGENCY_RANK.items()}
        return [{**row, "urgency": ranks[row["urgency_rank"]]} for row in rows]

    def entry(self, entry_id: UUID) -> WaitlistEntry:
        try:
            return self.repository.get(entry_id)
        except AggregateNotFoundError:
            raise NotFound("There is no such waitlist entry.") from None

    def _entry_of(self, actor: Actor, entry_id: UUID, at: datetime) -> WaitlistEntry:
        entry = self.entry(entry_id)
        try:
            self._authorise(actor, entry.patient_id, at)
        except Exception:
            # Someone else's entry reads as missing: an id tells a stranger nothing.
            raise NotFound("There is no such waitlist entry.") from None
        return entry

    # ---- the process manager -------------------------------------------------------------

    def handle(self, topic: str, event: Any, at: datetime) -> UUID | None:
        """Reacts to one appointments event; returns the entry that got an offer, if any."""
        if topic not in FREEING_TOPICS:
            return None
        booking = self._slot_booking(event.originator_id)
        if booking is None:
            return None
        # A moved appointment frees its old time with its old clinician (same clinic).
        moved = topic == RESCHEDULED
        slot = FreedSlot(event.from_clinician_id if moved else booking["clinician_id"],
                         booking["clinic_id"], booking["consultation_type_id"],
                         event.from_starts_at if moved else booking["starts_at"])
        return self.offer_next(slot, at)

    def tick(self, at: datetime) -> int:
        """Lapses offers that ran out and passes their slots on; returns how many lapsed."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            due = [row["entry_id"] for row in conn.execute(
                f"SELECT entry_id FROM {ENTRIES} WHERE status = 'offered'"
                " AND offer_expires_at <= %s ORDER BY offer_expires_at", (at,)).fetchall()]
        lapsed = 0
        for entry_id in due:
            entry = self.entry(entry_id)
            slot = entry.lapse(by=SYSTEM.ref, at=at)
            if slot is None:
                continue
            try:
                self.save_all(entry, self._close(entry, slot, "lapsed", SYSTEM, at),
                              also=self._row(entry))
            except ConcurrentChange:
                continue  # another manager, or the patient, got there first
            lapsed += 1
            self.offer_next(slot, at)
        return lapsed

    def offer_next(self, slot: FreedSlot, at: datetime) -> UUID | None:
        """Offers a free slot to the first eligible patient; None if nobody gets it."""
        if self.schedule is None or slot.starts_at <= at:
            return None
        kind = self.schedule.consultation_type(slot.consultation_type_id)
        clinic = self.schedule.clinic(slot.clinic_id)
        if kind is None or clinic is None:
            return None
        guard = self._slot_offer(slot) or SlotOffer(clinician_id=slot.clinician_id,
                                                    starts_at=slot.starts_at, by=SYSTEM.ref,
                                                    at=at)
        if guard.open_entry_id is not None:
            return None  # on offer already: nothing is offered twice at once
        if not fits(self._taken(slot.clinician_id, slot.starts_at, at), kind, slot.starts_at):
            return None
        entry = self._first_eligible(slot, local_day(slot.starts_at, clinic.zone))
        if entry is None:
            return None
        expires_at = at + timedelta(minutes=self.offer_minutes)
        entry.offer_slot(slot, expires_at, by=SYSTEM.ref, at=at)
        guard.open(entry.id, by=SYSTEM.ref, at=at)
        try:
            self.save_all(entry, guard, also=[*self._row(entry), *self._offer_message(entry, at)])
        except ConcurrentChange:
            log.info("waitlist: slot offer %s decided elsewhere", guard.id)
            return None
        log.info("waitlist: offered slot %s to entry %s", guard.id, entry.id)
        return entry.id

    def _first_eligible(self, slot: FreedSlot, day: date) -> WaitlistEntry | None:
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            candidates = [row["entry_id"] for row in conn.execute(
                f"SELECT entry_id FROM {ENTRIES} WHERE status = 'waiting' AND clinic_id = %s"
                " AND consultation_type_id = %s AND (clinician_id IS NULL OR clinician_id = %s)"
                " AND date_from <= %s AND date_to >= %s ORDER BY urgency_rank, joined_at"
                " LIMIT 50",
                (slot.clinic_id, slot.consultation_type_id, slot.clinician_id, day, day),
            ).fetchall()]
        for entry_id in candidates:
            entry = self.entry(entry_id)
            if entry.wants(slot, day):
                return entry
        return None

    def _taken(self, clinician_id: UUID, starts_at: datetime, at: datetime) -> list[Occupancy]:
        """The clinician's active bookings and holds around the slot."""
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                f"SELECT starts_at, ends_at, consultation_type_id, room_id FROM {SLOT_BOOKINGS}"
                " WHERE clinician_id = %s AND starts_at < %s AND ends_at > %s"
                " AND (status = 'booked' OR (status = 'held' AND hold_expires_at > %s))",
                (clinician_id, starts_at + timedelta(days=1), starts_at - timedelta(days=1), at),
            ).fetchall()
        return [Occupancy(r["starts_at"], r["ends_at"], r["consultation_type_id"], r["room_id"])
                for r in rows]

    def _slot_booking(self, appointment_id: UUID) -> dict[str, Any] | None:
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute(
                f"SELECT clinician_id, clinic_id, consultation_type_id, starts_at"
                f" FROM {SLOT_BOOKINGS} WHERE appointment_id = %s", (appointment_id,)).fetchone()
        return dict(row) if row else None

    def _slot_offer(self, slot: FreedSlot) -> SlotOffer | None:
        try:
            return self.repository.get(
                slot_offer_id(slot.clinician_id, slot.starts_at))
        except AggregateNotFoundError:
            return None

    def _close(self, entry: WaitlistEntry, slot: FreedSlot, outcome: str, actor: Actor,
               at: datetime) -> SlotOffer:
        guard = self._slot_offer(slot)
        if guard is None:  # an offer always opened its guard; kept total for safety
            guard = SlotOffer(clinician_id=slot.clinician_id, starts_at=slot.starts_at,
                              by=actor.ref, at=at)
        guard.close(entry.id, outcome, by=actor.ref, at=at)
        return guard

    def _withdraw(self, entry: WaitlistEntry, slot: FreedSlot, at: datetime) -> None:
        entry.withdraw_offer(by=SYSTEM.ref, at=at)
        try:
            self.save_all(entry, self._close(entry, slot, "taken", SYSTEM, at),
                          also=self._row(entry))
        except ConcurrentChange:
            log.info("waitlist: entry %s changed while its offer was withdrawn", entry.id)

    def _offer_message(self, entry: WaitlistEntry, at: datetime) -> list[Statement]:
        account = self.accounts.find_account(entry.patient_id) if self.accounts else None
        email = getattr(account, "email", None)
        if not email:
            return []
        return enqueue(Message("waitlist_offer", "email", entry.patient_id, email,
                               {"minutes": str(self.offer_minutes)}), at)

    @staticmethod
    def _row(*aggregates: Any) -> list[Statement]:
        """Keeps the lookup table in step with the entries saved, in the same transaction."""
        statements = []
        for entry in aggregates:
            if not isinstance(entry, WaitlistEntry):
                continue
            offer = entry.offer
            statements.append(Statement(
                f"INSERT INTO {ENTRIES} (entry_id, patient_id, clinic_id, clinician_id,"
                " consultation_type_id, date_from, date_to, urgency_rank, joined_at, status,"
                " offer_clinician_id, offer_starts_at, offer_expires_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (entry_id) DO UPDATE SET status = excluded.status,"
                " offer_clinician_id = excluded.offer_clinician_id,"
                " offer_starts_at = excluded.offer_starts_at,"
                " offer_expires_at = excluded.offer_expires_at, updated_at = excluded.updated_at",
                (entry.id, entry.patient_id, entry.clinic_id, entry.clinician_id,
                 entry.consultation_type_id, entry.date_from, entry.date_to,
                 URGENCY_RANK[entry.urgency], entry.joined_at, entry.status,
                 offer.clinician_id if offer else None, offer.starts_at if offer else None,
                 entry.offer_expires_at, entry.modified_on)))
        return statements


def _with_rows(decide: Callable[[], tuple[dict[str, Any], list[Any]]]) -> Decision:
    """A decision that also writes the lookup rows of the entries it touched."""
    def decision() -> tuple[dict[str, Any], list[Any], list[Statement]]:
        result, touched = decide()
        return result, touched, WaitlistApplication._row(*touched)
    return decision


def _view(entry: WaitlistEntry) -> dict[str, Any]:
    offer = entry.offer
    return {
        "entry_id": str(entry.id), "status": entry.status, "clinic_id": entry.clinic_id,
        "clinician_id": str(entry.clinician_id) if entry.clinician_id else None,
        "consultation_type_id": entry.consultation_type_id,
        "date_from": entry.date_from.isoformat(), "date_to": entry.date_to.isoformat(),
        "urgency": entry.urgency.value,
        "offer": None if offer is None else {
            "clinician_id": str(offer.clinician_id), "starts_at": offer.starts_at.isoformat(),
            "expires_at": entry.offer_expires_at.isoformat() if entry.offer_expires_at else None},
        "version": entry.version,
    }
