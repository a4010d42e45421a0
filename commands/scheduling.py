"""The scheduling context: administrators keep the reference data; booking reads it.

`SchedulingApplication` is the network's `ScheduleSource`. Reads are on booking's and
availability's hot path, so the application keeps every scheduling aggregate in memory,
built from its own events table: each read asks PostgreSQL one cheap question (the highest
notification id) and, only when that moved, folds in the new events and publishes a new
immutable `Reference`. Notification ids are committed in order (see CareRecorder), so reading
on from the last id seen never misses an event, whichever process wrote it. The whole network's
reference data is small (clinics, rooms, types, a few hundred clinicians), so there is no
lookup table: the list of clinics and clinicians is the in-memory model itself. A caller doing
many reads at once (an availability search) takes `current()` once and reads from it.
"""

from __future__ import annotations

import copy
import csv
import io
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.eventstore import CareApplication, EventStoreSettings
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from commands.identity import IdentityApplication
from domain.access import Action, Actor, ClinicResource, authorise, is_allowed
from domain.aggregate import CareAggregate
from domain.errors import NotFound, Rejections
from domain.identity import CLINICAL_ROLES, Role
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    RoomInfo,
    Session,
)
from domain.scheduling import (
    Clinic,
    ClinicianProfile,
    ConsultationType,
    PatternPeriod,
    Room,
    SessionTimes,
    WorkingPattern,
    check_no_overlap,
    check_slug,
    check_validity,
    clinic_stream,
    clinician_stream,
    parse_clinic,
    parse_consultation_type,
    parse_leave,
    parse_profile,
    parse_room,
    parse_session,
    pattern_stream,
    room_stream,
    sessions_on,
    type_stream,
)

MAX_CLOSED_DAYS = 60
MAX_IMPORT_ROWS = 5_000
IMPORT_COLUMNS = ("clinician", "clinic", "weekday", "start", "end", "slot_minutes",
                  "consultation_types", "valid_from", "valid_until")
_MEMO_LIMIT = 200_000


@dataclass(frozen=True)
class Change:
    """One recorded change of a piece of reference data, for the audit view."""

    version: int
    change: str  # the event name: Created, DetailsSet, Closed, PatternSet, ...
    details: dict[str, Any]
    by: str
    at: datetime


