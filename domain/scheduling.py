"""The scheduling context's reference data: clinics, rooms, consultation types, clinicians and
their working patterns, each an aggregate whose every change is recorded with who and when.

Values arrive as checked value objects (`parse_*` collects every wrong field at once) and are
stored in events as plain mappings; these event types are the storage format and are
versioned with care. Setting a thing to what it already is records nothing.

`sessions_on` is the pure computation booking reads: a clinician's working pattern on one
clinic-local day, less leave and the clinic's closed days, plus extra sessions, in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Rejections
from domain.ids import stream_id
from domain.schedule_types import (
    CancellationPolicy,
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    OpeningHours,
    RoomInfo,
    Session,
    local_to_utc,
)

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*$")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MIN_SLOT, MAX_SLOT = 5, 240
MAX_CAPACITY = 500
MAX_TEXT = 2_000
MAX_LEAVE_DAYS = 366


def clinic_stream(clinic_id: str) -> UUID:
    return stream_id("clinic", clinic_id)


def room_stream(room_id: str) -> UUID:
    return stream_id("room", room_id)


def type_stream(type_id: str) -> UUID:
    return stream_id("consultation-type", type_id)


def clinician_stream(account_id: UUID) -> UUID:
    return stream_id("clinician", account_id)


def pattern_stream(account_id: UUID) -> UUID:
    return stream_id("working-pattern", account_id)


# ---- checking input ---------------------------------------------------------------------------

def check_slug(value: str, name: str, errors: Rejections) -> str:
    if not isinstance(value, str) or len(value) > 64 or not _SLUG.match(value):
        errors.add(name, "Use a short name of lower-case letters, digits and hyphens, for "
                         "example riverside or flu-vaccination.")
    return value


def _text(value: str | None, name: str, errors: Rejections, required: bool = True,
          limit: int = 200) -> str:
    text = (value or "").strip()
    if required and not text:
        errors.add(name, "This cannot be empty.")
    elif len(text) > limit:
        errors.add(name, f"Keep this to {limit} characters or fewer.")
    return text


def _int(value: int, name: str, low: int, high: int, errors: Rejections, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.add(name, f"Choose {what} from {low} to {high}.")
        return low
    return value


def parse_time(value: str, name: str, errors: Rejections) -> time:
    match = _TIME.match(value) if isinstance(value, str) else None
    if match is None:
        errors.add(name, "Give a time of day as HH:MM on the 24-hour clock, for example 09:00.")
        return time(0)
    return time(int(match.group(1)), int(match.group(2)))


def parse_weekday(value: str | int, name: str, errors: Rejections) -> int:
    if isinstance(value, str):
        word = value.strip().lower()
        for number, day in enumerate(WEEKDAYS):
            if word in (day, day[:3]):
                return number
    errors.add(name, "Give a day of the week, for example monday (or mon).")
    return 0


def parse_zone(value: str, name: str, errors: Rejections) -> str:
    try:
        if not isinstance(value, str) or value not in available_timezones():
            raise ZoneInfoNotFoundError(value)
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        errors.add(name, "Give an IANA time zone, for example Europe/London.")
    return value


def _period(starts: time, ends: time, name: str, errors: Rejections) -> None:
    if ends <= starts:
        errors.add(name, "The end must be after the start, on the same day.")


@dataclass(frozen=True)
class ClinicDetails:
    name: str
    address_lines: tuple[str, ...]
    town: str
    postcode: str
    timezone: str
    opening_hours: tuple[OpeningHours, ...]
    policy: CancellationPolicy
    phone: str | None


def parse_clinic(raw: Mapping[str, Any], errors: Rejections) -> ClinicDetails:
    """`raw` has the API's field names: name, address_lines, town, postcode, timezone,
    opening_hours [{weekday, opens, closes}], policy {...}, phone."""
    lines = tuple(_text(line, f"address_lines[{n}]", errors)
                  for n, line in enumerate(raw.get("address_lines") or []))
    if not 1 <= len(lines) <= 4:
        errors.add("address_lines", "Give one to four address lines.")
    hours = []
    for n, entry in enumerate(raw.get("opening_hours") or []):
        opens = parse_time(entry.get("opens"), f"opening_hours[{n}].opens", errors)
        closes = parse_time(entry.get("closes"), f"opening_hours[{n}].closes", errors)
        _period(opens, closes, f"opening_hours[{n}].closes", errors)
        hours.append(OpeningHours(parse_weekday(entry.get("weekday"),
                                                f"opening_hours[{n}].weekday", errors),
                                  opens, closes))
    policy_raw = raw.get("policy") or {}
    defaults = CancellationPolicy()
    policy = CancellationPolicy(
        _int(policy_raw.get("free_cancellation_hours", defaults.free_cancellation_hours),
             "policy.free_cancellation_hours", 0, 168, errors, "a number of hours"),
        _int(policy_raw.get("reschedule_notice_hours", defaults.reschedule_notice_hours),
             "policy.reschedule_notice_hours", 0, 168, errors, "a number of hours"),
        _int(policy_raw.get("max_reschedules", defaults.max_reschedules),
             "policy.max_reschedules", 0, 10, errors, "a number of reschedules"))
    phone = _text(raw.get("phone"), "phone", errors, required=False, limit=30) or None
    return ClinicDetails(
        name=_text(raw.get("name"), "name", errors), address_lines=lines,
        town=_text(raw.get("town"), "town", errors, limit=100),
        postcode=_text(raw.get("postcode"), "postcode", errors, limit=12).upper(),
        timezone=parse_zone(raw.get("timezone", ""), "timezone", errors),
        opening_hours=tuple(sorted(hours, key=lambda h: (h.weekday, h.opens))),
        policy=policy, phone=phone)


@dataclass(frozen=True)
class RoomDetails:
    clinic_id: str
    kind: str
    name: str


def parse_room(raw: Mapping[str, Any], errors: Rejections) -> RoomDetails:
    return RoomDetails(check_slug(raw.get("clinic_id", ""), "clinic_id", errors),
                       check_slug(raw.get("kind", ""), "kind", errors),
                       _text(raw.get("name"), "name", errors, limit=100))


@dataclass(frozen=True)
class TypeDetails:
    name: str
    mode: str
    duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    preparation: str
    room_kind: str | None
    capacity_per_slot: int


def parse_consultation_type(raw: Mapping[str, Any], errors: Rejections) -> TypeDetails:
    mode = raw.get("mode", "")
    if mode not in {m.value for m in Mode}:
        errors.add("mode", "Choose in_person or video.")
    room_kind = raw.get("room_kind")
    if room_kind is not None:
        check_slug(room_kind, "room_kind", errors)
        if mode == Mode.VIDEO:
            errors.add("room_kind", "A video consultation needs no room; leave this empty.")
    elif mode == Mode.IN_PERSON:
        errors.add("room_kind", "Say which kind of room an in-person consultation needs, for "
                                "example consulting.")
    return TypeDetails(
        name=_text(raw.get("name"), "name", errors, limit=100), mode=mode,
        duration_minutes=_int(raw.get("duration_minutes", 0), "duration_minutes", 5, 480,
                              errors, "a duration in minutes"),
        buffer_before_minutes=_int(raw.get("buffer_before_minutes", 0), "buffer_before_minutes",
                                   0, 120, errors, "a number of minutes"),
        buffer_after_minutes=_int(raw.get("buffer_after_minutes", 0), "buffer_after_minutes",
                                  0, 120, errors, "a number of minutes"),
        preparation=_text(raw.get("preparation"), "preparation", errors, required=False,
                          limit=MAX_TEXT),
        room_kind=room_kind,
        capacity_per_slot=_int(raw.get("capacity_per_slot", 1), "capacity_per_slot", 1,
                               MAX_CAPACITY, errors, "a number of patients"))


@dataclass(frozen=True)
class ProfileDetails:
    display_name: str
    specialty: str
    languages: tuple[str, ...]
    clinic_ids: tuple[str, ...]
    consultation_type_ids: tuple[str, ...]
    profile: str


def parse_profile(raw: Mapping[str, Any], errors: Rejections) -> ProfileDetails:
    languages = tuple(dict.fromkeys(raw.get("languages") or []))
    if not languages or any(not isinstance(x, str) or not _LANGUAGE.match(x) for x in languages):
        errors.add("languages", "Give at least one language as a code, for example en or hi.")
    clinics = tuple(dict.fromkeys(check_slug(c, "clinic_ids", errors)
                                  for c in raw.get("clinic_ids") or []))
    if not clinics:
        errors.add("clinic_ids", "Name at least one clinic the clinician works at.")
    types = tuple(dict.fromkeys(check_slug(t, "consultation_type_ids", errors)
                                for t in raw.get("consultation_type_ids") or []))
    if not types:
        errors.add("consultation_type_ids", "Name at least one consultation type.")
    return ProfileDetails(
        display_name=_text(raw.get("display_name"), "display_name", errors, limit=100),
        specialty=_text(raw.get("specialty"), "specialty", errors, limit=100).lower(),
        languages=languages, clinic_ids=clinics, consultation_type_ids=types,
        profile=_text(raw.get("profile"), "profile", errors, required=False, limit=MAX_TEXT))


@dataclass(frozen=True)
class SessionTimes:
    """One session of a working pattern (weekday set) or an extra session (day set)."""

    starts: time
    ends: time
    clinic_id: str
    slot_minutes: int
    consultation_type_ids: tuple[str, ...]
    room_id: str | None = None
    weekday: int | None = None
    day: date | None = None

    def stored(self) -> dict[str, Any]:
        values = asdict(self)
        values.update(starts=self.starts.strftime("%H:%M"), ends=self.ends.strftime("%H:%M"),
                      consultation_type_ids=list(self.consultation_type_ids),
                      day=self.day.isoformat() if self.day else None)
        return values

    @classmethod
    def from_stored(cls, values: Mapping[str, Any]) -> SessionTimes:
        return cls(time.fromisoformat(values["starts"]), time.fromisoformat(values["ends"]),
                   values["clinic_id"], values["slot_minutes"],
                   tuple(values["consultation_type_ids"]), values.get("room_id"),
                   values.get("weekday"),
                   date.fromisoformat(values["day"]) if values.get("day") else None)


def parse_session(raw: Mapping[str, Any], name: str, errors: Rejections,
                  weekly: bool) -> SessionTimes:
    """`raw`: weekday (weekly) or day (extra), starts, ends, clinic_id, slot_minutes,
    consultation_type_ids, room_id (optional). Field names come out as `name.field`."""
    starts = parse_time(raw.get("starts", ""), f"{name}.starts", errors)
    ends = parse_time(raw.get("ends", ""), f"{name}.ends", errors)
    _period(starts, ends, f"{name}.ends", errors)
    weekday = parse_weekday(raw.get("weekday", ""), f"{name}.weekday", errors) if weekly \
        else None
    day = raw.get("day") if not weekly else None
    if not weekly and not isinstance(day, date):
        errors.add(f"{name}.day", "Give the date as YYYY-MM-DD.")
        day = None
    types = tuple(dict.fromkeys(check_slug(t, f"{name}.consultation_type_ids", errors)
                                for t in raw.get("consultation_type_ids") or []))
    if not types:
        errors.add(f"{name}.consultation_type_ids", "Name at least one consultation type.")
    room = raw.get("room_id")
    return SessionTimes(
        starts, ends, check_slug(raw.get("clinic_id", ""), f"{name}.clinic_id", errors),
        _int(raw.get("slot_minutes", 0), f"{name}.slot_minutes", MIN_SLOT, MAX_SLOT, errors,
             "a slot length in minutes"),
        types, check_slug(room, f"{name}.room_id", errors) if room is not None else None,
        weekday, day)


def check_no_overlap(sessions: Sequence[SessionTimes], name: str, errors: Rejections) -> None:
    """A clinician cannot be in two sessions at once: sessions on one day may not overlap."""
    by_day: dict[object, list[tuple[int, SessionTimes]]] = {}
    for n, session in enumerate(sessions):
        by_day.setdefault(session.weekday if session.day is None else session.day,
                          []).append((n, session))
    for same_day in by_day.values():
        same_day.sort(key=lambda item: item[1].starts)
        for (_, earlier), (n, later) in pairwise(same_day):
            if later.starts < earlier.ends:
                errors.add(f"{name}[{n}].starts", "This overlaps another session that day.")


@dataclass(frozen=True)
class PatternPeriod:
    """The weekly sessions in force from `valid_from` until `valid_until` (inclusive, or open)."""

    valid_from: date
    valid_until: date | None
    sessions: tuple[SessionTimes, ...]

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)


def check_validity(valid_from: date, valid_until: date | None, errors: Rejections,
                   name: str = "valid_until") -> None:
    if valid_until is not None and valid_until < valid_from:
        errors.add(name, "The last day must not be before the first day.")


@dataclass(frozen=True)
class Leave:
    first_day: date
    last_day: date
    reason: str


def parse_leave(first_day: date, last_day: date, reason: str, errors: Rejections) -> Leave:
    if last_day < first_day:
        errors.add("last_day", "The last day of leave must not be before the first day.")
    elif (last_day - first_day).days >= MAX_LEAVE_DAYS:
        errors.add("last_day", "Record leave of at most a year at a time.")
    return Leave(first_day, last_day, _text(reason, "reason", errors, required=False,
                                            limit=100))


# ---- aggregates ---------------------------------------------------------------------------------

class Clinic(CareAggregate):
    """One clinic of the network: its details, policy and closed days (bank holidays)."""

    TOPIC = topic("scheduling", "Clinic")

    @event("Created", topic=topic("scheduling", "Clinic.Created"))
    def __init__(self, clinic_id: str, by: str, at: datetime) -> None:
        self.clinic_id = clinic_id
        self.details: ClinicDetails | None = None
        self.closures: dict[date, str] = {}

    @classmethod
    def create_id(cls, clinic_id: str, **_: object) -> UUID:
        return clinic_stream(clinic_id)

    def set_details(self, details: ClinicDetails, by: str, at: datetime) -> bool:
        if details == self.details:
            return False
        stored = asdict(details)
        stored["opening_hours"] = [
            {"weekday": h.weekday, "opens": h.opens.strftime("%H:%M"),
             "closes": h.closes.strftime("%H:%M")} for h in details.opening_hours]
        self._details_set(details=stored, by=by, at=at)
        return True

    @event("DetailsSet", topic=topic("scheduling", "Clinic.DetailsSet"))
    def _details_set(self, details: dict[str, Any], by: str, at: datetime) -> None:
        self.details = ClinicDetails(
            details["name"], tuple(details["address_lines"]), details["town"],
            details["postcode"], details["timezone"],
            tuple(OpeningHours(h["weekday"], time.fromisoformat(h["opens"]),
                               time.fromisoformat(h["closes"]))
                  for h in details["opening_hours"]),
            CancellationPolicy(**details["policy"]), details["phone"])

    def close_on(self, days: Sequence[date], reason: str, by: str, at: datetime) -> bool:
        """Closes the clinic on these days (bank holidays); days already closed are skipped."""
        new = sorted(set(days) - self.closures.keys())
        if not new:
            return False
        self._closed(days=new, reason=reason, by=by, at=at)
        return True

    @event("Closed", topic=topic("scheduling", "Clinic.Closed"))
    def _closed(self, days: list[date], reason: str, by: str, at: datetime) -> None:
        self.closures = {**self.closures, **{day: reason for day in days}}

    def info(self) -> ClinicInfo | None:
        d = self.details
        if d is None:
            return None
        return ClinicInfo(self.clinic_id, d.name, d.address_lines, d.town, d.postcode,
                          d.timezone, d.opening_hours, d.policy, d.phone)


class Room(CareAggregate):
    TOPIC = topic("scheduling", "Room")

    @event("Created", topic=topic("scheduling", "Room.Created"))
    def __init__(self, room_id: str, by: str, at: datetime) -> None:
        self.room_id = room_id
        self.details: RoomDetails | None = None

    @classmethod
    def create_id(cls, room_id: str, **_: object) -> UUID:
        return room_stream(room_id)

    def set_details(self, details: RoomDetails, by: str, at: datetime) -> bool:
        if details == self.details:
            return False
        self._details_set(details=asdict(details), by=by, at=at)
        return True

    @event("DetailsSet", topic=topic("scheduling", "Room.DetailsSet"))
    def _details_set(self, details: dict[str, Any], by: str, at: datetime) -> None:
        self.details = RoomDetails(**details)

    def info(self) -> RoomInfo | None:
        d = self.details
        return RoomInfo(self.room_id, d.clinic_id, d.kind, d.name) if d else None


class ConsultationType(CareAggregate):
    TOPIC = topic("scheduling", "ConsultationType")

    @event("Created", topic=topic("scheduling", "ConsultationType.Created"))
    def __init__(self, type_id: str, by: str, at: datetime) -> None:
        self.type_id = type_id
        self.details: TypeDetails | None = None

    @classmethod
    def create_id(cls, type_id: str, **_: object) -> UUID:
        return type_stream(type_id)

    def set_details(self, details: TypeDetails, by: str, at: datetime) -> bool:
        if details == self.details:
            return False
        self._details_set(details=asdict(details), by=by, at=at)
        return True

    @event("DetailsSet", topic=topic("scheduling", "ConsultationType.DetailsSet"))
    def _details_set(self, details: dict[str, Any], by: str, at: datetime) -> None:
        self.details = TypeDetails(**details)

    def info(self) -> ConsultationTypeInfo | None:
        d = self.details
        if d is None:
            return None
        return ConsultationTypeInfo(self.type_id, d.name, Mode(d.mode), d.duration_minutes,
                                    d.buffer_before_minutes, d.buffer_after_minutes,
                                    d.preparation, d.room_kind, d.capacity_per_slot)


class ClinicianProfile(CareAggregate):
    """What patients see of a clinician, and where and what they consult."""

    TOPIC = topic("scheduling", "ClinicianProfile")

    @event("Created", topic=topic("scheduling", "ClinicianProfile.Created"))
    def __init__(self, account_id: UUID, by: str, at: datetime) -> None:
        self.account_id = account_id
        self.details: ProfileDetails | None = None

    @classmethod
    def create_id(cls, account_id: UUID, **_: object) -> UUID:
        return clinician_stream(account_id)

    def set_details(self, details: ProfileDetails, by: str, at: datetime) -> bool:
        if details == self.details:
            return False
        stored = asdict(details)
        self._details_set(details={k: list(v) if isinstance(v, tuple) else v
                                   for k, v in stored.items()}, by=by, at=at)
        return True

    @event("DetailsSet", topic=topic("scheduling", "ClinicianProfile.DetailsSet"))
    def _details_set(self, details: dict[str, Any], by: str, at: datetime) -> None:
        self.details = ProfileDetails(
            details["display_name"], details["specialty"], tuple(details["languages"]),
            tuple(details["clinic_ids"]), tuple(details["consultation_type_ids"]),
            details["profile"])

    def info(self) -> ClinicianInfo | None:
        d = self.details
        if d is None:
            return None
        return ClinicianInfo(self.account_id, d.display_name, d.specialty, d.languages,
                             d.clinic_ids, d.consultation_type_ids, d.profile)


class WorkingPattern(CareAggregate):
    """One clinician's weekly sessions over time, with leave and extra sessions."""

    TOPIC = topic("scheduling", "WorkingPattern")

    @event("Created", topic=topic("scheduling", "WorkingPattern.Created"))
    def __init__(self, account_id: UUID, by: str, at: datetime) -> None:
        self.account_id = account_id
        self.periods: tuple[PatternPeriod, ...] = ()  # sorted by valid_from
        self.leave: tuple[Leave, ...] = ()
        self.extra_sessions: tuple[SessionTimes, ...] = ()

    @classmethod
    def create_id(cls, account_id: UUID, **_: object) -> UUID:
        return pattern_stream(account_id)

    def set_pattern(self, period: PatternPeriod, by: str, at: datetime) -> bool:
        """Sets the weekly sessions from `period.valid_from`, replacing a period that starts on
        the same day. Periods starting earlier stay in force until this one starts."""
        if period in self.periods:
            return False
        self._pattern_set(valid_from=period.valid_from, valid_until=period.valid_until,
                          sessions=[s.stored() for s in period.sessions], by=by, at=at)
        return True

    @event("PatternSet", topic=topic("scheduling", "WorkingPattern.PatternSet"))
    def _pattern_set(self, valid_from: date, valid_until: date | None,
                     sessions: list[dict[str, Any]], by: str, at: datetime) -> None:
        period = PatternPeriod(valid_from, valid_until,
                               tuple(SessionTimes.from_stored(s) for s in sessions))
        kept = [p for p in self.periods if p.valid_from != valid_from]
        self.periods = tuple(sorted([*kept, period], key=lambda p: p.valid_from))

    def record_leave(self, leave: Leave, by: str, at: datetime) -> bool:
        if any(leave.first_day == known.first_day and leave.last_day == known.last_day
               for known in self.leave):
            return False
        self._leave_recorded(first_day=leave.first_day, last_day=leave.last_day,
                             reason=leave.reason, by=by, at=at)
        return True

    @event("LeaveRecorded", topic=topic("scheduling", "WorkingPattern.LeaveRecorded"))
    def _leave_recorded(self, first_day: date, last_day: date, reason: str, by: str,
                        at: datetime) -> None:
        self.leave = (*self.leave, Leave(first_day, last_day, reason))

    def withdraw_leave(self, first_day: date, last_day: date, by: str, at: datetime) -> bool:
        """Cancels recorded leave (plans changed): its days have sessions again. False when
        no such leave is recorded."""
        if not any(first_day == known.first_day and last_day == known.last_day
                   for known in self.leave):
            return False
        self._leave_withdrawn(first_day=first_day, last_day=last_day, by=by, at=at)
        return True

    @event("LeaveWithdrawn", topic=topic("scheduling", "WorkingPattern.LeaveWithdrawn"))
    def _leave_withdrawn(self, first_day: date, last_day: date, by: str, at: datetime) -> None:
        self.leave = tuple(known for known in self.leave
                           if (known.first_day, known.last_day) != (first_day, last_day))

    def add_extra_session(self, session: SessionTimes, by: str, at: datetime) -> bool:
        if session in self.extra_sessions:
            return False
        self._extra_session_added(session=session.stored(), by=by, at=at)
        return True

    @event("ExtraSessionAdded", topic=topic("scheduling", "WorkingPattern.ExtraSessionAdded"))
    def _extra_session_added(self, session: dict[str, Any], by: str, at: datetime) -> None:
        self.extra_sessions = (*self.extra_sessions, SessionTimes.from_stored(session))

    def period_on(self, day: date) -> PatternPeriod | None:
        """The period in force: the latest to start on or before the day, if it still runs."""
        started = [p for p in self.periods if p.valid_from <= day]
        return started[-1] if started and started[-1].covers(day) else None

    def on_leave(self, day: date) -> bool:
        return any(leave.first_day <= day <= leave.last_day for leave in self.leave)


