"""Consents: patients give and withdraw them; clinical staff see them; administrators publish
the texts patients agree to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.container import Container
from api.dependencies import (
    idempotency_key,
    local_time,
    position_headers,
    signed_in,
    wait_for_position,
)
from commands.care import read_relationship
from domain.access import Action, Actor, PatientResource, authorise
from domain.consents import CONSENT_LABELS, ConsentType
from domain.errors import NotFound

PROJECTION = "consent_views"


class GiveConsent(msgspec.Struct, forbid_unknown_fields=True):
    consent_type: ConsentType
    text_version: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]


class WithdrawConsent(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class PublishText(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    text: Annotated[str, msgspec.Meta(min_length=20, max_length=50_000)]


class ConsentTextView(msgspec.Struct):
    consent_type: ConsentType
    label: str
    version: str
    text: str
    text_sha256: str
    published_at: datetime


class ConsentState(msgspec.Struct):
    consent_type: ConsentType
    label: str
    status: str  # given | withdrawn | not_given
    text_version: str | None
    current_text_version: str | None
    needs_renewal: bool
    given_at: datetime | None
    given_at_local: str | None
    withdrawn_at: datetime | None
    withdrawn_at_local: str | None


class ConsentChange(msgspec.Struct):
    consent_id: str
    consent_type: ConsentType
    status: str
    text_version: str | None
    version: int
    changed: bool


class HistoryEntry(msgspec.Struct):
    consent_type: ConsentType
    action: str
    text_version: str | None
    text_sha256: str | None
    reason: str | None
    by_you: bool
    actor_role: str
    at: datetime
    at_local: str


class PublishedText(msgspec.Struct):
    consent_type: ConsentType
    version: str
    text_sha256: str
    changed: bool


_DEPENDENCIES = signed_in("read_pool", "zone")


async def _states(pool: AsyncConnectionPool, patient_id: UUID, zone: ZoneInfo) -> list[ConsentState]:
    async with pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            "SELECT consent_type, status, text_version, given_at, withdrawn_at"
            " FROM views.patient_consents WHERE patient_id = %s", (patient_id,))
        held = {row["consent_type"]: row for row in await cur.fetchall()}
        await cur.execute("SELECT consent_type, version FROM views.consent_texts WHERE is_current")
        current = {row["consent_type"]: row["version"] for row in await cur.fetchall()}
    states = []
    for consent_type in ConsentType:
        row = held.get(consent_type.value)
        status = row["status"] if row else "not_given"
        version = row["text_version"] if row and row["text_version"] else None
        states.append(ConsentState(
            consent_type=consent_type,
            label=CONSENT_LABELS[consent_type],
            status=status,
            text_version=version,
            current_text_version=current.get(consent_type.value),
            needs_renewal=status == "given" and version != current.get(consent_type.value),
            given_at=row["given_at"] if row else None,
            given_at_local=local_time(row["given_at"], zone) if row else None,
            withdrawn_at=row["withdrawn_at"] if row else None,
            withdrawn_at_local=local_time(row["withdrawn_at"], zone) if row else None,
        ))
    return states


async def _caught_up(request: Request[Any, Any, State], pool: AsyncConnectionPool,
                     container: Container) -> None:
    """Read-your-writes for the consent views (see `wait_for_position`)."""
    await wait_for_position(request, pool, PROJECTION,
                            container.settings.read_your_writes_timeout_ms)


class PatientConsentController(Controller):
    path = "/v1"
    tags = ["consents"]
    dependencies = _DEPENDENCIES

    @get("/consent-texts/{consent_type:str}", summary="The current text of a consent")
    async def current_text(self, request: Request[Any, Any, State],
                           consent_type: FromPath[ConsentType], actor: NamedDependency[Actor],
                           read_pool: NamedDependency[AsyncConnectionPool],
                           container: NamedDependency[Container]) -> ConsentTextView:
        await _caught_up(request, read_pool, container)
        async with read_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT version, text, text_sha256, published_at FROM views.consent_texts"
                " WHERE consent_type = %s AND is_current", (consent_type.value,))
            row = await cur.fetchone()
        if row is None:
            raise NotFound(f"The clinic has not published a consent text for "
                           f"{CONSENT_LABELS[consent_type]} yet.")
        return ConsentTextView(consent_type, CONSENT_LABELS[consent_type], *row)

    @get("/me/consents", summary="My consents, one entry per consent type")
    async def mine(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                   read_pool: NamedDependency[AsyncConnectionPool],
                   container: NamedDependency[Container],
                   zone: NamedDependency[ZoneInfo]) -> list[ConsentState]:
        authorise(actor, Action.CONSENT_READ, PatientResource(actor.account_id))
        await _caught_up(request, read_pool, container)
        return await _states(read_pool, actor.account_id, zone)

    @get("/me/consents/history", summary="Every consent I gave or withdrew, newest first")
    async def history(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                      read_pool: NamedDependency[AsyncConnectionPool],
                      container: NamedDependency[Container],
                      zone: NamedDependency[ZoneInfo]) -> list[HistoryEntry]:
        authorise(actor, Action.CONSENT_READ, PatientResource(actor.account_id))
        await _caught_up(request, read_pool, container)
        async with read_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT consent_type, action, text_version, text_sha256, reason, actor, at"
                " FROM views.consent_history WHERE patient_id = %s"
                " ORDER BY at DESC, aggregate_version DESC", (actor.account_id,))
            rows = await cur.fetchall()
        return [
            HistoryEntry(ConsentType(r[0]), r[1], r[2], r[3], r[4], r[5] == actor.ref,
                         r[5].split(":")[0], r[6], r[6].astimezone(zone).isoformat())
            for r in rows
        ]

    @post("/me/consents", status_code=201, sync_to_thread=True, responses={200: ResponseSpec(
              ConsentChange, description="Already given to this version: nothing changed")},
          summary="Give consent to the current text version")
    def give(self, request: Request[Any, Any, State], data: JSONBody[GiveConsent],
             actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[ConsentChange]:
        key = idempotency_key(request, actor.ref, "consent.give", data)
        outcome = container.consents.give(actor, actor.account_id, data.consent_type,
                                          data.text_version, at=now, key=key)
        return Response(ConsentChange(**outcome.result),
                        status_code=201 if outcome.result["changed"] else 200,
                        headers=position_headers("consents", outcome.position))

    @post("/me/consents/{consent_type:str}/withdraw", status_code=200, sync_to_thread=True,
          summary="Withdraw a consent")
    def withdraw(self, request: Request[Any, Any, State], consent_type: FromPath[ConsentType],
                 data: JSONBody[WithdrawConsent], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[ConsentChange]:
        key = idempotency_key(request, actor.ref, f"consent.withdraw.{consent_type}", data)
        outcome = container.consents.withdraw(actor, actor.account_id, consent_type, data.reason,
                                              at=now, key=key)
        return Response(ConsentChange(**outcome.result),
                        status_code=200,
                        headers=position_headers("consents", outcome.position))


class StaffConsentController(Controller):
    path = "/v1/staff"
    tags = ["consents (staff)"]
    dependencies = _DEPENDENCIES

    @get("/patients/{patient_id:uuid}/consents", summary="A patient's consents")
    async def patient_consents(self, request: Request[Any, Any, State],
                               patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                               read_pool: NamedDependency[AsyncConnectionPool],
                               container: NamedDependency[Container],
                               zone: NamedDependency[ZoneInfo],
                               now: NamedDependency[datetime]) -> list[ConsentState]:
        async with read_pool.connection() as conn:
            relationship = await read_relationship(conn, actor, patient_id, now)
        authorise(actor, Action.PATIENT_CONSENTS_READ, PatientResource(patient_id, relationship))
        await _caught_up(request, read_pool, container)
        return await _states(read_pool, patient_id, zone)

    @post("/consent-texts/{consent_type:str}", status_code=201, sync_to_thread=True,
          responses={200: ResponseSpec(PublishedText, description="This version with this "
                                       "text is already published: nothing changed")},
          summary="Publish a new version of a consent text (clinic administrators)")
    def publish(self, request: Request[Any, Any, State], consent_type: FromPath[ConsentType],
                data: JSONBody[PublishText], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[PublishedText]:
        key = idempotency_key(request, actor.ref, f"consent_text.publish.{consent_type}", data)
        outcome = container.consents.publish_text(actor, consent_type, data.version, data.text,
                                                  at=now, key=key)
        return Response(PublishedText(**outcome.result),
                        status_code=201 if outcome.result["changed"] else 200,
                        headers=position_headers("consents", outcome.position))
