"""Patient registration, sign-in and the signed-in account."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from api.auth import TokenService
from api.container import Container
from api.dependencies import (
    idempotency_key,
    position_headers,
    provide_actor,
    provide_clock,
    provide_container,
    provide_tokens,
)
from commands.identity import NewAccount
from domain.access import Action, Actor, PatientResource, authorise
from domain.errors import NotFound
from domain.identity import Role

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


class SignIn(msgspec.Struct, forbid_unknown_fields=True):
    email: Text
    password: Annotated[str, msgspec.Meta(max_length=1000)]


class AccessToken(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    expires_at: datetime
    account_id: str
    role: str


class Me(msgspec.Struct):
    account_id: str
    role: str
    email: str
    given_name: str
    family_name: str
    clinic_ids: list[str]


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
                       data.date_of_birth, data.mobile_phone), at=now, key=key)
        return Response(Registered(**outcome.result), status_code=201,
                        headers=position_headers("identity", outcome.position))

    @post("/auth/login", status_code=200, sync_to_thread=True, summary="Sign in with a password",
          security=[])
    def login(self, data: JSONBody[SignIn], container: NamedDependency[Container],
              tokens: NamedDependency[TokenService],
              now: NamedDependency[datetime]) -> AccessToken:
        account = container.identity.authenticate(data.email, data.password, at=now)
        actor = Actor(account.id, Role(account.role), frozenset(account.clinic_ids))
        issued = tokens.issue(actor, now)
        return AccessToken(issued.token, "Bearer", issued.lifetime_seconds, issued.expires_at,
                           str(account.id), account.role)

    @get("/me", sync_to_thread=True, summary="The signed-in account",
         dependencies={"actor": Provide(provide_actor, sync_to_thread=False)})
    def me(self, actor: NamedDependency[Actor], container: NamedDependency[Container]) -> Me:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        account = container.identity.find_account(actor.account_id)
        if account is None:
            raise NotFound("This account no longer exists.")
        return Me(str(account.id), account.role, account.email, account.given_name,
                  account.family_name, list(account.clinic_ids))
