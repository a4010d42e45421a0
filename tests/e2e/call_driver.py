"""The real call, run inside a loopback-only network namespace (tests/e2e/test_real_call.py).

A clinician in headless Chromium (Debian's build, fake camera and microphone) on the console
page admits a patient who is an aiortc peer speaking the signaling protocol through REST and a
WebSocket, exactly as the app does. Both sides are served by the real API (uvicorn, in a thread,
on 127.0.0.1) on the test's database. Prints one line `CALL-RESULT {json}` for the test to
assert on; exits non-zero with the reason on stderr if a step did not happen in time.

Environment: CAREBRIDGE_CALL_DATABASE ({"url", "owner_url"}), CAREBRIDGE_CALL_ENCRYPTION_KEY,
CAREBRIDGE_CALL_DATA_DIR, CAREBRIDGE_CALL_RUN_ID (a marker on Chromium's command line), and
optionally CAREBRIDGE_CALL_SCREENSHOTS (a directory: keeps a screenshot of each step).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import pyotp

from tests.support_netns import allow_loopback_candidates, assert_loopback_only

CALL_SECONDS = 100  # the whole call, end to end; the test gives the process 120 s
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection", "--disable-background-networking", "--no-sandbox",
    "--disable-gpu", "--disable-component-update", "--disable-sync", "--no-first-run",
    # Host candidates as 127.0.0.1, not mDNS names the aiortc peer could not resolve here.
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
STAFF_PASSWORD = "staff passphrase 2026"
PATIENT_PASSWORD = "a long enough passphrase"
FOLLOW_UP = "Take paracetamol as needed and book a review in two weeks."
INTERNAL = "Internal: consider referral if no improvement; discussed with Dr Okafor."
SLOT_MINUTES = 5


def log(message: str) -> None:
    """Progress for a failing run's stderr: steps and identifiers only."""
    print(f"[call {time.monotonic():.1f}] {message}", file=sys.stderr, flush=True)


async def until(condition: Any, what: str, timeout: float, interval: float = 0.1) -> Any:
    """Polls `condition()` until it is truthy; fails naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---- the clinic, on the real clock --------------------------------------------------------------

def all_day_schedule(doctor_id: UUID) -> Any:
    """Riverside with one GP who offers video consultations every day, all day, in 5-minute
    slots, so that the test can book one starting a few minutes from the real now."""
    from domain.schedule_types import ClinicianInfo, StaticSchedule
    from tests.domain.test_appointments import RIVERSIDE, VIDEO

    day = [("riverside", wall_time(0), wall_time(23, 59), SLOT_MINUTES, ("video",), None)]
    return StaticSchedule(
        clinic_list=[RIVERSIDE], type_list=[VIDEO],
        clinician_list=[ClinicianInfo(doctor_id, "Dr Asha Patel", "general practice", ("en",),
                                      ("riverside",), ("video",))],
        weekly={doctor_id: {weekday: list(day) for weekday in range(7)}})


def next_slot(now: datetime, zone: ZoneInfo, lead: timedelta = timedelta(minutes=2),
              length: timedelta = timedelta(minutes=10)) -> datetime:
    """The first slot start at least `lead` from now that ends inside the day's session."""
    local = (now + lead).astimezone(zone)
    start = local.replace(second=0, microsecond=0)
    if start < local:
        start += timedelta(minutes=1)
    start += timedelta(minutes=-start.minute % SLOT_MINUTES)
    if start + length > start.replace(hour=23, minute=59):
        start = (start + timedelta(days=1)).replace(hour=0, minute=0)
    return start.astimezone(UTC)


@dataclass
class Clinic:
    doctor_id: str
    doctor_email: str
    admin_email: str
    doctor_totp_secret: str
    doctor_recovery_codes: list[str]


