"""Visits: a patient's upcoming and past appointments (for the patient and their proxies), the
staff day lists per clinic and per clinician, and what an appointment still needs.

Day lists show times, patients' names, in person or by video, and statuses: what reception
needs to run the front desk, never clinical content. The consultation type (a screening, a
vaccination) says something about the visit, so only clinical staff see it.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import anyio.to_thread
import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.container import Container
from api.controllers.forms import outstanding_items
from api.dependencies import (
    local_time,
    signed_in,
    wait_for_position,
)
from commands.care import read_relationship
from domain.access import (
    Action,
    Actor,
    ClinicResource,
    PatientResource,
    authorise,
    authorise_ever,
    is_allowed,
)
from domain.consents import ConsentType
from domain.errors import Forbidden, NotFound
from domain.identity import CLINICAL_ROLES, Role
from domain.schedule_types import ClinicInfo, ScheduleSource

PROJECTION = "appointment_views"
CONSENT_PROJECTION = "consent_views"
_COLUMNS = ("appointment_id, patient_id, clinician_id, clinic_id, consultation_type_id, mode,"
            " starts_at, ends_at, status, hold_expires_at, cancelled_by, late_cancellation,"
            " note_for_patient")


class Visit(msgspec.Struct):
    appointment_id: UUID
    clinic_id: str
    clinic_name: str | None
    clinician_id: UUID
    clinician_name: str | None
    consultation_type_id: str
    consultation_type_name: str | None
    mode: str
    starts_at: datetime
    starts_at_local: str | None
    ends_at: datetime
    status: str  # held | booked | arrived | no_show | cancelled
    cancelled_by: str | None
    late_cancellation: bool | None
    note_for_patient: str | None


class Visits(msgspec.Struct):
    upcoming: list[Visit]
    past: list[Visit]


class DayListEntry(msgspec.Struct):
    appointment_id: UUID
    starts_at: datetime
    starts_at_local: str | None
    ends_at: datetime
    patient_id: UUID
    patient_name: str | None
    clinician_id: UUID
    clinician_name: str | None
    consultation_type_name: str | None  # clinical staff only
    mode: str
    status: str


class DayList(msgspec.Struct):
    date: date
    clinic_id: str | None
    clinician_id: UUID | None
    appointments: list[DayListEntry]


class OutstandingItem(msgspec.Struct):
    kind: str  # consent | form | upload
    id: str  # the consent type, form id or document type
    label: str
    status: str | None = None  # forms: not_started | draft; uploads: missing
    answered: int | None = None  # forms: questions answered so far in the draft
    questions: int | None = None  # forms: questions that apply (once started)


class Outstanding(msgspec.Struct):
    appointment_id: UUID
    consents: list[OutstandingItem]
    forms: list[OutstandingItem]
    uploads: list[OutstandingItem]


_DEPENDENCIES = signed_in("read_pool")


def _schedule(container: Container) -> ScheduleSource:
    schedule = container.waitlist.schedule
    if schedule is None:
        raise NotFound("The clinic network's schedule is not available.")
    return schedule


def _live(row: dict[str, Any], now: datetime) -> bool:
    """Lapsed holds, and holds whose time ran out, are not visits."""
    return row["status"] != "lapsed" and not (
        row["status"] == "held" and row["hold_expires_at"] is not None
        and row["hold_expires_at"] <= now)


def _visit(row: dict[str, Any], schedule: ScheduleSource) -> Visit:
    clinic = schedule.clinic(row["clinic_id"])
    clinician = schedule.clinician(row["clinician_id"])
    kind = schedule.consultation_type(row["consultation_type_id"])
    return Visit(row["appointment_id"], row["clinic_id"], clinic.name if clinic else None,
                 row["clinician_id"], clinician.display_name if clinician else None,
                 row["consultation_type_id"], kind.name if kind else None, row["mode"],
                 row["starts_at"], local_time(row["starts_at"], _zone(clinic)), row["ends_at"],
                 row["status"], row["cancelled_by"], row["late_cancellation"],
                 row["note_for_patient"])


def _zone(clinic: ClinicInfo | None) -> ZoneInfo:
    return clinic.zone if clinic else ZoneInfo("Europe/London")


async def _rows(pool: AsyncConnectionPool, where: str, params: tuple[Any, ...]) \
        -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(f"SELECT {_COLUMNS} FROM views.appointments WHERE {where}"
                          " ORDER BY starts_at", params)
        return await cur.fetchall()


async def _visits(request: Request[Any, Any, State], pool: AsyncConnectionPool,
                  container: Container, patient_id: UUID, now: datetime) -> Visits:
    await wait_for_position(request, pool, PROJECTION,
                            container.settings.read_your_writes_timeout_ms)
    schedule = _schedule(container)
    rows = [r for r in await _rows(pool, "patient_id = %s", (patient_id,)) if _live(r, now)]
    upcoming = [_visit(r, schedule) for r in rows
                if r["starts_at"] >= now and r["status"] in ("held", "booked")]
    past = [_visit(r, schedule) for r in reversed(rows)
            if not (r["starts_at"] >= now and r["status"] in ("held", "booked"))]
    return Visits(upcoming, past)


def _names(container: Container, patient_ids: set[UUID]) -> dict[UUID, str | None]:
    names: dict[UUID, str | None] = {}
    for patient_id in patient_ids:
        account = container.identity.find_account(patient_id)
        names[patient_id] = account.display_name if account else None
    return names


async def _day_list(container: Container, pool: AsyncConnectionPool, clinic_ids: list[str],
                    clinician_id: UUID | None, day: date, now: datetime,
                    with_types: bool) -> list[DayListEntry]:
    schedule = _schedule(container)
    entries: list[tuple[dict[str, Any], ClinicInfo | None]] = []
    for clinic_id in clinic_ids:
        clinic = schedule.clinic(clinic_id)
        zone = _zone(clinic)
        start = datetime.combine(day, time(0), zone)
        end = datetime.combine(day + timedelta(days=1), time(0), zone)
        where = "clinic_id = %s AND starts_at >= %s AND starts_at < %s"
        params: tuple[Any, ...] = (clinic_id, start, end)
        if clinician_id is not None:
            where, params = where + " AND clinician_id = %s", (*params, clinician_id)
        entries += [(r, clinic) for r in await _rows(pool, where, params) if _live(r, now)]
    names = await anyio.to_thread.run_sync(
        _names, container, {r["patient_id"] for r, _ in entries})
    result = []
    for row, clinic in sorted(entries, key=lambda e: e[0]["starts_at"]):
        clinician = schedule.clinician(row["clinician_id"])
        kind = schedule.consultation_type(row["consultation_type_id"])
        result.append(DayListEntry(
            row["appointment_id"], row["starts_at"], local_time(row["starts_at"], _zone(clinic)),
            row["ends_at"], row["patient_id"], names.get(row["patient_id"]), row["clinician_id"],
            clinician.display_name if clinician else None,
            kind.name if kind and with_types else None, row["mode"], row["status"]))
    return result


class VisitsController(Controller):
    path = "/v1"
    tags = ["visits"]
    dependencies = _DEPENDENCIES

    @get("/me/appointments", summary="My upcoming and past appointments")
    async def mine(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                   read_pool: NamedDependency[AsyncConnectionPool],
                   container: NamedDependency[Container],
                   now: NamedDependency[datetime]) -> Visits:
        authorise(actor, Action.APPOINTMENTS_READ, PatientResource(actor.account_id))
        return await _visits(request, read_pool, container, actor.account_id, now)

    @get("/patients/{patient_id:uuid}/appointments",
         summary="The appointments of someone I help (a proxy with the appointments scope)")
    async def of_patient(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
                         actor: NamedDependency[Actor],
                         read_pool: NamedDependency[AsyncConnectionPool],
                         container: NamedDependency[Container],
                         now: NamedDependency[datetime]) -> Visits:
        async with read_pool.connection() as conn:
            relationship = await read_relationship(conn, actor, patient_id, now)
        authorise(actor, Action.APPOINTMENTS_READ, PatientResource(patient_id, relationship))
        return await _visits(request, read_pool, container, patient_id, now)

    @get("/appointments/{appointment_id:uuid}/outstanding",
         summary="What an appointment still needs: consents not yet given, forms to fill in "
                 "(with draft progress), documents to upload")
    async def outstanding(self, request: Request[Any, Any, State],
                          appointment_id: FromPath[UUID], actor: NamedDependency[Actor],
                          read_pool: NamedDependency[AsyncConnectionPool],
                          container: NamedDependency[Container],
                          now: NamedDependency[datetime]) -> Outstanding:
        # The client may wait for a booking or for a consent it just gave.
        for projection in (PROJECTION, CONSENT_PROJECTION):
            await wait_for_position(request, read_pool, projection,
                                    container.settings.read_your_writes_timeout_ms)
        rows = await _rows(read_pool, "appointment_id = %s", (appointment_id,))
        if not rows:
            raise NotFound("There is no such appointment.")
        patient_id = rows[0]["patient_id"]
        async with read_pool.connection() as conn:
            relationship = await read_relationship(conn, actor, patient_id, now)
        resource = PatientResource(patient_id, relationship)
        # Consents are for the patient, their proxies, the care team and administrators.
        action = Action.APPOINTMENTS_READ if actor.role == Role.PATIENT \
            else Action.PATIENT_CONSENTS_READ
        if not is_allowed(actor, action, resource):
            raise NotFound("There is no such appointment.")
        consents = []
        if rows[0]["mode"] == "video":
            async with read_pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT 1 FROM views.patient_consents WHERE patient_id = %s"
                    " AND consent_type = %s AND status = 'given'",
                    (patient_id, ConsentType.TELEMEDICINE.value))
                if await cur.fetchone() is None:
                    consents.append(OutstandingItem("consent", ConsentType.TELEMEDICINE.value,
                                                    "Consent to video consultations"))
        async with read_pool.connection() as conn:
            forms, uploads = await outstanding_items(conn, appointment_id,
                                                     rows[0]["consultation_type_id"])
        return Outstanding(appointment_id, consents, [OutstandingItem(**f) for f in forms],
                           [OutstandingItem(**u) for u in uploads])


class DayListController(Controller):
    path = "/v1/staff"
    tags = ["day lists (staff)"]
    dependencies = _DEPENDENCIES

    @get("/day-list", summary="A clinic's appointments on one day")
    async def clinic_day(self, actor: NamedDependency[Actor],
                         read_pool: NamedDependency[AsyncConnectionPool],
                         container: NamedDependency[Container], now: NamedDependency[datetime],
                         clinic_id: FromQuery[str], date: FromQuery[date]) -> DayList:
        authorise(actor, Action.DAY_LIST_READ, ClinicResource(clinic_id))
        entries = await _day_list(container, read_pool, [clinic_id], None, date, now,
                                  actor.role in CLINICAL_ROLES)
        return DayList(date, clinic_id, None, entries)

    @get("/clinicians/{account_id:uuid}/day-list",
         summary="A clinician's appointments on one day, at the clinics I work at")
    async def clinician_day(self, account_id: FromPath[UUID], actor: NamedDependency[Actor],
                            read_pool: NamedDependency[AsyncConnectionPool],
                            container: NamedDependency[Container],
                            now: NamedDependency[datetime], date: FromQuery[date]) -> DayList:
        authorise_ever(actor, Action.DAY_LIST_READ)
        clinician = _schedule(container).clinician(account_id)
        if clinician is None:
            raise NotFound("There is no clinician with this id.")
        clinics = [c for c in clinician.clinic_ids
                   if is_allowed(actor, Action.DAY_LIST_READ, ClinicResource(c))]
        if not clinics:
            raise Forbidden("You can see the day lists of your own clinics only.")
        entries = await _day_list(container, read_pool, clinics, account_id, date, now,
                                  actor.role in CLINICAL_ROLES)
        return DayList(date, None, account_id, entries)
