"""Proving who you are: email confirmation, codes by email or SMS, step-up, devices, passwords."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from api.auth import TokenService
from api.container import Container
from api.dependencies import (
    current_session,
    provide_actor,
    provide_clock,
    provide_container,
    provide_tokens,
)
from commands.sign_in import SIGN_IN, STEP_UP, SentCode
from domain.access import Action, Actor, PatientResource, authorise

Token = Annotated[str, msgspec.Meta(min_length=10, max_length=300)]
Password = Annotated[str, msgspec.Meta(max_length=1000)]
Channel = Literal["email", "sms"]
DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CodeRequest(msgspec.Struct, forbid_unknown_fields=True):
    challenge_token: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    channel: Channel = "email"


class StepUpCodeRequest(msgspec.Struct, forbid_unknown_fields=True):
    channel: Channel = "email"


class CodeSent(msgspec.Struct):
    channel: str
    sent_to: str  # masked, e.g. g***@example.com or *** 123
    expires_at: datetime


class StepUpAnswer(msgspec.Struct, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=6, max_length=20)]


class SteppedUp(msgspec.Struct):
    method: str
    verified_until: datetime


class LinkToken(msgspec.Struct, forbid_unknown_fields=True):
    token: Token


class EmailConfirmed(msgspec.Struct):
    email_verified: bool
    changed: bool


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=254)]


class ResetCompletion(msgspec.Struct, forbid_unknown_fields=True):
    token: Token
    new_password: Password


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class PasswordChanged(msgspec.Struct):
    other_sessions_ended: int


class Accepted(msgspec.Struct):
    detail: str


class RememberedDevice(msgspec.Struct):
    device_id: str
    device_label: str
    remembered_until: datetime


class Forgotten(msgspec.Struct):
    forgotten: bool


def _sent(code: SentCode) -> CodeSent:
    return CodeSent(code.channel, code.destination, code.expires_at)


class SignInCodeController(Controller):
    """The anonymous side: codes during sign-in, links from emails."""

    path = "/v1/auth"
    tags = ["accounts"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "tokens": Provide(provide_tokens, sync_to_thread=False),
        "now": Provide(provide_clock, sync_to_thread=False),
    }

    @post("/second-factor/code", status_code=202, sync_to_thread=True, security=[],
          summary="Send a sign-in code by email or SMS (after the password step)")
    def send_sign_in_code(self, data: JSONBody[CodeRequest],
                          container: NamedDependency[Container],
                          tokens: NamedDependency[TokenService],
                          now: NamedDependency[datetime]) -> CodeSent:
        account_id, _, _ = tokens.verify_challenge(data.challenge_token, now)
        return _sent(container.sign_in.send_code(account_id, SIGN_IN, data.channel, at=now))

    @post("/verify-email", status_code=200, sync_to_thread=True, security=[],
          summary="Confirm an email address with the token from the link we sent")
    def verify_email(self, data: JSONBody[LinkToken], container: NamedDependency[Container],
                     now: NamedDependency[datetime]) -> EmailConfirmed:
        changed = container.email_links.confirm(data.token, at=now)
        return EmailConfirmed(True, changed)

    @post("/password-reset", status_code=202, sync_to_thread=True, security=[],
          summary="Ask for a password reset link (the answer is the same for every address)")
    def request_reset(self, data: JSONBody[ResetRequest], container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Accepted:
        container.email_links.request_reset(data.email, at=now)
        return Accepted("If this address has a CareBridge account, we have sent it a link to "
                        "choose a new password. Check your email.")

    @post("/password-reset/complete", status_code=200, sync_to_thread=True, security=[],
          summary="Choose a new password with the token from the reset link")
    def complete_reset(self, data: JSONBody[ResetCompletion],
                       container: NamedDependency[Container],
                       now: NamedDependency[datetime]) -> Accepted:
        container.email_links.complete_reset(data.token, data.new_password, at=now)
        return Accepted("Your password is changed and you are signed out everywhere. Sign in "
                        "with the new password.")


class MyVerificationController(Controller):
    """The signed-in side: confirming the address, step-up, remembered devices, password."""

    path = "/v1/me"
    tags = ["accounts"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "actor": Provide(provide_actor),
        "now": Provide(provide_clock, sync_to_thread=False),
    }

    @post("/email/verification", status_code=202, sync_to_thread=True,
          summary="Send a new email confirmation link")
    def resend_verification(self, actor: NamedDependency[Actor],
                            container: NamedDependency[Container],
                            now: NamedDependency[datetime]) -> Accepted:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        container.email_links.resend_verification(actor, at=now)
        return Accepted("We have sent a new confirmation link to your email address.")

    @post("/step-up/code", status_code=202, sync_to_thread=True,
          summary="Send a code by email or SMS to confirm a sensitive action")
    def send_step_up_code(self, data: JSONBody[StepUpCodeRequest], actor: NamedDependency[Actor],
                          container: NamedDependency[Container],
                          now: NamedDependency[datetime]) -> CodeSent:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        return _sent(container.sign_in.send_code(actor.account_id, STEP_UP, data.channel,
                                                 at=now))

    @post("/step-up", status_code=200, sync_to_thread=True,
          summary="Confirm it is you (authenticator, recovery or sent code) before a sensitive "
          "action")
    def step_up(self, request: Request[Any, Any, State], data: JSONBody[StepUpAnswer],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> SteppedUp:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        method = container.sign_in.step_up(actor, current_session(request), data.code, at=now)
        window = timedelta(minutes=container.settings.step_up_minutes)
        return SteppedUp(method, now + window)

    @get("/devices", sync_to_thread=True, summary="Devices that skip the second factor")
    def devices(self, actor: NamedDependency[Actor], container: NamedDependency[Container],
                now: NamedDependency[datetime]) -> list[RememberedDevice]:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        account = container.identity.account(actor.account_id)
        return [RememberedDevice(device_id, label, until)
                for device_id, (_, until, label) in sorted(account.remembered.items())
                if until > now]

    @post("/devices/{device_id:str}/forget", status_code=200, sync_to_thread=True,
          summary="Stop remembering a device (it will need the second factor again)")
    def forget_device(self, device_id: FromPath[DeviceId], actor: NamedDependency[Actor],
                      container: NamedDependency[Container],
                      now: NamedDependency[datetime]) -> Forgotten:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        return Forgotten(container.sign_in.forget_device(actor, device_id, at=now))

    @post("/password", status_code=200, sync_to_thread=True,
          summary="Change my password (signs out my other devices)")
    def change_password(self, request: Request[Any, Any, State], data: JSONBody[PasswordChange],
                        actor: NamedDependency[Actor], container: NamedDependency[Container],
                        now: NamedDependency[datetime]) -> PasswordChanged:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        ended = container.sign_in.change_password(actor, current_session(request),
                                                  data.current_password, data.new_password,
                                                  at=now)
        return PasswordChanged(ended)