def seed_staff(container: Any) -> Clinic:
    from commands.identity import NewAccount
    from domain.access import Actor
    from domain.identity import Role

    now = datetime.now(UTC)
    suffix = uuid.uuid4().hex[:8]
    doctor_email, admin_email = f"doctor.{suffix}@clinic.test", f"admin.{suffix}@clinic.test"
    doctor = container.identity.add_staff(NewAccount(doctor_email, STAFF_PASSWORD, "Asha", "Patel"),
                                          Role.DOCTOR, ["riverside"], by="test", at=now)
    container.identity.add_staff(NewAccount(admin_email, STAFF_PASSWORD, "Ada", "Admin"),
                                 Role.CLINIC_ADMIN, ["riverside"], by="test", at=now)
    doctor_id = doctor.result["account_id"]
    container.appointments.schedule = all_day_schedule(UUID(str(doctor_id)))
    # Clinicians sign in with an authenticator app: the console asks for its code.
    actor = Actor(UUID(str(doctor_id)), Role.DOCTOR, frozenset({"riverside"}))
    secret = container.second_factor.begin_totp(actor, now).secret
    recovery = container.second_factor.confirm_totp(actor, pyotp.TOTP(secret).now(), now)
    return Clinic(str(doctor_id), doctor_email, admin_email, secret, recovery)


# ---- the API in a thread --------------------------------------------------------------------------

class ApiServer:
    """uvicorn serving the app on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---- the patient: an aiortc peer speaking the protocol ------------------------------------------

@dataclass
class Patient:
    http: httpx.AsyncClient
    headers: dict[str, str]
    appointment_id: str
    states: list[str] = field(default_factory=list)  # every state told, repeats folded
    states_by_socket: list[list[str]] = field(default_factory=list)
    frames_by_offer: list[dict[str, int]] = field(default_factory=list)
    remote_candidates: list[str] = field(default_factory=list)
    local_candidates: list[str] = field(default_factory=list)
    connection_states: list[str] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)
    pc: Any = None
    ws: Any = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @property
    def offers(self) -> int:
        return len(self.frames_by_offer)

    def frames(self, kind: str, offer: int | None = None) -> int:
        chosen = self.frames_by_offer if offer is None else self.frames_by_offer[offer:offer + 1]
        return sum(counts.get(kind, 0) for counts in chosen)

    def saw(self, state: str) -> None:
        self.states_by_socket[-1].append(state)
        if not self.states or self.states[-1] != state:
            self.states.append(state)

    async def join(self) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Joins (or rejoins); the first time, gives the telemedicine consent the API asks for."""
        path = f"/v1/appointments/{self.appointment_id}/consultation/join"
        first = await self.http.post(path, headers=self.headers, json={})
        consent_problem = None
        if first.status_code == 403 and first.json().get("type", "").endswith("consent-required"):
            # The project's problem documents carry extension members under "extensions".
            consent_problem = {**first.json(), **(first.json().get("extensions") or {})}
            given = await self.http.post("/v1/me/consents", headers=self.headers, json={
                "consent_type": consent_problem["consent_type"],
                "text_version": consent_problem["text_version"]})
            assert given.status_code in (200, 201), given.text
            first = await self.http.post(path, headers=self.headers, json={})
        assert first.status_code == 200, first.text
        return first.json(), consent_problem

    async def signal(self, base_ws: str, grant: dict[str, Any]) -> None:
        """The app's side of one WebSocket, until it closes."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        uri = f"{base_ws}{grant['websocket_path']}?ticket={grant['ticket']}"
        self.states_by_socket.append([])
        ws = self.ws = await connect(uri, open_timeout=10)  # no Origin: the mobile app sends none
        try:
            async for raw in ws:
                await self.handle(ws, json.loads(raw))
        except ConnectionClosed:
            pass
        finally:
            self.close_codes.append(ws.close_code)
            await ws.close()

    async def handle(self, ws: Any, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind in ("welcome", "state"):
            self.saw(frame["state"]["state"])
        elif kind == "offer":
            await self.answer(ws, frame["sdp"])
        elif kind == "ice":
            await self.add_candidate(frame)
        elif kind == "error":
            self.errors.append(frame)

    async def answer(self, ws: Any, sdp: str) -> None:
        from aiortc import AudioStreamTrack, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack

        from webrtc.ice import rtc_configuration

        if self.pc is not None:
            await self.pc.close()
        pc = self.pc = RTCPeerConnection(rtc_configuration([]))  # explicit: no ICE servers
        offer = len(self.frames_by_offer)
        self.frames_by_offer.append({"video": 0, "audio": 0})
        pc.addTrack(AudioStreamTrack())  # synthetic silence
        pc.addTrack(VideoStreamTrack())  # synthetic frames

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.tasks.append(asyncio.ensure_future(self.count_frames(track, offer)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            self.connection_states.append(pc.connectionState)
            if pc is self.pc and pc.connectionState in ("connected", "failed"):
                frame = {"type": "connected"} if pc.connectionState == "connected" else \
                    {"type": "failed", "reason": "ice-failed"}
                with contextlib.suppress(Exception):
                    await ws.send(json.dumps(frame))

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await ws.send(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))
        # aiortc gathers before answering; trickle the same candidates as the app would.
        for index, mid, candidate in sdp_candidates(pc.localDescription.sdp):
            self.local_candidates.append(candidate)
            await ws.send(json.dumps({"type": "ice", "candidate": candidate, "sdpMid": mid,
                                      "sdpMLineIndex": index}))
        await ws.send(json.dumps({"type": "ice", "candidate": None, "sdpMid": None,
                                  "sdpMLineIndex": None}))

    async def add_candidate(self, frame: dict[str, Any]) -> None:
        from aiortc.sdp import candidate_from_sdp

        if self.pc is None or self.pc.remoteDescription is None:
            return  # the console sends candidates only after its offer
        text = frame.get("candidate")
        if not text:
            await self.pc.addIceCandidate(None)
            return
        self.remote_candidates.append(text)
        candidate = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
        candidate.sdpMid = frame.get("sdpMid")
        candidate.sdpMLineIndex = frame.get("sdpMLineIndex")
        await self.pc.addIceCandidate(candidate)

    async def count_frames(self, track: Any, offer: int) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                self.frames_by_offer[offer][track.kind] += 1

    async def send_stats(self) -> None:
        """One quality report from aiortc's statistics, as the app sends every few seconds."""
        received = lost = 0
        rtt = None
        for entry in (await self.pc.getStats()).values():
            if entry.type == "inbound-rtp":
                received += entry.packetsReceived or 0
                lost += max(0, entry.packetsLost or 0)
            elif entry.type == "remote-inbound-rtp" and entry.roundTripTime is not None:
                rtt = entry.roundTripTime * 1000
        loss = 100 * lost / (received + lost) if received + lost else None
        await self.ws.send(json.dumps({"type": "stats", "rtt_ms": rtt, "packet_loss_pct": loss,
                                       "inbound_fps": None, "bitrate_kbps": None}))

    async def drop(self) -> None:
        """The phone loses its connection: no bye, the socket and the media just stop."""
        self.ws.transport.abort()
        await self.pc.close()
        self.pc = None

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()


