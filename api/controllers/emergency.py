"""Emergency location sharing: the patient starts, extends and stops a share and streams
positions from the phone; the clinic's on-call staff see active shares and positions live and
close them with an outcome; the emergency contact opens a plain page from the link in a text.

Positions arrive and leave over WebSockets and the contact's page; they are checked (range,
accuracy, age, impossible jumps), kept only as the latest one (`LivePositions`), and never
stored in PostgreSQL or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import anyio
import msgspec
from litestar import Controller, Request, Response, WebSocket, get, post, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import SerializationException, WebSocketDisconnect
from litestar.params import FromPath, JSONBody, QueryParameter

from api.container import Container
from api.dependencies import idempotency_key, position_headers, provide_actor, signed_in
from api.live import NotifyListener, forward
from commands.emergency import CHANNEL, LivePositions
from domain.access import Actor
from domain.emergency import ENDED_WORDS, Outcome, ShareState, checked_position
from domain.errors import CareBridgeError, FieldError, InvalidInput

log = logging.getLogger("carebridge.emergency")

CLOSE_UNAUTHENTICATED, CLOSE_ENDED = 4401, 4410
Note = Annotated[str, msgspec.Meta(max_length=280)]


class StartShare(msgspec.Struct, forbid_unknown_fields=True):
    patient_id: UUID | None = None  # a proxy starts one for the person they help
    note: Note | None = None  # a few words for the on-call staff
    clinic_id: str | None = None
    consent_version: str | None = None  # gives the data-sharing consent in the same step


class CloseShare(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome


class ShareView(msgspec.Struct):
    share_id: str
    patient_id: str
    clinic_id: str
    state: str
    started_at: str
    expires_at: str
    ended_at: str | None
    contact_told: bool
    version: int


class LastPosition(msgspec.Struct):
    latitude: float
    longitude: float
    accuracy: float
    at: str
    seconds_ago: float
    metres_moved: float  # since the first position of the share


class StaffShareView(ShareView):
    note: str | None
    patient_name: str | None
    phone: str | None
    outcome: str | None
    position: LastPosition | None = None


def _last(positions: LivePositions, share_id: str, now: datetime) -> LastPosition | None:
    held = positions.latest(UUID(share_id))
    if held is None:
        return None
    first, latest = held
    return LastPosition(latest.latitude, latest.longitude, latest.accuracy,
                        latest.at.isoformat(), round((now - latest.at).total_seconds(), 1),
                        round(first.metres_to(latest), 1))


def _staff_view(view: dict[str, Any], positions: LivePositions,
                now: datetime) -> StaffShareView:
    last = _last(positions, view["share_id"], now)
    return msgspec.convert({**view, "position": msgspec.to_builtins(last) if last else None},
                           StaffShareView)


def _share(outcome: Any, status: int = 200) -> Response[ShareView]:
    cleaned = {k: v for k, v in outcome.result.items() if k != "changed"}
    return Response(msgspec.convert(cleaned, ShareView), status_code=status,
                    headers=position_headers("emergency", outcome.position))


class EmergencyShareController(Controller):
    """The patient's side (or a proxy with the messaging scope)."""

    path = "/v1/emergency-shares"
    tags = ["emergency"]
    dependencies = signed_in()

    @post("/", status_code=201, sync_to_thread=True,
          summary="Share my live location with my clinic's on-call team and my emergency "
          "contact")
    def start(self, request: Request[Any, Any, State], data: JSONBody[StartShare],
              actor: NamedDependency[Actor], container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[ShareView]:
        patient_id = data.patient_id or actor.account_id
        key = idempotency_key(request, actor.ref, f"emergency.start.{patient_id}", data)
        return _share(container.emergency.start(actor, patient_id, data.note,
                                                data.consent_version, data.clinic_id, now,
                                                key=key), 201)

    @get("/{share_id:uuid}", sync_to_thread=True, summary="My share: how long it lasts")
    def one(self, share_id: FromPath[UUID], actor: NamedDependency[Actor],
            container: NamedDependency[Container], now: NamedDependency[datetime]) -> ShareView:
        return msgspec.convert(container.emergency.patient_share(actor, share_id, now),
                               ShareView)

    @post("/{share_id:uuid}/extend", status_code=200, sync_to_thread=True,
          summary="Keep sharing for longer")
    def extend(self, request: Request[Any, Any, State], share_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[ShareView]:
        key = idempotency_key(request, actor.ref, f"emergency.extend.{share_id}", {})
        return _share(container.emergency.extend(actor, share_id, now, key=key))

    @post("/{share_id:uuid}/stop", status_code=200, sync_to_thread=True,
          summary="Stop sharing my location")
    def stop(self, request: Request[Any, Any, State], share_id: FromPath[UUID],
             actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> Response[ShareView]:
        key = idempotency_key(request, actor.ref, f"emergency.stop.{share_id}", {})
        return _share(container.emergency.stop(actor, share_id, now, key=key))


class StaffEmergencyController(Controller):
    """A clinic's on-call clinicians."""

    path = "/v1/staff/emergency-shares"
    tags = ["emergency"]
    dependencies = signed_in()

    @get("/", sync_to_thread=True, summary="My clinic's active emergency shares, with the "
         "latest position of each")
    def active(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
               container: NamedDependency[Container], now: NamedDependency[datetime],
               clinic_id: Annotated[str, QueryParameter(name="clinic_id")],
               ) -> list[StaffShareView]:
        positions: LivePositions = request.app.state.positions
        return [_staff_view(s, positions, now)
                for s in container.emergency.active(actor, clinic_id, now)]

    @get("/{share_id:uuid}", sync_to_thread=True,
         summary="One emergency share; the view is recorded")
    def one(self, request: Request[Any, Any, State], share_id: FromPath[UUID],
            actor: NamedDependency[Actor], container: NamedDependency[Container],
            now: NamedDependency[datetime]) -> StaffShareView:
        view = container.emergency.staff_share(actor, share_id, now)
        return _staff_view(view, request.app.state.positions, now)

    @post("/{share_id:uuid}/close", status_code=200, sync_to_thread=True,
          summary="Close the share with its outcome")
    def close(self, request: Request[Any, Any, State], share_id: FromPath[UUID],
              data: JSONBody[CloseShare], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[ShareView]:
        key = idempotency_key(request, actor.ref, f"emergency.close.{share_id}", data)
        return _share(container.emergency.close_share(actor, share_id, data.outcome, now,
                                                      key=key))


# ---- the emergency contact's page --------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
{refresh}<title>CareBridge: live location</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;
line-height:1.5}}.big{{font-size:1.4rem}}a{{color:#0b5cad}}</style></head>
<body><h1>{heading}</h1>{body}
<p><small>This page refreshes itself. It stops working when the share ends.</small></p>
</body></html>"""


def _page(heading: str, body: str, refresh: bool) -> str:
    return _PAGE.format(heading=html.escape(heading), body=body,
                        refresh='<meta http-equiv="refresh" content="10">\n' if refresh else "")


class EmergencyPageController(Controller):
    """The plain page the emergency contact opens from the text: no sign-in, no scripts, no
    map tiles; coordinates, accuracy, age, distance moved, and links to open in a maps app."""

    path = "/emergency"
    tags = ["emergency"]
    include_in_schema = False

    @get("/{token:str}", sync_to_thread=True, media_type="text/html")
    def page(self, request: Request[Any, Any, State], token: FromPath[str]) -> Response[str]:
        container: Container = request.app.state.container
        now = _now(request)
        headers = {"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none';"
                   " style-src 'unsafe-inline'", "X-Robots-Tag": "noindex"}
        try:
            share = container.emergency.contact_share(token, now)
        except CareBridgeError as refused:
            ended = refused.extensions.get("state")
            words = ENDED_WORDS.get(ShareState(str(ended)), "") if ended else refused.detail
            return Response(_page("This location share has ended", f"<p>{html.escape(words)}"
                                  "</p>", refresh=False), status_code=410 if ended else 404,
                            media_type="text/html", headers=headers)
        account = container.identity.find_account(share.patient_id)
        name = account.given_name if account else "The person who sent you this"
        held = _last(request.app.state.positions, str(share.id), now)
        if held is None:
            body = ("<p class=big>No position has arrived yet. Their phone may still be "
                    "finding one.</p>")
        else:
            geo = f"{held.latitude:.6f},{held.longitude:.6f}"
            body = (f"<p class=big>Latest position: <strong>{geo}</strong><br>"
                    f"Accurate to about {held.accuracy:.0f} m, "
                    f"{_ago(held.seconds_ago)}.<br>"
                    f"Moved {held.metres_moved:.0f} m since sharing started.</p>"
                    f'<p><a href="geo:{geo}">Open in your maps app</a> · '
                    f'<a href="https://www.openstreetmap.org/?mlat={held.latitude:.6f}'
                    f'&amp;mlon={held.longitude:.6f}#map=17/{held.latitude:.6f}/'
                    f'{held.longitude:.6f}" rel="noreferrer">OpenStreetMap</a></p>')
        body += ("<p>If they are in danger, call the emergency services (999 or 112) and tell "
                 "them this position.</p>")
        return Response(_page(f"{name} is sharing their location with you", body,
                              refresh=True), media_type="text/html", headers=headers)


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} seconds ago"
    return f"{seconds / 60:.0f} minutes ago"


def _now(connection: Any) -> datetime:
    clock: Callable[[], datetime] | None = connection.app.state.get("clock")
    return clock() if clock else datetime.now(UTC)


# ---- live: the patient's phone and the on-call screens -----------------------------------------


class ShareFeed:
    """Hears (PostgreSQL NOTIFY, sent with each change's transaction) that a share started or
    ended, in every API process, and tells this process's viewers; an ended share's position
    is forgotten."""

    def __init__(self, url: str, positions: LivePositions) -> None:
        self.positions = positions
        self.listener = NotifyListener(url, CHANNEL, self.heard)

    async def start(self) -> None:
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()

    async def heard(self, change: dict[str, Any]) -> None:
        if change["state"] != ShareState.ACTIVE:  # Redis: off the loop
            await asyncio.to_thread(self.positions.forget, UUID(change["share_id"]))
        self.positions.hand_out({"type": "share", **change})


async def _actor(socket: WebSocket[Any, Any, State]) -> Actor | None:
    try:
        return await provide_actor(socket, socket.app.state)  # type: ignore[arg-type]
    except CareBridgeError as refused:
        await socket.close(CLOSE_UNAUTHENTICATED, refused.detail[:120])
        return None


@websocket("/v1/emergency-shares/{share_id:uuid}/positions")
async def share_positions(socket: WebSocket[Any, Any, State], share_id: FromPath[UUID]) -> None:
    """The patient's phone sends `{"type": "position", "latitude", "longitude", "accuracy",
    "at"}`; each is answered `{"type": "accepted"}` or `{"type": "error", "errors": [...]}`.
    When the share ends the socket gets `{"type": "ended", "state"}` and is closed (4410)."""
    await socket.accept()
    actor = await _actor(socket)
    if actor is None:
        return
    container: Container = socket.app.state.container
    positions: LivePositions = socket.app.state.positions
    try:
        share = await anyio.to_thread.run_sync(container.emergency.sender_share, actor,
                                               share_id, _now(socket))
    except CareBridgeError as refused:
        await socket.close(CLOSE_ENDED if refused.code == "share-ended" else 4404,
                           refused.detail[:120])
        return
    ended = positions.watch(lambda f: f["type"] == "share" and f["share_id"] == str(share_id)
                            and f["state"] != ShareState.ACTIVE)
    previous = None
    try:
        await socket.send_json({"type": "ready", "expires_at": share.expires_at.isoformat()})
        receiving = asyncio.create_task(socket.receive_json())
        watching = asyncio.create_task(ended.get())
        while True:
            done, _ = await asyncio.wait({receiving, watching},
                                         return_when=asyncio.FIRST_COMPLETED)
            if watching in done:
                receiving.cancel()
                await socket.send_json({"type": "ended", "state": watching.result()["state"]})
                await socket.close(CLOSE_ENDED, "the share has ended")
                return
            try:
                frame = receiving.result()
            except (ValueError, TypeError, SerializationException):
                await socket.send_json({"type": "error", "errors": [
                    {"field": "frame", "message": "send JSON position frames"}]})
                receiving = asyncio.create_task(socket.receive_json())
                continue
            receiving = asyncio.create_task(socket.receive_json())
            now = _now(socket)
            if now >= share.expires_at:  # extended meanwhile, or expired (the sweep records it)
                try:
                    share = await anyio.to_thread.run_sync(container.emergency.sender_share,
                                                           actor, share_id, now)
                except CareBridgeError:
                    watching.cancel()
                    await socket.send_json({"type": "ended",
                                            "state": ShareState.EXPIRED.value})
                    await socket.close(CLOSE_ENDED, "the share has ended")
                    return
            try:
                position = _checked(frame, now, previous)
            except InvalidInput as wrong:
                await socket.send_json({"type": "error", "errors": [
                    {"field": e.field, "message": e.message} for e in wrong.errors]})
                continue
            previous = position
            positions.put(share_id, share.clinic_id, position)
            await socket.send_json({"type": "accepted", "at": position.at.isoformat()})
    except WebSocketDisconnect:
        log.debug("emergency share %s: the phone went away", share_id)
    finally:
        positions.unwatch(ended)


def _checked(frame: Any, now: datetime, previous: Any) -> Any:
    if not isinstance(frame, dict) or frame.get("type") != "position":
        raise InvalidInput([FieldError("type", "must be position")])
    at = None
    if isinstance(frame.get("at"), str):
        with contextlib.suppress(ValueError):
            at = datetime.fromisoformat(frame["at"])
    return checked_position(frame.get("latitude"), frame.get("longitude"),
                            frame.get("accuracy"), at, now, previous)


@websocket("/v1/staff/emergency-shares/live")
async def on_call_feed(socket: WebSocket[Any, Any, State]) -> None:
    """The on-call screen of one clinic (`?clinic_id=`): positions of its active shares as
    they arrive, and `{"type": "share", "share_id", "state"}` when one starts or ends."""
    await socket.accept()
    actor = await _actor(socket)
    if actor is None:
        return
    clinic_id = socket.query_params.get("clinic_id") or ""
    container: Container = socket.app.state.container
    try:
        container.emergency.may_watch(actor, clinic_id)
    except CareBridgeError as refused:
        await socket.close(4403, refused.detail[:120])
        return
    positions: LivePositions = socket.app.state.positions
    queue = positions.watch(lambda frame: frame.get("clinic_id") == clinic_id)
    try:
        await socket.send_json({"type": "ready"})
        await forward(socket, queue, lambda frame: frame)
    except WebSocketDisconnect:
        log.debug("on-call feed: a screen went away")
    finally:
        positions.unwatch(queue)
