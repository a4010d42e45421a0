"""Access tokens and the caller's identity.

Access tokens are short-lived JWTs (HS256, at most 10 minutes) naming the account, its role
and clinics. Every request re-reads nothing from the token that grants more than the access
policy allows: the policy decides, the token only says who is asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
from litestar import Request

from domain.access import Actor
from domain.errors import FieldError, InvalidInput, Unauthenticated
from domain.identity import Role

ISSUER = "carebridge"
CHALLENGE_LIFETIME = timedelta(minutes=5)
AUDIENCE = "carebridge-api"


class AccessTokenExpired(Unauthenticated):
    """An authentic access token past its expiry; it still names its session, so the API can
    say whether the session itself has ended (and why) rather than only "refresh"."""

    code = "access-token-expired"
    title = "Your access token has expired"

    def __init__(self, actor: Actor, session_id: UUID) -> None:
        super().__init__("Your access token has expired: refresh it, or sign in again.",
                         refresh=True)
        self.actor = actor
        self.session_id = session_id


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    lifetime_seconds: int


VERIFIED_CACHE_SIZE = 50_000  # tokens; emptied when full (a few tens of MB at most)


class TokenService:
    def __init__(self, secret: str, lifetime: timedelta) -> None:
        self._secret = secret
        self.lifetime = lifetime
        # token -> (actor, session id, issued at, expires at), for tokens that passed `verify`
        self._verified: dict[str, tuple[Actor, UUID, int, int]] = {}

    def issue(self, actor: Actor, session_id: UUID, now: datetime) -> IssuedToken:
        expires = now + self.lifetime
        claims = {
            "sid": str(session_id),
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": str(actor.account_id),
            "role": actor.role.value,
            "clinics": sorted(actor.clinic_ids),
            "iat": int(now.timestamp()),
            "exp": int(expires.timestamp()),
            "jti": uuid4().hex,
            "typ": "access",
        }
        token = jwt.encode(claims, self._secret, algorithm="HS256")
        return IssuedToken(token, expires, int(self.lifetime.total_seconds()))

    def issue_challenge(self, account_id: UUID, device_id: str, device_label: str,
                        now: datetime) -> IssuedToken:
        """A 5-minute token that proves the password was right, for the second-factor step."""
        expires = now + CHALLENGE_LIFETIME
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": str(account_id), "typ": "mfa",
                  "dev": device_id, "lbl": device_label, "iat": int(now.timestamp()),
                  "exp": int(expires.timestamp()), "jti": uuid4().hex}
        return IssuedToken(jwt.encode(claims, self._secret, algorithm="HS256"), expires,
                           int(CHALLENGE_LIFETIME.total_seconds()))

    def verify_challenge(self, token: str, now: datetime) -> tuple[UUID, str, str]:
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], audience=AUDIENCE,
                                issuer=ISSUER, options={"require": ["exp", "iat", "sub", "typ"],
                                                        "verify_exp": False, "verify_iat": False})
            if claims["typ"] != "mfa":
                raise jwt.InvalidTokenError("not a challenge token")
            account_id = UUID(claims["sub"])
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
            raise Unauthenticated("Sign in again: this sign-in step is not valid.") from None
        if not int(claims["iat"]) - 30 <= now.timestamp() < int(claims["exp"]):
            raise Unauthenticated("This sign-in step took too long. Please sign in again.")
        return account_id, str(claims.get("dev", "unknown")), str(claims.get("lbl", "Device"))

    def issue_ceremony(self, purpose: str, challenge: str, now: datetime,
                       account_id: UUID | None = None,
                       session_id: UUID | None = None) -> IssuedToken:
        """A 5-minute token that carries a passkey ceremony's challenge (base64url) and whom
        it is for, so that the server keeps no state between options and answer. Each
        purpose (register, sign-in, step-up) is a token type of its own."""
        expires = now + CHALLENGE_LIFETIME
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": AUDIENCE, "typ": f"webauthn-{purpose}", "chl": challenge,
            "iat": int(now.timestamp()), "exp": int(expires.timestamp()), "jti": uuid4().hex}
        if account_id is not None:
            claims["sub"] = str(account_id)
        if session_id is not None:
            claims["sid"] = str(session_id)
        return IssuedToken(jwt.encode(claims, self._secret, algorithm="HS256"), expires,
                           int(CHALLENGE_LIFETIME.total_seconds()))

    def verify_ceremony(self, token: str, purpose: str, now: datetime) -> Ceremony:
        """The ceremony a token from `issue_ceremony` stands for, if it is authentic, of this
        purpose and unexpired; otherwise a 422 naming `options_token`."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], audience=AUDIENCE,
                                issuer=ISSUER, options={"require": ["exp", "iat", "typ", "chl"],
                                                        "verify_exp": False, "verify_iat": False})
            if claims["typ"] != f"webauthn-{purpose}" or not isinstance(claims["chl"], str):
                raise jwt.InvalidTokenError("not a ceremony token of this purpose")
            ceremony = Ceremony(
                claims["chl"], datetime.fromtimestamp(int(claims["exp"]), UTC),
                UUID(claims["sub"]) if "sub" in claims else None,
                UUID(claims["sid"]) if "sid" in claims else None)
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
            raise _ceremony_refused() from None
        if not int(claims["iat"]) - 30 <= now.timestamp() < int(claims["exp"]):
            raise _ceremony_refused()
        return ceremony

    def issue_ticket(self, actor_ref: str, account_id: UUID, consultation_id: UUID, role: str,
                     now: datetime, seconds: int) -> tuple[IssuedToken, UUID]:
        """A short-lived ticket for one consultation's WebSocket (browsers cannot set headers
        on a WebSocket). It works once: its id is recorded when it is used."""
        ticket_id = uuid4()
        expires = now + timedelta(seconds=seconds)
        claims = {"iss": ISSUER, "aud": AUDIENCE, "typ": "consultation-ticket",
                  "sub": str(account_id), "cid": str(consultation_id), "role": role,
                  "ref": actor_ref,
                  "iat": int(now.timestamp()), "exp": int(expires.timestamp()),
                  "jti": str(ticket_id)}
        return IssuedToken(jwt.encode(claims, self._secret, algorithm="HS256"), expires,
                           seconds), ticket_id

    def verify_ticket(self, token: str, consultation_id: UUID, now: datetime) -> Ticket:
        """The ticket's holder if it is authentic, for this consultation and unexpired."""
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], audience=AUDIENCE,
                                issuer=ISSUER,
                                options={"require": ["exp", "iat", "sub", "cid", "role", "jti",
                                                     "ref"],
                                         "verify_exp": False, "verify_iat": False})
            if claims["typ"] != "consultation-ticket" or claims["cid"] != str(consultation_id):
                raise jwt.InvalidTokenError("not a ticket for this consultation")
            ticket = Ticket(UUID(claims["jti"]), UUID(claims["sub"]), str(claims["role"]),
                            str(claims["ref"]), datetime.fromtimestamp(int(claims["exp"]), UTC))
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
            raise Unauthenticated("This consultation ticket is not valid. Join again.") from None
        if not int(claims["iat"]) - 30 <= now.timestamp() < int(claims["exp"]):
            raise Unauthenticated("This consultation ticket has expired. Join again.")
        return ticket

    def verify(self, token: str, now: datetime) -> tuple[Actor, UUID]:
        """Checks signature, audience, issuer and type, and expiry against `now` (the same
        clock that issued it, so that tests can move time).

        A token that passed the checks is remembered with its validity (a bounded cache keyed
        by the whole token, so its signature is part of the key): a phone sends the same token
        on every request, and checking the signature again would prove nothing new. The
        session behind it is still checked on every request (`check_session`)."""
        known = self._verified.get(token)
        if known is None:
            known = self._decode(token)
            if len(self._verified) >= VERIFIED_CACHE_SIZE:
                self._verified.clear()
            self._verified[token] = known
        actor, session_id, issued_at, expires_at = known
        if not issued_at - 30 <= now.timestamp() < expires_at:
            raise AccessTokenExpired(actor, session_id)
        return actor, session_id

    def _decode(self, token: str) -> tuple[Actor, UUID, int, int]:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "role", "typ", "sid"], "verify_exp": False,
                         "verify_iat": False},
            )
            if claims["typ"] != "access":
                raise jwt.InvalidTokenError("not an access token")
            actor = Actor(UUID(claims["sub"]), Role(claims["role"]),
                          frozenset(claims.get("clinics", [])))
            return actor, UUID(claims["sid"]), int(claims["iat"]), int(claims["exp"])
        except (jwt.InvalidTokenError, ValueError, KeyError, TypeError):
            raise Unauthenticated("Sign in again: the access token is not valid.") from None


@dataclass(frozen=True)
class Ticket:
    """What a consultation ticket vouches for."""

    ticket_id: UUID
    account_id: UUID
    role: str
    actor_ref: str
    expires_at: datetime


@dataclass(frozen=True)
class Ceremony:
    """What a passkey options token vouches for."""

    challenge: str  # base64url, as the authenticator echoes it in clientDataJSON
    expires_at: datetime
    account_id: UUID | None
    session_id: UUID | None


def _ceremony_refused() -> InvalidInput:
    return InvalidInput([FieldError(
        "options_token", "These passkey options have expired or are not valid. Ask for new "
        "options and try again.")])


def bearer_token(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Sign in and send the access token as 'Authorization: Bearer <token>'.")
    return token.strip()
