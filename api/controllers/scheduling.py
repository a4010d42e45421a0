"""Reference data: administrators keep clinics, rooms, consultation types, clinicians and their
working patterns; anyone signed in reads the directory of clinics and clinicians."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from api.container import Container
from api.dependencies import (
    idempotency_key,
    local_time,
    position_headers,
    signed_in,
)
from commands.idempotency import Outcome
from commands.scheduling import Change
from domain.access import Action, Actor, authorise
from domain.errors import NotFound
from domain.schedule_types import ClinicianInfo, ClinicInfo, ConsultationTypeInfo
from domain.scheduling import WEEKDAYS

APPLICATION = "scheduling"
Short = Annotated[str, msgspec.Meta(max_length=200)]
Slug = Annotated[str, msgspec.Meta(max_length=64)]
Words = Annotated[str, msgspec.Meta(max_length=2_000)]


class Hours(msgspec.Struct, forbid_unknown_fields=True):
    weekday: Annotated[str, msgspec.Meta(max_length=10)]
    opens: Annotated[str, msgspec.Meta(max_length=5)]
    closes: Annotated[str, msgspec.Meta(max_length=5)]


class Policy(msgspec.Struct, forbid_unknown_fields=True):
    free_cancellation_hours: int = 24
    reschedule_notice_hours: int = 24
    max_reschedules: int = 2


class ClinicBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Short
    address_lines: Annotated[list[Short], msgspec.Meta(max_length=4)]
    town: Short
    postcode: Annotated[str, msgspec.Meta(max_length=12)]
    timezone: Annotated[str, msgspec.Meta(max_length=64)]
    opening_hours: Annotated[list[Hours], msgspec.Meta(max_length=21)] = []
    policy: Policy = msgspec.field(default_factory=Policy)
    phone: Annotated[str, msgspec.Meta(max_length=30)] | None = None


class ClosureBody(msgspec.Struct, forbid_unknown_fields=True):
    days: Annotated[list[date], msgspec.Meta(max_length=60)]
    reason: Annotated[str, msgspec.Meta(max_length=100)]


class RoomBody(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: Slug
    kind: Slug
    name: Short


class TypeBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Short
    mode: Annotated[str, msgspec.Meta(max_length=20)]
    duration_minutes: int
    buffer_before_minutes: int = 0
    buffer_after_minutes: int = 0
    preparation: Words = ""
    room_kind: Slug | None = None
    capacity_per_slot: int = 1


class ClinicianBody(msgspec.Struct, forbid_unknown_fields=True):
    display_name: Short
    specialty: Short
    languages: Annotated[list[Annotated[str, msgspec.Meta(max_length=20)]],
                         msgspec.Meta(max_length=20)]
    clinic_ids: Annotated[list[Slug], msgspec.Meta(max_length=20)]
    consultation_type_ids: Annotated[list[Slug], msgspec.Meta(max_length=50)]
    profile: Words = ""


class WeeklySessionBody(msgspec.Struct, forbid_unknown_fields=True):
    weekday: Annotated[str, msgspec.Meta(max_length=10)]
    starts: Annotated[str, msgspec.Meta(max_length=5)]
    ends: Annotated[str, msgspec.Meta(max_length=5)]
    clinic_id: Slug
    slot_minutes: int
    consultation_type_ids: Annotated[list[Slug], msgspec.Meta(max_length=50)]
    room_id: Slug | None = None


class PatternBody(msgspec.Struct, forbid_unknown_fields=True):
    valid_from: date
    sessions: Annotated[list[WeeklySessionBody], msgspec.Meta(max_length=100)]
    valid_until: date | None = None


class LeaveBody(msgspec.Struct, forbid_unknown_fields=True):
    first_day: date
    last_day: date
    reason: Annotated[str, msgspec.Meta(max_length=100)] = ""


class LeaveDays(msgspec.Struct, forbid_unknown_fields=True):
    first_day: date
    last_day: date


class ExtraSessionBody(msgspec.Struct, forbid_unknown_fields=True):
    day: date
    starts: Annotated[str, msgspec.Meta(max_length=5)]
    ends: Annotated[str, msgspec.Meta(max_length=5)]
    clinic_id: Slug
    slot_minutes: int
    consultation_type_ids: Annotated[list[Slug], msgspec.Meta(max_length=50)]
    room_id: Slug | None = None


class ImportBody(msgspec.Struct, forbid_unknown_fields=True):
    csv: Annotated[str, msgspec.Meta(max_length=900_000)]


class Saved(msgspec.Struct):
    id: str
    version: int
    changed: bool


class Imported(msgspec.Struct):
    clinicians: int
    periods: int
    sessions: int
    changed: bool


class ChangeView(msgspec.Struct):
    version: int
    change: str
    details: dict[str, Any]
    by_role: str
    by_account_id: str | None
    at: datetime
    at_local: str | None


class HoursView(msgspec.Struct):
    weekday: str
    opens: str
    closes: str


class PolicyView(msgspec.Struct):
    free_cancellation_hours: int
    reschedule_notice_hours: int
    max_reschedules: int


class ClinicView(msgspec.Struct):
    clinic_id: str
    name: str
    address_lines: list[str]
    town: str
    postcode: str
    timezone: str
    phone: str | None
    opening_hours: list[HoursView]
    policy: PolicyView
    closed_days: list[date]


class TypeView(msgspec.Struct):
    type_id: str
    name: str
    mode: str
    duration_minutes: int
    preparation: str
    capacity_per_slot: int


class ClinicianView(msgspec.Struct):
    """What anyone signed in sees of a clinician: never their email or internal ids."""

    account_id: UUID
    display_name: str
    specialty: str
    languages: list[str]
    clinic_ids: list[str]
    consultation_type_ids: list[str]
    profile: str
    next_available: list[dict[str, Any]] | None = None


_DEPENDENCIES = signed_in("zone")


def _saved(outcome: Outcome, id_field: str) -> Response[Saved]:
    result = outcome.result
    return Response(Saved(str(result[id_field]), result["version"], result["changed"]),
                    status_code=200, headers=position_headers(APPLICATION, outcome.position))


def _raw(body: msgspec.Struct) -> dict[str, Any]:
    return msgspec.to_builtins(body)


def _history(changes: list[Change], zone: ZoneInfo) -> list[ChangeView]:
    views = []
    for change in changes:
        role, _, account_id = change.by.partition(":")
        views.append(ChangeView(change.version, change.change,
                                msgspec.to_builtins(change.details), role, account_id or None,
                                change.at, local_time(change.at, zone)))
    return views


def _key(request: Request[Any, Any, Any], actor: Actor, operation: str, data: Any) -> Any:
    return idempotency_key(request, actor.ref, operation, data)


class ScheduleAdminController(Controller):
    path = "/v1/admin"
    tags = ["reference data (clinic administrators)"]
    dependencies = _DEPENDENCIES

    @put("/clinics/{clinic_id:str}", sync_to_thread=True,
         summary="Create or replace a clinic's details, opening hours and policy")
    def put_clinic(self, request: Request[Any, Any, State], clinic_id: FromPath[str],
                   data: JSONBody[ClinicBody], actor: NamedDependency[Actor],
                   container: NamedDependency[Container],
                   now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.put_clinic(
            actor, clinic_id, _raw(data), at=now,
            key=_key(request, actor, f"scheduling.clinic.{clinic_id}", data))
        return _saved(outcome, "clinic_id")

    @post("/clinics/{clinic_id:str}/closures", status_code=200, sync_to_thread=True,
          summary="Close a clinic on whole days (bank holidays)")
    def close(self, request: Request[Any, Any, State], clinic_id: FromPath[str],
              data: JSONBody[ClosureBody], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.close_clinic(
            actor, clinic_id, data.days, data.reason, at=now,
            key=_key(request, actor, f"scheduling.closures.{clinic_id}", data))
        return _saved(outcome, "clinic_id")

    @get("/clinics/{clinic_id:str}/history", sync_to_thread=True,
         summary="Every change to a clinic, newest first")
    def clinic_history(self, clinic_id: FromPath[str], actor: NamedDependency[Actor],
                       container: NamedDependency[Container],
                       zone: NamedDependency[ZoneInfo]) -> list[ChangeView]:
        return _history(container.scheduling.clinic_history(actor, clinic_id), zone)

    @put("/rooms/{room_id:str}", sync_to_thread=True, summary="Create or replace a room")
    def put_room(self, request: Request[Any, Any, State], room_id: FromPath[str],
                 data: JSONBody[RoomBody], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.put_room(
            actor, room_id, _raw(data), at=now,
            key=_key(request, actor, f"scheduling.room.{room_id}", data))
        return _saved(outcome, "room_id")

    @get("/rooms/{room_id:str}/history", sync_to_thread=True,
         summary="Every change to a room, newest first")
    def room_history(self, room_id: FromPath[str], actor: NamedDependency[Actor],
                     container: NamedDependency[Container],
                     zone: NamedDependency[ZoneInfo]) -> list[ChangeView]:
        return _history(container.scheduling.room_history(actor, room_id), zone)

    @put("/consultation-types/{type_id:str}", sync_to_thread=True,
         summary="Create or replace a consultation type (shared by the whole network)")
    def put_type(self, request: Request[Any, Any, State], type_id: FromPath[str],
                 data: JSONBody[TypeBody], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.put_consultation_type(
            actor, type_id, _raw(data), at=now,
            key=_key(request, actor, f"scheduling.type.{type_id}", data))
        return _saved(outcome, "type_id")

    @get("/consultation-types/{type_id:str}/history", sync_to_thread=True,
         summary="Every change to a consultation type, newest first")
    def type_history(self, type_id: FromPath[str], actor: NamedDependency[Actor],
                     container: NamedDependency[Container],
                     zone: NamedDependency[ZoneInfo]) -> list[ChangeView]:
        return _history(container.scheduling.consultation_type_history(actor, type_id), zone)

    @put("/clinicians/{account_id:uuid}", sync_to_thread=True,
         summary="Create or replace a clinician's profile (a clinical staff account)")
    def put_clinician(self, request: Request[Any, Any, State], account_id: FromPath[UUID],
                      data: JSONBody[ClinicianBody], actor: NamedDependency[Actor],
                      container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.put_clinician(
            actor, account_id, _raw(data), at=now,
            key=_key(request, actor, f"scheduling.clinician.{account_id}", data))
        return _saved(outcome, "account_id")

    @put("/clinicians/{account_id:uuid}/working-pattern", sync_to_thread=True,
         summary="Set a clinician's weekly sessions from a date")
    def put_pattern(self, request: Request[Any, Any, State], account_id: FromPath[UUID],
                    data: JSONBody[PatternBody], actor: NamedDependency[Actor],
                    container: NamedDependency[Container],
                    now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.put_working_pattern(
            actor, account_id, data.valid_from, data.valid_until,
            [msgspec.structs.asdict(s) for s in data.sessions], at=now,
            key=_key(request, actor, f"scheduling.pattern.{account_id}", data))
        return _saved(outcome, "account_id")

    @post("/clinicians/{account_id:uuid}/leave", status_code=200, sync_to_thread=True,
          summary="Record a clinician's leave: no sessions on those days")
    def leave(self, request: Request[Any, Any, State], account_id: FromPath[UUID],
              data: JSONBody[LeaveBody], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.record_leave(
            actor, account_id, data.first_day, data.last_day, data.reason, at=now,
            key=_key(request, actor, f"scheduling.leave.{account_id}", data))
        return _saved(outcome, "account_id")

    @post("/clinicians/{account_id:uuid}/leave/withdraw", status_code=200, sync_to_thread=True,
          summary="Withdraw recorded leave (the days have sessions again)")
    def withdraw_leave(self, request: Request[Any, Any, State], account_id: FromPath[UUID],
                       data: JSONBody[LeaveDays], actor: NamedDependency[Actor],
                       container: NamedDependency[Container],
                       now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.withdraw_leave(
            actor, account_id, data.first_day, data.last_day, at=now,
            key=_key(request, actor, f"scheduling.leave_withdraw.{account_id}", data))
        return _saved(outcome, "account_id")

    @post("/clinicians/{account_id:uuid}/extra-sessions", status_code=200, sync_to_thread=True,
          summary="Add a session on one day, outside the weekly pattern")
    def extra_session(self, request: Request[Any, Any, State], account_id: FromPath[UUID],
                      data: JSONBody[ExtraSessionBody], actor: NamedDependency[Actor],
                      container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Response[Saved]:
        outcome = container.scheduling.add_extra_session(
            actor, account_id, msgspec.structs.asdict(data), at=now,
            key=_key(request, actor, f"scheduling.extra.{account_id}", data))
        return _saved(outcome, "account_id")

    @get("/clinicians/{account_id:uuid}/history", sync_to_thread=True,
         summary="Every change to a clinician's profile and working pattern, newest first")
    def clinician_history(self, account_id: FromPath[UUID], actor: NamedDependency[Actor],
                          container: NamedDependency[Container],
                          zone: NamedDependency[ZoneInfo]) -> list[ChangeView]:
        return _history(container.scheduling.clinician_history(actor, account_id), zone)

    @post("/schedule-import", status_code=200, sync_to_thread=True,
          summary="Set working patterns from a CSV export (all rows or none)")
    def import_schedule(self, request: Request[Any, Any, State], data: JSONBody[ImportBody],
                        actor: NamedDependency[Actor], container: NamedDependency[Container],
                        now: NamedDependency[datetime]) -> Response[Imported]:
        outcome = container.scheduling.import_patterns(
            actor, data.csv, at=now, key=_key(request, actor, "scheduling.import", data))
        result = outcome.result
        return Response(Imported(result["clinicians"], result["periods"], result["sessions"],
                                 result["changed"]),
                        status_code=200, headers=position_headers(APPLICATION, outcome.position))


def _clinic(info: ClinicInfo, closed: list[date]) -> ClinicView:
    return ClinicView(
        info.clinic_id, info.name, list(info.address_lines), info.town, info.postcode,
        info.timezone, info.phone,
        [HoursView(WEEKDAYS[h.weekday], h.opens.strftime("%H:%M"), h.closes.strftime("%H:%M"))
         for h in info.opening_hours],
        PolicyView(info.policy.free_cancellation_hours, info.policy.reschedule_notice_hours,
                   info.policy.max_reschedules), closed)


def _type(info: ConsultationTypeInfo) -> TypeView:
    return TypeView(info.type_id, info.name, info.mode.value, info.duration_minutes,
                    info.preparation, info.capacity_per_slot)


def _clinician(info: ClinicianInfo) -> ClinicianView:
    return ClinicianView(info.account_id, info.display_name, info.specialty,
                         list(info.languages), list(info.clinic_ids),
                         list(info.consultation_type_ids), info.profile)


def next_available(container: Container, account_id: UUID, now: datetime) -> \
        list[dict[str, Any]] | None:
    """The clinician's next free slots from availability search, where it is wired."""
    availability: Any = getattr(container, "availability", None)
    if availability is None:
        return None
    slots = availability.search(clinician_id=account_id, date_from=now.date(),
                                date_to=now.date() + timedelta(days=28), limit=3, at=now)
    return [{"starts_at": slot.starts_at.isoformat(), "clinic_id": slot.clinic_id,
             "consultation_type_id": slot.consultation_type_id} for slot in slots]