def sdp_candidates(sdp: str) -> list[tuple[int, str | None, str]]:
    """(m-line index, mid, `candidate:…`) for every candidate line of a description."""
    found: list[tuple[int, str | None, str]] = []
    index, mid = -1, None
    for line in sdp.splitlines():
        if line.startswith("m="):
            index, mid = index + 1, None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:"):]
        elif line.startswith("a=candidate:") and index >= 0:
            found.append((index, mid, line[len("a="):]))
    return found


def candidate_address(candidate: str) -> str:
    """The connection address of an ICE candidate line (`candidate:f c proto prio ADDR port …`)."""
    parts = candidate.split()
    return parts[4] if len(parts) > 4 else ""


# ---- the call -------------------------------------------------------------------------------------

async def book_video_appointment(http: httpx.AsyncClient, clinic: Clinic, zone: ZoneInfo,
                                 ) -> tuple[dict[str, str], str, str]:
    """A patient with the video feature switched on books the next video slot."""
    email = f"{uuid.uuid4().hex[:10]}@patients.test"
    registered = await http.post("/v1/auth/register", json={
        "email": email, "password": PATIENT_PASSWORD, "given_name": "Grace",
        "family_name": "Hopper", "date_of_birth": "1960-12-09"})
    assert registered.status_code == 201, registered.text
    patient = {"Authorization": f"Bearer {await access_token(http, email, PATIENT_PASSWORD)}"}
    admin = {"Authorization": f"Bearer {await access_token(http, clinic.admin_email, STAFF_PASSWORD)}"}
    switched_on = await http.put("/v1/admin/feature-flags/telemedicine/rules", headers=admin, json={
        "clinic_id": "riverside", "service_type": "video", "percentage": 100, "patient_ids": [],
        "reason": "real call test"})
    assert switched_on.status_code in (200, 201), switched_on.text
    starts_at = next_slot(datetime.now(UTC), zone)
    held = await http.post("/v1/appointments/holds", headers=patient, json={
        "clinician_id": clinic.doctor_id, "consultation_type_id": "video",
        "starts_at": starts_at.isoformat()})
    assert held.status_code == 201, held.text
    appointment_id = held.json()["appointment_id"]
    confirmed = await http.post(f"/v1/appointments/{appointment_id}/confirm", headers=patient)
    assert confirmed.status_code == 200, confirmed.text
    return patient, appointment_id, starts_at.isoformat()


