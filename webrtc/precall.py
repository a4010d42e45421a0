"""The pre-call connection check: a server peer that a patient's app (or a clinician) calls
before a video visit. It echoes audio, video and data-channel messages and notes what arrived.

Signaling is not trickled: aiortc gathers all its candidates before it answers, and the offer
must already hold the caller's candidates (send it once ICE gathering is complete).

Over the data channel the server also sends `carebridge-ping <n>` every half second; a caller
that sends the same text straight back lets the server measure the round-trip time itself.
Every other message is echoed verbatim (so a caller must not echo everything it receives).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import statistics
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

import msgspec

from domain.errors import FieldError, InvalidInput, NotFound, TooManyRequests
from webrtc.guidance import CheckResult, ClientReport, ServerObservations, advise, browser_from_user_agent
from webrtc.ice import IceServer, rtc_configuration

log = logging.getLogger("carebridge.precall")

PING_PREFIX = "carebridge-ping "
PING_INTERVAL_SECONDS = 0.5
PING_SAMPLES = 20  # round-trip times kept, and pings left unanswered before the oldest is dropped
MEDIA_KINDS = frozenset({"audio", "video", "application"})
MAX_CANDIDATES = 40


def _refused(message: str) -> InvalidInput:
    return InvalidInput([FieldError("offer_sdp", message)])


def read_offer(offer_sdp: str) -> frozenset[str]:
    """The kinds of media a complete offer proposes ("audio", "video", "application");
    refuses text that is not one."""
    from aiortc.sdp import SessionDescription

    try:
        description = SessionDescription.parse(offer_sdp)
    except Exception as error:  # the parser asserts and indexes its way through untrusted text
        raise _refused("is not a valid session description (SDP)") from error
    kinds = frozenset(m.kind for m in description.media)
    if not offer_sdp.startswith("v=0") or not kinds:
        raise _refused("is not an SDP offer with audio, video or a data channel")
    if kinds - MEDIA_KINDS:
        raise _refused("may hold only audio, video and a data channel, not "
                       + ", ".join(sorted(kinds - MEDIA_KINDS)))
    if len(description.media) > len(kinds):  # each echoed track costs the server an encoder
        raise _refused("may hold one section each of audio, video and data channel")
    candidates = sum(len(m.ice_candidates) for m in description.media)
    if not candidates:
        raise _refused("has no ICE candidates: send the offer once ICE gathering is complete "
                       "(this check does not take trickled candidates)")
    if candidates > MAX_CANDIDATES:  # the server checks every one: bound what a caller can ask
        raise _refused(f"has more than {MAX_CANDIDATES} ICE candidates")
    # aiortc fails later, and in background tasks, on sections that lack these.
    missing: set[str] = set()
    for media in description.media:
        if not media.rtp.muxId:
            missing.add("a=mid")
        if media.dtls is None or not media.dtls.fingerprints:
            missing.add("a=fingerprint with a=setup")
        if media.kind in ("audio", "video") and media.direction is None:
            missing.add("a direction (such as a=sendrecv)")
        if media.kind in ("audio", "video") and not media.rtcp_mux:
            missing.add("a=rtcp-mux")
    if missing:
        raise _refused("is incomplete: every media section needs " + ", ".join(sorted(missing)))
    return kinds


class Peer(Protocol):
    """The server's side of one check."""

    async def answer(self, offer_sdp: str, offered: frozenset[str]) -> str: ...

    async def observe(self) -> ServerObservations: ...

    async def close(self) -> None: ...


PeerFactory = Callable[[list[IceServer]], Peer]


def _percent(lost: int, received: int) -> float | None:
    return 100.0 * lost / (lost + received) if lost + received else None


