"""Sessions of the identity context: start, refresh with rotation, end, and the per-request check.

A refresh token is `<session id>.<secret>`; only the secret's hash is stored. The session's
liveness is kept in `carebridge.session_activity`, written in the same transaction as the
session's events, so that every request can check it with one indexed read.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.application import AggregateNotFoundError

from commands.eventstore import Statement
from commands.identity import IdentityApplication
from domain.access import Actor
from domain.errors import Forbidden
from domain.identity import Account
from domain.sessions import (
    EndReason,
    RefreshRefused,
    Session,
    SessionEnded,
    ended_message,
    token_hash,
)

ACTIVITY = "carebridge.session_activity"
TOUCH_EVERY = timedelta(seconds=60)  # how stale last_seen_at may get before it is rewritten
_INVALID = "This sign-in is not valid any more. Please sign in again."


@dataclass(frozen=True)
class IssuedSession:
    session_id: UUID
    refresh_token: str
    ends_at: datetime


@dataclass(frozen=True)
class SessionView:
    session_id: UUID
    device_label: str
    started_at: datetime
    last_seen_at: datetime


class Sessions:
    def __init__(self, app: IdentityApplication, inactivity: timedelta, lifetime: timedelta) -> None:
        self.app = app
        self.inactivity = inactivity
        self.lifetime = lifetime
        self.datastore = app.factory.datastore  # type: ignore[attr-defined]

    def start(self, account: Account, device_id: str, device_label: str, at: datetime,
              verified_by: str | None = None) -> IssuedSession:
        """Starts a session; `verified_by` names the second factor proved while signing in
        (which counts as a fresh verification for step-up)."""
        session, statement, issued = self.begin(account, device_id, device_label, at,
                                                verified_by)
        self.app.save_all(session, also=[statement])
        return issued

    def begin(self, account: Account, device_id: str, device_label: str, at: datetime,
              verified_by: str | None = None) -> tuple[Session, Statement, IssuedSession]:
        """A new session and its activity row, for the caller to save with other changes."""
        secret = secrets.token_urlsafe(32)
        by = f"{account.role}:{account.id}"
        session = Session(account_id=account.id, device_id=device_id, device_label=device_label,
                          refresh_sha256=token_hash(secret), ends_at=at + self.lifetime,
                          by=by, at=at)
        if verified_by is not None:
            session.verify(verified_by, by=by, at=at)
        statement = Statement(
            f"INSERT INTO {ACTIVITY} (session_id, account_id, device_label, started_at,"
            " last_seen_at, ends_at, verified_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (session.id, account.id, device_label, at, at, session.ends_at, session.verified_at))
        return session, statement, IssuedSession(session.id, f"{session.id}.{secret}",
                                                 session.ends_at)

    def verified(self, actor: Actor, session_id: UUID, method: str, at: datetime) -> None:
        """Records that the signed-in person just proved a second factor (step-up)."""
        session = self._session(str(session_id))
        if session.account_id != actor.account_id:
            raise Forbidden("You can only verify your own session.")
        session.verify(method, by=actor.ref, at=at)
        self.app.save_all(session, also=[Statement(
            f"UPDATE {ACTIVITY} SET verified_at = %s WHERE session_id = %s", (at, session.id))])

    def refresh(self, refresh_token: str, at: datetime) -> tuple[Session, IssuedSession]:
        session_id, _, secret = refresh_token.partition(".")
        session = self._session(session_id)
        new_secret = secrets.token_urlsafe(32)
        last_seen = self._last_seen(session.id) or session.last_active_at
        ended = session.rotate(token_hash(secret), token_hash(new_secret), self.inactivity,
                               last_seen, at)
        if ended is not None:
            self.app.save_all(session, also=[self._ended_statement(session.id, ended)])
            raise SessionEnded(ended_message(ended))
        self.app.save_all(session, also=[Statement(
            f"UPDATE {ACTIVITY} SET last_seen_at = %s WHERE session_id = %s", (at, session.id))])
        return session, IssuedSession(session.id, f"{session.id}.{new_secret}", session.ends_at)

    def end(self, actor: Actor, session_id: UUID, reason: EndReason, at: datetime) -> None:
        session = self._session(str(session_id))
        if session.account_id != actor.account_id:
            raise Forbidden("You can only sign out your own sessions.")
        if session.end(reason, by=actor.ref, at=at):
            self.app.save_all(session, also=[self._ended_statement(session.id, reason)])

    def end_all(self, actor: Actor, at: datetime, keep: UUID | None = None,
                reason: EndReason = EndReason.SIGNED_OUT_EVERYWHERE) -> int:
        """Signs the account out everywhere (except the session `keep`), in one transaction."""
        ended, statements = self.ending_all(actor.account_id, actor.ref, at, keep, reason)
        if ended:
            self.app.save_all(*ended, also=statements)
        return len(ended)

    def ending_all(self, account_id: UUID, by: str, at: datetime, keep: UUID | None,
                   reason: EndReason) -> tuple[list[Session], list[Statement]]:
        """Ends the account's live sessions (except `keep`) for the caller to save together
        with the change that calls for it."""
        sessions = [self._session(str(view.session_id))
                    for view in self.active(account_id, at) if view.session_id != keep]
        ended = [s for s in sessions if s.end(reason, by=by, at=at)]
        return ended, [self._ended_statement(s.id, reason) for s in ended]

    def active(self, account_id: UUID, at: datetime) -> list[SessionView]:
        """Sessions still live at `at`: not ended, within their lifetime, recently used."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT session_id, device_label, started_at, last_seen_at FROM {ACTIVITY}"
                " WHERE account_id = %s AND ended_reason IS NULL AND ends_at > %s"
                " AND last_seen_at > %s ORDER BY last_seen_at DESC",
                (account_id, at, at - self.inactivity)).fetchall()
        return [SessionView(r["session_id"], r["device_label"], r["started_at"],
                            r["last_seen_at"]) for r in rows]

    def _session(self, session_id: str) -> Session:
        try:
            return self.app.repository.get(UUID(session_id))
        except (ValueError, AggregateNotFoundError):
            raise RefreshRefused(_INVALID) from None

    def _last_seen(self, session_id: UUID) -> datetime | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT last_seen_at FROM {ACTIVITY} WHERE session_id = %s",
                               (session_id,)).fetchone()
        return row["last_seen_at"] if row else None

    @staticmethod
    def _ended_statement(session_id: UUID, reason: EndReason) -> Statement:
        return Statement(f"UPDATE {ACTIVITY} SET ended_reason = %s WHERE session_id = %s",
                         (reason.value, session_id))


