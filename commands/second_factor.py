"""Second factor: authenticator-app codes (TOTP, RFC 6238) and one-time recovery codes.

Enrolment is two steps (show the secret as an otpauth URI and QR code, then confirm with a
code from the app) so that nobody is locked out by a mistyped secret. A code's time step is
accepted once; recovery codes are stored as hashes and work once each.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
import segno

from commands.identity import IdentityApplication
from domain.access import Actor
from domain.errors import FieldError, InvalidInput
from domain.identity import Account

ISSUER = "CareBridge"
STEP_SECONDS = 30
RECOVERY_CODES = 10


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str
    qr_svg: str


def recovery_hash(code: str) -> str:
    return hashlib.sha256(code.replace("-", "").strip().lower().encode()).hexdigest()


def matching_step(secret: str, code: str, at: datetime) -> int | None:
    """The time step whose code this is, allowing one step of clock drift either way."""
    totp = pyotp.TOTP(secret)
    now_step = int(at.timestamp()) // STEP_SECONDS
    typed = code.strip().encode()  # bytes: compare_digest refuses non-ASCII text
    for step in (now_step - 1, now_step, now_step + 1):
        if hmac.compare_digest(totp.at(step * STEP_SECONDS).encode(), typed):
            return step
    return None


class SecondFactor:
    def __init__(self, app: IdentityApplication) -> None:
        self.app = app

    def begin_totp(self, actor: Actor, at: datetime) -> Enrolment:
        account = self.app.account(actor.account_id)
        secret = pyotp.random_base32()
        account.start_totp_enrolment(secret, by=actor.ref, at=at)
        self.app.save_all(account)
        uri = pyotp.TOTP(secret).provisioning_uri(name=account.email, issuer_name=ISSUER)
        return Enrolment(secret, uri, segno.make(uri, error="m").svg_inline(scale=4))

    def confirm_totp(self, actor: Actor, code: str, at: datetime) -> list[str]:
        """Turns the second factor on; returns the recovery codes, shown this once only."""
        account = self.app.account(actor.account_id)
        pending = account.totp_pending_secret
        step = matching_step(pending, code, at) if pending else None
        if pending is not None and step is None:
            raise InvalidInput([FieldError("code", "That code does not match. Enter the current "
                                                   "6-digit code from your authenticator app.")])
        codes = [f"{secrets.token_hex(2)}-{secrets.token_hex(2)}" for _ in range(RECOVERY_CODES)]
        account.confirm_totp(step or 0, [recovery_hash(c) for c in codes], by=actor.ref, at=at)
        self.app.save_all(account)
        return codes

    def check(self, account: Account, code: str, at: datetime) -> str | None:
        """Which method this code proves, if it is a fresh authenticator code or an unused
        recovery code (the account is changed, not saved); None otherwise."""
        if account.totp_secret is None:
            return None
        by = f"{account.role}:{account.id}"
        step = matching_step(account.totp_secret, code, at)
        if step is not None:
            return "totp" if account.use_totp_step(step, by=by, at=at) else None
        return "recovery_code" if account.use_recovery_code(recovery_hash(code), by=by,
                                                             at=at) else None
