"""Pharmacies: the directory patients choose from, its upkeep by clinic administrators, and the
dead letters of the pharmacy handoff for coordinators and administrators."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from api.dependencies import signed_in
from commands.pharmacy import HandoffView, Listing, Pharmacy, PharmacyDirectory
from domain.access import Actor

# Loose on purpose: the directory checks every field and reports all errors at once, which a
# stricter struct (msgspec stops at the first error) would not.
Text = Annotated[str, msgspec.Meta(max_length=1000)]


def provide_pharmacies(state: State) -> PharmacyDirectory:
    return state.container.pharmacies


class PharmacyEntry(msgspec.Struct, forbid_unknown_fields=True):
    name: Text = ""
    address: Text = ""
    postcode: Text = ""
    phone: Text = ""
    channel: Text = ""  # http: POST to `endpoint` | file: a folder in the drop directory
    endpoint: Text = ""
    active: bool = True


class PharmacyView(msgspec.Struct):
    """A pharmacy as its administrators keep it."""

    pharmacy_id: str
    name: str
    address: str
    postcode: str
    phone: str
    channel: str
    endpoint: str
    active: bool


class PharmacyListing(msgspec.Struct):
    """A pharmacy as a patient chooses it (never how prescriptions reach it)."""

    pharmacy_id: str
    name: str
    address: str
    postcode: str
    phone: str


class HandoffStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class HandoffEntry(msgspec.Struct):
    """Where a prescription went and how it fared; never the prescription itself."""

    handoff_id: UUID
    request_id: UUID
    clinic_id: str
    pharmacy_id: str
    pharmacy_name: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    retried_at: datetime | None


def _listing(listing: Listing) -> PharmacyListing:
    return PharmacyListing(listing.pharmacy_id, listing.name, listing.address, listing.postcode,
                           listing.phone)


def _handoff(view: HandoffView) -> HandoffEntry:
    return msgspec.convert(view, HandoffEntry, from_attributes=True)


class PharmacyController(Controller):
    path = "/v1"
    tags = ["pharmacies"]
    dependencies = {**signed_in(),
                    "pharmacies": Provide(provide_pharmacies, sync_to_thread=False)}

    @get("/pharmacies", sync_to_thread=True,
         summary="Find a pharmacy by name, address or the start of its postcode")
    def search(self, actor: NamedDependency[Actor],
               pharmacies: NamedDependency[PharmacyDirectory],
               q: Annotated[str | None, QueryParameter(name="q", max_length=100)] = None,
               postcode: Annotated[str | None,
                                   QueryParameter(name="postcode", max_length=10)] = None,
               limit: Annotated[int, QueryParameter(name="limit", ge=1, le=50)] = 20,
               ) -> list[PharmacyListing]:
        return [_listing(found) for found in pharmacies.search(q, postcode, limit)]

    @put("/admin/pharmacies/{pharmacy_id:str}", sync_to_thread=True,
         summary="Add or change a pharmacy (clinic administrators)")
    def put_pharmacy(self, pharmacy_id: FromPath[str], data: JSONBody[PharmacyEntry],
                     actor: NamedDependency[Actor],
                     pharmacies: NamedDependency[PharmacyDirectory],
                     now: NamedDependency[datetime]) -> PharmacyView:
        saved = pharmacies.put(actor, Pharmacy(pharmacy_id, data.name, data.address,
                                               data.postcode, data.phone, data.channel,
                                               data.endpoint, data.active), now)
        return PharmacyView(saved.pharmacy_id, saved.name, saved.address, saved.postcode,
                            saved.phone, saved.channel, saved.endpoint, saved.active)

    @get("/staff/pharmacy-handoffs", sync_to_thread=True,
         summary="Prescriptions on their way to pharmacies at my clinics (dead letters by "
                 "default), oldest first")
    def handoffs(self, actor: NamedDependency[Actor],
                 pharmacies: NamedDependency[PharmacyDirectory],
                 status: Annotated[HandoffStatus,
                                   QueryParameter(name="status")] = HandoffStatus.DEAD,
                 ) -> list[HandoffEntry]:
        return [_handoff(view) for view in pharmacies.handoffs(actor, status.value)]

    @post("/staff/pharmacy-handoffs/{handoff_id:uuid}/retry", status_code=200,
          sync_to_thread=True, summary="Send a dead handoff to its pharmacy again")
    def retry(self, handoff_id: FromPath[UUID], actor: NamedDependency[Actor],
              pharmacies: NamedDependency[PharmacyDirectory],
              now: NamedDependency[datetime]) -> HandoffEntry:
        return _handoff(pharmacies.retry(handoff_id, actor, now))