class DirectoryController(Controller):
    path = "/v1"
    tags = ["clinics and clinicians"]
    dependencies = _DEPENDENCIES

    @get("/clinics", sync_to_thread=True, summary="The clinics of the network")
    def clinics(self, actor: NamedDependency[Actor],
                container: NamedDependency[Container]) -> list[ClinicView]:
        authorise(actor, Action.SCHEDULE_READ)
        reference = container.scheduling.current()
        return [_clinic(c, sorted(reference.closures(c.clinic_id))) for c in reference.clinics()]

    @get("/clinics/{clinic_id:str}", sync_to_thread=True, summary="One clinic")
    def clinic(self, clinic_id: FromPath[str], actor: NamedDependency[Actor],
               container: NamedDependency[Container]) -> ClinicView:
        authorise(actor, Action.SCHEDULE_READ)
        reference = container.scheduling.current()
        info = reference.clinic(clinic_id)
        if info is None:
            raise NotFound("There is no clinic with this id.")
        return _clinic(info, sorted(reference.closures(clinic_id)))

    @get("/consultation-types", sync_to_thread=True, summary="The kinds of consultation")
    def consultation_types(self, actor: NamedDependency[Actor],
                           container: NamedDependency[Container]) -> list[TypeView]:
        authorise(actor, Action.SCHEDULE_READ)
        return [_type(t) for t in container.scheduling.consultation_types()]

    @get("/clinicians", sync_to_thread=True,
         summary="Clinicians, by clinic, specialty, language or consultation type")
    def clinicians(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                   clinic: FromQuery[str | None] = None, specialty: FromQuery[str | None] = None,
                   language: FromQuery[str | None] = None,
                   consultation_type: FromQuery[str | None] = None) -> list[ClinicianView]:
        authorise(actor, Action.SCHEDULE_READ)
        return [_clinician(c) for c in container.scheduling.clinicians()
                if (clinic is None or clinic in c.clinic_ids)
                and (specialty is None or c.specialty == specialty.strip().lower())
                and (language is None or language in c.languages)
                and (consultation_type is None or consultation_type in c.consultation_type_ids)]

    @get("/clinicians/{account_id:uuid}", sync_to_thread=True,
         summary="A clinician's public profile, with their next available slots")
    def clinician(self, account_id: FromPath[UUID], actor: NamedDependency[Actor],
                  container: NamedDependency[Container],
                  now: NamedDependency[datetime]) -> ClinicianView:
        authorise(actor, Action.SCHEDULE_READ)
        info = container.scheduling.clinician(account_id)
        if info is None:
            raise NotFound("There is no clinician with this id.")
        view = _clinician(info)
        view.next_available = next_available(container, account_id, now)
        return view
