"""What booking needs to know about the clinic network's reference data, as plain values.

The scheduling context (clinics, rooms, consultation types, clinicians, working patterns) owns
this data and its history; the appointments context and availability search read it through
`ScheduleSource`. Keeping the seam this narrow lets booking be tested against
`StaticSchedule`, and lets the reference data change shape without touching booking.

Times: a `Session` carries aware UTC datetimes, computed from a working pattern's local wall
times in the clinic's zone, so a 09:00 session is at 09:00 in London on both sides of a clock
change. A day is always the clinic's local calendar day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Protocol
from uuid import UUID
from zoneinfo import ZoneInfo


class Mode(StrEnum):
    IN_PERSON = "in_person"
    VIDEO = "video"


@dataclass(frozen=True)
class CancellationPolicy:
    """A clinic's rules for patients changing their bookings."""

    free_cancellation_hours: int = 24  # cancelling later than this before the start is "late"
    reschedule_notice_hours: int = 24  # rescheduling needs at least this much notice
    max_reschedules: int = 2  # per appointment


@dataclass(frozen=True)
class OpeningHours:
    weekday: int  # 0 = Monday
    opens: time
    closes: time


@dataclass(frozen=True)
class ClinicInfo:
    clinic_id: str  # a slug, the same ids staff accounts carry ("riverside")
    name: str
    address_lines: tuple[str, ...]
    town: str
    postcode: str
    timezone: str  # IANA zone, e.g. "Europe/London"
    opening_hours: tuple[OpeningHours, ...] = ()
    policy: CancellationPolicy = field(default_factory=CancellationPolicy)
    phone: str | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True)
class RoomInfo:
    room_id: str  # slug, unique within the network ("riverside-room-1")
    clinic_id: str
    kind: str  # e.g. consulting, treatment, vaccination
    name: str


@dataclass(frozen=True)
class ConsultationTypeInfo:
    type_id: str  # slug ("gp-in-person", "video", "follow-up", "screening", "flu-vaccination")
    name: str
    mode: Mode
    duration_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    preparation: str = ""  # instructions shown to the patient on confirmation
    room_kind: str | None = None  # None: no room needed (video)
    capacity_per_slot: int = 1  # vaccination sessions take several patients per slot

    @property
    def occupies(self) -> timedelta:
        """How long the clinician is taken, buffers included."""
        return timedelta(minutes=self.buffer_before_minutes + self.duration_minutes
                         + self.buffer_after_minutes)


@dataclass(frozen=True)
class ClinicianInfo:
    account_id: UUID  # the clinician's staff account
    display_name: str  # e.g. "Dr Asha Patel"
    specialty: str  # e.g. "general practice"
    languages: tuple[str, ...]  # BCP 47 codes, e.g. ("en", "hi")
    clinic_ids: tuple[str, ...]
    consultation_type_ids: tuple[str, ...]
    profile: str = ""  # a short public profile


@dataclass(frozen=True)
class Session:
    """One block of a clinician's working time on one day, cut into equal slots."""

    clinician_id: UUID
    clinic_id: str
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    slot_minutes: int
    consultation_type_ids: tuple[str, ...]
    room_id: str | None = None  # a fixed room for the whole session, if the pattern says so

    def slot_starts(self) -> list[datetime]:
        step = timedelta(minutes=self.slot_minutes)
        starts, at = [], self.starts_at
        while at + step <= self.ends_at:
            starts.append(at)
            at += step
        return starts


class ScheduleSource(Protocol):
    """How booking and availability read the reference data (the scheduling context)."""

    def clinic(self, clinic_id: str) -> ClinicInfo | None: ...

    def clinics(self) -> list[ClinicInfo]: ...

    def consultation_type(self, type_id: str) -> ConsultationTypeInfo | None: ...

    def consultation_types(self) -> list[ConsultationTypeInfo]: ...

    def clinician(self, account_id: UUID) -> ClinicianInfo | None: ...

    def clinicians(self) -> list[ClinicianInfo]: ...

    def rooms(self, clinic_id: str, kind: str | None = None) -> list[RoomInfo]: ...

    def sessions(self, clinician_id: UUID, day: date) -> list[Session]:
        """The clinician's sessions on a clinic-local calendar day: the working pattern in
        force that day, less leave and bank holidays, plus extra sessions."""
        ...


