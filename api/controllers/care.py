"""Care teams, proxy access and break-glass: who may look after, or act for, a patient.

Staff manage care teams and open or review emergency access under `/v1/staff`; patients decide
who may act for them under `/v1/me/proxies`, and answer invitations under `/v1/me/represented`;
`/v1/patients/{patient_id}/...` is where a proxy acts for the patient they represent.
Break-glass reasons are staff-only: only the review list carries them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from psycopg_pool import AsyncConnectionPool

from api.container import Container
from api.controllers.consents import _DEPENDENCIES, ConsentState, _caught_up, _states
from api.dependencies import idempotency_key, position_headers
from commands.care import read_relationship
from commands.idempotency import Outcome
from domain.access import Action, Actor, PatientResource, authorise
from domain.care import CareBasis, ProxyKind, ProxyScope, ReviewOutcome

Aware = Annotated[datetime, msgspec.Meta(tz=True)]
Scopes = Annotated[list[ProxyScope], msgspec.Meta(max_length=len(ProxyScope))]
T = TypeVar("T")


class AddToCareTeam(msgspec.Struct, forbid_unknown_fields=True):
    clinician_id: UUID
    clinic_id: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    basis: CareBasis
    ends_at: Aware
    source_ref: Annotated[str, msgspec.Meta(max_length=100)] | None = None


class EndCareRelationship(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]


class RecordParentalResponsibility(msgspec.Struct, forbid_unknown_fields=True):
    parent_account_id: UUID


class OpenBreakGlass(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=4000)]
    clinic_id: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None


class ReviewBreakGlass(msgspec.Struct, forbid_unknown_fields=True):
    outcome: ReviewOutcome
    note: Annotated[str, msgspec.Meta(max_length=4000)] | None = None


class OfferProxy(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]
    kind: ProxyKind
    scopes: Scopes
    expires_on: date | None = None


class ChangeScopes(msgspec.Struct, forbid_unknown_fields=True):
    scopes: Scopes


class CareRelationshipView(msgspec.Struct):
    relationship_id: str
    patient_id: str
    clinician_id: str
    clinic_id: str
    basis: CareBasis
    source_ref: str
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    changed: bool = False


class CareTeamMember(msgspec.Struct):
    relationship_id: str
    clinician_id: str
    clinician_name: str
    clinician_role: str
    clinic_id: str
    basis: CareBasis
    source_ref: str
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None
    active: bool


class ProxyGrantView(msgspec.Struct):
    grant_id: str
    email: str
    kind: ProxyKind
    scopes: list[ProxyScope]
    status: str  # offered | active | declined | revoked | expired
    offered_at: datetime
    accepted_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None  # patient | proxy
    changed: bool = False


class Represented(msgspec.Struct):
    grant_id: str
    patient_id: str
    patient_name: str
    kind: ProxyKind
    scopes: list[ProxyScope]
    status: str  # offered (an invitation to answer) | active
    expires_at: datetime | None


class BreakGlassView(msgspec.Struct):
    access_id: str
    patient_id: str
    clinic_id: str
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    active: bool
    changed: bool = False


class BreakGlassEntry(msgspec.Struct):
    """For reviewers only: carries the clinician's reason (staff-only content)."""

    access_id: str
    patient_id: str
    clinic_id: str
    clinician_id: str
    clinician_name: str
    reason: str
    opened_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    active: bool
    review_outcome: ReviewOutcome | None
    review_note: str | None
    reviewed_at: datetime | None
    changed: bool = False


def _view(kind: type[T], outcome: Outcome, status: int, created: int = 201) -> Response[T]:
    """`created` when the command recorded something new (and said so), else `status`."""
    new = outcome.result.get("created", outcome.result["changed"])
    return Response(msgspec.convert(outcome.result, kind),
                    status_code=created if new else status,
                    headers=position_headers("care", outcome.position))


