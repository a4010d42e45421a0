"""The waitlist: a patient asks for an earlier appointment, and takes or turns down offers."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post
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
from domain.access import Action, Actor, PatientResource, authorise
from domain.waitlist import Urgency

_SLUG = msgspec.Meta(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9-]*$")


class JoinWaitlist(msgspec.Struct, forbid_unknown_fields=True):
    clinic_id: Annotated[str, _SLUG]
    consultation_type_id: Annotated[str, _SLUG]
    date_from: date
    date_to: date
    clinician_id: UUID | None = None
    urgency: Urgency = Urgency.ROUTINE


class Offer(msgspec.Struct):
    clinician_id: str
    starts_at: str
    expires_at: str | None


class WaitlistEntryView(msgspec.Struct):
    entry_id: str
    status: str  # waiting | offered | fulfilled | left
    clinic_id: str
    clinician_id: str | None
    consultation_type_id: str
    date_from: str
    date_to: str
    urgency: str
    offer: Offer | None
    version: int
    changed: bool
    appointment_id: str | None = None


class WaitingEntry(msgspec.Struct):
    entry_id: UUID
    status: str
    clinic_id: str
    clinician_id: UUID | None
    consultation_type_id: str
    date_from: date
    date_to: date
    urgency: str
    joined_at: datetime
    offer_clinician_id: UUID | None
    offer_starts_at: datetime | None
    offer_expires_at: datetime | None


_DEPENDENCIES = signed_in()


def _mine(actor: Actor) -> None:
    """The waitlist under /me is the caller's own: patients only."""
    authorise(actor, Action.APPOINTMENTS_BOOK, PatientResource(actor.account_id))


def _answer(outcome: Any, created: bool = False) -> Response[WaitlistEntryView]:
    status = 201 if created and outcome.result["changed"] else 200
    return Response(msgspec.convert(outcome.result, WaitlistEntryView), status_code=status,
                    headers=position_headers("waitlist", outcome.position))


class WaitlistController(Controller):
    path = "/v1/me/waitlist"
    tags = ["waitlist"]
    dependencies = _DEPENDENCIES

    @post("/", status_code=201, sync_to_thread=True, responses={200: ResponseSpec(
              WaitlistEntryView, description="Already on the list for this: nothing changed")},
          summary="Ask for an earlier appointment when one frees up")
    def join(self, request: Request[Any, Any, State], data: JSONBody[JoinWaitlist],
             actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[WaitlistEntryView]:
        _mine(actor)
        key = idempotency_key(request, actor.ref, "waitlist.join", data)
        outcome = container.waitlist.join(actor, actor.account_id, data.clinic_id,
                                          data.clinician_id, data.consultation_type_id,
                                          data.date_from, data.date_to, data.urgency, at=now,
                                          key=key)
        return _answer(outcome, created=True)

    @get("/", sync_to_thread=True, summary="My waitlist entries, with any open offer")
    def mine(self, actor: NamedDependency[Actor],
             container: NamedDependency[Container]) -> list[WaitingEntry]:
        _mine(actor)
        return [msgspec.convert({k: v for k, v in row.items() if k != "urgency_rank"},
                                WaitingEntry)
                for row in container.waitlist.entries(actor.account_id)]

    @delete("/{entry_id:uuid}", status_code=200, sync_to_thread=True,
            summary="Leave the waitlist")
    def leave(self, request: Request[Any, Any, State], entry_id: FromPath[UUID],
              actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[WaitlistEntryView]:
        _mine(actor)
        key = idempotency_key(request, actor.ref, f"waitlist.leave.{entry_id}", None)
        return _answer(container.waitlist.leave(actor, entry_id, at=now, key=key))

    @post("/offers/{entry_id:uuid}/accept", status_code=200, sync_to_thread=True,
          summary="Take the offered appointment")
    def accept(self, request: Request[Any, Any, State], entry_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[WaitlistEntryView]:
        _mine(actor)
        key = idempotency_key(request, actor.ref, f"waitlist.accept.{entry_id}", None)
        return _answer(container.waitlist.accept(actor, entry_id, at=now, key=key))

    @post("/offers/{entry_id:uuid}/decline", status_code=200, sync_to_thread=True,
          summary="Turn the offered appointment down and stay on the list")
    def decline(self, request: Request[Any, Any, State], entry_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> Response[WaitlistEntryView]:
        _mine(actor)
        key = idempotency_key(request, actor.ref, f"waitlist.decline.{entry_id}", None)
        return _answer(container.waitlist.decline(actor, entry_id, at=now, key=key))
