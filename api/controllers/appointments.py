"""Appointments: patients (and proxies) hold, confirm, move and cancel; staff book on a patient's
behalf, cancel with a reason, and record arrivals and no-shows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody

from api.container import Container
from api.dependencies import (
    idempotency_key,
    position_headers,
    signed_in,
)
from commands.idempotency import Outcome
from domain.access import Actor
from domain.appointments import CancellationReason
from domain.errors import Forbidden
from domain.identity import Role

AwareTime = Annotated[datetime, msgspec.Meta(tz=True)]
TypeId = Annotated[str, msgspec.Meta(min_length=1, max_length=80)]


class HoldRequest(msgspec.Struct, forbid_unknown_fields=True):
    clinician_id: UUID
    consultation_type_id: TypeId
    starts_at: AwareTime
    patient_id: UUID | None = None  # someone the caller acts for; defaults to the caller


class StaffBooking(msgspec.Struct, forbid_unknown_fields=True):
    patient_id: UUID
    clinician_id: UUID
    consultation_type_id: TypeId
    starts_at: AwareTime


class Reschedule(msgspec.Struct, forbid_unknown_fields=True):
    starts_at: AwareTime
    clinician_id: UUID | None = None


class Cancel(msgspec.Struct, forbid_unknown_fields=True):
    reason_code: CancellationReason


class StaffReschedule(msgspec.Struct, forbid_unknown_fields=True):
    starts_at: AwareTime
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]  # staff-only
    clinician_id: UUID | None = None


class StaffCancel(msgspec.Struct, forbid_unknown_fields=True):
    reason_code: CancellationReason
    note_for_patient: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class AppointmentState(msgspec.Struct):
    appointment_id: UUID
    patient_id: UUID
    clinician_id: UUID
    clinic_id: str
    room_id: str | None
    consultation_type_id: str
    mode: str
    status: str  # held | booked | lapsed | cancelled | arrived | no_show
    starts_at: datetime
    ends_at: datetime
    hold_expires_at: datetime | None
    reschedule_count: int
    version: int
    changed: bool


class Cancellation(AppointmentState):
    late: bool
    free_cancellation_ended_at: datetime
    message: str


class ClinicAddress(msgspec.Struct):
    clinic_id: str
    name: str
    address_lines: list[str]
    town: str
    postcode: str
    phone: str | None


class Confirmation(msgspec.Struct):
    appointment_id: UUID
    patient_id: UUID
    clinician_id: UUID
    clinician_name: str
    clinic: ClinicAddress
    mode: str
    status: str
    starts_at: datetime
    ends_at: datetime
    starts_at_local: str
    ends_at_local: str
    timezone: str
    consultation_type: str | None  # not shown to reception (clinical)
    preparation: str | None
    cancellation_policy: str
    free_cancellation_until: datetime
    free_cancellation_until_local: str
    reschedules_left: int
    places_left: int | None  # group slots: places still free at this time
    hold_expires_at: datetime | None
    late_cancellation: bool
    cancelled_by: str | None
    reason_code: str | None
    version: int


_DEPENDENCIES = signed_in()
# A repeated request (its Idempotency-Key, or the same hold again) changes nothing: 200.
ALREADY_DONE = {200: ResponseSpec(AppointmentState, description="Already done by an earlier "
                                  "request: nothing changed")}
_STATE_FIELDS = set(AppointmentState.__struct_fields__)


def _answer(outcome: Outcome, created: bool = False) -> Response[AppointmentState]:
    state = msgspec.convert({k: v for k, v in outcome.result.items() if k in _STATE_FIELDS},
                            AppointmentState, strict=False)
    return Response(state, status_code=201 if created and outcome.result["changed"] else 200,
                    headers=position_headers("appointments", outcome.position))


def _cancellation(outcome: Outcome) -> Response[Cancellation]:
    result = outcome.result
    message = (f"The free cancellation period ended at {result['free_cancellation_ended_at_local']}"
               "; this cancellation is recorded as late." if result["late"]
               else "Your appointment is cancelled.")
    fields = set(Cancellation.__struct_fields__)
    cancelled = msgspec.convert({k: v for k, v in result.items() if k in fields}
                                | {"message": message}, Cancellation, strict=False)
    return Response(cancelled, status_code=200,
                    headers=position_headers("appointments", outcome.position))


def _patients_only(actor: Actor) -> None:
    if actor.role != Role.PATIENT:
        raise Forbidden("Staff book and cancel through the staff endpoints.")


class AppointmentController(Controller):
    path = "/v1/appointments"
    tags = ["appointments"]
    dependencies = _DEPENDENCIES

    @post("/holds", status_code=201, sync_to_thread=True, responses=ALREADY_DONE,
          summary="Hold a slot while the patient confirms (it lapses by itself)")
    def hold(self, request: Request[Any, Any, State], data: JSONBody[HoldRequest],
             actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[AppointmentState]:
        _patients_only(actor)
        key = idempotency_key(request, actor.ref, "appointments.hold", data)
        outcome = container.appointments.hold(
            actor, data.patient_id or actor.account_id, data.clinician_id,
            data.consultation_type_id, data.starts_at, at=now, key=key)
        return _answer(outcome, created=True)

    @post("/{appointment_id:uuid}/confirm", status_code=200, sync_to_thread=True,
          summary="Confirm a held slot")
    def confirm(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[AppointmentState]:
        _patients_only(actor)
        key = idempotency_key(request, actor.ref, f"appointments.confirm.{appointment_id}", {})
        return _answer(container.appointments.confirm(actor, appointment_id, at=now, key=key))

    @post("/{appointment_id:uuid}/cancel", status_code=200, sync_to_thread=True,
          summary="Cancel (late cancellations are allowed and recorded as late)")
    def cancel(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
               data: JSONBody[Cancel], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[Cancellation]:
        _patients_only(actor)
        key = idempotency_key(request, actor.ref, f"appointments.cancel.{appointment_id}", data)
        return _cancellation(container.appointments.cancel(actor, appointment_id,
                                                           data.reason_code, at=now, key=key))

    @post("/{appointment_id:uuid}/reschedule", status_code=200, sync_to_thread=True,
          summary="Move to another time (within the clinic's policy)")
    def reschedule(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
                   data: JSONBody[Reschedule], actor: NamedDependency[Actor],
                   container: NamedDependency[Container],
                   now: NamedDependency[datetime]) -> Response[AppointmentState]:
        _patients_only(actor)
        key = idempotency_key(request, actor.ref, f"appointments.reschedule.{appointment_id}",
                              data)
        return _answer(container.appointments.reschedule(
            actor, appointment_id, data.starts_at, at=now, key=key,
            new_clinician_id=data.clinician_id))

    @get("/{appointment_id:uuid}", sync_to_thread=True,
         summary="The confirmation: where, with whom, when, how to prepare, the policy")
    def confirmation(self, appointment_id: FromPath[UUID], actor: NamedDependency[Actor],
                     container: NamedDependency[Container],
                     now: NamedDependency[datetime]) -> Confirmation:
        return msgspec.convert(container.appointments.confirmation(actor, appointment_id, now),
                               Confirmation, strict=False)


class StaffAppointmentController(Controller):
    path = "/v1/staff/appointments"
    tags = ["appointments (staff)"]
    dependencies = _DEPENDENCIES

    @post("/", status_code=201, sync_to_thread=True, responses=ALREADY_DONE,
          summary="Book on a patient's behalf (confirmed at once)")
    def book(self, request: Request[Any, Any, State], data: JSONBody[StaffBooking],
             actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[AppointmentState]:
        _staff_only(actor)
        key = idempotency_key(request, actor.ref, "appointments.staff_book", data)
        return _answer(container.appointments.book(
            actor, data.patient_id, data.clinician_id, data.consultation_type_id, data.starts_at,
            at=now, key=key), created=True)

    @post("/{appointment_id:uuid}/cancel", status_code=200, sync_to_thread=True,
          summary="Cancel for the clinic with a reason; the patient is told")
    def cancel(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
               data: JSONBody[StaffCancel], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[Cancellation]:
        _staff_only(actor)
        key = idempotency_key(request, actor.ref, f"appointments.staff_cancel.{appointment_id}",
                              data)
        return _cancellation(container.appointments.cancel(
            actor, appointment_id, data.reason_code, at=now, note=data.note_for_patient,
            key=key))

    @post("/{appointment_id:uuid}/reschedule", status_code=200, sync_to_thread=True,
          summary="Move for the clinic with a reason (outside the patient's policy if need "
          "be); the patient is told")
    def reschedule(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
                   data: JSONBody[StaffReschedule], actor: NamedDependency[Actor],
                   container: NamedDependency[Container],
                   now: NamedDependency[datetime]) -> Response[AppointmentState]:
        _staff_only(actor)
        key = idempotency_key(request, actor.ref,
                              f"appointments.staff_reschedule.{appointment_id}", data)
        return _answer(container.appointments.reschedule(
            actor, appointment_id, data.starts_at, at=now, key=key,
            new_clinician_id=data.clinician_id, override_reason=data.reason))

    @post("/{appointment_id:uuid}/arrived", status_code=200, sync_to_thread=True,
          summary="Record that the patient has arrived")
    def arrived(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[AppointmentState]:
        key = idempotency_key(request, actor.ref, f"appointments.arrived.{appointment_id}", {})
        return _answer(container.appointments.arrive(actor, appointment_id, at=now, key=key))

    @post("/{appointment_id:uuid}/no-show", status_code=200, sync_to_thread=True,
          summary="Record that the patient did not come")
    def no_show(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[AppointmentState]:
        key = idempotency_key(request, actor.ref, f"appointments.no_show.{appointment_id}", {})
        return _answer(container.appointments.record_no_show(actor, appointment_id, at=now,
                                                             key=key))


def _staff_only(actor: Actor) -> None:
    if actor.role == Role.PATIENT:
        raise Forbidden("Patients book through their own appointments.")