class EchoPeer:
    """An aiortc peer that sends every track it receives straight back, echoes data-channel
    messages, and pings over the data channel to measure the round trip."""

    def __init__(self, servers: list[IceServer]) -> None:
        from aiortc import RTCPeerConnection
        from aiortc.contrib.media import MediaRelay

        self._pc = RTCPeerConnection(rtc_configuration(servers))
        self._relay = MediaRelay()
        self._tasks: set[asyncio.Task[None]] = set()
        self._offered: frozenset[str] = frozenset()
        self._clock_rates: dict[str, int] = {}
        self._frames = {"audio": 0, "video": 0}
        self._ice_connected = self._connected = self._pinging = False
        self._messages = 0
        self._pings: dict[str, float] = {}  # text sent → when (monotonic)
        self._round_trips: list[float] = []
        self._pc.on("track", self._on_track)
        self._pc.on("datachannel", self._on_datachannel)
        self._pc.on("iceconnectionstatechange", self._on_ice_state)
        self._pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer_sdp: str, offered: frozenset[str]) -> str:
        from aiortc import RTCSessionDescription
        from aiortc.exceptions import InvalidAccessError, InvalidStateError
        from aiortc.sdp import SessionDescription

        self._offered = offered
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except (ValueError, KeyError, IndexError, TypeError, InvalidAccessError,
                InvalidStateError) as error:
            raise _refused(f"could not be used: {error}") from error
        answer = self._pc.localDescription.sdp
        for media in SessionDescription.parse(answer).media:
            if media.rtp.codecs:  # the first codec is the one in use
                self._clock_rates.setdefault(media.kind, media.rtp.codecs[0].clockRate)
        return answer

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(self, track: Any) -> None:
        # One copy goes back to the caller (latest frame only: never a growing queue when the
        # caller does not receive); the other is counted, frame by frame.
        self._pc.addTrack(self._relay.subscribe(track, buffered=False))
        self._spawn(self._count(self._relay.subscribe(track), track.kind))

    async def _count(self, track: Any, kind: str) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                await track.recv()
                self._frames[kind] += 1
        except MediaStreamError:
            return

    def _on_datachannel(self, channel: Any) -> None:
        def on_message(message: str | bytes) -> None:
            if isinstance(message, str) and message in self._pings:
                sent = self._pings.pop(message)
                self._round_trips = [*self._round_trips[-(PING_SAMPLES - 1):],
                                     (time.monotonic() - sent) * 1000]
                return
            self._messages += 1
            channel.send(message)

        channel.on("message", on_message)
        if not self._pinging:  # one channel is enough to measure, however many are opened
            self._pinging = True
            self._spawn(self._ping(channel))

    async def _ping(self, channel: Any) -> None:
        for n in itertools.count():
            if channel.readyState != "open":
                return
            text = f"{PING_PREFIX}{n}"
            self._pings[text] = time.monotonic()
            if len(self._pings) > PING_SAMPLES:  # a caller that never answers
                del self._pings[next(iter(self._pings))]
            channel.send(text)
            await asyncio.sleep(PING_INTERVAL_SECONDS)

    def _on_ice_state(self) -> None:
        if self._pc.iceConnectionState in ("connected", "completed"):
            self._ice_connected = True

    def _on_state(self) -> None:
        if self._pc.connectionState == "connected":
            self._connected = True

    async def observe(self) -> ServerObservations:
        """What arrived so far, with loss, jitter and round trip from the RTP statistics."""
        report = await self._pc.getStats()
        received = lost = remote_received = remote_lost = 0
        jitters: list[float] = []
        rtcp_round_trips: list[float] = []
        for stats in report.values():
            if stats.type == "inbound-rtp":
                received += stats.packetsReceived
                lost += max(stats.packetsLost, 0)
                rate = self._clock_rates.get(stats.kind)
                if rate:
                    jitters.append(1000.0 * stats.jitter / rate)
            elif stats.type == "remote-inbound-rtp":  # the caller's view of the echo
                remote_received += max(stats.packetsReceived, 0)
                remote_lost += max(stats.packetsLost, 0)
                if stats.roundTripTime is not None:
                    rtcp_round_trips.append(1000.0 * stats.roundTripTime)
        losses = [p for p in (_percent(lost, received), _percent(remote_lost, remote_received))
                  if p is not None]
        if self._round_trips:
            rtt: float | None = statistics.median(self._round_trips)
        else:
            rtt = max(rtcp_round_trips) if rtcp_round_trips else None
        return ServerObservations(
            ice_connected=self._ice_connected, connected=self._connected,
            offered_audio="audio" in self._offered, offered_video="video" in self._offered,
            offered_data_channel="application" in self._offered,
            audio_frames_received=self._frames["audio"],
            video_frames_received=self._frames["video"],
            data_messages_received=self._messages,
            rtt_ms=rtt, packet_loss_pct=max(losses) if losses else None,
            jitter_ms=max(jitters) if jitters else None)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        try:
            await self._pc.close()
        except Exception:  # aiortc can trip over a half-negotiated peer: it is gone all the same
            log.warning("connection check peer did not close cleanly", exc_info=True)


