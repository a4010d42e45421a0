"""Integration with the clinic systems, for clinic administrators: patients' identifiers, matching
records from clinic systems and reviewing the uncertain matches, and outbound webhooks with their
dead letters."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody, QueryParameter

from api.dependencies import expected_version, signed_in
from commands.identifiers import Demographics, Identifiers, IdentifiersApplication, Review
from commands.webhooks import DeliveryView, Subscription, Webhooks
from domain.access import Actor
from domain.errors import NotFound

# Loose on purpose: the commands check every field and report all errors at once, which a
# stricter struct (msgspec stops at the first error) would not.
Text = Annotated[str, msgspec.Meta(max_length=1000)]
IdentifierMap = Annotated[dict[Annotated[str, msgspec.Meta(max_length=100)], Text],
                          msgspec.Meta(max_length=50)]


def provide_identifiers(state: State) -> IdentifiersApplication:
    identifiers: IdentifiersApplication = state.container.applications["identifiers"]
    return identifiers


def provide_webhooks(state: State) -> Webhooks:
    webhooks: Webhooks = state.container.webhooks
    return webhooks


# ---- identifiers ------------------------------------------------------------------------------


class IdentifiersEntry(msgspec.Struct, forbid_unknown_fields=True):
    identifiers: IdentifierMap  # {"nhs": "943 476 5919", "riverside-emis": "R12345"}


class IdentifiersView(msgspec.Struct):
    patient_id: UUID
    identifiers: dict[str, str]
    version: int  # send it back as If-Match when changing them


class IncomingRecord(msgspec.Struct, forbid_unknown_fields=True):
    """A record as a clinic system describes the person it is about."""

    system: Text  # the system that sent it, e.g. riverside-emis
    identifiers: IdentifierMap
    family_name: Text
    date_of_birth: date


class MatchView(msgspec.Struct):
    outcome: str  # matched | uncertain | none
    patient_id: UUID | None
    # nhs_number | local_number | conflict | demographics | no_candidate | confirmed_review |
    # rejected_review
    reason: str
    review_id: UUID | None  # the review an uncertain match waits in


class ReviewStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class ReviewView(msgspec.Struct):
    review_id: UUID
    clinic_id: str
    system: str
    identifiers: dict[str, str]
    family_name: str
    date_of_birth: date
    reason: str
    candidates: list[UUID]
    status: str
    patient_id: UUID | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None


class Confirmation(msgspec.Struct, forbid_unknown_fields=True):
    patient_id: UUID | None = None  # which candidate; may be left out when there is one


def _identifiers(found: Identifiers) -> Response[IdentifiersView]:
    return Response(IdentifiersView(found.patient_id, found.identifiers, found.version),
                    headers={"ETag": f'"{found.version}"'})


def _review(review: Review) -> ReviewView:
    return msgspec.convert(review, ReviewView, from_attributes=True)


# ---- webhooks ---------------------------------------------------------------------------------


class WebhookEntry(msgspec.Struct, forbid_unknown_fields=True):
    url: Text
    event_types: Annotated[list[Text], msgspec.Meta(max_length=20)]
    secret: Text | None = None  # left out: CareBridge makes one (new) or keeps it (changed)
    active: bool = True


class WebhookView(msgspec.Struct):
    clinic_id: str
    subscription_id: str
    url: str
    event_types: list[str]
    active: bool
    updated_at: datetime
    updated_by: str
    secret: str | None = None  # only in the answer that created it, when CareBridge made it


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class DeliveryEntry(msgspec.Struct):
    """A webhook delivery: what and where, never the payload."""

    delivery_id: UUID
    clinic_id: str
    subscription_id: str
    event_type: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    retried_at: datetime | None


def _webhook(subscription: Subscription, secret: str | None = None) -> WebhookView:
    return WebhookView(subscription.clinic_id, subscription.subscription_id, subscription.url,
                       subscription.event_types, subscription.active, subscription.updated_at,
                       subscription.updated_by, secret)


def _delivery(view: DeliveryView) -> DeliveryEntry:
    return msgspec.convert(view, DeliveryEntry, from_attributes=True)


class IntegrationController(Controller):
    path = "/v1/admin"
    tags = ["integration (clinic administrators)"]
    dependencies = {**signed_in(),
                    "registry": Provide(provide_identifiers, sync_to_thread=False),
                    "webhooks": Provide(provide_webhooks, sync_to_thread=False)}

    @get("/patients/{patient_id:uuid}/identifiers", sync_to_thread=True,
         summary="A patient's NHS number and local record numbers")
    def get_identifiers(self, patient_id: FromPath[UUID], actor: NamedDependency[Actor],
                        registry: NamedDependency[IdentifiersApplication],
                        ) -> Response[IdentifiersView]:
        return _identifiers(registry.identifiers_of(actor, patient_id))

    @put("/patients/{patient_id:uuid}/identifiers", sync_to_thread=True,
         summary="Set a patient's NHS number and the local numbers of my clinics' systems")
    def put_identifiers(self, request: Request[Any, Any, Any], patient_id: FromPath[UUID],
                        data: JSONBody[IdentifiersEntry], actor: NamedDependency[Actor],
                        registry: NamedDependency[IdentifiersApplication],
                        now: NamedDependency[datetime]) -> Response[IdentifiersView]:
        version = expected_version(request, "the identifiers you read")
        return _identifiers(registry.put(actor, patient_id, data.identifiers, now, version))

    @post("/identifier-matches", status_code=200, sync_to_thread=True,
          summary="Match a record from a clinic system to a patient")
    def match(self, data: JSONBody[IncomingRecord], actor: NamedDependency[Actor],
              registry: NamedDependency[IdentifiersApplication],
              now: NamedDependency[datetime]) -> MatchView:
        found = registry.match_for(actor, data.system, data.identifiers,
                                      Demographics(data.family_name, data.date_of_birth), now)
        return MatchView(found.outcome, found.patient_id, found.reason, found.review_id)

    @get("/identifier-reviews", sync_to_thread=True,
         summary="Uncertain matches at my clinics (open ones by default), oldest first")
    def reviews(self, actor: NamedDependency[Actor],
                registry: NamedDependency[IdentifiersApplication],
                status: Annotated[ReviewStatus, QueryParameter(name="status")] = ReviewStatus.OPEN,
                ) -> list[ReviewView]:
        return [_review(review) for review in registry.reviews(actor, status.value)]

    @post("/identifier-reviews/{review_id:uuid}/confirm", status_code=200, sync_to_thread=True,
          summary="Confirm an uncertain match: link the record's identifiers to the patient")
    def confirm(self, review_id: FromPath[UUID], data: JSONBody[Confirmation],
                actor: NamedDependency[Actor],
                registry: NamedDependency[IdentifiersApplication],
                now: NamedDependency[datetime]) -> ReviewView:
        return _review(registry.confirm(actor, review_id, data.patient_id, now))

    @post("/identifier-reviews/{review_id:uuid}/reject", status_code=200, sync_to_thread=True,
          summary="Reject an uncertain match: the record is about none of the candidates")
    def reject(self, review_id: FromPath[UUID], actor: NamedDependency[Actor],
               registry: NamedDependency[IdentifiersApplication],
               now: NamedDependency[datetime]) -> ReviewView:
        return _review(registry.reject(actor, review_id, now))

    @put("/clinics/{clinic_id:str}/webhooks/{subscription_id:str}", sync_to_thread=True,
         summary="Add or change a webhook of my clinic")
    def put_webhook(self, clinic_id: FromPath[str], subscription_id: FromPath[str],
                    data: JSONBody[WebhookEntry], actor: NamedDependency[Actor],
                    webhooks: NamedDependency[Webhooks],
                    now: NamedDependency[datetime]) -> WebhookView:
        saved, issued = webhooks.put(actor, clinic_id, subscription_id, data.url,
                                     data.event_types, data.secret, now, data.active)
        return _webhook(saved, issued)

    @get("/clinics/{clinic_id:str}/webhooks/{subscription_id:str}", sync_to_thread=True,
         summary="A webhook of my clinic (never its secret)")
    def get_webhook(self, clinic_id: FromPath[str], subscription_id: FromPath[str],
                    actor: NamedDependency[Actor],
                    webhooks: NamedDependency[Webhooks]) -> WebhookView:
        found = webhooks.get(actor, clinic_id, subscription_id)
        if found is None:
            raise NotFound("There is no such webhook at this clinic.")
        return _webhook(found)

    @delete("/clinics/{clinic_id:str}/webhooks/{subscription_id:str}", status_code=204,
            sync_to_thread=True, summary="Remove a webhook of my clinic")
    def delete_webhook(self, clinic_id: FromPath[str], subscription_id: FromPath[str],
                       actor: NamedDependency[Actor], webhooks: NamedDependency[Webhooks]) -> None:
        webhooks.delete(actor, clinic_id, subscription_id)

    @get("/webhook-deliveries", sync_to_thread=True,
         summary="Webhook deliveries at my clinics (dead letters by default), oldest first")
    def deliveries(self, actor: NamedDependency[Actor], webhooks: NamedDependency[Webhooks],
                   status: Annotated[DeliveryStatus,
                                     QueryParameter(name="state")] = DeliveryStatus.DEAD,
                   ) -> list[DeliveryEntry]:
        return [_delivery(view) for view in webhooks.deliveries(actor, status.value)]

    @post("/webhook-deliveries/{delivery_id:uuid}/retry", status_code=200, sync_to_thread=True,
          summary="Send a dead webhook delivery again")
    def retry(self, delivery_id: FromPath[UUID], actor: NamedDependency[Actor],
              webhooks: NamedDependency[Webhooks],
              now: NamedDependency[datetime]) -> DeliveryEntry:
        return _delivery(webhooks.retry(actor, delivery_id, now))
