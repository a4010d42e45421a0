"""Patient registration, sign-in and the signed-in account."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, JSONBody, Parameter
from psycopg_pool import AsyncConnectionPool

from api.auth import TokenService
from api.container import Container
from api.dependencies import (
    current_session,
    idempotency_key,
    position_headers,
    provide_actor,
    provide_clock,
    provide_container,
    provide_read_pool,
    provide_tokens,
    wait_for_position,
)
from commands.identity import NewAccount
from commands.sessions import IssuedSession
from commands.sign_in import Challenge, Completed, Device
from domain.access import Action, Actor, PatientResource, authorise
from domain.errors import NotFound
from domain.identity import Role
from domain.sessions import EndReason

Text = Annotated[str, msgspec.Meta(max_length=200)]


class RegisterPatient(msgspec.Struct, forbid_unknown_fields=True):
    email: Text
    password: Annotated[str, msgspec.Meta(max_length=1000)]
    given_name: Text
    family_name: Text
    date_of_birth: date
    mobile_phone: Annotated[str, msgspec.Meta(max_length=30)] | None = None


class Registered(msgspec.Struct):
    account_id: str
    role: str
    changed: bool


DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
DeviceToken = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class SignInRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Text
    password: Annotated[str, msgspec.Meta(max_length=1000)]
    device_id: DeviceId = "unknown"
    device_label: DeviceId = "Unnamed device"
    # The token returned when this device was remembered: skips the second factor.
    device_token: DeviceToken | None = None


class SecondFactorRequired(msgspec.Struct):
    second_factor_required: bool
    challenge_token: str
    challenge_expires_at: datetime
    methods: list[str]


class SecondFactorAnswer(msgspec.Struct, forbid_unknown_fields=True):
    challenge_token: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    code: Annotated[str, msgspec.Meta(min_length=6, max_length=20)]
    remember_device: bool = False  # skip the second factor on this device for a while


class Refresh(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class AccessToken(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    expires_at: datetime
    refresh_token: str
    session_id: str
    session_ends_at: datetime
    account_id: str
    role: str
    device_token: str | None = None  # keep it on the device; send it with the next sign-in
    device_remembered_until: datetime | None = None


class SessionEntry(msgspec.Struct):
    session_id: str
    device_label: str
    started_at: datetime
    last_seen_at: datetime
    current: bool


class SignedOut(msgspec.Struct):
    sessions_ended: int


class SecurityEvent(msgspec.Struct):
    kind: str  # registered, signed_in, sign_in_failed, sign_in_paused, session_started, ...
    detail: str | None  # device label, end reason or consent type; never health content
    at: datetime
    at_local: str


class Me(msgspec.Struct):
    account_id: str
    role: str
    email: str
    given_name: str
    family_name: str
    clinic_ids: list[str]
    email_verified: bool


def _tokens(tokens: TokenService, actor: Actor, session: IssuedSession,
            now: datetime, device_token: str | None = None,
            remembered_until: datetime | None = None) -> AccessToken:
    issued = tokens.issue(actor, session.session_id, now)
    return AccessToken(issued.token, "Bearer", issued.lifetime_seconds,
                       min(issued.expires_at, session.ends_at),
                       session.refresh_token, str(session.session_id), session.ends_at,
                       str(actor.account_id), actor.role.value, device_token, remembered_until)


def completed_tokens(tokens: TokenService, done: Completed, now: datetime) -> AccessToken:
    """The tokens of a finished sign-in, however it was finished."""
    account = done.account
    actor = Actor(account.id, Role(account.role), frozenset(account.clinic_ids))
    return _tokens(tokens, actor, done.session, now, done.device_token, done.remembered_until)


class AccountController(Controller):
    path = "/v1"
    tags = ["accounts"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "tokens": Provide(provide_tokens, sync_to_thread=False),
        "now": Provide(provide_clock, sync_to_thread=False),
    }

    @post("/auth/register", status_code=201, sync_to_thread=True,
          summary="Register as a patient", security=[])
    def register(self, request: Request[Any, Any, State], data: JSONBody[RegisterPatient],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> Response[Registered]:
        # The password never enters the idempotency fingerprint (it would be a password hash).
        fingerprint = msgspec.structs.replace(data, password="")
        key = idempotency_key(request, "anonymous", "register", fingerprint)
        outcome = container.identity.register_patient(
            NewAccount(data.email, data.password, data.given_name, data.family_name,
                       data.date_of_birth, data.mobile_phone), at=now, key=key,
            welcome=container.email_links.welcome)
        return Response(Registered(**outcome.result), status_code=201,
                        headers=position_headers("identity", outcome.position))

    @post("/auth/login", status_code=200, sync_to_thread=True, summary="Sign in with a password",
          security=[])
    def login(self, request: Request[Any, Any, State], data: JSONBody[SignInRequest],
              container: NamedDependency[Container], tokens: NamedDependency[TokenService],
              now: NamedDependency[datetime]) -> AccessToken | SecondFactorRequired:
        source = request.client.host if request.client else None
        device = Device(data.device_id, data.device_label, data.device_token)
        outcome = container.sign_in.password(data.email, data.password, device, at=now,
                                             source=source)
        if isinstance(outcome, Challenge):
            challenge = tokens.issue_challenge(outcome.account.id, data.device_id,
                                               data.device_label, now)
            return SecondFactorRequired(True, challenge.token, challenge.expires_at,
                                        outcome.methods)
        return completed_tokens(tokens, outcome, now)

    @post("/auth/second-factor", status_code=200, sync_to_thread=True, security=[],
          summary="Finish signing in with a code: from the authenticator app, a recovery code, "
          "or one sent by email or SMS")
    def second_factor(self, data: JSONBody[SecondFactorAnswer],
                      container: NamedDependency[Container],
                      tokens: NamedDependency[TokenService],
                      now: NamedDependency[datetime]) -> AccessToken:
        account_id, device_id, device_label = tokens.verify_challenge(data.challenge_token, now)
        done = container.sign_in.answer(account_id, data.code, Device(device_id, device_label),
                                        data.remember_device, at=now)
        return completed_tokens(tokens, done, now)

    @post("/auth/refresh", status_code=200, sync_to_thread=True, security=[],
          summary="Exchange a refresh token for new tokens (the old refresh token is spent)")
    def refresh(self, data: JSONBody[Refresh], container: NamedDependency[Container],
                tokens: NamedDependency[TokenService],
                now: NamedDependency[datetime]) -> AccessToken:
        session, issued = container.sessions.refresh(data.refresh_token, at=now)
        account = container.identity.account(session.account_id)
        actor = Actor(account.id, Role(account.role), frozenset(account.clinic_ids))
        return _tokens(tokens, actor, issued, now)

    @post("/auth/logout", status_code=200, sync_to_thread=True, summary="Sign out this device",
          dependencies={"actor": Provide(provide_actor)})
    def logout(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
               container: NamedDependency[Container], now: NamedDependency[datetime]) -> SignedOut:
        container.sessions.end(actor, current_session(request), EndReason.SIGNED_OUT, at=now)
        return SignedOut(1)

    @get("/me/sessions", sync_to_thread=True, summary="My signed-in devices",
         dependencies={"actor": Provide(provide_actor)})
    def sessions(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                 container: NamedDependency[Container],
                 now: NamedDependency[datetime]) -> list[SessionEntry]:
        current = current_session(request)
        return [SessionEntry(str(s.session_id), s.device_label, s.started_at, s.last_seen_at,
                             s.session_id == current)
                for s in container.sessions.active(actor.account_id, at=now)]

    @get("/me/security-events", summary="Recent activity on my account (newest first)",
         dependencies={"actor": Provide(provide_actor),
                       "read_pool": Provide(provide_read_pool, sync_to_thread=False)})
    async def security_events(self, request: Request[Any, Any, State],
                              actor: NamedDependency[Actor],
                              read_pool: NamedDependency[AsyncConnectionPool],
                              container: NamedDependency[Container],
                              limit: FromQuery[Annotated[int, Parameter(ge=1, le=200)]] = 50,
                              ) -> list[SecurityEvent]:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        await wait_for_position(request, read_pool, "security_events",
                                container.settings.read_your_writes_timeout_ms)
        zone = ZoneInfo(container.settings.clinic_timezone)
        async with read_pool.connection() as conn:
            cur = await conn.execute(
                "SELECT kind, detail, at FROM views.security_events WHERE account_id = %s"
                " ORDER BY at DESC, position DESC LIMIT %s", (actor.account_id, limit))
            rows = await cur.fetchall()
        return [SecurityEvent(kind, detail, at, at.astimezone(zone).isoformat())
                for kind, detail, at in rows]

    @post("/me/sessions/sign-out-everywhere", status_code=200, sync_to_thread=True,
          summary="Sign out on every device", dependencies={"actor": Provide(provide_actor)})
    def sign_out_everywhere(self, actor: NamedDependency[Actor],
                            container: NamedDependency[Container],
                            now: NamedDependency[datetime]) -> SignedOut:
        return SignedOut(container.sessions.end_all(actor, at=now))

    @get("/me", sync_to_thread=True, summary="The signed-in account",
         dependencies={"actor": Provide(provide_actor)})
    def me(self, actor: NamedDependency[Actor], container: NamedDependency[Container]) -> Me:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        account = container.identity.find_account(actor.account_id)
        if account is None:
            raise NotFound("This account no longer exists.")
        return Me(str(account.id), account.role, account.email, account.given_name,
                  account.family_name, list(account.clinic_ids), account.email_verified)
