"""ICE configuration: the STUN and TURN servers every peer is given, with time-limited TURN
credentials in coturn's REST format.

coturn (`use-auth-secret`, `static-auth-secret=<secret>`) accepts a username `<expiry>:<user>`
whose password is base64(HMAC-SHA1(secret, username)); it refuses the credential once the Unix
time `<expiry>` has passed. Nothing is stored: CareBridge and coturn only share the secret.

The server's own peers (the pre-call check) use `rtc_configuration`, which always passes an
explicit list: aiortc's `RTCConfiguration()` without one falls back to a public STUN server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class IceServer:
    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The shape of the browser's RTCIceServer (and the app's WebRTC libraries)."""
        entry: dict[str, Any] = {"urls": list(self.urls)}
        if self.username is not None:
            entry["username"] = self.username
            entry["credential"] = self.credential
        return entry


def turn_credential(secret: str, user: str, expires_at: datetime) -> tuple[str, str]:
    """coturn's REST credential: (`expiry:user`, base64 HMAC-SHA1 of it under the secret)."""
    if ":" in user:
        raise ValueError("the TURN user part must not contain ':'")
    username = f"{int(expires_at.timestamp())}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(settings: Any, user: str, now: datetime) -> list[IceServer]:
    """The servers for one peer: STUN as configured, TURN with a credential for `user` (an
    opaque reference such as an account id; never a name or email)."""
    servers: list[IceServer] = []
    if settings.stun_urls:
        servers.append(IceServer(tuple(settings.stun_urls)))
    if settings.turn_urls:
        secret = settings.turn_shared_secret
        if secret is None:
            raise ValueError("turn_urls is set but turn_shared_secret is not")
        username, credential = turn_credential(
            secret.get_secret_value(), user,
            now + timedelta(minutes=settings.turn_credential_minutes))
        servers.append(IceServer(tuple(settings.turn_urls), username, credential))
    return servers


def rtc_configuration(servers: list[IceServer]) -> Any:
    """An aiortc RTCConfiguration with exactly these servers (possibly none)."""
    from aiortc import RTCConfiguration, RTCIceServer

    return RTCConfiguration(iceServers=[
        RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
        for s in servers])
