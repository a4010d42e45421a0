"""Identity: accounts of patients and staff, and the claim that keeps each email address unique.

These event types are the storage format and are versioned with care. Password hashes are
argon2id strings computed by the command layer; the domain never sees a password.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, Rejections
from domain.ids import stream_id


class Role(StrEnum):
    PATIENT = "patient"
    DOCTOR = "doctor"
    NURSE = "nurse"
    RECEPTION = "reception"
    PRESCRIPTION_COORDINATOR = "prescription_coordinator"
    CARE_MANAGER = "care_manager"
    SUPPORT = "support"
    CLINIC_ADMIN = "clinic_admin"
    AUDITOR = "auditor"


STAFF_ROLES = frozenset(Role) - {Role.PATIENT}
CLINICAL_ROLES = frozenset({Role.DOCTOR, Role.NURSE, Role.PRESCRIPTION_COORDINATOR, Role.CARE_MANAGER})

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ()-]{7,20}$")
MIN_PASSWORD_LENGTH = 12
LOCKOUT_THRESHOLD = 5
LOCKOUT_PERIOD = timedelta(minutes=15)
MAX_LOCKOUT_PERIOD = timedelta(hours=24)
MAX_PASSWORD_LENGTH = 128


def normalise_email(email: str) -> str:
    return email.strip().casefold()


def email_claim_id(email: str) -> UUID:
    return stream_id("email-claim", normalise_email(email))


def check_email(email: str, errors: Rejections, field: str = "email") -> None:
    if not _EMAIL.match(email.strip()) or len(email) > 254:
        errors.add(field, "Enter an email address like name@example.com.")


def check_phone(phone: str | None, errors: Rejections, field: str = "mobile_phone") -> None:
    if phone and not _PHONE.match(phone.strip()):
        errors.add(field, "Enter a mobile number of 7 to 20 digits, for example +44 7700 900123.")


def check_password(password: str, email: str, common: frozenset[str], errors: Rejections) -> None:
    """Length and a rejection list, as NIST SP 800-63B advises; no composition rules."""
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.add("password", f"Use at least {MIN_PASSWORD_LENGTH} characters.")
    elif len(password) > MAX_PASSWORD_LENGTH:
        errors.add("password", f"Use at most {MAX_PASSWORD_LENGTH} characters.")
    elif password.casefold() in common or len(set(password)) < 4:
        errors.add("password", "This password is too common or too simple; choose another.")
    elif (local := normalise_email(email).split("@")[0]) and len(local) >= 4 and local in password.casefold():
        errors.add("password", "Do not use your email address in your password.")


def check_birth_date(born: date, today: date, errors: Rejections) -> None:
    if born > today:
        errors.add("date_of_birth", "The date of birth cannot be in the future.")
    elif today.year - born.year > 130:
        errors.add("date_of_birth", "Check the year of birth.")


class Account(CareAggregate):
    """A person who can sign in: a patient or a member of staff."""

    TOPIC = topic("identity", "Account")

    @event("Created", topic=topic("identity", "Account.Registered"))
    def __init__(
        self,
        email: str,
        role: str,
        given_name: str,
        family_name: str,
        password_hash: str,
        clinic_ids: list[str],
        date_of_birth: date | None,
        mobile_phone: str | None,
        by: str,
        at: datetime,
    ) -> None:
        self.email = normalise_email(email)
        self.role = role
        self.given_name = given_name
        self.family_name = family_name
        self.password_hash = password_hash
        self.clinic_ids = list(clinic_ids)
        self.date_of_birth = date_of_birth
        self.mobile_phone = mobile_phone
        self.failed_sign_ins = 0
        self.lockouts = 0
        self.locked_until: datetime | None = None
        self.last_sign_in_at: datetime | None = None
        self.totp_pending_secret: str | None = None
        self.totp_secret: str | None = None
        self.recovery_code_hashes: list[str] = []
        self.last_totp_step = 0

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def is_staff(self) -> bool:
        return self.role != Role.PATIENT

    def record_sign_in(self, by: str, at: datetime) -> None:
        self._signed_in(by=by, at=at)

    @event("SignedIn", topic=topic("identity", "Account.SignedIn"))
    def _signed_in(self, by: str, at: datetime) -> None:
        self.failed_sign_ins = 0
        self.lockouts = 0
        self.locked_until = None
        self.last_sign_in_at = at

    def is_locked(self, at: datetime) -> bool:
        return self.locked_until is not None and at < self.locked_until

    def record_failed_sign_in(self, at: datetime, threshold: int = LOCKOUT_THRESHOLD,
                              lock_for: timedelta = LOCKOUT_PERIOD) -> None:
        """Counts a wrong password; at the threshold, pauses sign-in, twice as long each time
        it happens again (capped at a day) until a successful sign-in resets it."""
        self._sign_in_failed(by="anonymous", at=at)
        if self.failed_sign_ins >= threshold and not self.is_locked(at):
            period = min(lock_for * (2 ** self.lockouts), MAX_LOCKOUT_PERIOD)
            self._locked_out(until=at + period, by="system", at=at)

    @event("SignInFailed", topic=topic("identity", "Account.SignInFailed"))
    def _sign_in_failed(self, by: str, at: datetime) -> None:
        self.failed_sign_ins += 1

    @event("LockedOut", topic=topic("identity", "Account.LockedOut"))
    def _locked_out(self, until: datetime, by: str, at: datetime) -> None:
        self.lockouts += 1
        self.locked_until = until

    def rehash_password(self, password_hash: str, by: str, at: datetime) -> None:
        """Stores a hash computed with stronger parameters after a successful sign-in."""
        if password_hash != self.password_hash:
            self._password_rehashed(password_hash=password_hash, by=by, at=at)

    @event("PasswordRehashed", topic=topic("identity", "Account.PasswordRehashed"))
    def _password_rehashed(self, password_hash: str, by: str, at: datetime) -> None:
        self.password_hash = password_hash


    # ---- second factor (TOTP, RFC 6238, with one-time recovery codes) ----------------------

    @property
    def has_second_factor(self) -> bool:
        return self.totp_secret is not None

    def start_totp_enrolment(self, secret: str, by: str, at: datetime) -> None:
        if self.has_second_factor:
            raise Conflict("An authenticator app is already set up for this account.")
        self._totp_enrolment_started(secret=secret, by=by, at=at)

    @event("TotpEnrolmentStarted", topic=topic("identity", "Account.TotpEnrolmentStarted"))
    def _totp_enrolment_started(self, secret: str, by: str, at: datetime) -> None:
        self.totp_pending_secret = secret

    def confirm_totp(self, step: int, recovery_code_hashes: list[str], by: str,
                     at: datetime) -> None:
        if self.totp_pending_secret is None:
            raise Conflict("Start setting up the authenticator app first.")
        self._totp_enabled(step=step, recovery_code_hashes=recovery_code_hashes, by=by, at=at)

    @event("TotpEnabled", topic=topic("identity", "Account.TotpEnabled"))
    def _totp_enabled(self, step: int, recovery_code_hashes: list[str], by: str,
                      at: datetime) -> None:
        self.totp_secret = self.totp_pending_secret
        self.totp_pending_secret = None
        self.recovery_code_hashes = list(recovery_code_hashes)
        self.last_totp_step = step

    def use_totp_step(self, step: int, by: str, at: datetime) -> bool:
        """Accepts a verified code's time step once: a code seen before is refused (replay)."""
        if step <= self.last_totp_step:
            return False
        self._second_factor_used(method="totp", step=step, code_hash=None, by=by, at=at)
        return True

    def use_recovery_code(self, code_hash: str, by: str, at: datetime) -> bool:
        if code_hash not in self.recovery_code_hashes:
            return False
        self._second_factor_used(method="recovery_code", step=0, code_hash=code_hash, by=by,
                                 at=at)
        return True

    @event("SecondFactorUsed", topic=topic("identity", "Account.SecondFactorUsed"))
    def _second_factor_used(self, method: str, step: int, code_hash: str | None, by: str,
                            at: datetime) -> None:
        if method == "totp":
            self.last_totp_step = step
        elif code_hash in self.recovery_code_hashes:
            self.recovery_code_hashes.remove(code_hash)


class EmailClaim(CareAggregate):
    """Holds an email address for one account. Its id derives from the address, so two
    registrations of the same address collide in the event store and only one succeeds."""

    TOPIC = topic("identity", "EmailClaim")

    @event("Created", topic=topic("identity", "EmailClaim.Claimed"))
    def __init__(self, account_id: UUID, by: str, at: datetime) -> None:
        self.account_id = account_id

    @classmethod
    def claim(cls, email: str, account_id: UUID, by: str, at: datetime) -> EmailClaim:
        return cls._create(cls.Created, id=email_claim_id(email),
                           account_id=account_id, by=by, at=at)