class StaffCareController(Controller):
    path = "/v1/staff"
    tags = ["care teams and break-glass (staff)"]
    dependencies = _DEPENDENCIES

    @get("/patients/{patient_id:uuid}/care-team", sync_to_thread=True,
         summary="A patient's care team at my clinics")
    def care_team(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                  container: NamedDependency[Container],
                  now: NamedDependency[datetime]) -> list[CareTeamMember]:
        return msgspec.convert(container.care.care_team(actor, patient_id, at=now),
                               list[CareTeamMember])

    @post("/patients/{patient_id:uuid}/care-team", status_code=201, sync_to_thread=True,
          summary="Put a clinician in a patient's care team, until an end date")
    def add_to_care_team(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
                         data: JSONBody[AddToCareTeam], actor: NamedDependency[Actor],
                         container: NamedDependency[Container],
                         now: NamedDependency[datetime]) -> Response[CareRelationshipView]:
        key = idempotency_key(request, actor.ref, "care_team.add", [patient_id, data])
        outcome = container.care.add_to_care_team(
            actor, patient_id, data.clinician_id, data.clinic_id, data.basis, data.source_ref,
            data.ends_at.astimezone(UTC), at=now, key=key)
        return _view(CareRelationshipView, outcome, 200)

    @post("/patients/{patient_id:uuid}/care-team/{relationship_id:uuid}/end", status_code=200,
          sync_to_thread=True, summary="End a care relationship before its end date")
    def end_care_relationship(self, request: Request[Any, Any, State],
                              patient_id: FromPath[UUID], relationship_id: FromPath[UUID],
                              data: JSONBody[EndCareRelationship], actor: NamedDependency[Actor],
                              container: NamedDependency[Container],
                              now: NamedDependency[datetime]) -> Response[CareRelationshipView]:
        key = idempotency_key(request, actor.ref, "care_team.end", [relationship_id, data])
        outcome = container.care.end_care_relationship(actor, patient_id, relationship_id,
                                                       data.reason, at=now, key=key)
        return _view(CareRelationshipView, outcome, 200, created=200)

    @post("/patients/{patient_id:uuid}/parental-responsibility", status_code=201,
          sync_to_thread=True,
          summary="Record, after checking in person, that a parent acts for a child patient")
    def parental_responsibility(self, request: Request[Any, Any, State],
                                patient_id: FromPath[UUID],
                                data: JSONBody[RecordParentalResponsibility],
                                actor: NamedDependency[Actor],
                                container: NamedDependency[Container],
                                now: NamedDependency[datetime]) -> Response[ProxyGrantView]:
        key = idempotency_key(request, actor.ref, "parental.record", [patient_id, data])
        outcome = container.care.record_parental_responsibility(
            actor, patient_id, data.parent_account_id, at=now, key=key)
        return _view(ProxyGrantView, outcome, 200)

    @post("/patients/{patient_id:uuid}/break-glass", status_code=201, sync_to_thread=True,
          summary="Open time-limited emergency access to a patient outside my care team")
    def open_break_glass(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
                         data: JSONBody[OpenBreakGlass], actor: NamedDependency[Actor],
                         container: NamedDependency[Container],
                         now: NamedDependency[datetime]) -> Response[BreakGlassView]:
        key = idempotency_key(request, actor.ref, "break_glass.open", [patient_id, data])
        outcome = container.care.open_break_glass(actor, patient_id, data.clinic_id,
                                                  data.reason, at=now, key=key)
        return _view(BreakGlassView, outcome, 200)

    @post("/break-glass/{access_id:uuid}/close", status_code=200, sync_to_thread=True,
          summary="End my emergency access early")
    def close_break_glass(self, request: Request[Any, Any, State], access_id: FromPath[UUID],
                          actor: NamedDependency[Actor], container: NamedDependency[Container],
                          now: NamedDependency[datetime]) -> Response[BreakGlassView]:
        key = idempotency_key(request, actor.ref, "break_glass.close", access_id)
        outcome = container.care.close_break_glass(actor, access_id, at=now, key=key)
        return _view(BreakGlassView, outcome, 200, created=200)

    @get("/break-glass", sync_to_thread=True,
         summary="Emergency accesses to review (clinic administrators: their clinics; auditors)")
    def break_glass_list(self, actor: NamedDependency[Actor],
                         container: NamedDependency[Container], now: NamedDependency[datetime],
                         reviewed: FromQuery[bool | None] = None) -> list[BreakGlassEntry]:
        return msgspec.convert(container.care.break_glass_for_review(actor, reviewed, at=now),
                               list[BreakGlassEntry])

    @post("/break-glass/{access_id:uuid}/review", status_code=200, sync_to_thread=True,
          summary="Record whether an emergency access was appropriate")
    def review_break_glass(self, request: Request[Any, Any, State], access_id: FromPath[UUID],
                           data: JSONBody[ReviewBreakGlass], actor: NamedDependency[Actor],
                           container: NamedDependency[Container],
                           now: NamedDependency[datetime]) -> Response[BreakGlassView]:
        key = idempotency_key(request, actor.ref, "break_glass.review", [access_id, data])
        outcome = container.care.review_break_glass(actor, access_id, data.outcome, data.note,
                                                    at=now, key=key)
        return _view(BreakGlassView, outcome, 200, created=200)


