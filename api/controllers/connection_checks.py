"""Pre-call connection checks: anyone signed in calls the server's echo peer before a video
visit and is told, in plain words, whether the visit can go ahead and what to fix.

The flow (webrtc/precall.py has the details): get the ICE servers, create an offer with them
and wait until ICE gathering is complete, POST it, apply the answer, let media and data-channel
messages flow for a few seconds, then POST what the app saw to the check's `result`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Litestar, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from api.container import Container
from api.controllers.consultations import IceServerView
from api.dependencies import signed_in
from domain.access import Actor
from webrtc.guidance import CheckResult, ClientReport
from webrtc.ice import IceServer, ice_servers
from webrtc.precall import ConnectionChecks, PostgresCheckStore

MAX_OFFER_CHARS = 100_000


class StartCheck(msgspec.Struct, forbid_unknown_fields=True):
    offer_sdp: Annotated[str, msgspec.Meta(max_length=MAX_OFFER_CHARS)]
    user_agent: Annotated[str, msgspec.Meta(max_length=500)] | None = None


class IceServers(msgspec.Struct):
    ice_servers: list[IceServerView]


class CheckStarted(msgspec.Struct):
    check_id: str
    answer_sdp: str
    ice_servers: list[IceServerView]
    expires_at: datetime


def _views(servers: list[IceServer]) -> list[IceServerView]:
    return [IceServerView(**s.as_json()) for s in servers]


def provide_connection_checks(state: State) -> ConnectionChecks:
    return state.connection_checks


@asynccontextmanager
async def run_connection_checks(app: Litestar) -> AsyncIterator[None]:
    """This process's checks, each an echoing media peer on this event loop, shared with the
    other processes through PostgreSQL (the result may reach any process behind the load
    balancer); every peer still running is closed at shutdown."""
    settings = app.state.container.settings
    checks = ConnectionChecks(settings.connection_check_max_concurrent,
                              settings.connection_check_seconds,
                              store=PostgresCheckStore(app.state.read_pool))
    app.state.connection_checks = checks
    try:
        yield
    finally:
        await checks.close_all()


class ConnectionCheckController(Controller):
    path = "/v1"
    tags = ["telemedicine"]
    dependencies = signed_in() | {
        "connection_checks": Provide(provide_connection_checks, sync_to_thread=False)}

    @get("/connection-checks/ice-servers", summary="The ICE servers to create a check's offer with")
    async def servers(self, actor: NamedDependency[Actor], now: NamedDependency[datetime],
                      container: NamedDependency[Container]) -> IceServers:
        return IceServers(_views(ice_servers(container.settings, str(actor.account_id), now)))

    @post("/connection-checks", summary="Start a pre-call connection check", description=(
        "Send a complete SDP offer (created after ICE gathering finished: candidates are not "
        "trickled) with audio, video and a data channel. The answer comes from a server peer "
        "that echoes everything back. Over the data channel the server sends "
        "`carebridge-ping <n>`: send each straight back so it can measure the round trip. "
        "Report the result within `expires_at`."))
    async def start(self, data: JSONBody[StartCheck], actor: NamedDependency[Actor],
                    now: NamedDependency[datetime], container: NamedDependency[Container],
                    connection_checks: NamedDependency[ConnectionChecks]) -> CheckStarted:
        servers = ice_servers(container.settings, str(actor.account_id), now)
        started = await connection_checks.start(data.offer_sdp, servers, str(actor.account_id),
                                                now, user_agent=data.user_agent)
        return CheckStarted(started.check_id, started.answer_sdp, _views(servers),
                            started.expires_at)

    @post("/connection-checks/{check_id:uuid}/result", status_code=200,
          summary="Report what the app saw; get the outcome and what to do")
    async def result(self, check_id: FromPath[UUID], data: JSONBody[ClientReport],
                     actor: NamedDependency[Actor],
                     connection_checks: NamedDependency[ConnectionChecks]) -> CheckResult:
        return await connection_checks.finish(str(check_id), str(actor.account_id), data)