@dataclass
class StaticSchedule:
    """A `ScheduleSource` held in memory: for tests, benchmarks and the demo."""

    clinic_list: list[ClinicInfo] = field(default_factory=list)
    type_list: list[ConsultationTypeInfo] = field(default_factory=list)
    clinician_list: list[ClinicianInfo] = field(default_factory=list)
    room_list: list[RoomInfo] = field(default_factory=list)
    # clinician -> weekday -> [(clinic, local start, local end, slot minutes, types, room)]
    weekly: dict[UUID, dict[int, list[tuple[str, time, time, int, tuple[str, ...], str | None]]]] \
        = field(default_factory=dict)
    days_off: dict[UUID, set[date]] = field(default_factory=dict)

    def clinic(self, clinic_id: str) -> ClinicInfo | None:
        return next((c for c in self.clinic_list if c.clinic_id == clinic_id), None)

    def clinics(self) -> list[ClinicInfo]:
        return list(self.clinic_list)

    def consultation_type(self, type_id: str) -> ConsultationTypeInfo | None:
        return next((t for t in self.type_list if t.type_id == type_id), None)

    def consultation_types(self) -> list[ConsultationTypeInfo]:
        return list(self.type_list)

    def clinician(self, account_id: UUID) -> ClinicianInfo | None:
        return next((c for c in self.clinician_list if c.account_id == account_id), None)

    def clinicians(self) -> list[ClinicianInfo]:
        return list(self.clinician_list)

    def rooms(self, clinic_id: str, kind: str | None = None) -> list[RoomInfo]:
        return [r for r in self.room_list
                if r.clinic_id == clinic_id and (kind is None or r.kind == kind)]

    def sessions(self, clinician_id: UUID, day: date) -> list[Session]:
        if day in self.days_off.get(clinician_id, set()):
            return []
        result = []
        for clinic_id, start, end, slot, types, room in \
                self.weekly.get(clinician_id, {}).get(day.weekday(), []):
            clinic = self.clinic(clinic_id)
            if clinic is None:
                continue
            result.append(Session(clinician_id, clinic_id, local_to_utc(day, start, clinic.zone),
                                  local_to_utc(day, end, clinic.zone), slot, types, room))
        return result


def local_to_utc(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """A clinic's wall-clock time on a day, in UTC. A time that does not exist (skipped by the
    spring clock change) moves forward by the gap; a repeated one (autumn) takes the first."""
    # zoneinfo gives fold=0 the offset in force before a transition: a skipped time comes out
    # one hour later on the wall clock, and a repeated time is its first occurrence.
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def local_day(at: datetime, zone: ZoneInfo) -> date:
    return at.astimezone(zone).date()


@dataclass(frozen=True)
class Occupancy:
    """Time already taken from a clinician (or a room): a booking, or a hold still running."""

    starts_at: datetime  # UTC, the slot start
    ends_at: datetime  # UTC, start plus the type's duration and buffers
    type_id: str
    room_id: str | None = None


def fits(existing: list[Occupancy], kind: ConsultationTypeInfo, start: datetime) -> bool:
    """Whether one more booking of `kind` starting at `start` fits beside `existing` (the
    active bookings and holds of one clinician, or of one room). Nothing may overlap, except
    that a group type (capacity above one) takes up to its capacity at the same start.

    The single rule both booking (which enforces it inside an aggregate) and availability
    search (which shows what it allows) use."""
    end = start + kind.occupies
    in_group = 0
    for taken in existing:
        if taken.starts_at < end and start < taken.ends_at:
            if (kind.capacity_per_slot > 1 and taken.type_id == kind.type_id
                    and taken.starts_at == start):
                in_group += 1
            else:
                return False
    return in_group < kind.capacity_per_slot
