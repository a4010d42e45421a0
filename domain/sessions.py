"""Sign-in sessions: refresh-token rotation with theft detection, inactivity and lifetime limits.

These event types are the storage format and are versioned with care. Only SHA-256 hashes of
refresh tokens are recorded, never the tokens. A refresh token that was already spent being
presented again means it was copied: the whole session is revoked (OAuth 2.0 Security BCP,
refresh token rotation).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Unauthenticated


class EndReason(StrEnum):
    SIGNED_OUT = "signed_out"
    SIGNED_OUT_EVERYWHERE = "signed_out_everywhere"
    REFRESH_TOKEN_REUSED = "refresh_token_reused"  # noqa: S105 - a reason, not a secret
    INACTIVITY = "inactivity"
    LIFETIME = "lifetime"
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - a reason, not a secret


class SessionEnded(Unauthenticated):
    code = "session-ended"
    title = "Your session has ended"


class RefreshRefused(Unauthenticated):
    code = "refresh-refused"
    title = "Please sign in again"


# How long after a rotation the app may present the token it just spent once more (its answer
# was lost on the way): OAuth 2.0 Security BCP section 4.14.2 allows such a grace period.
REFRESH_RETRY_GRACE = timedelta(seconds=30)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_ENDED_MESSAGES = {
    EndReason.SIGNED_OUT: "You signed out. Please sign in again.",
    EndReason.SIGNED_OUT_EVERYWHERE: "You signed out on all devices. Please sign in again.",
    EndReason.REFRESH_TOKEN_REUSED: "For your safety we signed you out: your sign-in was used "
    "from two places. Please sign in again, and change your password if this was not you.",
    EndReason.INACTIVITY: "You were signed out after a period without activity. Please sign in "
    "again.",
    EndReason.LIFETIME: "Your session reached its maximum length. Please sign in again.",
    EndReason.PASSWORD_CHANGED: "The password of this account was changed. Please sign in "
    "again with the new password.",
}


class Session(CareAggregate):
    """One signed-in device of one account."""

    TOPIC = topic("identity", "Session")

    @event("Created", topic=topic("identity", "Session.Started"))
    def __init__(self, account_id: UUID, device_id: str, device_label: str,
                 refresh_sha256: str, ends_at: datetime, by: str, at: datetime) -> None:
        self.account_id = account_id
        self.device_id = device_id
        self.device_label = device_label
        self.refresh_sha256 = refresh_sha256
        self.spent: list[str] = []
        self.ends_at = ends_at
        self.last_active_at = at
        self.ended_reason: str | None = None
        self.verified_at: datetime | None = None
        self.rotated_at = at
        self.retried = False  # whether the latest rotation was a retry (allowed once)

    @property
    def is_active(self) -> bool:
        return self.ended_reason is None

    def rotate(self, presented_sha256: str, new_sha256: str, inactivity: timedelta,
               last_active_at: datetime, at: datetime) -> EndReason | None:
        """Exchanges the current refresh token for a new one. Returns why the session ended
        instead, when it did (the caller saves that, then refuses)."""
        if not self.is_active:
            raise SessionEnded(_ENDED_MESSAGES[EndReason(self.ended_reason or "signed_out")])
        if self.is_retry(presented_sha256, at):
            # The app sent the refresh again because the answer to its first try was lost
            # (a dropped connection): rotate once more instead of calling it theft. Allowed
            # once per rotation and for moments only, so a thief who replays it still loses
            # the race against the real app, whose next refresh then ends the session.
            self._retried(refresh_sha256=new_sha256, by=f"session:{self.id}", at=at)
            return None
        if presented_sha256 in self.spent:
            self._ended(reason=EndReason.REFRESH_TOKEN_REUSED.value, by="system", at=at)
            return EndReason.REFRESH_TOKEN_REUSED
        if presented_sha256 != self.refresh_sha256:
            raise RefreshRefused("This sign-in is not valid any more. Please sign in again.")
        if at >= self.ends_at:
            self._ended(reason=EndReason.LIFETIME.value, by="system", at=at)
            return EndReason.LIFETIME
        if at - max(last_active_at, self.last_active_at) >= inactivity:
            self._ended(reason=EndReason.INACTIVITY.value, by="system", at=at)
            return EndReason.INACTIVITY
        self._rotated(refresh_sha256=new_sha256, by=f"session:{self.id}", at=at)
        return None

    @event("Rotated", topic=topic("identity", "Session.RefreshTokenRotated"))
    def _rotated(self, refresh_sha256: str, by: str, at: datetime) -> None:
        self.spent.append(self.refresh_sha256)
        self.refresh_sha256 = refresh_sha256
        self.last_active_at = at
        self.rotated_at = at
        self.retried = False

    def is_retry(self, presented_sha256: str, at: datetime) -> bool:
        return (not self.retried and bool(self.spent) and presented_sha256 == self.spent[-1]
                and at - self.rotated_at <= REFRESH_RETRY_GRACE)

    @event("RotationRetried", topic=topic("identity", "Session.RefreshRetried"))
    def _retried(self, refresh_sha256: str, by: str, at: datetime) -> None:
        # The token the lost answer carried is spent unused; the retried one stays spent.
        self.spent.append(self.refresh_sha256)
        self.refresh_sha256 = refresh_sha256
        self.last_active_at = at
        self.retried = True

    def verify(self, method: str, by: str, at: datetime) -> None:
        """The account holder proved a second factor on this session (at sign-in, or to step
        up before a sensitive action)."""
        if not self.is_active:
            raise SessionEnded(_ENDED_MESSAGES[EndReason(self.ended_reason or "signed_out")])
        self._verified(method=method, by=by, at=at)

    @event("Verified", topic=topic("identity", "Session.SecondFactorVerified"))
    def _verified(self, method: str, by: str, at: datetime) -> None:
        self.verified_at = at

    def end(self, reason: EndReason, by: str, at: datetime) -> bool:
        if not self.is_active:
            return False
        self._ended(reason=reason.value, by=by, at=at)
        return True

    @event("Ended", topic=topic("identity", "Session.Ended"))
    def _ended(self, reason: str, by: str, at: datetime) -> None:
        self.ended_reason = reason


def ended_message(reason: EndReason) -> str:
    return _ENDED_MESSAGES[reason]
