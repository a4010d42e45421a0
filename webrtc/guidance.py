"""Pre-call guidance: what the server's echo peer observed and what the app reported, turned
into one outcome and a few plain-words steps for the patient.

Pure: no I/O and no clock. The thresholds are named here so that support staff can read why a
patient was told to move closer to their router.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

Permission = Literal["granted", "denied", "unavailable"]
Outcome = Literal["ready", "audio_only", "not_ready"]
GuidanceCode = Literal["allow_camera", "allow_microphone", "better_connection",
                       "switch_to_audio_only", "use_supported_browser", "ask_for_phone_call"]

# A call feels laggy above this round-trip time, and video stutters above this packet loss
# (or jitter): video is then not worth it, sound usually still is.
POOR_RTT_MS = 400.0
POOR_LOSS_PCT = 5.0
POOR_JITTER_MS = 100.0
# Above these, even sound breaks up: the visit should not rely on this connection.
UNUSABLE_RTT_MS = 1000.0
UNUSABLE_LOSS_PCT = 15.0

# The oldest major version of each browser whose WebRTC the clinician console and the web app
# are tested with. None: no version works. Browsers not named here (the mobile app's own web
# view, for one) are judged by whether they have RTCPeerConnection at all.
SUPPORTED_BROWSERS: dict[str, int | None] = {
    "chrome": 100, "chromium": 100, "edge": 100, "opera": 86, "samsung internet": 18,
    "firefox": 102, "safari": 15, "internet explorer": None,
}

MESSAGES: dict[str, str] = {
    "use_supported_browser": "This browser cannot make video calls. Please use an up-to-date "
    "Chrome, Edge, Firefox or Safari, or the CareBridge app.",
    "allow_microphone:denied": "Your microphone is blocked. Allow CareBridge to use your "
    "microphone (in the browser's address bar or your phone's settings), then check again.",
    "allow_microphone:unavailable": "We could not find a microphone. Plug in a headset or use a "
    "phone or tablet, then check again.",
    "allow_camera:denied": "Your camera is blocked. Allow CareBridge to use your camera (in the "
    "browser's address bar or your phone's settings), then check again.",
    "allow_camera:unavailable": "We could not find a camera. You can still have your visit by "
    "sound only, or use a phone or tablet with a camera.",
    "better_connection:none": "We could not connect to the clinic. Try another network: switch "
    "between Wi-Fi and mobile data, turn off any VPN, or avoid work or public Wi-Fi that may "
    "block video calls.",
    "better_connection:video": "Your video did not get through. Move closer to your Wi-Fi "
    "router or try mobile data, and close other apps that use the internet.",
    "better_connection:poor": "Your connection is slow or unsteady. Move closer to your Wi-Fi "
    "router or try mobile data, and close other apps that use the internet.",
    "switch_to_audio_only": "Your visit can go ahead with sound only: the clinician will hear "
    "you, but not see you. Choose \"audio only\" when you join.",
    "ask_for_phone_call": "If this cannot be fixed before your visit, call the clinic and ask "
    "for a phone call instead of a video visit.",
}


class Browser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=50)]
    version: Annotated[str, msgspec.Meta(max_length=50)]


class ClientReport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What the app saw on its side of the check (the body it sends with the result)."""

    camera: Permission
    microphone: Permission
    rtc_supported: bool  # the browser has RTCPeerConnection
    received_audio: bool  # the echo of its microphone came back
    received_video: bool  # the echo of its camera came back
    data_channel_echoes: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)]
    browser: Browser | None = None
    rtt_ms: Annotated[float, msgspec.Meta(ge=0, le=600_000)] | None = None
    packet_loss_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None


class ServerObservations(msgspec.Struct, frozen=True):
    """What the server's echo peer saw during the check."""

    ice_connected: bool  # ICE reached connected (or completed)
    connected: bool  # the whole connection (ICE and DTLS) reached connected
    offered_audio: bool
    offered_video: bool
    offered_data_channel: bool
    audio_frames_received: int
    video_frames_received: int
    data_messages_received: int
    rtt_ms: float | None = None  # data-channel pings, else RTCP
    packet_loss_pct: float | None = None  # the worse direction of the two
    jitter_ms: float | None = None


class Checks(msgspec.Struct, frozen=True):
    """Each check, from the caller's point of view: `audio_sent` means the microphone reached
    the server, `audio_received` that its echo came back."""

    browser_supported: bool
    camera: Permission
    microphone: Permission
    connected: bool
    audio_sent: bool
    audio_received: bool
    video_sent: bool
    video_received: bool
    data_channel: bool
    rtt_ms: float | None
    packet_loss_pct: float | None
    jitter_ms: float | None


