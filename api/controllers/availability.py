"""Availability: free appointment slots by clinic, clinician, specialty, type, language and time
of day, and a clinician's profile with their next free slots."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from api.container import Container
from api.dependencies import signed_in
from commands.availability import FreeSlot, TimeOfDay
from domain.access import Actor
from domain.errors import NotFound, Rejections
from domain.schedule_types import local_day

MAX_DAYS = 12 * 7  # a search covers at most twelve weeks
DEFAULT_DAYS = 14
MAX_LIMIT = 50
MAX_TEXT = 100


class SlotView(msgspec.Struct):
    clinician_id: UUID
    clinician_name: str
    clinic_id: str
    clinic_name: str
    consultation_type_id: str
    consultation_type_name: str
    mode: str
    starts_at: datetime
    ends_at: datetime
    starts_at_local: str  # in the clinic's zone
    ends_at_local: str
    places_left: int
    starts_at_patient: str | None = None  # in the zone the patient asked for, if any
    ends_at_patient: str | None = None


class ClinicianNextSlots(msgspec.Struct):
    clinician_id: UUID
    display_name: str
    specialty: str
    languages: list[str]
    clinic_ids: list[str]
    consultation_type_ids: list[str]
    profile: str
    next_slots: list[SlotView]


_DEPENDENCIES = signed_in()


def _patient_zone(raw: str | None, errors: Rejections) -> ZoneInfo | None:
    if raw is None:
        return None
    try:
        if len(raw) > 64:
            raise ValueError(raw)
        return ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        errors.add("patient_timezone", "must be an IANA time zone such as 'America/New_York'")
        return None


def _limit(raw: str | None, default: int, errors: Rejections) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= MAX_LIMIT):  # not "³"
        errors.add("limit", f"must be a whole number from 1 to {MAX_LIMIT}")
        return default
    return int(raw)


def _date(name: str, raw: str | None, errors: Rejections) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors.add(name, "must be a date like 2026-03-30")
        return None


def _text(name: str, raw: str | None, errors: Rejections) -> str | None:
    if raw is not None and not 1 <= len(raw) <= MAX_TEXT:
        errors.add(name, f"must be 1 to {MAX_TEXT} characters")
    return raw


def views(container: Container, slots: list[FreeSlot],
          patient_zone: ZoneInfo | None) -> list[SlotView]:
    schedule = container.availability.schedule
    shown = []
    for slot in slots:
        clinic = schedule.clinic(slot.clinic_id)
        clinician = schedule.clinician(slot.clinician_id)
        kind = schedule.consultation_type(slot.consultation_type_id)
        if clinic is None or clinician is None or kind is None:
            continue  # the reference data changed under the search: leave the slot out
        shown.append(SlotView(
            clinician_id=slot.clinician_id, clinician_name=clinician.display_name,
            clinic_id=clinic.clinic_id, clinic_name=clinic.name,
            consultation_type_id=kind.type_id, consultation_type_name=kind.name,
            mode=kind.mode.value, starts_at=slot.starts_at, ends_at=slot.ends_at,
            starts_at_local=slot.starts_at.astimezone(clinic.zone).isoformat(),
            ends_at_local=slot.ends_at.astimezone(clinic.zone).isoformat(),
            places_left=slot.places_left,
            starts_at_patient=(slot.starts_at.astimezone(patient_zone).isoformat()
                               if patient_zone else None),
            ends_at_patient=(slot.ends_at.astimezone(patient_zone).isoformat()
                             if patient_zone else None)))
    return shown


class AvailabilityController(Controller):
    path = "/v1"
    tags = ["availability"]
    dependencies = _DEPENDENCIES

    @get("/availability", sync_to_thread=True,
         summary="Free appointment slots, earliest first (at most twelve weeks ahead)")
    def search(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime],
               clinic_id: FromQuery[str | None] = None,
               clinician_id: FromQuery[str | None] = None,
               specialty: FromQuery[str | None] = None,
               consultation_type_id: FromQuery[str | None] = None,
               language: FromQuery[str | None] = None,
               date_from: FromQuery[str | None] = None,
               date_to: FromQuery[str | None] = None,
               time_of_day: FromQuery[str | None] = None,
               patient_timezone: FromQuery[str | None] = None,
               limit: FromQuery[str | None] = None) -> list[SlotView]:
        errors = Rejections()
        schedule = container.availability.schedule
        for name, value in (("clinic_id", clinic_id), ("specialty", specialty),
                            ("consultation_type_id", consultation_type_id),
                            ("language", language)):
            _text(name, value, errors)
        if clinic_id is not None and schedule.clinic(clinic_id) is None:
            errors.add("clinic_id", "is not a clinic of this network")
        if consultation_type_id is not None and \
                schedule.consultation_type(consultation_type_id) is None:
            errors.add("consultation_type_id", "is not a consultation type offered here")
        clinician: UUID | None = None
        if clinician_id is not None:
            try:
                clinician = UUID(clinician_id)
            except ValueError:
                errors.add("clinician_id", "must be a clinician's id (a UUID)")
        part: TimeOfDay | None = None
        if time_of_day is not None:
            try:
                part = TimeOfDay(time_of_day)
            except ValueError:
                errors.add("time_of_day", "must be one of morning, afternoon, evening")
        today = local_day(now, ZoneInfo(container.settings.clinic_timezone))
        first = _date("date_from", date_from, errors) or today
        last = _date("date_to", date_to, errors) or first + timedelta(days=DEFAULT_DAYS - 1)
        if last < first:
            errors.add("date_to", "must not be before date_from")
        elif (last - first).days >= MAX_DAYS:
            errors.add("date_to", "must be within twelve weeks of date_from")
        zone = _patient_zone(patient_timezone, errors)
        wanted = _limit(limit, 20, errors)
        errors.raise_if_any()
        slots = container.availability.search(
            clinic_id=clinic_id, clinician_id=clinician, specialty=specialty,
            consultation_type_id=consultation_type_id, language=language,
            date_from=max(first, today), date_to=last, time_of_day=part, limit=wanted, at=now)
        return views(container, slots, zone)

    @get("/clinicians/{account_id:uuid}/next-slots", sync_to_thread=True,
         summary="A clinician's profile and their next free slots (twelve weeks ahead)")
    def next_slots(self, account_id: FromPath[UUID], actor: NamedDependency[Actor],
                   container: NamedDependency[Container], now: NamedDependency[datetime],
                   consultation_type_id: FromQuery[str | None] = None,
                   patient_timezone: FromQuery[str | None] = None,
                   limit: FromQuery[str | None] = None) -> ClinicianNextSlots:
        errors = Rejections()
        schedule = container.availability.schedule
        _text("consultation_type_id", consultation_type_id, errors)
        if consultation_type_id is not None and \
                schedule.consultation_type(consultation_type_id) is None:
            errors.add("consultation_type_id", "is not a consultation type offered here")
        zone = _patient_zone(patient_timezone, errors)
        wanted = _limit(limit, 5, errors)
        errors.raise_if_any()
        clinician = schedule.clinician(account_id)
        if clinician is None:
            raise NotFound("There is no clinician with this id.")
        today = local_day(now, ZoneInfo(container.settings.clinic_timezone))
        slots = container.availability.search(
            clinician_id=account_id, consultation_type_id=consultation_type_id,
            date_from=today, date_to=today + timedelta(days=MAX_DAYS - 1), limit=wanted, at=now)
        return ClinicianNextSlots(
            clinician_id=clinician.account_id, display_name=clinician.display_name,
            specialty=clinician.specialty, languages=list(clinician.languages),
            clinic_ids=list(clinician.clinic_ids),
            consultation_type_ids=list(clinician.consultation_type_ids),
            profile=clinician.profile, next_slots=views(container, slots, zone))

