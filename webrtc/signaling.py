"""Consultation signaling: the WebSocket protocol, and the relay between API processes.

One WebSocket per participant and consultation carries JSON frames (README, "Video
consultations", lists them). The clinician's console always makes the offer and the patient's
app answers, so there is never glare; a rejoin after a drop gets a fresh offer. Frames that do
not parse, that are too large or that come out of turn get an `error` frame and the socket stays
open; only a flood of bad frames closes it (1008).

Frames cross API processes through PostgreSQL: a frame is a row in
`carebridge.consultation_signals` and a NOTIFY on `consultation_signals` naming the
consultation; every process LISTENs and hands new rows to the sockets of that consultation it
holds. Rows are read by id and by recipient, so an SDP offer larger than NOTIFY's 8000-byte
payload travels like any other frame; a short poll catches anything a dropped LISTEN missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from commands.telemedicine import SIGNAL_CHANNEL, SIGNALS, signal

log = logging.getLogger("carebridge.signaling")

MAX_FRAME_BYTES = 64 * 1024   # an SDP with many codecs is ~10 KB
MAX_BAD_FRAMES = 20
KEEP_SIGNALS_MINUTES = 10
CLOSE_TICKET, CLOSE_ORIGIN, CLOSE_NOT_FOUND, CLOSE_CLOSED, CLOSE_FLOOD = 4401, 4403, 4404, 4409, 1008


# ---- the protocol: what a client may send ---------------------------------------------------

class _Frame(msgspec.Struct, tag_field="type"):
    pass


class Offer(_Frame, tag="offer"):
    sdp: str


class Answer(_Frame, tag="answer"):
    sdp: str


class Ice(_Frame, tag="ice", rename={"sdp_mid": "sdpMid", "sdp_mline_index": "sdpMLineIndex",
                                    "username_fragment": "usernameFragment"}):
    candidate: str | None = None
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None
    username_fragment: str | None = None


class Connected(_Frame, tag="connected"):
    pass


class Stats(_Frame, tag="stats"):
    rtt_ms: float | None = None
    packet_loss_pct: float | None = None
    inbound_fps: float | None = None
    bitrate_kbps: float | None = None


class Failed(_Frame, tag="failed"):
    reason: str = ""


class Bye(_Frame, tag="bye"):
    pass


class Ping(_Frame, tag="ping"):
    pass


ClientFrame = Offer | Answer | Ice | Connected | Stats | Failed | Bye | Ping
_decoder = msgspec.json.Decoder(ClientFrame)
KNOWN_TYPES = ("offer", "answer", "ice", "connected", "stats", "failed", "bye", "ping")

# Plausible ranges; figures outside them are ignored, not stored.
STAT_RANGES = {"rtt_ms": (0.0, 60_000.0), "packet_loss_pct": (0.0, 100.0),
               "inbound_fps": (0.0, 240.0), "bitrate_kbps": (0.0, 1_000_000.0)}


class FrameError(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail

    def frame(self) -> dict[str, Any]:
        return {"type": "error", "code": self.code, "detail": self.detail}


def decode(raw: str | bytes) -> ClientFrame:
    """A client frame, or FrameError naming what is wrong (never the frame's content)."""
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError("bad-frame", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
    try:
        frame = _decoder.decode(raw)
    except msgspec.ValidationError as error:
        message = str(error)
        if message.endswith("at `$.type`") or message.endswith("field `type`"):
            message = "`type` must be one of: " + ", ".join(KNOWN_TYPES) + "."
        raise FrameError("bad-frame", message) from None
    except msgspec.DecodeError:
        raise FrameError("bad-frame", "Frames are JSON objects with a `type`.") from None
    if isinstance(frame, Offer | Answer) and not frame.sdp.startswith("v=0"):
        raise FrameError("bad-frame", "`sdp` must be a session description (starting v=0).")
    if isinstance(frame, Stats):
        for name in STAT_RANGES:
            value = getattr(frame, name)
            if value is not None and not math.isfinite(value):
                raise FrameError("bad-frame", f"`{name}` must be a finite number.")
    return frame


class Turns:
    """Who may send what, when: the clinician offers, the patient answers the offer it got."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.offer_in_hand = False    # the patient received an offer and has not answered yet
        self.negotiating = False      # an offer/answer exchange started (ICE may flow)

    def check(self, frame: ClientFrame) -> None:
        if isinstance(frame, Offer):
            if self.role != "clinician":
                raise FrameError("not-allowed", "Only the clinician's side makes offers; the "
                                 "app answers the offer it receives.")
            self.negotiating = True
        elif isinstance(frame, Answer):
            if self.role != "patient" or not self.offer_in_hand:
                raise FrameError("out-of-turn", "An answer must follow an offer received on "
                                 "this connection.")
            self.offer_in_hand = False
        elif isinstance(frame, Ice) and not self.negotiating:
            raise FrameError("out-of-turn", "Send ICE candidates after the offer (clinician) "
                             "or after receiving it (patient).")

    def delivered(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "offer" and self.role == "patient":
            self.offer_in_hand = self.negotiating = True


@dataclass
class QualitySamples:
    """Quality figures a side reported during its connection; the log keeps a summary."""

    values: dict[str, list[float]] = field(default_factory=dict)
    samples: int = 0

    def add(self, stats: Stats) -> None:
        self.samples += 1
        for name, (low, high) in STAT_RANGES.items():
            value = getattr(stats, name)
            if value is not None and low <= value <= high:
                self.values.setdefault(name, []).append(float(value))

    def summary(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        summary: dict[str, Any] = {"samples": self.samples}
        for name, values in self.values.items():
            summary[f"{name}_avg"] = sum(values) / len(values)
            summary[f"{name}_max"] = max(values)
            summary[f"{name}_min"] = min(values)
        return summary


# ---- the relay ------------------------------------------------------------------------------

@dataclass(eq=False)
class Listener:
    """One socket's subscription: frames for its role (or both), not the ones it sent."""

    consultation_id: UUID
    role: str
    connection: str
    deliver: Callable[[dict[str, Any]], Awaitable[None]]
    floor: int = 0
    seen: set[int] = field(default_factory=set)


class SignalRelay:
    """Carries frames between the sockets of a consultation, whichever process holds them."""

    def __init__(self, url: str, poll_seconds: float = 2.0) -> None:
        self.url, self.poll_seconds = url, poll_seconds
        self.listeners: dict[UUID, set[Listener]] = {}
        self._locks: dict[UUID, asyncio.Lock] = {}
        self._pool: AsyncConnectionPool[Any] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._pool = AsyncConnectionPool(self.url, min_size=1, max_size=4, open=False,
                                         kwargs={"autocommit": True, "row_factory": dict_row})
        await self._pool.open(wait=True, timeout=30)
        self._tasks = [asyncio.create_task(self._listen(), name="signal-listen"),
                       asyncio.create_task(self._poll(), name="signal-poll")]
        await asyncio.wait_for(self.listening.wait(), timeout=30)

    async def stop(self) -> None:
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._pool is not None:
            await self._pool.close()

    async def publish(self, consultation_id: UUID, recipient: str, frame: dict[str, Any],
                      sender_connection: str | None = None) -> None:
        assert self._pool is not None, "the relay is not started"
        async with self._pool.connection() as conn, conn.transaction():
            for statement in signal(consultation_id, recipient, frame, sender_connection):
                await conn.execute(statement.sql, statement.params)

    async def subscribe(self, listener: Listener) -> None:
        assert self._pool is not None, "the relay is not started"
        async with self._pool.connection() as conn:
            row: Any = await (await conn.execute(
                f"SELECT coalesce(max(signal_id), 0) AS top FROM {SIGNALS}"
                " WHERE consultation_id = %s", (listener.consultation_id,))).fetchone()
        listener.floor = row["top"] if row else 0
        self.listeners.setdefault(listener.consultation_id, set()).add(listener)

    def unsubscribe(self, listener: Listener) -> None:
        listeners = self.listeners.get(listener.consultation_id)
        if listeners is not None:
            listeners.discard(listener)
            if not listeners:
                self.listeners.pop(listener.consultation_id, None)
                self._locks.pop(listener.consultation_id, None)

    async def deliver(self, consultation_id: UUID) -> None:
        """Hands every new frame of a consultation to the local sockets it is for."""
        listeners = list(self.listeners.get(consultation_id, ()))
        if not listeners or self._pool is None:
            return
        lock = self._locks.setdefault(consultation_id, asyncio.Lock())
        async with lock:
            floor = min(listener.floor for listener in listeners)
            async with self._pool.connection() as conn:
                rows: list[Any] = await (await conn.execute(
                    f"SELECT signal_id, recipient, sender_connection, frame FROM {SIGNALS}"
                    " WHERE consultation_id = %s AND signal_id > %s"
                    f" AND created_at > now() - interval '{KEEP_SIGNALS_MINUTES} minutes'"
                    " ORDER BY signal_id", (consultation_id, floor))).fetchall()
            for listener in listeners:
                fresh = {row["signal_id"] for row in rows}
                for row in rows:
                    if row["signal_id"] <= listener.floor or row["signal_id"] in listener.seen:
                        continue
                    listener.seen.add(row["signal_id"])
                    if row["recipient"] not in (listener.role, "both") \
                            or row["sender_connection"] == listener.connection:
                        continue
                    try:
                        await listener.deliver(row["frame"])
                    except Exception:  # a socket that went away; its handler cleans up
                        log.debug("consultation %s: delivery to a closed socket",
                                  consultation_id)
                listener.seen &= fresh

    async def _listen(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(self.url,
                                                                 autocommit=True) as conn:
                    await conn.execute(f"LISTEN {SIGNAL_CHANNEL}")
                    self.listening.set()
                    delay = 0.5
                    for consultation_id in list(self.listeners):  # anything missed meanwhile
                        await self.deliver(consultation_id)
                    async for notify in conn.notifies():
                        with contextlib.suppress(ValueError):
                            await self.deliver(UUID(notify.payload))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("signal relay: LISTEN connection lost (%s); reconnecting",
                            type(error).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _poll(self) -> None:
        rounds = 0
        while not self._stopping.is_set():
            await asyncio.sleep(self.poll_seconds)
            rounds += 1
            try:
                for consultation_id in list(self.listeners):
                    await self.deliver(consultation_id)
                if rounds % 30 == 0 and self._pool is not None:
                    async with self._pool.connection() as conn:
                        await conn.execute(
                            f"DELETE FROM {SIGNALS} WHERE created_at < now() - interval "
                            f"'{KEEP_SIGNALS_MINUTES} minutes'")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("signal relay: poll failed (%s)", type(error).__name__)