async def access_token(http: httpx.AsyncClient, email: str, password: str,
                       recovery_code: str | None = None) -> str:
    signed_in = await http.post("/v1/auth/login", json={"email": email, "password": password})
    assert signed_in.status_code == 200, signed_in.text
    if signed_in.json().get("second_factor_required"):
        assert recovery_code is not None, "this account needs its second factor"
        signed_in = await http.post("/v1/auth/second-factor", json={
            "challenge_token": signed_in.json()["challenge_token"], "code": recovery_code})
        assert signed_in.status_code == 200, signed_in.text
    return str(signed_in.json()["access_token"])


async def run_call(base: str, clinic: Clinic, zone: ZoneInfo, run_id: str) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    result: dict[str, Any] = {"page_errors": [], "console_messages": []}
    async with httpx.AsyncClient(base_url=base, timeout=15) as http:
        patient_headers, appointment_id, starts_at = await book_video_appointment(http, clinic, zone)
        log(f"booked appointment {appointment_id} at {starts_at}")
        before = await http.get(f"/v1/appointments/{appointment_id}/consultation",
                                headers=patient_headers)
        assert before.status_code == 200, before.text
        result["state_before_joining"] = before.json()["state"]
        patient = Patient(http, patient_headers, appointment_id)
        sockets: list[asyncio.Future[None]] = []

        async def join() -> dict[str, Any]:
            grant, consent_problem = await patient.join()
            if not sockets:
                result.update(consent_asked_first=consent_problem is not None,
                              patient_grant_role=grant["role"],
                              patient_ice_servers=grant["ice_servers"],
                              consultation_id=grant["consultation_id"])
            sockets.append(asyncio.ensure_future(patient.signal(base.replace("http", "ws", 1), grant)))
            await until(lambda: len(patient.states_by_socket) == len(sockets)
                        and patient.states_by_socket[-1], "the patient's welcome", 15)
            return grant

        try:
            grant = await join()
            log(f"patient joined consultation {grant['consultation_id']}")
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", headless=True,
                    args=[*CHROMIUM_ARGS, f"--carebridge-run={run_id}"])
                try:
                    page = await browser.new_page()
                    page.on("pageerror", lambda error: result["page_errors"].append(str(error)))
                    page.on("console", lambda message: result["console_messages"].append(
                        f"{message.type}: {message.text}"[:300]))
                    # The slot may be tomorrow's first when the test runs just before midnight.
                    day = datetime.fromisoformat(starts_at).astimezone(zone).date().isoformat()
                    try:
                        await clinician_calls(page, f"{base}/console?date={day}", clinic,
                                              grant["consultation_id"], patient, join, result)
                    except Exception:
                        log(f"the console showed: {await page_summary(page)}")
                        raise
                finally:
                    await browser.close()
        finally:
            await patient.close()
            for socket_task in sockets:
                if not socket_task.done():
                    socket_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await socket_task
        after = await http.get(f"/v1/appointments/{appointment_id}/consultation",
                               headers=patient_headers)
        assert after.status_code == 200, after.text
        token = await access_token(http, clinic.doctor_email, STAFF_PASSWORD, clinic.doctor_recovery_codes[0])
        doctor = {"Authorization": f"Bearer {token}"}
        staff_view = await http.get(f"/v1/staff/consultations/{grant['consultation_id']}",
                                    headers=doctor)
        result.update(
            patient_states=patient.states, patient_states_by_socket=patient.states_by_socket,
            patient_frames_by_offer=patient.frames_by_offer,
            patient_connection_states=patient.connection_states,
            patient_error_frames=patient.errors, patient_close_codes=patient.close_codes,
            candidate_addresses=sorted({candidate_address(c) for c in
                                        patient.remote_candidates + patient.local_candidates}),
            remote_candidates=len(patient.remote_candidates),
            patient_view_after=after.json(), patient_view_text=after.text,
            follow_up_written=FOLLOW_UP, internal_notes_written=INTERNAL,
            staff_view_status=staff_view.status_code,
            staff_view=staff_view.json() if staff_view.status_code == 200 else staff_view.text)
    return result