class ProxyController(Controller):
    path = "/v1/me"
    tags = ["proxy access"]
    dependencies = _DEPENDENCIES

    @get("/proxies", sync_to_thread=True, summary="Whom I have authorised to act for me")
    def proxies(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> list[ProxyGrantView]:
        return msgspec.convert(container.care.proxies(actor, at=now), list[ProxyGrantView])

    @post("/proxies", status_code=202, sync_to_thread=True,
          summary="Invite someone to act for me (the same answer whether or not they have an "
          "account)")
    def offer(self, request: Request[Any, Any, State], data: JSONBody[OfferProxy],
              actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[ProxyGrantView]:
        key = idempotency_key(request, actor.ref, "proxy.offer", data)
        outcome = container.care.offer_proxy(actor, data.email, data.kind, data.scopes,
                                             data.expires_on, at=now, key=key)
        return _view(ProxyGrantView, outcome, 202, created=202)

    @post("/proxies/{grant_id:uuid}/scopes", status_code=200, sync_to_thread=True,
          summary="Change what someone may do for me")
    def change_scopes(self, request: Request[Any, Any, State], grant_id: FromPath[UUID],
                      data: JSONBody[ChangeScopes], actor: NamedDependency[Actor],
                      container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Response[ProxyGrantView]:
        key = idempotency_key(request, actor.ref, "proxy.scopes", [grant_id, data])
        outcome = container.care.change_proxy_scopes(actor, grant_id, data.scopes, at=now,
                                                     key=key)
        return _view(ProxyGrantView, outcome, 200, created=200)

    @post("/proxies/{grant_id:uuid}/revoke", status_code=200, sync_to_thread=True,
          summary="Stop someone acting for me (from the next request on)")
    def revoke(self, request: Request[Any, Any, State], grant_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[ProxyGrantView]:
        key = idempotency_key(request, actor.ref, "proxy.revoke", grant_id)
        outcome = container.care.revoke_proxy(actor, grant_id, at=now, key=key)
        return _view(ProxyGrantView, outcome, 200, created=200)

    @get("/represented", sync_to_thread=True,
         summary="Patients I may act for, and invitations waiting for my answer")
    def represented(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                    now: NamedDependency[datetime]) -> list[Represented]:
        return msgspec.convert(container.care.represented(actor, at=now), list[Represented])

    @post("/represented/{grant_id:uuid}/accept", status_code=200, sync_to_thread=True,
          summary="Accept an invitation to act for a patient")
    def accept(self, request: Request[Any, Any, State], grant_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[ProxyGrantView]:
        return self._respond(request, grant_id, "accept", actor, container, now)

    @post("/represented/{grant_id:uuid}/decline", status_code=200, sync_to_thread=True,
          summary="Decline an invitation to act for a patient")
    def decline(self, request: Request[Any, Any, State], grant_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[ProxyGrantView]:
        return self._respond(request, grant_id, "decline", actor, container, now)

    @post("/represented/{grant_id:uuid}/step-down", status_code=200, sync_to_thread=True,
          summary="Stop acting for a patient")
    def step_down(self, request: Request[Any, Any, State], grant_id: FromPath[UUID],
                  actor: NamedDependency[Actor], container: NamedDependency[Container],
                  now: NamedDependency[datetime]) -> Response[ProxyGrantView]:
        return self._respond(request, grant_id, "step_down", actor, container, now)

    @staticmethod
    def _respond(request: Request[Any, Any, State], grant_id: UUID, answer: str, actor: Actor,
                 container: Container, now: datetime) -> Response[ProxyGrantView]:
        key = idempotency_key(request, actor.ref, f"proxy.{answer}", grant_id)
        outcome = container.care.respond_to_proxy(actor, grant_id, answer, at=now, key=key)
        return _view(ProxyGrantView, outcome, 200, created=200)


class PatientCareController(Controller):
    """A patient's care as the patient, or someone acting for them, sees it."""

    path = "/v1/patients"
    tags = ["proxy access"]
    dependencies = _DEPENDENCIES

    @get("/{patient_id:uuid}/consents",
         summary="A patient's consents, for the patient or a proxy with the consents scope")
    async def consents(self, request: Request[Any, Any, State], patient_id: FromPath[UUID],
                       actor: NamedDependency[Actor],
                       read_pool: NamedDependency[AsyncConnectionPool],
                       container: NamedDependency[Container], now: NamedDependency[datetime],
                       zone: NamedDependency[ZoneInfo]) -> list[ConsentState]:
        async with read_pool.connection() as conn:
            relationship = await read_relationship(conn, actor, patient_id, now)
        authorise(actor, Action.CONSENT_READ, PatientResource(patient_id, relationship))
        await _caught_up(request, read_pool, container)
        return await _states(read_pool, patient_id, zone)