# ---- sessions on a day ---------------------------------------------------------------------------

def sessions_on(pattern: WorkingPattern, day: date, zone_of: Callable[[str], ZoneInfo | None],
                closed: Callable[[str, date], bool]) -> list[Session]:
    """The clinician's sessions on a clinic-local day, in UTC, sorted and never overlapping.

    Leave removes the whole day; a clinic's closed day removes the sessions there. Extra
    sessions are added, unless they overlap the weekly ones (the weekly pattern wins).

    Clock changes: a session keeps its wall-clock start and end, so a 09:00-12:00 session is
    at 09:00 local on both sides of a change. A session that spans the change is longer or
    shorter in real time by the hour (and has more or fewer slots). A start or end in the
    hour skipped in spring moves an hour later (`local_to_utc`); if that would run into the
    next session, the next one starts when it ends, and a session left too short for one
    slot is dropped, so that sessions never overlap and always lie within the local day.
    """
    if pattern.on_leave(day):
        return []
    period = pattern.period_on(day)
    weekly = [s for s in (period.sessions if period else ()) if s.weekday == day.weekday()]
    extra = [s for s in pattern.extra_sessions
             if s.day == day and not any(_overlaps(s, w) for w in weekly)]
    result: list[Session] = []
    for times in sorted([*weekly, *extra], key=lambda s: s.starts):
        zone = zone_of(times.clinic_id)
        if zone is None or closed(times.clinic_id, day):
            continue
        day_starts, day_ends = local_to_utc(day, time(0), zone), \
            local_to_utc(day + timedelta(days=1), time(0), zone)
        starts = max(local_to_utc(day, times.starts, zone), day_starts)
        ends = min(local_to_utc(day, times.ends, zone), day_ends)
        if result:
            starts = max(starts, result[-1].ends_at)
        if ends - starts < timedelta(minutes=times.slot_minutes):
            continue
        result.append(Session(pattern.account_id, times.clinic_id, starts, ends,
                              times.slot_minutes, times.consultation_type_ids, times.room_id))
    return result


def _overlaps(a: SessionTimes, b: SessionTimes) -> bool:
    return a.starts < b.ends and b.starts < a.ends