LOCAL_TRACKS_ON = """(kind) => document.querySelector('#local-video').srcObject.getTracks()
    .filter((track) => track.kind === kind).every((track) => track.enabled)"""


async def toggled(page: Any) -> dict[str, list[Any]]:
    """Mute and camera off, then on again: (aria-pressed, tracks enabled) after each click."""
    seen: dict[str, list[Any]] = {}
    for button, kind in (("#toggle-mic", "audio"), ("#toggle-camera", "video")):
        for _ in range(2):
            await page.click(button)
            pressed = await page.get_attribute(button, "aria-pressed")
            seen.setdefault(kind, []).append((pressed, await page.evaluate(LOCAL_TRACKS_ON, kind)))
    return seen


async def snapshot(page: Any, name: str) -> None:
    """A screenshot of the console, when CAREBRIDGE_CALL_SCREENSHOTS names a directory to keep them."""
    directory = os.environ.get("CAREBRIDGE_CALL_SCREENSHOTS")
    if directory:
        await page.screenshot(path=str(Path(directory) / f"{name}.png"), full_page=True)


async def page_summary(page: Any) -> str:
    """What the clinician saw when a step did not happen: visible sections, messages, state."""
    return str(await page.evaluate("""() => ({
        sections: [...document.querySelectorAll('section')].filter((s) => !s.hidden).map((s) => s.id),
        notice: document.querySelector('#notice').textContent,
        signInError: document.querySelector('#sign-in-error').textContent,
        state: document.querySelector('#state').textContent,
        rows: [...document.querySelectorAll('[data-consultation-id]')].map((r) => r.dataset.state)})"""))


REMOTE_FRAMES = "() => document.querySelector('#remote-video').getVideoPlaybackQuality().totalVideoFrames"
# Resolves when the remote video presents a frame from now on (a frame of the current call).
NEXT_REMOTE_FRAME = """() => new Promise((resolve) =>
    document.querySelector('#remote-video').requestVideoFrameCallback((now, meta) =>
        resolve([meta.width, meta.height])))"""