@dataclass
class Reference:
    """The reference data at one position of the scheduling log: a `ScheduleSource` that never
    changes, so a caller may read it many times without asking the database again."""

    position: int = 0
    clinic_map: dict[str, Clinic] = field(default_factory=dict)
    room_map: dict[str, RoomInfo] = field(default_factory=dict)
    type_map: dict[str, ConsultationTypeInfo] = field(default_factory=dict)
    clinician_map: dict[UUID, ClinicianInfo] = field(default_factory=dict)
    patterns: dict[UUID, WorkingPattern] = field(default_factory=dict)
    _infos: dict[str, ClinicInfo] = field(default_factory=dict)
    _memo: dict[tuple[UUID, date], list[Session]] = field(default_factory=dict)

    @classmethod
    def build(cls, position: int, aggregates: Iterable[CareAggregate]) -> Reference:
        # Shallow copies: the aggregates replace their attributes on every change (never
        # mutate them in place), so a copy is a consistent picture of this position.
        ref = cls(position)
        for aggregate in aggregates:
            if isinstance(aggregate, Clinic) and (info := aggregate.info()) is not None:
                ref.clinic_map[aggregate.clinic_id] = copy.copy(aggregate)
                ref._infos[aggregate.clinic_id] = info
            elif isinstance(aggregate, Room) and (room := aggregate.info()) is not None:
                ref.room_map[room.room_id] = room
            elif isinstance(aggregate, ConsultationType) and (kind := aggregate.info()):
                ref.type_map[kind.type_id] = kind
            elif isinstance(aggregate, ClinicianProfile) and (who := aggregate.info()):
                ref.clinician_map[who.account_id] = who
            elif isinstance(aggregate, WorkingPattern):
                ref.patterns[aggregate.account_id] = copy.copy(aggregate)
        return ref

    def clinic(self, clinic_id: str) -> ClinicInfo | None:
        return self._infos.get(clinic_id)

    def clinics(self) -> list[ClinicInfo]:
        return sorted(self._infos.values(), key=lambda c: c.name)

    def closures(self, clinic_id: str) -> dict[date, str]:
        clinic = self.clinic_map.get(clinic_id)
        return dict(clinic.closures) if clinic else {}

    def consultation_type(self, type_id: str) -> ConsultationTypeInfo | None:
        return self.type_map.get(type_id)

    def consultation_types(self) -> list[ConsultationTypeInfo]:
        return sorted(self.type_map.values(), key=lambda t: t.name)

    def clinician(self, account_id: UUID) -> ClinicianInfo | None:
        return self.clinician_map.get(account_id)

    def clinicians(self) -> list[ClinicianInfo]:
        return sorted(self.clinician_map.values(), key=lambda c: (c.display_name, c.account_id))

    def rooms(self, clinic_id: str, kind: str | None = None) -> list[RoomInfo]:
        return sorted((r for r in self.room_map.values()
                       if r.clinic_id == clinic_id and (kind is None or r.kind == kind)),
                      key=lambda r: r.room_id)

    def pattern(self, account_id: UUID) -> WorkingPattern | None:
        return self.patterns.get(account_id)

    def sessions(self, clinician_id: UUID, day: date) -> list[Session]:
        key = (clinician_id, day)
        found = self._memo.get(key)
        if found is None:
            pattern = self.patterns.get(clinician_id)
            found = [] if pattern is None or clinician_id not in self.clinician_map else \
                sessions_on(pattern, day, self._zone, self._closed)
            if len(self._memo) >= _MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return list(found)

    def _zone(self, clinic_id: str) -> Any:
        info = self._infos.get(clinic_id)
        return info.zone if info else None

    def _closed(self, clinic_id: str, day: date) -> bool:
        clinic = self.clinic_map.get(clinic_id)
        return clinic is not None and day in clinic.closures


