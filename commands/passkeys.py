"""Passkeys (WebAuthn): adding them to an account, and signing in or stepping up with one.

py_webauthn (Duo Labs) checks every ceremony: challenge, origin, relying-party id hash, user
presence and verification, attestation and signature. The server keeps no ceremony state: the
API hands each challenge to the client inside a signed 5-minute options token, and `spend`
records a challenge's hash when it comes back, so that each one works once.

A passkey proves possession (the device) and the person (face, fingerprint or device PIN: user
verification is required), so a passkey sign-in is a complete two-factor sign-in.

The signature counter is judged here, after the signature: py_webauthn compares counters before
it checks the signature, so leaving that check to it would let anyone who knows a credential id
forge a "cloned authenticator" and get a good passkey blocked. The library is given a known
count of 0 (which turns its comparison off) and the domain compares counters once the
assertion is known to be genuine.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from commands.eventstore import Statement
from commands.idempotency import IdempotencyKey, Outcome, run_once
from commands.identity import IdentityApplication
from domain.access import Actor
from domain.errors import (
    ConcurrentChange,
    Conflict,
    FieldError,
    InvalidInput,
    NotFound,
    Rejections,
    Unauthenticated,
)
from domain.identity import Account
from domain.passkeys import Passkey, PasskeyNotUsable, clean_label, passkey_id

log = logging.getLogger("carebridge.passkeys")

PASSKEYS = "carebridge.passkeys"
SPENT = "carebridge.spent_webauthn_challenges"
CHALLENGE_BYTES = 32
TIMEOUT_MS = 5 * 60 * 1000  # as long as the options token lives
_TRANSPORTS = {t.value: t for t in AuthenticatorTransport}

# One answer for every failed passkey sign-in, so that nobody learns whether a passkey or an
# account exists, or is paused.
PASSKEY_FAILED = ("That passkey did not sign you in. Try again, or sign in with your email "
                  "address and password. After several attempts sign-in pauses for a while.")
_NOT_CHECKED = ("Your device's answer could not be checked. Try again, and use a passkey "
                "saved for CareBridge on this device.")
_NOT_FOUND = "We could not find that passkey among yours."


class PasskeyAlreadyRegistered(Conflict):
    code = "passkey-already-registered"
    title = "This passkey is already set up"


class NoPasskey(Conflict):
    code = "no-passkey"
    title = "No passkey is set up"


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys belong to: the registrable domain, its display name, allowed origins."""

    rp_id: str
    name: str
    origins: list[str]


@dataclass(frozen=True)
class Challenge:
    """A challenge that came back from the client, with the expiry of the options carrying it."""

    value: str  # base64url
    expires_at: datetime


@dataclass(frozen=True)
class CeremonyOptions:
    challenge: str  # base64url: goes into the signed options token
    public_key: dict[str, Any]  # WebAuthn JSON for navigator.credentials / the platform API