async def check_session(conn: psycopg.AsyncConnection[Any], session_id: UUID, account_id: UUID,
                        inactivity: timedelta, at: datetime,
                        touch: bool = True) -> datetime | None:
    """The per-request check behind every access token: the session is live and recently used.
    Returns when the session last proved a second factor (for step-up), if ever.

    A session idle for longer than the inactivity limit is refused here; the event that ends
    it is recorded when its refresh token is next presented.
    """
    cur = await conn.execute(
        f"SELECT account_id, last_seen_at, ends_at, ended_reason, verified_at FROM {ACTIVITY}"
        " WHERE session_id = %s", (session_id,), prepare=True)
    row = await cur.fetchone()
    if row is None or row[0] != account_id:
        raise SessionEnded(_INVALID)
    _, last_seen, ends_at, ended_reason, verified_at = row
    if ended_reason is not None:
        raise SessionEnded(ended_message(EndReason(ended_reason)))
    if at >= ends_at:
        raise SessionEnded(ended_message(EndReason.LIFETIME))
    if at - last_seen >= inactivity:
        raise SessionEnded(ended_message(EndReason.INACTIVITY))
    if touch and at - last_seen >= TOUCH_EVERY:
        # Losing this touch in a crash costs nothing; do not wait for the disk.
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute(
                f"UPDATE {ACTIVITY} SET last_seen_at = %s WHERE session_id = %s AND"
                " last_seen_at < %s", (at, session_id, at))
    return verified_at