class SchedulingApplication(CareApplication):
    name = "scheduling"

    def __init__(self, store: EventStoreSettings, identity: IdentityApplication) -> None:
        super().__init__(store)
        self.identity = identity  # a clinician profile belongs to a clinical staff account
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self._folded: dict[UUID, Any] = {}
        self._reference = Reference()

    # ---- reads (ScheduleSource) -----------------------------------------------------------

    def current(self) -> Reference:
        """The reference data as of now, including every change any process has saved."""
        latest = self.recorder.max_notification_id() or 0
        if latest <= self._reference.position:
            return self._reference
        with self._lock:
            position = self._reference.position
            while position < latest:
                batch = self.recorder.select_notifications(start=position + 1, limit=1_000)
                if not batch:
                    break
                for notification in batch:
                    recorded: Any = self.mapper.to_domain_event(notification)
                    self._folded[recorded.originator_id] = recorded.mutate(
                        self._folded.get(recorded.originator_id))
                    position = notification.id
            if position > self._reference.position:
                self._reference = Reference.build(position, self._folded.values())
            return self._reference

    def clinic(self, clinic_id: str) -> ClinicInfo | None:
        return self.current().clinic(clinic_id)

    def clinics(self) -> list[ClinicInfo]:
        return self.current().clinics()

    def consultation_type(self, type_id: str) -> ConsultationTypeInfo | None:
        return self.current().consultation_type(type_id)

    def consultation_types(self) -> list[ConsultationTypeInfo]:
        return self.current().consultation_types()

    def clinician(self, account_id: UUID) -> ClinicianInfo | None:
        return self.current().clinician(account_id)

    def clinicians(self) -> list[ClinicianInfo]:
        return self.current().clinicians()

    def rooms(self, clinic_id: str, kind: str | None = None) -> list[RoomInfo]:
        return self.current().rooms(clinic_id, kind)

    def sessions(self, clinician_id: UUID, day: date) -> list[Session]:
        return self.current().sessions(clinician_id, day)

    # ---- administration -------------------------------------------------------------------

    def put_clinic(self, actor: Actor, clinic_id: str, raw: Mapping[str, Any], at: datetime,
                   key: IdempotencyKey | None = None) -> Outcome:
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(clinic_id))
        errors = Rejections()
        check_slug(clinic_id, "clinic_id", errors)
        details = parse_clinic(raw, errors)
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any]]:
            clinic = self._get(clinic_stream(clinic_id)) or Clinic(clinic_id=clinic_id,
                                                                   by=actor.ref, at=at)
            clinic.set_details(details, by=actor.ref, at=at)
            return {"clinic_id": clinic_id, "version": clinic.version}, [clinic]

        return run_once(self, self.idempotency, key, decide)

    def close_clinic(self, actor: Actor, clinic_id: str, days: list[date], reason: str,
                     at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """Closes a clinic on whole days (bank holidays): no sessions there on those days."""
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(clinic_id))
        errors = Rejections()
        if not 1 <= len(days) <= MAX_CLOSED_DAYS:
            errors.add("days", f"Give one to {MAX_CLOSED_DAYS} dates.")
        reason = reason.strip()
        if not reason or len(reason) > 100:
            errors.add("reason", "Say in up to 100 characters why, for example 'Christmas Day'.")
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any]]:
            clinic = self._existing_clinic(clinic_id)
            clinic.close_on(days, reason, by=actor.ref, at=at)
            return {"clinic_id": clinic_id, "version": clinic.version}, [clinic]

        return run_once(self, self.idempotency, key, decide)

    def put_room(self, actor: Actor, room_id: str, raw: Mapping[str, Any], at: datetime,
                 key: IdempotencyKey | None = None) -> Outcome:
        errors = Rejections()
        check_slug(room_id, "room_id", errors)
        details = parse_room(raw, errors)
        errors.raise_if_any()
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(details.clinic_id))
        if self.current().clinic(details.clinic_id) is None:
            _invalid("clinic_id", "There is no clinic with this id; create it first.")

        def decide() -> tuple[dict[str, Any], list[Any]]:
            room = self._get(room_stream(room_id))
            if room is None:
                room = Room(room_id=room_id, by=actor.ref, at=at)
            elif room.details is not None:  # moving a room needs its old clinic's say too
                authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(room.details.clinic_id))
            room.set_details(details, by=actor.ref, at=at)
            return {"room_id": room_id, "version": room.version}, [room]

        return run_once(self, self.idempotency, key, decide)

    def put_consultation_type(self, actor: Actor, type_id: str, raw: Mapping[str, Any],
                              at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """Consultation types are shared by the whole network: any clinic administrator."""
        authorise(actor, Action.SCHEDULE_MANAGE)
        errors = Rejections()
        check_slug(type_id, "type_id", errors)
        details = parse_consultation_type(raw, errors)
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any]]:
            kind = self._get(type_stream(type_id)) or ConsultationType(type_id=type_id,
                                                                       by=actor.ref, at=at)
            kind.set_details(details, by=actor.ref, at=at)
            return {"type_id": type_id, "version": kind.version}, [kind]

        return run_once(self, self.idempotency, key, decide)

    def put_clinician(self, actor: Actor, account_id: UUID, raw: Mapping[str, Any],
                      at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        authorise(actor, Action.SCHEDULE_MANAGE)
        account = self.identity.find_account(account_id)
        if account is None or Role(account.role) not in CLINICAL_ROLES:
            raise NotFound("There is no clinical staff account with this id.")
        errors = Rejections()
        details = parse_profile(raw, errors)
        reference = self.current()
        for clinic_id in details.clinic_ids:
            if reference.clinic(clinic_id) is None:
                errors.add("clinic_ids", f"There is no clinic '{clinic_id}'.")
        for type_id in details.consultation_type_ids:
            if reference.consultation_type(type_id) is None:
                errors.add("consultation_type_ids", f"There is no consultation type '{type_id}'.")
        errors.raise_if_any()
        before = reference.clinician(account_id)
        old = set(before.clinic_ids) if before else set()
        # Adding or removing a clinic is that clinic's administrators' business; other
        # changes need an administrator of one of the clinician's clinics.
        for clinic_id in sorted(old ^ set(details.clinic_ids)):
            authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(clinic_id))
        _authorise_any(actor, old | set(details.clinic_ids))

        def decide() -> tuple[dict[str, Any], list[Any]]:
            profile = self._get(clinician_stream(account_id)) or ClinicianProfile(
                account_id=account_id, by=actor.ref, at=at)
            profile.set_details(details, by=actor.ref, at=at)
            return {"account_id": str(account_id), "version": profile.version}, [profile]

        return run_once(self, self.idempotency, key, decide)

    def put_working_pattern(self, actor: Actor, account_id: UUID, valid_from: date,
                            valid_until: date | None, sessions: list[Mapping[str, Any]],
                            at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """Sets the clinician's weekly sessions from `valid_from` (see WorkingPattern)."""
        profile = self._profile_for(actor, account_id)
        errors = Rejections()
        check_validity(valid_from, valid_until, errors)
        parsed = [parse_session(raw, f"sessions[{n}]", errors, weekly=True)
                  for n, raw in enumerate(sessions)]
        check_no_overlap(parsed, "sessions", errors)
        for n, session in enumerate(parsed):
            self._check_session(actor, profile, session, f"sessions[{n}]", errors)
        errors.raise_if_any()
        period = PatternPeriod(valid_from, valid_until, tuple(parsed))

        def decide() -> tuple[dict[str, Any], list[Any]]:
            pattern = self._pattern(actor, account_id, at)
            pattern.set_pattern(period, by=actor.ref, at=at)
            return {"account_id": str(account_id), "version": pattern.version}, [pattern]

        return run_once(self, self.idempotency, key, decide)

    def record_leave(self, actor: Actor, account_id: UUID, first_day: date, last_day: date,
                     reason: str, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        self._profile_for(actor, account_id)
        errors = Rejections()
        leave = parse_leave(first_day, last_day, reason, errors)
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any]]:
            pattern = self._pattern(actor, account_id, at)
            pattern.record_leave(leave, by=actor.ref, at=at)
            return {"account_id": str(account_id), "version": pattern.version}, [pattern]

        return run_once(self, self.idempotency, key, decide)

    def withdraw_leave(self, actor: Actor, account_id: UUID, first_day: date, last_day: date,
                       at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        self._profile_for(actor, account_id)

        def decide() -> tuple[dict[str, Any], list[Any]]:
            pattern = self._pattern(actor, account_id, at)
            if not pattern.withdraw_leave(first_day, last_day, by=actor.ref, at=at):
                raise NotFound(f"No leave from {first_day.isoformat()} to "
                               f"{last_day.isoformat()} is recorded for this clinician.")
            return {"account_id": str(account_id), "version": pattern.version}, [pattern]

        return run_once(self, self.idempotency, key, decide)

    def add_extra_session(self, actor: Actor, account_id: UUID, raw: Mapping[str, Any],
                          at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        profile = self._profile_for(actor, account_id)
        errors = Rejections()
        session = parse_session(raw, "session", errors, weekly=False)
        self._check_session(actor, profile, session, "session", errors)
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any]]:
            pattern = self._pattern(actor, account_id, at)
            if any(s.day == session.day and s.starts < session.ends and session.starts < s.ends
                   for s in pattern.extra_sessions if s != session):
                _invalid("session.starts", "This overlaps another extra session that day.")
            pattern.add_extra_session(session, by=actor.ref, at=at)
            return {"account_id": str(account_id), "version": pattern.version}, [pattern]

        return run_once(self, self.idempotency, key, decide)

    def import_patterns(self, actor: Actor, text: str, at: datetime,
                        key: IdempotencyKey | None = None) -> Outcome:
        """Sets working patterns from a CSV export (columns: IMPORT_COLUMNS, optionally `room`).
        All or nothing: every wrong row and field is reported, and nothing is saved."""
        authorise(actor, Action.SCHEDULE_MANAGE)
        periods = self._parse_import(actor, text)

        def decide() -> tuple[dict[str, Any], list[Any]]:
            touched: dict[UUID, WorkingPattern] = {}
            for (account_id, valid_from, valid_until), sessions in periods.items():
                pattern = touched.get(account_id) or self._pattern(actor, account_id, at)
                touched[account_id] = pattern
                pattern.set_pattern(PatternPeriod(valid_from, valid_until, tuple(sessions)),
                                    by=actor.ref, at=at)
            return {"clinicians": len(touched), "periods": len(periods),
                    "sessions": sum(map(len, periods.values()))}, list(touched.values())

        return run_once(self, self.idempotency, key, decide)

    # ---- history ----------------------------------------------------------------------------

    def clinic_history(self, actor: Actor, clinic_id: str) -> list[Change]:
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(clinic_id))
        return self._history(clinic_stream(clinic_id))

    def room_history(self, actor: Actor, room_id: str) -> list[Change]:
        room = self.current().room_map.get(room_id)
        if room is None:
            authorise(actor, Action.SCHEDULE_MANAGE)
            raise NotFound("There is no room with this id.")
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(room.clinic_id))
        return self._history(room_stream(room_id))

    def consultation_type_history(self, actor: Actor, type_id: str) -> list[Change]:
        authorise(actor, Action.SCHEDULE_MANAGE)
        return self._history(type_stream(type_id))

    def clinician_history(self, actor: Actor, account_id: UUID) -> list[Change]:
        """Changes to the clinician's profile and working pattern, newest first."""
        self._profile_for(actor, account_id)
        both = self._history(clinician_stream(account_id)) + self._history(
            pattern_stream(account_id))
        return sorted(both, key=lambda c: c.at, reverse=True)

    # ---- helpers ----------------------------------------------------------------------------

    def _get(self, aggregate_id: UUID) -> Any:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _existing_clinic(self, clinic_id: str) -> Clinic:
        clinic: Clinic | None = self._get(clinic_stream(clinic_id))
        if clinic is None:
            raise NotFound("There is no clinic with this id.")
        return clinic

    def _profile_for(self, actor: Actor, account_id: UUID) -> ClinicianInfo:
        """The clinician's profile, for an administrator of one of the clinician's clinics."""
        authorise(actor, Action.SCHEDULE_MANAGE)
        profile = self.current().clinician(account_id)
        if profile is None:
            raise NotFound("There is no clinician profile for this account; create it first.")
        _authorise_any(actor, set(profile.clinic_ids))
        return profile

    def _pattern(self, actor: Actor, account_id: UUID, at: datetime) -> WorkingPattern:
        found = self._get(pattern_stream(account_id))
        return found or WorkingPattern(account_id=account_id, by=actor.ref, at=at)

    def _check_session(self, actor: Actor, profile: ClinicianInfo, session: SessionTimes,
                       name: str, errors: Rejections) -> None:
        """The references a session makes: the clinic (one of the clinician's, administered
        by the actor), the types the clinician offers, a room of that clinic of the kind the
        types need."""
        if session.clinic_id not in profile.clinic_ids:
            errors.add(f"{name}.clinic_id", "The clinician does not work at this clinic; add it "
                                            "to their profile first.")
        elif not is_allowed(actor, Action.SCHEDULE_MANAGE, ClinicResource(session.clinic_id)):
            errors.add(f"{name}.clinic_id", "You do not administer this clinic.")
        for type_id in session.consultation_type_ids:
            if type_id not in profile.consultation_type_ids:
                errors.add(f"{name}.consultation_type_ids",
                           f"The clinician does not offer '{type_id}'.")
        if session.room_id is not None:
            room = self.current().room_map.get(session.room_id)
            if room is None or room.clinic_id != session.clinic_id:
                errors.add(f"{name}.room_id", "There is no such room at this clinic.")
            elif any((kind := self.current().consultation_type(t)) is not None
                     and kind.room_kind not in (None, room.kind)
                     for t in session.consultation_type_ids):
                errors.add(f"{name}.room_id", "This room is not of the kind these "
                                              "consultation types need.")

    def _parse_import(self, actor: Actor, text: str
                      ) -> dict[tuple[UUID, date, date | None], list[SessionTimes]]:
        errors = Rejections()
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        missing = [c for c in IMPORT_COLUMNS if c not in columns]
        if missing:
            _invalid("csv", "The first line must name the columns; missing: "
                     + ", ".join(missing) + ".")
        rows = list(reader)
        if not rows or len(rows) > MAX_IMPORT_ROWS:
            _invalid("csv", f"Give one to {MAX_IMPORT_ROWS:,} rows after the header.")
        periods: dict[tuple[UUID, date, date | None], list[SessionTimes]] = {}
        for line, row in enumerate(rows, start=2):
            name = f"line {line}"
            clinician = self._clinician_named((row.get("clinician") or "").strip(),
                                              f"{name}.clinician", errors)
            valid_from = _date(row.get("valid_from"), f"{name}.valid_from", errors)
            valid_until = _date(row.get("valid_until"), f"{name}.valid_until", errors,
                                required=False)
            if valid_from is not None:
                check_validity(valid_from, valid_until, errors, f"{name}.valid_until")
            slot = (row.get("slot_minutes") or "").strip()
            session = parse_session({
                "weekday": row.get("weekday") or "", "starts": (row.get("start") or "").strip(),
                "ends": (row.get("end") or "").strip(), "clinic_id": (row.get("clinic") or "").strip(),
                "slot_minutes": int(slot) if slot.isascii() and slot.isdigit() else -1,
                "consultation_type_ids": [t.strip() for t in
                                          (row.get("consultation_types") or "").split(";")
                                          if t.strip()],
                "room_id": (row.get("room") or "").strip() or None}, name, errors, weekly=True)
            if clinician is not None:
                self._check_session(actor, clinician, session, name, errors)
            if clinician is not None and valid_from is not None:
                periods.setdefault((clinician.account_id, valid_from, valid_until),
                                   []).append(session)
        for (_, valid_from, _), sessions in periods.items():
            check_no_overlap(sessions, f"period from {valid_from}", errors)
        starts = [(who, since) for who, since, _ in periods]
        if len(starts) != len(set(starts)):
            errors.add("valid_until", "Rows of one clinician starting on the same day must "
                                      "end on the same day.")
        errors.raise_if_any()
        return periods

    def _clinician_named(self, value: str, name: str, errors: Rejections
                         ) -> ClinicianInfo | None:
        account_id: UUID | None = None
        try:
            account_id = UUID(value)
        except ValueError:
            account = self.identity.account_by_email(value) if "@" in value else None
            account_id = account.id if account is not None else None
        profile = self.current().clinician(account_id) if account_id else None
        if profile is None:
            errors.add(name, "No clinician profile has this email address or account id.")
        return profile

    def _history(self, aggregate_id: UUID) -> list[Change]:
        changes = []
        recorded: Any
        for recorded in self.events.get(aggregate_id):
            values = {k: v for k, v in vars(recorded).items()
                      if k not in ("originator_id", "originator_version", "timestamp", "by",
                                   "at")}
            changes.append(Change(recorded.originator_version, type(recorded).__name__,
                                  values, recorded.by, recorded.at))
        return changes[::-1]


def _authorise_any(actor: Actor, clinic_ids: set[str]) -> None:
    """Allowed if the actor administers any of the clinics; refused with the usual words."""
    if not any(is_allowed(actor, Action.SCHEDULE_MANAGE, ClinicResource(c)) for c in clinic_ids):
        authorise(actor, Action.SCHEDULE_MANAGE, ClinicResource(min(clinic_ids, default="")))


def _invalid(name: str, message: str) -> Any:
    errors = Rejections()
    errors.add(name, message)
    errors.raise_if_any()


def _date(value: str | None, name: str, errors: Rejections, required: bool = True
          ) -> date | None:
    text = (value or "").strip()
    if not text and not required:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors.add(name, "Give the date as YYYY-MM-DD.")
        return None
