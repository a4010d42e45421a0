"""Video consultations: the patient's waiting room, the clinician's side, and the signaling
WebSocket that connects them (protocol in webrtc/signaling.py and the README)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import anyio.to_thread
import msgspec
from litestar import Controller, Request, WebSocket, get, post, put, websocket
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import WebSocketDisconnect
from litestar.params import FromPath, JSONBody, QueryParameter

from api.auth import TokenService
from api.container import Container
from api.dependencies import idempotency_key, signed_in
from commands.idempotency import Outcome
from domain.access import Actor
from domain.consultations import CLOSED, Role
from domain.consultations import Outcome as CallOutcome
from domain.consultations import State as CallState
from domain.errors import CareBridgeError, Forbidden, Unauthenticated
from domain.identity import Role as AccountRole
from webrtc.ice import ice_servers
from webrtc.signaling import (
    CLOSE_CLOSED,
    CLOSE_FLOOD,
    CLOSE_NOT_FOUND,
    CLOSE_ORIGIN,
    CLOSE_TICKET,
    MAX_BAD_FRAMES,
    Bye,
    Connected,
    Failed,
    FrameError,
    Listener,
    Offer,
    Ping,
    QualitySamples,
    SignalRelay,
    Stats,
    Turns,
    decode,
)

log = logging.getLogger("carebridge.consultations")

Text = Annotated[str, msgspec.Meta(max_length=8000)]
REFRESH_SECONDS = 15.0


class ConsultationView(msgspec.Struct):
    consultation_id: str
    appointment_id: str
    state: str
    message: str
    join_opens_at: str
    room_opens_at: str
    joining_ends_at: str
    starts_at: str
    ends_at: str
    starts_at_local: str
    patient_present: bool
    clinician_present: bool
    waiting_since: str | None
    follow_up_instructions: str | None
    version: int


class IceServerView(msgspec.Struct, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class JoinGrant(msgspec.Struct):
    consultation_id: str
    role: str
    state: str
    ticket: str
    ticket_expires_at: datetime
    websocket_path: str
    ice_servers: list[IceServerView]
    consultation: ConsultationView


class SessionLogEntry(msgspec.Struct, omit_defaults=True):
    at: str
    event: str
    role: str | None = None
    reason: str | None = None
    outcome: str | None = None
    early: bool | None = None
    quality: dict[str, float] | None = None


class StaffConsultationView(ConsultationView):
    internal_notes: str | None
    patient_name: str | None
    session_log: list[SessionLogEntry]


class WaitingRoomEntry(msgspec.Struct):
    consultation_id: str
    appointment_id: str
    state: str
    patient_name: str | None
    starts_at: str
    starts_at_local: str
    ends_at: str
    patient_present: bool
    clinician_present: bool
    waiting_since: str | None


class WaitingRoom(msgspec.Struct):
    consultations: list[WaitingRoomEntry]


class EndCall(msgspec.Struct, forbid_unknown_fields=True):
    outcome: CallOutcome


class Summary(msgspec.Struct, forbid_unknown_fields=True):
    follow_up_instructions: Text = ""
    internal_notes: Text = ""


def _grant(request: Request[Any, Any, State], container: Container, actor: Actor,
           view: dict[str, Any], role: Role, now: datetime) -> JoinGrant:
    tokens: TokenService = request.app.state.tokens
    settings = container.settings
    consultation_id = view["consultation_id"]
    issued, _ = tokens.issue_ticket(actor.ref, actor.account_id, UUID(consultation_id),
                                    role.value, now, settings.consultation_ticket_seconds)
    servers = ice_servers(settings, str(actor.account_id), now)
    return JoinGrant(consultation_id, role.value, view["state"], issued.token,
                     issued.expires_at, f"/v1/consultations/{consultation_id}/signal",
                     [IceServerView(**s.as_json()) for s in servers],
                     msgspec.convert(view, ConsultationView))


class ConsultationController(Controller):
    """The patient's side: the waiting room of a video appointment."""

    path = "/v1/appointments"
    tags = ["telemedicine"]
    dependencies = signed_in()

    @get("/{appointment_id:uuid}/consultation", sync_to_thread=True,
         summary="Where I stand for a video appointment (waiting room state)")
    def consultation(self, appointment_id: FromPath[UUID], actor: NamedDependency[Actor],
                     container: NamedDependency[Container],
                     now: NamedDependency[datetime]) -> ConsultationView:
        return msgspec.convert(container.telemedicine.patient_view(actor, appointment_id, now),
                               ConsultationView)

    @post("/{appointment_id:uuid}/consultation/join", status_code=200, sync_to_thread=True,
          summary="Join (or rejoin) the video consultation: a WebSocket ticket and ICE servers")
    def join(self, request: Request[Any, Any, State], appointment_id: FromPath[UUID],
             actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> JoinGrant:
        if actor.role != AccountRole.PATIENT:
            raise Forbidden("Clinicians join from the consultation console.")
        key = idempotency_key(request, actor.ref, f"consultation.join.{appointment_id}", {})
        outcome = container.telemedicine.join(actor, appointment_id, now, key=key)
        return _grant(request, container, actor, outcome.result, Role.PATIENT, now)


class StaffConsultationController(Controller):
    """The clinician's side: the day's video consultations, admitting, ending, the summary."""

    path = "/v1/staff/consultations"
    tags = ["telemedicine"]
    dependencies = signed_in()

    @get("/", sync_to_thread=True, summary="My video consultations of a day (the waiting room)")
    def waiting_room(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                     now: NamedDependency[datetime],
                     day: Annotated[date | None, QueryParameter(name="date")] = None,
                     ) -> WaitingRoom:
        listed = container.telemedicine.clinician_day(actor, day, now)
        return WaitingRoom([msgspec.convert(entry, WaitingRoomEntry) for entry in listed])

    @get("/{consultation_id:uuid}", sync_to_thread=True,
         summary="A consultation with its internal notes and session log")
    def consultation(self, consultation_id: FromPath[UUID], actor: NamedDependency[Actor],
                     container: NamedDependency[Container],
                     now: NamedDependency[datetime]) -> StaffConsultationView:
        return _staff(container.telemedicine.staff_view(actor, consultation_id, now))

    @post("/{consultation_id:uuid}/join", status_code=200, sync_to_thread=True,
          summary="Join the call and admit the patient (the patient is told)")
    def join(self, request: Request[Any, Any, State], consultation_id: FromPath[UUID],
             actor: NamedDependency[Actor], container: NamedDependency[Container],
             now: NamedDependency[datetime]) -> JoinGrant:
        key = idempotency_key(request, actor.ref, f"consultation.admit.{consultation_id}", {})
        outcome = container.telemedicine.admit(actor, consultation_id, now, key=key)
        return _grant(request, container, actor, outcome.result, Role.CLINICIAN, now)

    @post("/{consultation_id:uuid}/end", status_code=200, sync_to_thread=True,
          summary="End the call: completed, or a technical failure")
    def end(self, request: Request[Any, Any, State], consultation_id: FromPath[UUID],
            data: JSONBody[EndCall], actor: NamedDependency[Actor],
            container: NamedDependency[Container],
            now: NamedDependency[datetime]) -> ConsultationView:
        key = idempotency_key(request, actor.ref, f"consultation.end.{consultation_id}", data)
        return _view(container.telemedicine.end(actor, consultation_id, data.outcome, now,
                                                key=key))

    @post("/{consultation_id:uuid}/no-show", status_code=200, sync_to_thread=True,
          summary="Record that the patient did not come")
    def no_show(self, request: Request[Any, Any, State], consultation_id: FromPath[UUID],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> ConsultationView:
        key = idempotency_key(request, actor.ref, f"consultation.no_show.{consultation_id}", {})
        return _view(container.telemedicine.record_no_show(actor, consultation_id, now, key=key))

    @put("/{consultation_id:uuid}/summary", sync_to_thread=True,
         summary="After the call: follow-up instructions (patient sees) and internal notes")
    def summary(self, request: Request[Any, Any, State], consultation_id: FromPath[UUID],
                data: JSONBody[Summary], actor: NamedDependency[Actor],
                container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> StaffConsultationView:
        key = idempotency_key(request, actor.ref, f"consultation.summary.{consultation_id}",
                              data)
        outcome = container.telemedicine.record_summary(
            actor, consultation_id, data.follow_up_instructions, data.internal_notes, now,
            key=key)
        return _staff(outcome.result)


def _view(outcome: Outcome) -> ConsultationView:
    return msgspec.convert({k: v for k, v in outcome.result.items() if k != "changed"},
                           ConsultationView)


def _staff(view: dict[str, Any]) -> StaffConsultationView:
    return msgspec.convert({k: v for k, v in view.items() if k != "changed"},
                           StaffConsultationView)


# ---- the signaling WebSocket ----------------------------------------------------------------

def origin_allowed(origin: str, socket: WebSocket[Any, Any, Any], allowed: list[str]) -> bool:
    """A browser always sends Origin: it must be the API's own or a configured one."""
    parts = urlsplit(origin)
    own_host = socket.headers.get("host", "")
    if parts.netloc and parts.netloc == own_host:
        return True
    return origin.rstrip("/") in {a.rstrip("/") for a in allowed}


@websocket("/v1/consultations/{consultation_id:uuid}/signal", name="consultation-signal")
async def consultation_signal(socket: WebSocket[Any, Any, State],
                              consultation_id: FromPath[UUID]) -> None:
    """Signaling for one consultation (authenticated by a ticket from a join)."""
    state = socket.app.state
    container: Container = state.container
    clock: Callable[[], datetime] = state.get("clock") or (lambda: datetime.now(UTC))
    await socket.accept()
    origin = socket.headers.get("origin")
    if origin is not None and not origin_allowed(origin, socket,
                                                 container.settings.websocket_origins):
        await socket.close(CLOSE_ORIGIN, "origin not allowed")
        return
    try:
        ticket = state.tokens.verify_ticket(socket.query_params.get("ticket") or "",
                                            consultation_id, clock())
    except Unauthenticated as refused:
        await socket.close(CLOSE_TICKET, refused.detail[:120])
        return
    telemedicine = container.telemedicine
    if not await anyio.to_thread.run_sync(telemedicine.use_ticket, ticket.ticket_id,
                                          ticket.expires_at):
        await socket.close(CLOSE_TICKET, "This ticket was used already. Join again.")
        return
    session = SignalSession(socket, state.signal_relay, container, consultation_id,
                            Role(ticket.role), ticket.actor_ref, clock)
    await session.run()


class SignalSession:
    """One participant's socket: relays its frames, pushes the room's, records presence."""

    def __init__(self, socket: WebSocket[Any, Any, State], relay: SignalRelay,
                 container: Container, consultation_id: UUID, role: Role, by: str,
                 clock: Callable[[], datetime]) -> None:
        self.socket, self.relay, self.container = socket, relay, container
        self.telemedicine = container.telemedicine
        self.consultation_id, self.role, self.by, self.clock = consultation_id, role, by, clock
        self.other = Role.PATIENT if role is Role.CLINICIAN else Role.CLINICIAN
        self.connection = uuid4().hex
        self.turns = Turns(role.value)
        self.quality = QualitySamples()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closing: tuple[int, str] | None = None
        self.reason = "dropped"
        self.bad_frames = 0

    async def run(self) -> None:
        listener = Listener(self.consultation_id, self.role.value, self.connection,
                            self.outbox.put)
        await self.relay.subscribe(listener)
        joined = False
        try:
            try:
                consultation = await self._call(self.telemedicine.joined, self.consultation_id,
                                                self.role, self.connection, self.by,
                                                self.clock())
            except CareBridgeError as refused:
                await self.socket.close(CLOSE_NOT_FOUND, refused.detail[:120])
                return
            joined = True
            view = self.telemedicine.view(consultation, self.clock())
            await self.socket.send_json({"type": "welcome", "role": self.role.value,
                                         "consultation_id": str(self.consultation_id),
                                         "state": view,
                                         "peer_present": consultation.present(self.other)})
            if consultation.state in CLOSED:
                self.reason = "closed"
                await self.socket.close(CLOSE_CLOSED, "This consultation is closed.")
                return
            await self.relay.publish(self.consultation_id, self.other.value,
                                     {"type": "presence", "role": self.role.value,
                                      "present": True}, self.connection)
            await self._serve()
        finally:
            self.relay.unsubscribe(listener)
            if joined:
                await self._leave()

    async def _serve(self) -> None:
        tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._send()),
                 asyncio.create_task(self._refresh())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.closing is not None:
            with contextlib.suppress(Exception):
                await self.socket.close(*self.closing)

    async def _receive(self) -> None:
        while True:
            try:
                raw = await self.socket.receive_data(mode="text")
            except WebSocketDisconnect:
                return
            try:
                frame = decode(raw)
                self.turns.check(frame)
            except FrameError as bad:
                self.bad_frames += 1
                if self.bad_frames > MAX_BAD_FRAMES:
                    self.closing = (CLOSE_FLOOD, "Too many bad frames.")
                    return
                await self.socket.send_json(bad.frame())
                continue
            if isinstance(frame, Bye):
                self.reason = "bye"
                self.closing = (1000, "bye")
                return
            await self._handle(frame)

    async def _handle(self, frame: Any) -> None:
        if isinstance(frame, Ping):
            await self.socket.send_json({"type": "pong"})
        elif isinstance(frame, Stats):
            self.quality.add(frame)
        elif isinstance(frame, Connected):
            await self._call(self.telemedicine.connected, self.consultation_id, self.role,
                             self.by, self.clock())
        elif isinstance(frame, Failed):
            await self._call(self.telemedicine.connection_failed, self.consultation_id,
                             self.role, frame.reason or "unknown", self.by, self.clock())
        else:  # offer, answer, ice: relayed to the other side as sent, with who sent it
            relayed = msgspec.to_builtins(frame)
            relayed["from"] = self.role.value
            await self.relay.publish(self.consultation_id, self.other.value, relayed,
                                     self.connection)
            if isinstance(frame, Offer):
                log.info("consultation %s: offer from the %s", self.consultation_id,
                         self.role.value)

    async def _send(self) -> None:
        while True:
            frame = await self.outbox.get()
            self.turns.delivered(frame)
            await self.socket.send_json(frame)
            if frame.get("type") == "state":
                state = frame["state"]["state"]
                if state in CLOSED or state == CallState.SCHEDULED:
                    self.reason = "closed"
                    self.closing = (CLOSE_CLOSED, "moved" if state == CallState.SCHEDULED
                                    else state)
                    return

    async def _refresh(self) -> None:
        """Opens the join window for an early arrival and reconciles with the appointment
        (a crash between an appointment change and its follow-up is caught here)."""
        while True:
            await asyncio.sleep(REFRESH_SECONDS)
            with contextlib.suppress(CareBridgeError):
                await self._call(self.telemedicine.refresh, self.consultation_id, self.clock())

    async def _leave(self) -> None:
        with contextlib.suppress(Exception):
            await self._call(self.telemedicine.left, self.consultation_id, self.role,
                             self.connection, self.reason, self.quality.summary(), self.by,
                             self.clock())
        with contextlib.suppress(Exception):
            await self.relay.publish(self.consultation_id, self.other.value,
                                     {"type": "presence", "role": self.role.value,
                                      "present": False}, self.connection)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(function, *args)