class Passkeys:
    def __init__(self, app: IdentityApplication, relying_party: RelyingParty) -> None:
        self.app = app
        self.rp = relying_party
        self.datastore = app.factory.datastore  # type: ignore[attr-defined]

    # ---- registration ----------------------------------------------------------------------

    def registration_options(self, actor: Actor) -> CeremonyOptions:
        account = self.app.account(actor.account_id)
        options = generate_registration_options(
            rp_id=self.rp.rp_id, rp_name=self.rp.name, user_name=account.email,
            # The user handle is the account id: random, and no personal data.
            user_id=account.id.bytes, user_display_name=account.display_name,
            challenge=secrets.token_bytes(CHALLENGE_BYTES), timeout=TIMEOUT_MS,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.REQUIRED),
            exclude_credentials=self._descriptors(account.id))
        return _ceremony(options)

    def register(self, actor: Actor, credential: dict[str, Any], challenge: Challenge, label: str,
                 at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """Checks the device's answer to the registration options and stores the passkey."""
        errors = Rejections()
        label = clean_label(label, errors)
        errors.raise_if_any()

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            self.spend(challenge)
            try:
                verified = verify_registration_response(
                    credential=credential, expected_challenge=base64url_to_bytes(challenge.value),
                    expected_rp_id=self.rp.rp_id, expected_origin=self.rp.origins,
                    require_user_verification=True)
            except (WebAuthnException, ValueError) as error:
                log.info("passkey registration refused for account %s: %s", actor.account_id,
                         type(error).__name__)
                raise _refused() from None
            credential_id = bytes_to_base64url(verified.credential_id)
            if credential_id != credential.get("id"):
                raise _refused()
            if self._lookup(credential_id) is not None:
                raise _already_registered()
            passkey = Passkey.register(
                account_id=actor.account_id, credential_id=credential_id,
                public_key=bytes_to_base64url(verified.credential_public_key),
                sign_count=verified.sign_count, transports=_transports(credential),
                aaguid=verified.aaguid, label=label, backed_up=verified.credential_backed_up,
                by=actor.ref, at=at)
            row = Statement(f"INSERT INTO {PASSKEYS} (credential_id, account_id, passkey_id,"
                            " registered_at) VALUES (%s, %s, %s, %s)",
                            (credential_id, actor.account_id, passkey.id, at))
            return {"passkey_id": str(passkey.id), "label": label}, [passkey], [row]

        try:
            return run_once(self.app, self.app.idempotency, key, decide)
        except ConcurrentChange:
            raise _already_registered() from None

    # ---- sign-in and step-up ---------------------------------------------------------------

    def authentication_options(self, account_id: UUID | None = None) -> CeremonyOptions:
        """Options for a sign-in. Without an account the device offers whichever of its
        passkeys for CareBridge the person picks (discoverable credentials); after a password
        step, only that account's passkeys are allowed."""
        options = generate_authentication_options(
            rp_id=self.rp.rp_id, challenge=secrets.token_bytes(CHALLENGE_BYTES),
            timeout=TIMEOUT_MS,
            allow_credentials=self._descriptors(account_id) if account_id is not None else [],
            user_verification=UserVerificationRequirement.REQUIRED)
        return _ceremony(options)

    def step_up_options(self, actor: Actor) -> CeremonyOptions:
        if not self.has_passkeys(actor.account_id):
            raise NoPasskey("You have no passkey set up yet. Confirm it is you with a code "
                            "instead, or add a passkey first.")
        return self.authentication_options(actor.account_id)

    def sign_in(self, credential: dict[str, Any], challenge: Challenge, at: datetime,
                expected_account: UUID | None = None, source: str | None = None) -> Account:
        """Checks a passkey sign-in and records the passkey's use; returns the account, for
        the caller to finish the sign-in (`SignIn.finish` records it and starts the session).
        Every refusal has the same answer. A failure with a known passkey counts towards the
        account's lockout."""
        self.spend(challenge)
        if source is not None and self.app.sources.is_blocked(source, at):
            raise Unauthenticated(PASSKEY_FAILED)
        found = self._find(credential)
        if found is None:
            if source is not None:
                self.app.sources.record_failure(source, at)
            raise Unauthenticated(PASSKEY_FAILED)
        account = self.app.account(found.account_id)
        if account.is_locked(at) or expected_account not in (None, account.id):
            raise Unauthenticated(PASSKEY_FAILED)
        by = f"{account.role}:{account.id}"
        if not self._accept(found, account, credential, challenge, by, at):
            account.record_failed_sign_in(at=at)
            with contextlib.suppress(ConcurrentChange):  # a parallel failure was counted
                self.app.save_all(found, account, also=self._suspicion(found))
            if source is not None:
                self.app.sources.record_failure(source, at)
            raise Unauthenticated(PASSKEY_FAILED)
        self.app.save_all(found)
        return account

    def step_up(self, actor: Actor, credential: dict[str, Any], challenge: Challenge,
                at: datetime) -> None:
        """Checks a passkey assertion from the signed-in person (the caller then records the
        verification on their session)."""
        self.spend(challenge)
        found = self._find(credential)
        if found is None or found.account_id != actor.account_id:
            raise _refused()
        account = self.app.account(actor.account_id)
        if not self._accept(found, account, credential, challenge, actor.ref, at):
            if found.pending_events:
                self.app.save_all(found, also=self._suspicion(found))
            raise _refused()
        self.app.save_all(found)

    def spend(self, challenge: Challenge) -> None:
        """Marks a challenge used; a second presentation is refused (replay). Called once the
        options token is known to be authentic, before the answer is checked, so that a failed
        answer also uses the challenge up."""
        with self.datastore.get_connection() as conn:
            inserted = conn.execute(
                f"INSERT INTO {SPENT} (challenge_sha256, expires_at) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (hashlib.sha256(challenge.value.encode()).digest(), challenge.expires_at),
                prepare=True).rowcount
        if not inserted:
            raise InvalidInput([FieldError(
                "options_token", "These passkey options were already used. Ask for new "
                "options and try again.")])

    # ---- the person's own passkeys ---------------------------------------------------------

    def of(self, account_id: UUID) -> list[Passkey]:
        """The account's passkeys that are not removed, oldest first."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT passkey_id FROM {PASSKEYS} WHERE account_id = %s AND removed_at IS NULL"
                " ORDER BY registered_at, passkey_id", (account_id,)).fetchall()
        return [self.app.repository.get(row["passkey_id"]) for row in rows]

    def has_passkeys(self, account_id: UUID) -> bool:
        """Whether the account has a passkey it can sign in with (for the login's methods)."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                f"SELECT 1 FROM {PASSKEYS} WHERE account_id = %s AND removed_at IS NULL"
                " AND clone_suspected_at IS NULL LIMIT 1", (account_id,), prepare=True).fetchone()
        return row is not None

    def rename(self, actor: Actor, passkey: UUID, label: str, at: datetime) -> Passkey:
        errors = Rejections()
        label = clean_label(label, errors)
        errors.raise_if_any()
        own = self._own(actor, passkey)
        if own.removed_at is not None:
            raise NotFound(_NOT_FOUND)
        own.rename(label, by=actor.ref, at=at)
        if own.pending_events:
            self.app.save_all(own)
        return own

    def remove(self, actor: Actor, passkey: UUID, at: datetime) -> bool:
        """Removes one of the person's passkeys; it never signs in again. Removing it twice
        changes nothing the second time."""
        own = self._own(actor, passkey)
        if not own.remove(by=actor.ref, at=at):
            return False
        self.app.save_all(own, also=[Statement(
            f"UPDATE {PASSKEYS} SET removed_at = %s WHERE passkey_id = %s", (at, own.id))])
        return True

    # ---- helpers ---------------------------------------------------------------------------

    def _accept(self, passkey: Passkey, account: Account, credential: dict[str, Any],
                challenge: Challenge, by: str, at: datetime) -> bool:
        """Whether the assertion is genuine, from this account, and its counter moved on."""
        if not passkey.is_usable:
            return False
        verified = self._verify(passkey, credential, challenge)
        if verified is None or not _user_handle_matches(credential, account.id):
            return False
        try:
            return passkey.accept_assertion(verified.new_sign_count,
                                            verified.credential_backed_up, by=by, at=at)
        except PasskeyNotUsable:
            return False

    def _verify(self, passkey: Passkey, credential: dict[str, Any],
                challenge: Challenge) -> VerifiedAuthentication | None:
        try:
            return verify_authentication_response(
                credential=credential, expected_challenge=base64url_to_bytes(challenge.value),
                expected_rp_id=self.rp.rp_id, expected_origin=self.rp.origins,
                credential_public_key=base64url_to_bytes(passkey.public_key),
                credential_current_sign_count=0, require_user_verification=True)
        except (WebAuthnException, ValueError) as error:
            log.info("passkey %s assertion refused: %s", passkey.id, type(error).__name__)
            return None

    def _suspicion(self, passkey: Passkey) -> list[Statement]:
        if passkey.clone_suspected_at is None or not passkey.pending_events:
            return []
        log.warning("passkey %s of account %s: signature counter went backwards (cloned "
                    "authenticator?); blocked", passkey.id, passkey.account_id)
        return [Statement(f"UPDATE {PASSKEYS} SET clone_suspected_at = %s WHERE passkey_id = %s",
                          (passkey.clone_suspected_at, passkey.id))]

    def _find(self, credential: dict[str, Any]) -> Passkey | None:
        credential_id = credential.get("id")
        if not isinstance(credential_id, str) or self._lookup(credential_id) is None:
            return None
        return self.app.repository.get(passkey_id(credential_id))

    def _lookup(self, credential_id: str) -> UUID | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT passkey_id FROM {PASSKEYS} WHERE credential_id = %s",
                               (credential_id,), prepare=True).fetchone()
        return row["passkey_id"] if row else None

    def _own(self, actor: Actor, passkey: UUID) -> Passkey:
        """One of the caller's passkeys; anyone else's answers exactly like a missing one."""
        try:
            found: Passkey = self.app.repository.get(passkey)
        except AggregateNotFoundError:
            raise NotFound(_NOT_FOUND) from None
        if not isinstance(found, Passkey) or found.account_id != actor.account_id:
            raise NotFound(_NOT_FOUND)
        return found

    def _descriptors(self, account_id: UUID) -> list[PublicKeyCredentialDescriptor]:
        return [PublicKeyCredentialDescriptor(
                    id=base64url_to_bytes(p.credential_id),
                    transports=[_TRANSPORTS[t] for t in p.transports if t in _TRANSPORTS])
                for p in self.of(account_id) if p.is_usable]


def _ceremony(options: Any) -> CeremonyOptions:
    return CeremonyOptions(bytes_to_base64url(options.challenge), options_to_json_dict(options))


def _transports(credential: dict[str, Any]) -> list[str]:
    response = credential.get("response")
    listed = response.get("transports") if isinstance(response, dict) else None
    return sorted({t for t in listed or [] if t in _TRANSPORTS})


def _user_handle_matches(credential: dict[str, Any], account_id: UUID) -> bool:
    """A discoverable passkey names its account (our user handle is the account id)."""
    response = credential.get("response")
    handle = response.get("userHandle") if isinstance(response, dict) else None
    if handle is None:
        return True
    try:
        return isinstance(handle, str) and base64url_to_bytes(handle) == account_id.bytes
    except ValueError:
        return False


def _refused() -> InvalidInput:
    return InvalidInput([FieldError("credential", _NOT_CHECKED)])


def _already_registered() -> PasskeyAlreadyRegistered:
    return PasskeyAlreadyRegistered("This passkey is already set up. You can see your "
                                    "passkeys in your security settings.")
