"""Runs one real pre-call check inside a loopback-only network namespace and prints what
happened as JSON on its last line. tests/webrtc/test_precall.py launches it:

    python -m tests.webrtc.precall_driver <database url> <owner url> full|audio_only

(with CAREBRIDGE_TEST_ENCRYPTION_KEY in the environment). An aiortc peer plays the patient's
app: a 440 Hz tone, and for `full` a solid-coloured camera and a data channel; it calls the API
through Litestar's TestClient, lets media flow until the echo came back, reports, and prints
the API's answer with what the client saw of the echo.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support_netns import allow_loopback_candidates, assert_loopback_only

TONE_HZ, TONE_AMPLITUDE, SAMPLE_RATE, SAMPLES = 440, 8000, 48_000, 960  # 20 ms frames
COLOUR_YUV = (81, 90, 240)  # a strong red: Y, U, V
WIDTH, HEIGHT = 320, 240
ENOUGH_AUDIO, ENOUGH_VIDEO, MESSAGES, PINGS = 50, 30, 5, 6
PATIENCE_SECONDS = 30  # a bound on a broken run, never an expectation


def media_tracks() -> tuple[Any, Any]:
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
    from av import AudioFrame, VideoFrame

    class Tone(AudioStreamTrack):
        sent = 0

        async def recv(self) -> AudioFrame:
            if self.sent:  # pace like a microphone
                await asyncio.sleep(self.start + self.sent * SAMPLES / SAMPLE_RATE - time.time())
            else:
                self.start = time.time()
            samples = array.array("h", (
                int(TONE_AMPLITUDE * math.sin(2 * math.pi * TONE_HZ * (self.sent * SAMPLES + i)
                                              / SAMPLE_RATE)) for i in range(SAMPLES)))
            frame = AudioFrame(format="s16", layout="mono", samples=SAMPLES)
            frame.planes[0].update(samples.tobytes())
            frame.pts, frame.sample_rate = self.sent * SAMPLES, SAMPLE_RATE
            frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
            self.sent += 1
            return frame

    class Colour(VideoStreamTrack):
        async def recv(self) -> VideoFrame:
            pts, time_base = await self.next_timestamp()
            frame = VideoFrame(width=WIDTH, height=HEIGHT, format="yuv420p")
            for plane, value in zip(frame.planes, COLOUR_YUV, strict=True):
                plane.update(bytes([value]) * plane.buffer_size)
            frame.pts, frame.time_base = pts, time_base
            return frame

    return Tone(), Colour()


def centre(frame: Any) -> list[int]:
    """The Y, U and V values in the middle of a decoded video frame."""
    picture = frame.reformat(format="yuv420p")
    values = []
    for index, plane in enumerate(picture.planes):
        scale = 1 if index == 0 else 2
        row, column = picture.height // (2 * scale), picture.width // (2 * scale)
        values.append(bytes(plane)[row * plane.line_size + column])
    return values


def peak(frame: Any) -> int:
    """The loudest sample of a decoded audio frame (aiortc decodes Opus to packed s16)."""
    assert frame.format.name == "s16", frame.format.name
    samples = array.array("h", bytes(frame.planes[0]))
    return max((abs(s) for s in samples), default=0)


class Patient:
    """The app's side: sends the tracks, counts and inspects what comes back."""

    def __init__(self, servers: list[Any], with_video: bool) -> None:
        from aiortc import RTCPeerConnection

        from webrtc.ice import rtc_configuration

        self.pc = RTCPeerConnection(rtc_configuration(servers))
        self.frames = {"audio": 0, "video": 0}
        self.loudest, self.colour = 0, [0, 0, 0]
        self.sent_at: dict[str, float] = {}
        self.round_trips: list[float] = []
        self.pings_answered = self.hellos = 0
        self.tasks: list[asyncio.Task[None]] = []
        tone, colour = media_tracks()
        self.pc.addTrack(tone)
        if with_video:
            self.pc.addTrack(colour)
        self.channel = self.pc.createDataChannel("check")
        self.channel.on("open", self.say_hello)
        self.channel.on("message", self.on_message)
        self.pc.on("track", lambda track: self.tasks.append(asyncio.ensure_future(self.watch(track))))

    def say_hello(self) -> None:
        if self.hellos < MESSAGES:
            text = f"hello {self.hellos}"
            self.sent_at[text] = time.monotonic()
            self.channel.send(text)
            self.hellos += 1

    def on_message(self, message: str) -> None:
        from webrtc.precall import PING_PREFIX

        if message.startswith(PING_PREFIX):  # the server measures the round trip
            self.channel.send(message)
            self.pings_answered += 1
            self.say_hello()  # spread over the check, not all in its busy first moment
        elif message in self.sent_at:
            self.round_trips.append((time.monotonic() - self.sent_at.pop(message)) * 1000)

    async def watch(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                frame = await track.recv()
                self.frames[track.kind] += 1
                if track.kind == "audio":
                    self.loudest = max(self.loudest, peak(frame))
                else:
                    self.colour = centre(frame)
        except MediaStreamError:
            return

    def echoed_enough(self, with_video: bool) -> bool:
        return (self.frames["audio"] >= ENOUGH_AUDIO
                and (not with_video or self.frames["video"] >= ENOUGH_VIDEO)
                and len(self.round_trips) == MESSAGES and self.pings_answered >= PINGS)

    async def loss_pct(self) -> float | None:
        received = lost = 0
        for stats in (await self.pc.getStats()).values():
            if stats.type == "inbound-rtp":
                received, lost = received + stats.packetsReceived, lost + max(stats.packetsLost, 0)
        return 100.0 * lost / (lost + received) if lost + received else None


async def run_check(client: Any, headers: dict[str, str], with_video: bool) -> dict[str, Any]:
    from aiortc import RTCSessionDescription

    from webrtc.ice import IceServer

    async def call(method: str, path: str, body: Any = None) -> Any:
        response = await asyncio.to_thread(client.request, method, path, headers=headers, json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    listed = (await call("GET", "/v1/connection-checks/ice-servers"))["ice_servers"]
    patient = Patient([IceServer(tuple(s["urls"]), s.get("username"), s.get("credential"))
                       for s in listed], with_video)
    await patient.pc.setLocalDescription(await patient.pc.createOffer())  # gathers everything
    started = await call("POST", "/v1/connection-checks", {
        "offer_sdp": patient.pc.localDescription.sdp, "user_agent": "Mozilla/5.0 Chrome/131.0"})
    await patient.pc.setRemoteDescription(RTCSessionDescription(started["answer_sdp"], "answer"))
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not patient.echoed_enough(with_video) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    report = {"camera": "granted" if with_video else "denied", "microphone": "granted",
              "rtc_supported": True, "received_audio": patient.frames["audio"] > 0,
              "received_video": patient.frames["video"] > 0,
              "data_channel_echoes": len(patient.round_trips),
              "rtt_ms": statistics.median(patient.round_trips) if patient.round_trips else None,
              "packet_loss_pct": await patient.loss_pct()}
    state = patient.pc.connectionState  # before the server hangs up on reporting
    result = await call("POST", f"/v1/connection-checks/{started['check_id']}/result", report)
    await patient.pc.close()
    for task in patient.tasks:
        task.cancel()
    return {"started": {k: started[k] for k in ("check_id", "ice_servers", "expires_at")},
            "answer_has_candidates": "a=candidate:" in started["answer_sdp"],
            "result": result, "client_connection_state": state,
            "client": {"frames": patient.frames, "loudest_echo": patient.loudest,
                       "echoed_colour": patient.colour, "sent_colour": list(COLOUR_YUV),
                       "data_channel_echoes": len(patient.round_trips),
                       "pings_answered": patient.pings_answered}}


async def main(url: str, owner_url: str, scenario: str) -> dict[str, Any]:
    from api.container import Container
    from api.database import Database
    from tests.api.support import auth
    from tests.conftest import test_settings
    from tests.webrtc.support import precall_client, register

    with tempfile.TemporaryDirectory(prefix="carebridge-precall-") as workdir:
        settings = test_settings(data_dir=Path(workdir), mail_log_path=Path(workdir) / "mail.log",
                                 sms_log_path=Path(workdir) / "sms.log")
        key = os.environ["CAREBRIDGE_TEST_ENCRYPTION_KEY"]
        with (Container(settings, Database(url, owner_url), key) as container,
              precall_client(container, clock=None, peers=None) as client):
            headers = auth(register(client, "Amira"))
            outcome = await run_check(client, headers, with_video=scenario == "full")
            outcome["checks_running_after"] = client.app.state.connection_checks.running
            return outcome


if __name__ == "__main__":
    assert_loopback_only()
    allow_loopback_candidates()
    database_url, owner, which = sys.argv[1:4]
    assert which in ("full", "audio_only"), which
    print(json.dumps(asyncio.run(main(database_url, owner, which))))
