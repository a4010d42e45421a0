"""Passkeys: adding and managing them, signing in with one, and stepping up with one.

Every ceremony is two calls: ask for options (the app passes `public_key` to the platform's
passkey API), then send the device's answer with the `options_token` the options came with.
An options token lives 5 minutes and works once.

Adding a passkey gives a new way into the account, so it needs a recent second-factor check
on this session (step-up), always, including for the first passkey: a stolen password alone
must never be enough to plant a passkey. Removing one needs step-up too; renaming does not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody

from api.auth import TokenService
from api.container import Container
from api.controllers.accounts import AccessToken, completed_tokens
from api.controllers.verification import SteppedUp
from api.dependencies import (
    current_session,
    idempotency_key,
    position_headers,
    provide_actor,
    provide_clock,
    provide_container,
    provide_tokens,
)
from api.step_up import require_step_up
from commands.passkeys import CeremonyOptions, Challenge
from commands.sign_in import Device
from domain.access import Action, Actor, PatientResource, authorise
from domain.errors import FieldError, InvalidInput
from domain.passkeys import Passkey

# WebAuthn JSON (base64url without padding), with room for attestation certificate chains.
Base64Url = Annotated[str, msgspec.Meta(min_length=1, max_length=65_536,
                                        pattern="^[A-Za-z0-9_-]+$")]
CredentialId = Annotated[str, msgspec.Meta(min_length=16, max_length=1_400,
                                           pattern="^[A-Za-z0-9_-]+$")]
OptionsToken = Annotated[str, msgspec.Meta(min_length=1, max_length=2_000)]
ShortText = Annotated[str, msgspec.Meta(max_length=40)]
Extensions = Annotated[dict[str, Any], msgspec.Meta(max_length=20)]


class AttestationResponse(msgspec.Struct, forbid_unknown_fields=True):
    client_data_json: Base64Url = msgspec.field(name="clientDataJSON")
    attestation_object: Base64Url = msgspec.field(name="attestationObject")
    authenticator_data: Base64Url | None = msgspec.field(default=None, name="authenticatorData")
    transports: Annotated[list[ShortText], msgspec.Meta(max_length=10)] = []
    public_key: Base64Url | None = msgspec.field(default=None, name="publicKey")
    public_key_algorithm: int | None = msgspec.field(default=None, name="publicKeyAlgorithm")


class AssertionResponse(msgspec.Struct, forbid_unknown_fields=True):
    client_data_json: Base64Url = msgspec.field(name="clientDataJSON")
    authenticator_data: Base64Url = msgspec.field(name="authenticatorData")
    signature: Base64Url
    user_handle: Base64Url | None = msgspec.field(default=None, name="userHandle")
    attestation_object: Base64Url | None = msgspec.field(default=None, name="attestationObject")


class _Credential(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`PublicKeyCredential.toJSON()`, as browsers and the platforms' passkey APIs give it."""

    id: CredentialId
    raw_id: CredentialId = msgspec.field(name="rawId")
    type: Literal["public-key"]
    authenticator_attachment: ShortText | None = msgspec.field(
        default=None, name="authenticatorAttachment")
    client_extension_results: Extensions = msgspec.field(
        default_factory=dict, name="clientExtensionResults")


class NewPasskeyCredential(_Credential, kw_only=True):
    """The answer to navigator.credentials.create()."""

    response: AttestationResponse


class PasskeyAssertion(_Credential, kw_only=True):
    """The answer to navigator.credentials.get()."""

    response: AssertionResponse


