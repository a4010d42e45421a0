"""Explicit dependencies shared by controllers: the caller, the clock, idempotency, freshness."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from litestar import Request
from litestar.datastructures import State
from litestar.di import Provide
from psycopg_pool import AsyncConnectionPool

from api.auth import AccessTokenExpired, TokenService, bearer_token
from api.container import Container
from commands.idempotency import IdempotencyKey
from commands.sessions import check_session
from domain.access import Actor
from domain.errors import FieldError, InvalidInput

POSITION_HEADER = "CareBridge-Position"
WAIT_HEADER = "CareBridge-Wait-For"
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,200}$")
_POSITION = re.compile(r"^([a-z_]+):([0-9]{1,18})$")


def provide_container(state: State) -> Container:
    return state.container


def provide_tokens(state: State) -> TokenService:
    return state.tokens


def provide_read_pool(state: State) -> AsyncConnectionPool:
    return state.read_pool


def provide_clock(state: State) -> datetime:
    clock = state.get("clock")
    return clock() if clock else datetime.now(UTC)


async def provide_actor(request: Request[Any, Any, Any], state: State) -> Actor:
    """The caller, from a valid access token whose session is still live."""
    now = provide_clock(state)
    inactivity = timedelta(minutes=state.container.settings.session_inactivity_minutes)
    try:
        actor, session_id = state.tokens.verify(bearer_token(request), now)
    except AccessTokenExpired as expired:
        # Tell an idle patient they were signed out, not merely to refresh; an expired token
        # never counts as activity.
        async with state.read_pool.connection() as conn:
            await check_session(conn, expired.session_id, expired.actor.account_id, inactivity,
                                now, touch=False)
        raise
    async with state.read_pool.connection() as conn:
        verified_at = await check_session(conn, session_id, actor.account_id, inactivity, now)
    request.scope["state"]["actor"] = actor.ref
    request.scope["state"]["session_id"] = session_id
    request.scope["state"]["verified_at"] = verified_at
    return actor


def current_session(request: Request[Any, Any, Any]) -> UUID:
    return request.scope["state"]["session_id"]


def clinic_zone(state: State) -> ZoneInfo:
    return ZoneInfo(state.container.settings.clinic_timezone)


def idempotency_key(request: Request[Any, Any, Any], scope: str, operation: str,
                    payload: Any) -> IdempotencyKey | None:
    """The caller's Idempotency-Key for this request, bound to what the request asks for."""
    raw = request.headers.get("idempotency-key")
    if raw is None:
        return None
    if not _KEY.match(raw):
        raise InvalidInput([FieldError(
            "Idempotency-Key", "must be 8 to 200 letters, digits or '-', '_', '.', ':' "
            "(a UUID is ideal)")])
    return IdempotencyKey.for_request(scope, raw, operation, payload)


def position_headers(application: str, position: int | None) -> dict[str, str]:
    return {POSITION_HEADER: f"{application}:{position}"} if position is not None else {}


async def wait_for_position(request: Request[Any, Any, Any], pool: AsyncConnectionPool,
                            projection: str, timeout_ms: int) -> None:
    """Read-your-writes: if the client names a position it wrote, wait (bounded) until the
    projection this read uses has applied it, so the client sees its own change."""
    raw = request.headers.get(WAIT_HEADER.lower())
    if not raw:
        return
    match = _POSITION.match(raw.strip())
    if not match:
        raise InvalidInput([FieldError(WAIT_HEADER, "must look like 'consents:42', as returned "
                                       f"in the {POSITION_HEADER} header")])
    application, position = match.group(1), int(match.group(2))
    deadline = time.monotonic() + timeout_ms / 1000
    delay = 0.002
    async with pool.connection() as conn:
        while True:
            cur = await conn.execute(
                "SELECT position FROM carebridge.projection_tracking"
                " WHERE projection = %s AND application = %s", (projection, application))
            row = await cur.fetchone()
            if row is None or row[0] >= position or time.monotonic() >= deadline:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


def local_time(value: datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def signed_in(*extra: str) -> dict[str, Provide]:
    """The dependencies of a controller for signed-in callers: `container`, `actor` and `now`,
    plus any of `read_pool` and `zone` it names."""
    optional = {"read_pool": provide_read_pool, "zone": clinic_zone}
    provided = {"container": Provide(provide_container, sync_to_thread=False),
                "actor": Provide(provide_actor),
                "now": Provide(provide_clock, sync_to_thread=False)}
    return provided | {name: Provide(optional[name], sync_to_thread=False) for name in extra}


_IF_MATCH = re.compile(r'^"?([0-9]{1,12})"?$')


def expected_version(request: Request[Any, Any, Any], what: str) -> int | None:
    """The version the client read, from If-Match (absent or `*`: no check); `what` names it
    in the error ("the profile you read")."""
    raw = (request.headers.get("if-match") or "*").strip()
    if raw == "*":
        return None
    match = _IF_MATCH.match(raw)
    if match is None:
        raise InvalidInput([FieldError("If-Match", f'send the ETag of {what}, for example "3"')])
    return int(match.group(1))

