"""Helpers for the pre-call check tests: the app with the checks mounted, and a scripted server
peer for tests that exercise the API and the guidance without media."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import TOKEN_SECRET
from webrtc.guidance import ServerObservations
from webrtc.ice import IceServer
from webrtc.precall import PeerFactory

# A complete offer (audio, video, data channel, one host candidate each), as a client sends it.
# A scripted peer never uses it; the real tests make their own.
SECURITY = "\n".join(["a=end-of-candidates", "a=ice-ufrag:htvr", "a=ice-pwd:NvZw3TcQJVhpCqS9WMvjza",
                      "a=fingerprint:sha-256 " + ":".join(["AB"] * 32), "a=setup:actpass"])
OFFER = "".join(line + "\r\n" for line in """v=0
o=- 4004455228 4004455228 IN IP4 0.0.0.0
s=-
t=0 0
a=group:BUNDLE 0 1 2
m=audio 55249 UDP/TLS/RTP/SAVPF 96
c=IN IP4 127.0.0.1
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:96 opus/48000/2
a=candidate:1 1 udp 2130706431 127.0.0.1 55249 typ host
SECURITY
m=video 55249 UDP/TLS/RTP/SAVPF 97
c=IN IP4 127.0.0.1
a=mid:1
a=sendrecv
a=rtcp-mux
a=rtpmap:97 VP8/90000
a=candidate:1 1 udp 2130706431 127.0.0.1 55249 typ host
SECURITY
m=application 55249 UDP/DTLS/SCTP webrtc-datachannel
c=IN IP4 127.0.0.1
a=mid:2
a=sctp-port:5000
a=candidate:1 1 udp 2130706431 127.0.0.1 55249 typ host
SECURITY""".replace("SECURITY", SECURITY).splitlines())

GOOD_CONNECTION = ServerObservations(
    ice_connected=True, connected=True, offered_audio=True, offered_video=True,
    offered_data_channel=True, audio_frames_received=250, video_frames_received=150,
    data_messages_received=5, rtt_ms=35.0, packet_loss_pct=0.0, jitter_ms=4.0)


class ScriptedPeer:
    """A server peer that saw whatever the test says it saw."""

    def __init__(self, observations: ServerObservations) -> None:
        self.observations = observations
        self.closed = False

    async def answer(self, offer_sdp: str, offered: frozenset[str]) -> str:
        return OFFER.replace("a=setup:actpass", "a=setup:active")

    async def observe(self) -> ServerObservations:
        return self.observations

    async def close(self) -> None:
        self.closed = True


class ScriptedPeers:
    """A peer factory: each new check's peer observes `observations`; `made` keeps them all."""

    def __init__(self, observations: ServerObservations = GOOD_CONNECTION) -> None:
        self.observations = observations
        self.made: list[ScriptedPeer] = []

    def __call__(self, servers: list[IceServer]) -> ScriptedPeer:
        peer = ScriptedPeer(self.observations)
        self.made.append(peer)
        return peer


def precall_app(container: Any, token_secret: str, clock: Any = None,
                peer_factory: PeerFactory | None = None) -> Any:
    """The API (which runs the connection checks), optionally with scripted peers instead of
    real ones."""
    from api.app import create_app

    app = create_app(container, token_secret, clock=clock)
    if peer_factory is not None:
        async def scripted(app: Any) -> None:
            app.state.connection_checks.peer_factory = peer_factory

        app.on_startup.append(scripted)
    return app


@contextmanager
def precall_client(container: Any, clock: Any, peers: PeerFactory | None) -> Iterator[Any]:
    """A test client of the API whose connection checks use `peers` (None: real echo peers)."""
    from litestar.testing import TestClient

    container.start_projections()
    with TestClient(precall_app(container, TOKEN_SECRET, clock, peers)) as client:
        yield client


def register(client: Any, given_name: str) -> dict[str, str]:
    """A new patient, signed in: their account id and Authorization header."""
    email = f"{given_name.lower()}.{uuid.uuid4().hex[:8]}@patients.test"
    password = "a long enough passphrase"
    registered = client.post("/v1/auth/register", json={
        "email": email, "password": password, "given_name": given_name,
        "family_name": "Test", "date_of_birth": "1987-04-02"})
    assert registered.status_code == 201, registered.text
    token = client.post("/v1/auth/login", json={"email": email, "password": password})
    assert token.status_code == 200, token.text
    return {"account_id": registered.json()["account_id"],
            "Authorization": f"Bearer {token.json()['access_token']}"}