class Guidance(msgspec.Struct, frozen=True):
    code: GuidanceCode
    message: str


class CheckResult(msgspec.Struct, frozen=True):
    outcome: Outcome
    checks: Checks
    guidance: list[Guidance]


def browser_supported(rtc_supported: bool, browser: Browser | None) -> bool:
    if not rtc_supported:
        return False
    if browser is None:
        return True
    name = browser.name.strip().lower()
    if name not in SUPPORTED_BROWSERS:
        return True
    oldest = SUPPORTED_BROWSERS[name]
    major = re.match(r"\s*(\d+)", browser.version)
    if oldest is None:
        return False
    return major is None or int(major.group(1)) >= oldest


# Order matters: Edge and Opera also say "Chrome", and Chrome also says "Safari".
_USER_AGENTS = (("edge", r"Edg(?:e|A|iOS)?/(\d[\d.]*)"), ("opera", r"OPR/(\d[\d.]*)"),
                ("samsung internet", r"SamsungBrowser/(\d[\d.]*)"),
                ("firefox", r"(?:Firefox|FxiOS)/(\d[\d.]*)"),
                ("chrome", r"(?:Chrome|Chromium|CriOS)/(\d[\d.]*)"),
                ("safari", r"Version/(\d[\d.]*).*Safari/"),
                ("internet explorer", r"(?:MSIE |Trident/.*rv:)(\d[\d.]*)"))


def browser_from_user_agent(user_agent: str | None) -> Browser | None:
    """The browser a User-Agent string names, when the app did not report one."""
    for name, pattern in _USER_AGENTS:
        found = re.search(pattern, user_agent or "")
        if found:
            return Browser(name, found.group(1))
    return None


def _worst(*values: float | None) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _quality(rtt_ms: float | None, loss_pct: float | None, jitter_ms: float | None) -> str:
    if (rtt_ms or 0) > UNUSABLE_RTT_MS or (loss_pct or 0) > UNUSABLE_LOSS_PCT:
        return "unusable"
    if (rtt_ms or 0) > POOR_RTT_MS or (loss_pct or 0) > POOR_LOSS_PCT or (jitter_ms or 0) > POOR_JITTER_MS:
        return "poor"
    return "good"


def checks_of(server: ServerObservations, client: ClientReport) -> Checks:
    return Checks(
        browser_supported=browser_supported(client.rtc_supported, client.browser),
        camera=client.camera,
        microphone=client.microphone,
        connected=server.ice_connected and server.connected,
        audio_sent=server.audio_frames_received > 0,
        audio_received=client.received_audio,
        video_sent=server.video_frames_received > 0,
        video_received=client.received_video,
        data_channel=server.data_messages_received > 0 and client.data_channel_echoes > 0,
        rtt_ms=_worst(server.rtt_ms, client.rtt_ms),
        packet_loss_pct=_worst(server.packet_loss_pct, client.packet_loss_pct),
        jitter_ms=server.jitter_ms,
    )


def advise(server: ServerObservations, client: ClientReport) -> CheckResult:
    """The outcome and the steps, fixes first and the fallback last. The data channel is
    reported but decides nothing: the visit needs only sound, and ideally video."""
    checks = checks_of(server, client)
    audio_works = checks.connected and checks.audio_sent and checks.audio_received
    video_works = checks.connected and checks.video_sent and checks.video_received
    quality = _quality(checks.rtt_ms, checks.packet_loss_pct, checks.jitter_ms)
    steps: list[tuple[GuidanceCode, str]] = []
    if not checks.browser_supported:
        steps.append(("use_supported_browser", "use_supported_browser"))
    if client.microphone != "granted":
        steps.append(("allow_microphone", f"allow_microphone:{client.microphone}"))
    if client.camera != "granted":
        steps.append(("allow_camera", f"allow_camera:{client.camera}"))
    if checks.browser_supported:
        # An unsupported browser fails to connect by itself: never blame the network for it.
        if not checks.connected:
            steps.append(("better_connection", "better_connection:none"))
        elif quality != "good":
            steps.append(("better_connection", "better_connection:poor"))
        elif audio_works and not video_works and client.camera == "granted":
            steps.append(("better_connection", "better_connection:video"))
    if audio_works and quality != "unusable":
        if video_works and quality == "good":
            outcome: Outcome = "ready"
        else:
            outcome = "audio_only"
            steps.append(("switch_to_audio_only", "switch_to_audio_only"))
    else:
        outcome = "not_ready"
        steps.append(("ask_for_phone_call", "ask_for_phone_call"))
    return CheckResult(outcome, checks, [Guidance(code, MESSAGES[key]) for code, key in steps])
