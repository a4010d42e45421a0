"""A small clinic network and a stand-in for booking, for waitlist and reminder tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import psycopg

from commands.idempotency import IdempotencyKey, Outcome
from commands.identity import NewAccount
from domain.access import Actor
from domain.errors import Conflict
from domain.identity import Role
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    StaticSchedule,
)
from domain.waitlist import Urgency

from .support import MONDAY

PATEL = UUID("00000000-0000-4000-8000-00000000da7e")
FRIDAY_TEN = datetime(2026, 11, 27, 10, 0, tzinfo=MONDAY.tzinfo)  # Riverside is on UTC in winter
GP = ConsultationTypeInfo("gp-in-person", "GP appointment", Mode.IN_PERSON, 15,
                          room_kind="consulting")
VIDEO = ConsultationTypeInfo("video", "Video consultation", Mode.VIDEO, 15)
SCHEDULE = StaticSchedule(
    clinic_list=[ClinicInfo("riverside", "Riverside Surgery", ("1 River Road",), "Riverton",
                            "RV1 1AA", "Europe/London")],
    type_list=[GP, VIDEO],
    clinician_list=[ClinicianInfo(PATEL, "Dr Asha Patel", "general practice", ("en",),
                                  ("riverside",), ("gp-in-person", "video"))],
    weekly={PATEL: {d: [("riverside", time(9), time(12), 15, ("gp-in-person", "video"), None)]
                    for d in range(5)}},
)


@dataclass
class FakeBooking:
    """Books by writing the booking lookup row, as the appointments context does; refuses a
    slot that is already taken."""

    url: str
    booked: list[tuple[UUID, datetime]] = field(default_factory=list)

    def book(self, actor: Actor, patient_id: UUID, clinician_id: UUID, type_id: str,
             starts_at: datetime, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        with psycopg.connect(self.url, autocommit=True) as conn:
            taken = conn.execute(
                "SELECT 1 FROM carebridge.slot_bookings WHERE clinician_id = %s"
                " AND starts_at = %s AND status = 'booked'", (clinician_id, starts_at)).fetchone()
            if taken:
                raise Conflict("That time has just been booked.")
        appointment_id = slot_booking(self.url, patient_id, starts_at, status="booked",
                                      type_id=type_id)
        self.booked.append((patient_id, starts_at))
        return Outcome({"appointment_id": str(appointment_id)}, None)


def slot_booking(url: str, patient_id: UUID, starts_at: datetime, status: str = "booked",
                 type_id: str = "gp-in-person", room_id: str | None = "riverside-room-1",
                 appointment_id: UUID | None = None) -> UUID:
    appointment_id = appointment_id or uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO carebridge.slot_bookings (appointment_id, patient_id, clinician_id,"
            " clinic_id, room_id, consultation_type_id, starts_at, ends_at, status,"
            " updated_at) VALUES (%s, %s, %s, 'riverside', %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (appointment_id) DO UPDATE SET status = excluded.status,"
            " starts_at = excluded.starts_at, ends_at = excluded.ends_at",
            (appointment_id, patient_id, PATEL, room_id, type_id, starts_at,
             starts_at + timedelta(minutes=15), status, MONDAY))
    return appointment_id


def event(appointment_id: UUID, at: datetime, **fields: Any) -> Any:
    """An appointments event as the follower receives it (only the fields it reads)."""
    return SimpleNamespace(originator_id=appointment_id, by="system", at=at, **fields)


def patient(container: Any, name: str = "Grace") -> Actor:
    outcome = container.identity.register_patient(NewAccount(
        f"{name.lower()}.{uuid.uuid4().hex[:6]}@patients.test", "a long enough passphrase",
        name, "Hopper", date(1960, 1, 1)), at=MONDAY)
    return Actor(UUID(outcome.result["account_id"]), Role.PATIENT)


def join(container: Any, who: Actor, urgency: Urgency = Urgency.ROUTINE,
         at: datetime = MONDAY, clinician_id: UUID | None = PATEL) -> UUID:
    outcome = container.waitlist.join(who, who.account_id, "riverside", clinician_id,
                                      "gp-in-person", date(2026, 11, 23), date(2026, 11, 30),
                                      urgency, at=at)
    return UUID(outcome.result["entry_id"])