async def clinician_calls(page: Any, console_url: str, clinic: Clinic, consultation_id: str,
                          patient: Patient, rejoin: Any, result: dict[str, Any]) -> None:
    """The clinician signs in and admits the patient; they see each other; the patient drops and
    rejoins and they see each other again; the clinician ends the call and writes the summary."""
    response = await page.goto(console_url)
    assert response is not None and response.ok, "the console page did not load"
    result["console_csp"] = await response.header_value("content-security-policy")
    await page.fill("#email", clinic.doctor_email)
    await page.fill("#password", STAFF_PASSWORD)
    await snapshot(page, "1-sign-in")
    await page.click("#sign-in")
    await page.locator("#code").wait_for(state="visible", timeout=15_000)
    result["second_factor_asked"] = True
    # The next time step's code: the current one was spent confirming the app (no replays).
    next_step = datetime.now(UTC) + timedelta(seconds=30)
    await page.fill("#code", pyotp.TOTP(clinic.doctor_totp_secret).at(next_step))
    await page.click("#verify-code")
    row = page.locator(f'#waiting-room [data-consultation-id="{consultation_id}"]')
    await row.and_(page.locator('[data-state="waiting"]')).wait_for(timeout=15_000)
    result["storage"] = await page.evaluate(
        "() => ({session: Object.keys(sessionStorage), local: Object.keys(localStorage)})")
    result["waiting_room_row"] = [await cell.inner_text() for cell in await row.locator("td").all()]
    await snapshot(page, "2-waiting-room")
    log("the console shows the patient waiting; admitting")
    await row.locator(".admit").click()
    await page.locator('#state[data-state="in_progress"]').wait_for(timeout=30_000)
    log("in progress; waiting for frames both ways")
    await page.wait_for_function(f"() => ({REMOTE_FRAMES})() > 0", timeout=30_000)
    await until(lambda: patient.frames("video", 0) > 0, "video frames at the patient", 30)
    result["console_remote_video_frames"] = await page.evaluate(REMOTE_FRAMES)
    result["console_remote_video_size"] = await page.evaluate(
        "() => [document.querySelector('#remote-video').videoWidth,"
        " document.querySelector('#remote-video').videoHeight]")
    result["console_connection"] = await page.get_attribute("#call-section", "data-connection")
    await snapshot(page, "3-in-call")
    result["toggles"] = await toggled(page)
    log("frames flowed both ways; both sides report quality")
    await patient.send_stats()
    await page.locator("#remote-video[data-frames-decoded]").wait_for(state="attached", timeout=15_000)
    result["console_frames_decoded"] = int(
        await page.get_attribute("#remote-video", "data-frames-decoded") or 0)
    log("the patient's connection drops")
    await patient.drop()
    await page.locator('#state:has-text("The patient left the call")').wait_for(timeout=15_000)
    result["banner_after_drop"] = await page.inner_text("#state")
    await snapshot(page, "4-patient-dropped")
    await rejoin()
    log("the patient rejoined; the console calls again")
    await until(lambda: patient.offers == 2 and patient.frames("video", 1) > 0,
                "video frames at the patient after the rejoin", 30)
    await page.locator('#call-section[data-connection="connected"]').wait_for(timeout=30_000)
    result["console_frame_after_rejoin"] = await page.evaluate(NEXT_REMOTE_FRAME)
    await page.locator('#state[data-state="in_progress"]').wait_for(timeout=15_000)
    await until(lambda: patient.states_by_socket[-1][-1] == "in_progress",
                "the rejoined patient told the call is in progress again", 15)
    result["state_after_rejoin"] = await page.get_attribute("#state", "data-state")
    await snapshot(page, "5-rejoined")
    log("frames flow again; ending the call")
    await page.click("#end-call")
    await until(lambda: "ended" in patient.states, "the patient told the call ended", 15)
    await page.locator("#summary-section").wait_for(state="visible", timeout=15_000)
    await page.fill("#follow-up", FOLLOW_UP)
    await page.fill("#internal-notes", INTERNAL)
    await page.click("#save-summary")
    await page.locator('#summary-status[data-saved="true"]').wait_for(timeout=15_000)
    await snapshot(page, "6-summary")
    result["summary_status"] = await page.inner_text("#summary-status")


def main() -> int:
    assert_loopback_only()
    allow_loopback_candidates()
    from api.app import create_app
    from api.container import Container
    from api.database import Database
    from api.seed import publish_default_consent_texts
    from tests.conftest import test_settings
    from tests.domain.test_appointments import RIVERSIDE

    database = Database(**json.loads(os.environ["CAREBRIDGE_CALL_DATABASE"]))
    data_dir = Path(os.environ["CAREBRIDGE_CALL_DATA_DIR"])
    run_id = os.environ.get("CAREBRIDGE_CALL_RUN_ID", uuid.uuid4().hex)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # The booked slot is at most ~17 minutes ahead (a slot near midnight is the next day's first).
    settings = test_settings(data_dir=data_dir, mail_log_path=data_dir / "mail.log",
                             sms_log_path=data_dir / "sms.log", consultation_join_minutes=30,
                             websocket_origins=[base])
    with Container(settings, database, os.environ["CAREBRIDGE_CALL_ENCRYPTION_KEY"]) as container:
        publish_default_consent_texts(container)
        clinic = seed_staff(container)
        container.start_projections()
        app = create_app(container, secrets.token_urlsafe(48))
        with ApiServer(app, port):
            log(f"API on {base}")
            result = asyncio.run(asyncio.wait_for(run_call(base, clinic, RIVERSIDE.zone, run_id),
                                                  CALL_SECONDS))
    print("CALL-RESULT " + json.dumps(result, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