class AddPasskey(msgspec.Struct, forbid_unknown_fields=True):
    options_token: OptionsToken
    credential: NewPasskeyCredential
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RenamePasskey(msgspec.Struct, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class PasskeySignInStart(msgspec.Struct, forbid_unknown_fields=True):
    # The token from a password step (`second_factor_required`), to offer only that
    # account's passkeys; without it, the device offers any of its CareBridge passkeys.
    challenge_token: OptionsToken | None = None


class PasskeySignIn(msgspec.Struct, forbid_unknown_fields=True):
    options_token: OptionsToken
    credential: PasskeyAssertion
    device_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "unknown"
    device_label: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "Unnamed device"


class PasskeyStepUp(msgspec.Struct, forbid_unknown_fields=True):
    options_token: OptionsToken
    credential: PasskeyAssertion


class PasskeyOptions(msgspec.Struct):
    options_token: str  # send back with the device's answer; works once, for 5 minutes
    expires_at: datetime
    public_key: dict[str, Any]  # WebAuthn options JSON (parseCreationOptionsFromJSON / ...)


class PasskeyAdded(msgspec.Struct):
    passkey_id: str
    label: str
    changed: bool


class PasskeyEntry(msgspec.Struct):
    passkey_id: str
    label: str
    registered_at: datetime
    last_used_at: datetime | None
    synced: bool  # backed up to the person's cloud keychain, so usable on their other devices
    blocked: bool  # refused since it looked copied (cloned); remove it and add it again
    transports: list[str]


def _entry(passkey: Passkey) -> PasskeyEntry:
    return PasskeyEntry(str(passkey.id), passkey.label, passkey.registered_at,
                        passkey.last_used_at, passkey.backed_up,
                        passkey.clone_suspected_at is not None, list(passkey.transports))


def _options(tokens: TokenService, purpose: str, options: CeremonyOptions, now: datetime,
             account_id: UUID | None = None, session_id: UUID | None = None) -> PasskeyOptions:
    issued = tokens.issue_ceremony(purpose, options.challenge, now, account_id, session_id)
    return PasskeyOptions(issued.token, issued.expires_at, options.public_key)


def _challenge(tokens: TokenService, token: str, purpose: str, now: datetime,
               actor: Actor | None = None, session_id: UUID | None = None) -> Challenge:
    """The challenge an options token carries, if it was issued for this purpose (and, when
    signed in, to this person on this session)."""
    ceremony = tokens.verify_ceremony(token, purpose, now)
    if actor is not None and (ceremony.account_id != actor.account_id
                              or ceremony.session_id != session_id):
        raise InvalidInput([FieldError(
            "options_token", "These passkey options were issued for another sign-in. Ask for "
                             "new options and try again.")])
    return Challenge(ceremony.challenge, ceremony.expires_at)


def _credential(struct: msgspec.Struct) -> dict[str, Any]:
    return msgspec.to_builtins(struct)


class PasskeyController(Controller):
    path = "/v1"
    tags = ["passkeys"]
    dependencies = {
        "container": Provide(provide_container, sync_to_thread=False),
        "tokens": Provide(provide_tokens, sync_to_thread=False),
        "now": Provide(provide_clock, sync_to_thread=False),
    }

    # ---- my passkeys -----------------------------------------------------------------------

    @post("/me/passkeys/registration-options", status_code=200, sync_to_thread=True,
          summary="Options for adding a passkey (needs a recent step-up)",
          dependencies={"actor": Provide(provide_actor)})
    def registration_options(self, request: Request[Any, Any, State],
                             actor: NamedDependency[Actor], container: NamedDependency[Container],
                             tokens: NamedDependency[TokenService],
                             now: NamedDependency[datetime]) -> PasskeyOptions:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        require_step_up(request, now)
        return _options(tokens, "register", container.passkeys.registration_options(actor), now,
                        actor.account_id, current_session(request))

    @post("/me/passkeys", status_code=201, sync_to_thread=True,
          summary="Add a passkey: the device's answer to the registration options",
          dependencies={"actor": Provide(provide_actor)})
    def add(self, request: Request[Any, Any, State], data: JSONBody[AddPasskey],
            actor: NamedDependency[Actor], container: NamedDependency[Container],
            tokens: NamedDependency[TokenService],
            now: NamedDependency[datetime]) -> Response[PasskeyAdded]:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        require_step_up(request, now)
        key = idempotency_key(request, actor.ref, "passkey.add", data)
        challenge = _challenge(tokens, data.options_token, "register", now, actor,
                               current_session(request))
        outcome = container.passkeys.register(actor, _credential(data.credential), challenge,
                                              data.label, at=now, key=key)
        return Response(PasskeyAdded(**outcome.result), status_code=201,
                        headers=position_headers("identity", outcome.position))

    @get("/me/passkeys", sync_to_thread=True, summary="My passkeys",
         dependencies={"actor": Provide(provide_actor)})
    def mine(self, actor: NamedDependency[Actor],
             container: NamedDependency[Container]) -> list[PasskeyEntry]:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        return [_entry(p) for p in container.passkeys.of(actor.account_id)]

    @post("/me/passkeys/{passkey_id:uuid}/rename", status_code=200, sync_to_thread=True,
          summary="Rename one of my passkeys", dependencies={"actor": Provide(provide_actor)})
    def rename(self, passkey_id: FromPath[UUID], data: JSONBody[RenamePasskey],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> PasskeyEntry:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        return _entry(container.passkeys.rename(actor, passkey_id, data.label, at=now))

    @delete("/me/passkeys/{passkey_id:uuid}", status_code=204, sync_to_thread=True,
            summary="Remove one of my passkeys (needs a recent step-up)",
            dependencies={"actor": Provide(provide_actor)})
    def remove(self, request: Request[Any, Any, State], passkey_id: FromPath[UUID],
               actor: NamedDependency[Actor], container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> None:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        require_step_up(request, now)
        container.passkeys.remove(actor, passkey_id, at=now)

    # ---- signing in ------------------------------------------------------------------------

    @post("/auth/passkey/options", status_code=200, sync_to_thread=True, security=[],
          summary="Options for signing in with a passkey")
    def sign_in_options(self, data: JSONBody[PasskeySignInStart],
                        container: NamedDependency[Container],
                        tokens: NamedDependency[TokenService],
                        now: NamedDependency[datetime]) -> PasskeyOptions:
        account_id = None
        if data.challenge_token is not None:
            account_id, _, _ = tokens.verify_challenge(data.challenge_token, now)
        return _options(tokens, "sign-in", container.passkeys.authentication_options(account_id),
                        now, account_id)

    @post("/auth/passkey", status_code=200, sync_to_thread=True, security=[],
          summary="Sign in with a passkey (a complete two-factor sign-in)")
    def sign_in(self, request: Request[Any, Any, State], data: JSONBody[PasskeySignIn],
                container: NamedDependency[Container], tokens: NamedDependency[TokenService],
                now: NamedDependency[datetime]) -> AccessToken:
        ceremony = tokens.verify_ceremony(data.options_token, "sign-in", now)
        source = request.client.host if request.client else None
        account = container.passkeys.sign_in(
            _credential(data.credential), Challenge(ceremony.challenge, ceremony.expires_at),
            at=now, expected_account=ceremony.account_id, source=source)
        done = container.sign_in.finish(account, Device(data.device_id, data.device_label),
                                        at=now, verified_by="passkey", remember=False)
        return completed_tokens(tokens, done, now)

    # ---- step-up ---------------------------------------------------------------------------

    @post("/me/step-up/passkey/options", status_code=200, sync_to_thread=True,
          summary="Options for confirming it is me with a passkey",
          dependencies={"actor": Provide(provide_actor)})
    def step_up_options(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
                        container: NamedDependency[Container],
                        tokens: NamedDependency[TokenService],
                        now: NamedDependency[datetime]) -> PasskeyOptions:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        return _options(tokens, "step-up", container.passkeys.step_up_options(actor), now,
                        actor.account_id, current_session(request))

    @post("/me/step-up/passkey", status_code=200, sync_to_thread=True,
          summary="Confirm it is me with a passkey, before a sensitive action",
          dependencies={"actor": Provide(provide_actor)})
    def step_up(self, request: Request[Any, Any, State], data: JSONBody[PasskeyStepUp],
                actor: NamedDependency[Actor], container: NamedDependency[Container],
                tokens: NamedDependency[TokenService],
                now: NamedDependency[datetime]) -> SteppedUp:
        authorise(actor, Action.PROFILE_READ, PatientResource(actor.account_id))
        session_id = current_session(request)
        challenge = _challenge(tokens, data.options_token, "step-up", now, actor, session_id)
        container.passkeys.step_up(actor, _credential(data.credential), challenge, at=now)
        container.sessions.verified(actor, session_id, "passkey", at=now)
        window = timedelta(minutes=container.settings.step_up_minutes)
        return SteppedUp("passkey", now + window)
