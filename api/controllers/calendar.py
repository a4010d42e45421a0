"""Calendar files: one appointment as iCalendar, and the patient's private calendar feed (its
URL is the credential, so the feed itself takes no sign-in)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath

from api.container import Container
from api.dependencies import (
    idempotency_key,
    position_headers,
    signed_in,
)
from commands.calendar import render
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever
from domain.errors import NotFound

ICS = "text/calendar"  # Litestar adds "; charset=utf-8" to text types
# Calendar apps poll; the entries change when an appointment does, so keep caches short and
# private (the URL is a secret).
NO_SHARED_CACHE = {"Cache-Control": "private, max-age=300"}


class FeedLink(msgspec.Struct):
    url: str  # relative to the API's base URL; anyone holding it can read the feed
    changed: bool


_DEPENDENCIES = signed_in()


def _appointments(container: Container) -> Any:
    return container.applications.get("appointments")


class CalendarController(Controller):
    path = "/v1"
    tags = ["calendar"]
    dependencies = _DEPENDENCIES

    @get("/appointments/{appointment_id:uuid}/calendar.ics", sync_to_thread=True, media_type=ICS,
         summary="One appointment as an iCalendar file (no medical detail)")
    def appointment_file(self, appointment_id: FromPath[UUID], actor: NamedDependency[Actor],
                         container: NamedDependency[Container],
                         now: NamedDependency[datetime]) -> Response[bytes]:
        authorise_ever(actor, Action.APPOINTMENTS_READ)
        found = container.calendar.appointment_entry(appointment_id,
                                                     container.availability.schedule, now,
                                                     _appointments(container))
        if found is None:
            raise NotFound("There is no appointment with this id.")
        patient_id, entry = found
        relationship = container.care.relationship(actor, patient_id, now)
        authorise(actor, Action.APPOINTMENTS_READ, PatientResource(patient_id, relationship))
        return Response(render([entry], now).encode(), media_type=ICS, headers={
            **NO_SHARED_CACHE,
            "Content-Disposition": 'attachment; filename="appointment.ics"'})

    @post("/me/calendar-feed", status_code=201, sync_to_thread=True,
          summary="Create my private calendar feed, or replace its address (the old one stops "
                  "working)")
    def open_feed(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                  container: NamedDependency[Container],
                  now: NamedDependency[datetime]) -> Response[FeedLink]:
        key = idempotency_key(request, actor.ref, "calendar_feed.open", {})
        outcome = container.calendar.open_feed(actor, now, key=key)
        return Response(FeedLink(outcome.result["url"], changed=not outcome.replayed),
                        status_code=201, headers={
                            **position_headers("calendar", outcome.position),
                            "Cache-Control": "no-store"})

    @delete("/me/calendar-feed", status_code=204, sync_to_thread=True,
            summary="Turn off my private calendar feed")
    def revoke_feed(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                    now: NamedDependency[datetime]) -> None:
        container.calendar.revoke_feed(actor, now)


class CalendarFeedController(Controller):
    """No sign-in: calendar apps cannot send one. The token in the path is the credential."""

    path = "/v1/calendar-feeds"
    tags = ["calendar"]
    dependencies = {"container": _DEPENDENCIES["container"], "now": _DEPENDENCIES["now"]}
    security = [{}]

    @get("/{feed_file:str}", sync_to_thread=True, media_type=ICS,
         summary="A patient's private calendar feed (the address is the credential)")
    def feed(self, feed_file: FromPath[str], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[bytes]:
        token = feed_file.removesuffix(".ics")
        text = None
        if feed_file.endswith(".ics") and 20 <= len(token) <= 100:
            text = container.calendar.feed(token, container.availability.schedule, now,
                                           _appointments(container))
        if text is None:
            raise NotFound("There is no calendar feed at this address. It may have been "
                           "turned off or replaced; make a new one in the app.")
        return Response(text.encode(), media_type=ICS, headers=NO_SHARED_CACHE)
