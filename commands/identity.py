"""The identity context: patient registration, staff accounts and password sign-in."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from typing import Any
from uuid import UUID, uuid4

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventsourcing.application import AggregateNotFoundError

from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from commands.sign_in_sources import SignInSources
from domain.access import Actor
from domain.errors import ConcurrentChange, Conflict, Rejections, Unauthenticated
from domain.identity import (
    STAFF_ROLES,
    Account,
    EmailClaim,
    Role,
    check_birth_date,
    check_email,
    check_password,
    check_phone,
    email_claim_id,
)


class EmailAlreadyRegistered(Conflict):
    code = "email-already-registered"
    title = "This email address is already registered"


# One answer for every failed sign-in, so that nobody can learn whether an address is registered
# or locked (OWASP API2: broken authentication).
BAD_CREDENTIALS = ("The email address or password is not correct, or sign-in is paused for a "
                    "while after several attempts. Check both, try again in 15 minutes, or reset "
                    "your password.")


def _load_common_passwords() -> frozenset[str]:
    text = resources.files("commands").joinpath("common_passwords.txt").read_text()
    return frozenset(line.strip().casefold() for line in text.splitlines() if line.strip())


COMMON_PASSWORDS = _load_common_passwords()

# What a new account's creation also writes, in the same transaction.
Welcome = Callable[[Account, datetime], list[Statement]]


@dataclass(frozen=True)
class NewAccount:
    email: str
    password: str
    given_name: str
    family_name: str
    date_of_birth: date | None = None
    mobile_phone: str | None = None


class IdentityApplication(CareApplication):
    name = "identity"
    snapshotting_intervals = {Account: 50}

    def __init__(self, store: EventStoreSettings, hasher: PasswordHasher | None = None) -> None:
        super().__init__(store)
        self.hasher = hasher or PasswordHasher()
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.sources = SignInSources(self.factory.datastore)  # type: ignore[attr-defined]
        self._dummy_hash = self.hasher.hash(uuid4().hex)

    def register_patient(self, details: NewAccount, at: datetime,
                         key: IdempotencyKey | None = None,
                         welcome: Welcome | None = None) -> Outcome:
        """Registers a patient; `welcome` adds what must be sent with the new account (the
        email confirmation link) to the same transaction."""
        errors = Rejections()
        _check_names(details, errors)
        if details.date_of_birth is None:
            errors.add("date_of_birth", "Enter your date of birth.")
        else:
            check_birth_date(details.date_of_birth, at.date(), errors)
        check_phone(details.mobile_phone, errors)
        check_email(details.email, errors)
        check_password(details.password, details.email, COMMON_PASSWORDS, errors)
        errors.raise_if_any()
        return self._register(details, Role.PATIENT, [], by="self", at=at, key=key,
                              welcome=welcome)

    def add_staff(self, details: NewAccount, role: Role, clinic_ids: list[str], by: str,
                  at: datetime) -> Outcome:
        errors = Rejections()
        _check_names(details, errors)
        check_email(details.email, errors)
        check_password(details.password, details.email, COMMON_PASSWORDS, errors)
        if role not in STAFF_ROLES:
            errors.add("role", "Choose a staff role: " + ", ".join(sorted(STAFF_ROLES)) + ".")
        errors.raise_if_any()
        return self._register(details, role, clinic_ids, by=by, at=at, key=None,
                              welcome=_vouched_by(by))

    def _register(self, details: NewAccount, role: Role, clinic_ids: list[str], by: str,
                  at: datetime, key: IdempotencyKey | None, welcome: Welcome | None) -> Outcome:
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            if self._claim(details.email) is not None:
                raise _already_registered()
            account = Account(
                email=details.email,
                role=role.value,
                given_name=details.given_name.strip(),
                family_name=details.family_name.strip(),
                password_hash=self.hasher.hash(details.password),
                clinic_ids=clinic_ids,
                date_of_birth=details.date_of_birth,
                mobile_phone=(details.mobile_phone or "").strip() or None,
                by=by,
                at=at,
            )
            claim = EmailClaim.claim(details.email, account.id, by=by, at=at)
            also = welcome(account, at) if welcome is not None else []
            return {"account_id": str(account.id), "role": role.value}, [account, claim], also

        try:
            return run_once(self, self.idempotency, key, decide)
        except ConcurrentChange:
            raise _already_registered() from None

    def authenticate(self, email: str, password: str, at: datetime,
                     source: str | None = None) -> Account:
        """Checks a password. Unknown addresses, paused accounts and paused sources cost the
        same hash work and get the same answer as a wrong password."""
        claim = self._claim(email)
        account = self.account(claim.account_id) if claim is not None else None
        if (account is None or account.is_locked(at)
                or (source is not None and self.sources.is_blocked(source, at))):
            _verify(self.hasher, self._dummy_hash, password)
            if source is not None:
                self.sources.record_failure(source, at)
            raise Unauthenticated(BAD_CREDENTIALS)
        if not _verify(self.hasher, account.password_hash, password):
            account.record_failed_sign_in(at=at)
            with contextlib.suppress(ConcurrentChange):  # a parallel failure was counted
                self.save_all(account)
            if source is not None:
                self.sources.record_failure(source, at)
            raise Unauthenticated(BAD_CREDENTIALS)
        # The sign-in itself is recorded when it completes (commands/sign_in.py), which may
        # be after a second factor.
        if self.hasher.check_needs_rehash(account.password_hash):
            account.rehash_password(self.hasher.hash(password), by="system", at=at)
            self.save_all(account)
        return account

    def password_matches(self, account: Account, password: str) -> bool:
        return _verify(self.hasher, account.password_hash, password)

    def account(self, account_id: UUID) -> Account:
        return self.repository.get(account_id)

    def find_account(self, account_id: UUID) -> Account | None:
        try:
            return self.account(account_id)
        except AggregateNotFoundError:
            return None

    def actor(self, account_id: UUID) -> Actor | None:
        account = self.find_account(account_id)
        if account is None:
            return None
        return Actor(account.id, Role(account.role), frozenset(account.clinic_ids))

    def account_by_email(self, email: str) -> Account | None:
        """The account registered with this address, if any. Callers must not reveal the
        answer to the person asking (that would let them probe who has an account)."""
        claim = self._claim(email)
        return self.find_account(claim.account_id) if claim is not None else None

    def _claim(self, email: str) -> EmailClaim | None:
        try:
            return self.repository.get(email_claim_id(email))
        except AggregateNotFoundError:
            return None


def _vouched_by(by: str) -> Welcome:
    """Staff accounts are created by an administrator, who vouches for the address."""

    def vouch(account: Account, at: datetime) -> list[Statement]:
        account.confirm_email(by=by, at=at)
        return []

    return vouch


def _check_names(details: NewAccount, errors: Rejections) -> None:
    for name in ("given_name", "family_name"):
        value = getattr(details, name).strip()
        if not value:
            errors.add(name, "Enter a name.")
        elif len(value) > 100:
            errors.add(name, "Use at most 100 characters.")


def _verify(hasher: PasswordHasher, password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _already_registered() -> EmailAlreadyRegistered:
    return EmailAlreadyRegistered(
        "An account with this email address already exists. Sign in, or reset your password."
    )
