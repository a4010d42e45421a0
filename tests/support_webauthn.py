"""A software passkey authenticator for tests: what a phone's passkey store does, in miniature.

It makes EC P-256 (ES256) credentials, answers registration options with a "none" attestation
and authentication options with signed assertions, all in the WebAuthn JSON the app sends
(`PublicKeyCredential.toJSON()`). Knobs let a test play the attacker: another origin, another
relying party, no user verification, a cloned authenticator whose counter lags behind.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ORIGIN = "http://localhost:8000"  # the default of `webauthn_origins`
AAGUID = bytes.fromhex("c0ffee00c0ffee00c0ffee00c0ffee00")  # a made-up model id

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64url(data: bytes) -> str:
    return urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class StoredCredential:
    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


class SoftAuthenticator:
    """A platform authenticator holding discoverable credentials (passkeys).

    `counting=False` behaves like synced passkeys, which always report a counter of zero."""

    def __init__(self, origin: str = ORIGIN, counting: bool = True, synced: bool = True) -> None:
        self.origin = origin
        self.counting = counting
        self.synced = synced
        self.credentials: list[StoredCredential] = []

    def clone(self) -> SoftAuthenticator:
        """A copy of this authenticator, private keys and counters included: what an attacker
        who extracted the keys would hold."""
        return copy.deepcopy(self)

    # ---- navigator.credentials.create() -----------------------------------------------------

    def create(self, options: dict[str, Any], origin: str | None = None,
               rp_id: str | None = None, user_verified: bool = True) -> dict[str, Any]:
        rp_id = rp_id or options["rp"]["id"]
        excluded = {unb64url(c["id"]) for c in options.get("excludeCredentials", [])}
        assert not excluded & {c.credential_id for c in self.credentials}, \
            "the platform refuses to register a second passkey for an excluded credential"
        stored = StoredCredential(os.urandom(32), ec.generate_private_key(ec.SECP256R1()),
                                  rp_id, unb64url(options["user"]["id"]))
        self.credentials.append(stored)
        numbers = stored.private_key.public_key().public_numbers()
        cose_key = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                                -3: numbers.y.to_bytes(32, "big")})
        attested = (AAGUID + struct.pack(">H", len(stored.credential_id))
                    + stored.credential_id + cose_key)
        auth_data = self._auth_data(rp_id, user_verified, stored.sign_count, AT) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        return {
            "id": b64url(stored.credential_id), "rawId": b64url(stored.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {"credProps": {"rk": True}},
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation),
                         "transports": ["hybrid", "internal"]},
        }

    # ---- navigator.credentials.get() --------------------------------------------------------

    def get(self, options: dict[str, Any], origin: str | None = None, rp_id: str | None = None,
            user_verified: bool = True, credential: StoredCredential | None = None,
            ) -> dict[str, Any]:
        rp_id = rp_id or options["rpId"]
        chosen = credential or self._choose(options)
        if self.counting:
            chosen.sign_count += 1
        auth_data = self._auth_data(rp_id, user_verified, chosen.sign_count, 0)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = chosen.private_key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                            ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(chosen.credential_id), "rawId": b64url(chosen.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data),
                         "authenticatorData": b64url(auth_data),
                         "signature": b64url(signature),
                         "userHandle": b64url(chosen.user_handle)},
        }

    def _choose(self, options: dict[str, Any]) -> StoredCredential:
        allowed = {unb64url(c["id"]) for c in options.get("allowCredentials", [])}
        mine = [c for c in self.credentials if c.rp_id == options["rpId"]
                and (not allowed or c.credential_id in allowed)]
        assert mine, "this authenticator holds no passkey the options allow"
        return mine[-1]

    def _auth_data(self, rp_id: str, user_verified: bool, sign_count: int, extra: int) -> bytes:
        flags = UP | (UV if user_verified else 0) | extra
        if self.synced:
            flags |= BE | BS
        return (hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
                + struct.pack(">I", sign_count))

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()
