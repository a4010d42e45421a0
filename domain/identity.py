"""Identity: accounts of patients and staff, and the claim that keeps each email address unique.

These event types are the storage format and are versioned with care. Password hashes are
argon2id strings computed by the command layer; the domain never sees a password.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, TypedDict
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, Rejections, TooManyRequests
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
CODE_SEND_WINDOW = timedelta(hours=1)
MAX_CODES_PER_WINDOW = 10
VERIFY_EMAIL, PASSWORD_RESET = "verify_email", "password_reset"
CODE_RESEND_PAUSE = timedelta(seconds=30)
MAX_CODE_ATTEMPTS = 5


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

    # Version 2 added verification, codes and devices; snapshots of version 1 are upcast.
    class_version = 2

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
        self._start_v2_state()

    def _start_v2_state(self) -> None:
        # Event handlers always assign new values to these, never mutate them in place.
        self.email_verified_at: datetime | None = None
        self.email_verification: tuple[str, datetime] | None = None  # (token hash, expiry)
        self.password_reset: tuple[str, datetime] | None = None  # (token hash, expiry)
        self.codes: dict[str, OneTimeCode] = {}  # purpose -> the last code sent for it
        self.codes_sent_at: tuple[datetime, ...] = ()
        self.last_sent_at: dict[str, datetime] = {}  # purpose -> when the last one was sent
        self.known_devices: tuple[str, ...] = ()
        # device id -> (token hash, until, label)
        self.remembered: dict[str, tuple[str, datetime, str]] = {}

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        blank = object.__new__(Account)
        blank._start_v2_state()
        for name, value in vars(blank).items():
            state.setdefault(name, value)

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
        it happens again (capped at a day) until a successful sign-in resets the doubling."""
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
        # After the pause the count starts again, so that one stray guess cannot pause the
        # real owner again (a cheap denial of service); each further pause is twice as long.
        self.failed_sign_ins = 0

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


    # ---- messages that carry a code or link: limited per account -------------------------

    def check_send_rate(self, purpose: str, at: datetime) -> None:
        """At most a few codes or links an hour in all, and no second one for a purpose within
        half a minute while the first is still unused."""
        recent = [t for t in self.codes_sent_at if at - t < CODE_SEND_WINDOW]
        if len(recent) >= MAX_CODES_PER_WINDOW:
            raise TooManyCodes(
                "We have sent several messages recently. Use the latest one, or wait an hour "
                "and ask again.", retry_after=int((min(recent) + CODE_SEND_WINDOW - at)
                                                  .total_seconds()) + 1)
        unused = {VERIFY_EMAIL: self.email_verification is not None,
                  PASSWORD_RESET: self.password_reset is not None}.get(purpose, purpose in self.codes)
        last = self.last_sent_at.get(purpose)
        if unused and last is not None and at - last < CODE_RESEND_PAUSE:
            raise TooManyCodes("We sent one a moment ago. Wait a minute before asking for "
                               "another.", retry_after=int((last + CODE_RESEND_PAUSE - at)
                                                           .total_seconds()) + 1)

    def _sent_now(self, purpose: str, at: datetime) -> None:
        self.codes_sent_at = (*(t for t in self.codes_sent_at if at - t < CODE_SEND_WINDOW), at)
        self.last_sent_at = {**self.last_sent_at, purpose: at}

    # ---- email verification ------------------------------------------------------------

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def send_email_verification(self, token_sha256: str, expires_at: datetime, by: str,
                                at: datetime) -> None:
        if self.email_verified:
            raise Conflict("Your email address is already confirmed.")
        self.check_send_rate(VERIFY_EMAIL, at)
        self._email_verification_sent(token_sha256=token_sha256, expires_at=expires_at, by=by,
                                      at=at)

    @event("EmailVerificationSent", topic=topic("identity", "Account.EmailVerificationSent"))
    def _email_verification_sent(self, token_sha256: str, expires_at: datetime, by: str,
                                 at: datetime) -> None:
        self.email_verification = (token_sha256, expires_at)
        self._sent_now(VERIFY_EMAIL, at)

    def verify_email(self, token_sha256: str, at: datetime) -> bool:
        """Confirms the address when the token is the latest one sent and still valid.
        Returns False for an already confirmed address (a second click changes nothing)."""
        if self.email_verified:
            return False
        pending = self.email_verification
        if pending is None or pending[0] != token_sha256 or at >= pending[1]:
            raise LinkNotValid("This confirmation link is not valid any more. Sign in and ask "
                               "for a new one.")
        self._email_verified(by=f"{self.role}:{self.id}", at=at)
        return True

    def confirm_email(self, by: str, at: datetime) -> None:
        if not self.email_verified:
            self._email_verified(by=by, at=at)

    @event("EmailVerified", topic=topic("identity", "Account.EmailVerified"))
    def _email_verified(self, by: str, at: datetime) -> None:
        self.email_verified_at = at
        self.email_verification = None

    # ---- one-time codes by email or SMS (sign-in and step-up) ----------------------------

    def send_code(self, purpose: str, channel: str, code_sha256: str, expires_at: datetime,
                  by: str, at: datetime) -> None:
        """Records that a code was sent, refusing when too many were sent recently."""
        self.check_send_rate(purpose, at)
        self._code_sent(purpose=purpose, channel=channel, code_sha256=code_sha256,
                        expires_at=expires_at, by=by, at=at)

    @event("OneTimeCodeSent", topic=topic("identity", "Account.OneTimeCodeSent"))
    def _code_sent(self, purpose: str, channel: str, code_sha256: str, expires_at: datetime,
                   by: str, at: datetime) -> None:
        self.codes = {**self.codes, purpose: OneTimeCode(
            channel=channel, code_sha256=code_sha256, expires_at=expires_at, attempts=0)}
        self._sent_now(purpose, at)

    def use_code(self, purpose: str, code_sha256: str, by: str, at: datetime) -> bool:
        """Accepts the latest code sent for this purpose once, while valid; a wrong guess
        counts against the code, which stops working after a few."""
        pending = self.codes.get(purpose)
        if (pending is None or at >= pending["expires_at"]
                or pending["attempts"] >= MAX_CODE_ATTEMPTS):
            return False
        if pending["code_sha256"] != code_sha256:
            self._code_rejected(purpose=purpose, by="anonymous", at=at)
            return False
        self._second_factor_used(method=f"{pending['channel']}_code", step=0, code_hash=None,
                                 by=by, at=at)
        self._code_consumed(purpose=purpose, by=by, at=at)
        return True

    @event("OneTimeCodeRejected", topic=topic("identity", "Account.OneTimeCodeRejected"))
    def _code_rejected(self, purpose: str, by: str, at: datetime) -> None:
        code = self.codes[purpose]
        self.codes = {**self.codes, purpose: {**code, "attempts": code["attempts"] + 1}}

    @event("OneTimeCodeConsumed", topic=topic("identity", "Account.OneTimeCodeConsumed"))
    def _code_consumed(self, purpose: str, by: str, at: datetime) -> None:
        self.codes = {p: c for p, c in self.codes.items() if p != purpose}

    # ---- devices ---------------------------------------------------------------------------

    def is_remembered(self, device_id: str, token_sha256: str, at: datetime) -> bool:
        remembered = self.remembered.get(device_id)
        return remembered is not None and remembered[0] == token_sha256 and at < remembered[1]

    def note_device(self, device_id: str, device_label: str, by: str, at: datetime) -> bool:
        """Records a completed sign-in's device; True when the device was new (which earns
        the account holder a "new sign-in" notice)."""
        if device_id in self.known_devices:
            return False
        self._new_device(device_id=device_id, device_label=device_label, by=by, at=at)
        return True

    @event("SignedInOnNewDevice", topic=topic("identity", "Account.SignedInOnNewDevice"))
    def _new_device(self, device_id: str, device_label: str, by: str, at: datetime) -> None:
        self.known_devices = (*self.known_devices, device_id)

    def remember_device(self, device_id: str, device_label: str, token_sha256: str,
                        until: datetime, by: str, at: datetime) -> None:
        self._device_remembered(device_id=device_id, device_label=device_label,
                                token_sha256=token_sha256, until=until, by=by, at=at)

    @event("DeviceRemembered", topic=topic("identity", "Account.DeviceRemembered"))
    def _device_remembered(self, device_id: str, device_label: str, token_sha256: str,
                           until: datetime, by: str, at: datetime) -> None:
        self.remembered = {**self.remembered, device_id: (token_sha256, until, device_label)}

    def forget_devices(self, device_ids: list[str], by: str, at: datetime) -> list[str]:
        forgotten = [d for d in device_ids if d in self.remembered]
        for device_id in forgotten:
            self._device_forgotten(device_id=device_id, by=by, at=at)
        return forgotten

    @event("DeviceForgotten", topic=topic("identity", "Account.DeviceForgotten"))
    def _device_forgotten(self, device_id: str, by: str, at: datetime) -> None:
        self.remembered = {d: r for d, r in self.remembered.items() if d != device_id}

    # ---- password ----------------------------------------------------------------------------

    def request_password_reset(self, token_sha256: str, expires_at: datetime, at: datetime) -> None:
        self.check_send_rate(PASSWORD_RESET, at)
        self._password_reset_requested(token_sha256=token_sha256, expires_at=expires_at,
                                       by="anonymous", at=at)

    @event("PasswordResetRequested", topic=topic("identity", "Account.PasswordResetRequested"))
    def _password_reset_requested(self, token_sha256: str, expires_at: datetime, by: str,
                                  at: datetime) -> None:
        self.password_reset = (token_sha256, expires_at)
        self._sent_now(PASSWORD_RESET, at)

    def reset_password(self, token_sha256: str, password_hash: str, at: datetime) -> None:
        pending = self.password_reset
        if pending is None or pending[0] != token_sha256 or at >= pending[1]:
            raise LinkNotValid("This password reset link is not valid any more. Ask for a new "
                               "one.")
        self.change_password(password_hash, reason="reset", by=f"{self.role}:{self.id}", at=at)

    def change_password(self, password_hash: str, reason: str, by: str, at: datetime) -> None:
        """A new password (changed by the holder, or reset by email link). Remembered devices
        are forgotten: whoever knew the old password must pass the second factor again."""
        self.forget_devices(sorted(self.remembered), by=by, at=at)
        self._password_changed(password_hash=password_hash, reason=reason, by=by, at=at)

    @event("PasswordChanged", topic=topic("identity", "Account.PasswordChanged"))
    def _password_changed(self, password_hash: str, reason: str, by: str, at: datetime) -> None:
        self.password_hash = password_hash
        self.password_reset = None
        if reason == "reset":
            # Proving the mailbox ends a lockout, as a successful sign-in would.
            self.failed_sign_ins = 0
            self.locked_until = None


class OneTimeCode(TypedDict):
    """The last code sent for a purpose (a plain dict, so that snapshots can hold it)."""

    channel: str  # email or sms
    code_sha256: str
    expires_at: datetime
    attempts: int


class LinkNotValid(Conflict):
    code = "link-not-valid"
    title = "This link is not valid any more"


class TooManyCodes(TooManyRequests):
    code = "too-many-codes"
    title = "Please wait before asking for another code"


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