SNAPSHOT_SECONDS = 1.0  # how often the owner shares its peer's observations


class CheckStore(Protocol):
    """Where checks are shared between API processes (PostgreSQL in the API)."""

    async def opened(self, check_id: str, owner_ref: str, user_agent: str | None,
                     expires_at: datetime) -> None: ...

    async def snapshot(self, check_id: str, observations: ServerObservations) -> bool:
        """Shares the latest observations; True once another process took the result."""
        ...

    async def take(self, check_id: str, owner_ref: str,
                   ) -> tuple[ServerObservations | None, str | None] | None:
        """Marks an open check of this owner finished; its last observations and user agent,
        or None when there is no such open check."""
        ...


class PostgresCheckStore:
    """Checks in `carebridge.connection_checks`, through an async autocommit pool."""

    TABLE = "carebridge.connection_checks"

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def opened(self, check_id: str, owner_ref: str, user_agent: str | None,
                     expires_at: datetime) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(f"DELETE FROM {self.TABLE} WHERE started_at < now() - interval"
                               " '1 day'")
            await conn.execute(f"INSERT INTO {self.TABLE} (check_id, owner, user_agent,"
                               " expires_at) VALUES (%s, %s, %s, %s)",
                               (check_id, owner_ref, user_agent, expires_at))

    async def snapshot(self, check_id: str, observations: ServerObservations) -> bool:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                f"UPDATE {self.TABLE} SET observations = %s WHERE check_id = %s"
                " AND finished_at IS NULL RETURNING check_id",
                (msgspec.json.encode(observations).decode(), check_id))).fetchone()
        return row is None

    async def take(self, check_id: str, owner_ref: str,
                   ) -> tuple[ServerObservations | None, str | None] | None:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(
                f"UPDATE {self.TABLE} SET finished_at = now() WHERE check_id = %s"
                " AND owner = %s AND finished_at IS NULL"
                " RETURNING observations::text, user_agent", (check_id, owner_ref))).fetchone()
        if row is None:
            return None
        observed = msgspec.json.decode(row[0], type=ServerObservations) if row[0] else None
        return observed, row[1]


# Before the owner shared anything (a result reported within a second of the start).
NOTHING_OBSERVED = ServerObservations(
    ice_connected=False, connected=False, offered_audio=False, offered_video=False,
    offered_data_channel=False, audio_frames_received=0, video_frames_received=0,
    data_messages_received=0, rtt_ms=None, packet_loss_pct=None, jitter_ms=None)


class StartedCheck(NamedTuple):
    check_id: str
    answer_sdp: str
    expires_at: datetime


@dataclass
class _Check:
    owner_ref: str
    peer: Peer
    user_agent: str | None
    closes_at: float  # event-loop time
    closer: asyncio.Task[None] | None = None
    sharer: asyncio.Task[None] | None = None


class ConnectionChecks:
    """The checks one API process runs: at most `max_concurrent` at once, each closed after
    `lifetime_seconds` whether or not its caller reports back."""

    def __init__(self, max_concurrent: int, lifetime_seconds: float,
                 peer_factory: PeerFactory = EchoPeer, store: CheckStore | None = None) -> None:
        self.max_concurrent = max_concurrent
        self.lifetime_seconds = lifetime_seconds
        self.peer_factory = peer_factory
        self.store = store  # None: one process only (the result must come back here)
        self._checks: dict[str, _Check] = {}
        self._starting = 0

    def _reserve(self) -> None:
        if len(self._checks) + self._starting < self.max_concurrent:
            self._starting += 1
            return
        now = asyncio.get_running_loop().time()
        soonest = min((c.closes_at for c in self._checks.values()),
                      default=now + self.lifetime_seconds)
        retry_after = max(1, math.ceil(soonest - now))
        raise TooManyRequests(f"Too many connection checks are running. Please try again in "
                              f"{retry_after} seconds.", retry_after=retry_after)

    async def start(self, offer_sdp: str, ice_servers: list[IceServer], owner_ref: str,
                    now: datetime, user_agent: str | None = None) -> StartedCheck:
        """Answers the caller's offer with an echoing peer; `owner_ref` alone may finish it."""
        offered = read_offer(offer_sdp)
        self._reserve()
        try:
            peer = self.peer_factory(ice_servers)
            try:
                answer = await peer.answer(offer_sdp, offered)
            except BaseException:
                await peer.close()
                raise
        finally:
            self._starting -= 1
        check_id = str(uuid.uuid4())
        expires_at = now + timedelta(seconds=self.lifetime_seconds)
        if self.store is not None:
            try:
                await self.store.opened(check_id, owner_ref, user_agent, expires_at)
            except BaseException:
                await peer.close()
                raise
        check = self._checks[check_id] = _Check(
            owner_ref, peer, user_agent,
            asyncio.get_running_loop().time() + self.lifetime_seconds)
        check.closer = asyncio.ensure_future(self._expire(check_id))
        if self.store is not None:
            check.sharer = asyncio.ensure_future(self._share(check_id, check))
        log.info("connection check %s started by %s (%s)", check_id, owner_ref,
                 ", ".join(sorted(offered)))
        return StartedCheck(check_id, answer, expires_at)

    async def _expire(self, check_id: str) -> None:
        await asyncio.sleep(self.lifetime_seconds)
        check = self._checks.pop(check_id, None)
        if check is not None:
            log.info("connection check %s expired without a result", check_id)
            if check.sharer is not None:
                check.sharer.cancel()
            await check.peer.close()
            if self.store is not None:  # no process may report on it any more
                with contextlib.suppress(Exception):
                    await self.store.take(check_id, check.owner_ref)

    async def _share(self, check_id: str, check: _Check) -> None:
        """The owner's side: shares what its peer observed, and closes the peer once another
        API process took the result."""
        assert self.store is not None
        while check_id in self._checks:
            await asyncio.sleep(SNAPSHOT_SECONDS)
            try:
                taken = await self.store.snapshot(check_id, await check.peer.observe())
            except Exception as error:  # the next round tries again; the check still expires
                log.warning("connection check %s: observations not shared (%s)", check_id,
                            type(error).__name__)
                continue
            if taken and self._checks.pop(check_id, None) is not None:
                if check.closer is not None:
                    check.closer.cancel()
                await check.peer.close()
                log.info("connection check %s: result taken by another process", check_id)

    async def finish(self, check_id: str, owner_ref: str, report: ClientReport) -> CheckResult:
        """Closes the check and turns both sides' findings into guidance. The check may run in
        another API process: then its latest shared observations are used."""
        check = self._checks.get(check_id)
        if check is None or check.owner_ref != owner_ref:
            return await self._finish_elsewhere(check_id, owner_ref, report)
        del self._checks[check_id]
        for task in (check.closer, check.sharer):
            if task is not None:
                task.cancel()
        try:
            observations = await check.peer.observe()
        finally:
            await check.peer.close()
        if self.store is not None:
            await self.store.take(check_id, owner_ref)
        return self._advise(check_id, owner_ref, observations, report, check.user_agent)

    async def _finish_elsewhere(self, check_id: str, owner_ref: str,
                                report: ClientReport) -> CheckResult:
        taken = await self.store.take(check_id, owner_ref) if self.store is not None else None
        if taken is None:
            raise NotFound("There is no such connection check, or it has ended. Please start "
                           "a new check.")
        observations, user_agent = taken
        return self._advise(check_id, owner_ref, observations or NOTHING_OBSERVED, report,
                            user_agent)

    def _advise(self, check_id: str, owner_ref: str, observations: ServerObservations,
                report: ClientReport, user_agent: str | None) -> CheckResult:
        if report.browser is None:
            report = msgspec.structs.replace(report, browser=browser_from_user_agent(user_agent))
        result = advise(observations, report)
        log.info("connection check %s by %s: %s (%s)", check_id, owner_ref, result.outcome,
                 ", ".join(g.code for g in result.guidance) or "no advice")
        return result

    @property
    def running(self) -> int:
        return len(self._checks)

    async def close_all(self) -> None:
        checks, self._checks = list(self._checks.values()), {}
        for check in checks:
            for task in (check.closer, check.sharer):
                if task is not None:
                    task.cancel()
        await asyncio.gather(*(c.peer.close() for c in checks), return_exceptions=True)
