"""Signing in, start to finish: password, second factor, device recognition, notices.

The password step either completes the sign-in (a remembered device, or second factors not
required) or asks for a second factor. Every way of finishing (authenticator code, recovery
code, a code sent by email or SMS, a passkey) ends in `finish`, which in one transaction
records the sign-in, notes a new device (and queues the "new sign-in" notice), remembers the
device if asked, and starts the session.

Codes sent by email or SMS are six digits, work for a few minutes, are stored only as hashes,
stop working after a few wrong guesses, and are rate-limited per account. Step-up uses the
same codes with a purpose of its own, so a sign-in code can never confirm a sensitive action.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from commands.eventstore import Statement
from commands.identity import BAD_CREDENTIALS, COMMON_PASSWORDS, IdentityApplication
from commands.outbox import Message, enqueue, local_when
from commands.second_factor import SecondFactor
from commands.sessions import IssuedSession, Sessions
from domain.access import Actor
from domain.errors import Conflict, FieldError, InvalidInput, Rejections, Unauthenticated
from domain.identity import Account, check_password
from domain.sessions import EndReason

SIGN_IN, STEP_UP = "sign_in", "step_up"
CHANNELS = ("email", "sms")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def code_digest(account_id: UUID, purpose: str, code: str) -> str:
    return digest(f"{account_id}:{purpose}:{code.strip()}")


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    digits = [c for c in phone if c.isdigit()]
    return "*** " + "".join(digits[-3:])


@dataclass(frozen=True)
class Device:
    device_id: str
    label: str
    token: str | None = None  # a remembered-device token the app kept from an earlier sign-in


@dataclass(frozen=True)
class Challenge:
    """The password was right; a second factor is needed. `methods` lists what works."""

    account: Account
    methods: list[str]


@dataclass(frozen=True)
class Completed:
    account: Account
    session: IssuedSession
    device_token: str | None  # present when the device was remembered just now
    remembered_until: datetime | None


@dataclass(frozen=True)
class SentCode:
    channel: str
    destination: str  # masked: enough for the person to recognise, no more
    expires_at: datetime


class SecondFactorRefused(Unauthenticated):
    code = "second-factor-refused"
    title = "That code did not work"


class NoSuchChannel(Conflict):
    code = "channel-not-available"
    title = "We cannot send a code that way"


class SignIn:
    def __init__(self, identity: IdentityApplication, sessions: Sessions,
                 second_factor: SecondFactor, settings: Any,
                 has_passkeys: Any = None) -> None:
        self.identity = identity
        self.sessions = sessions
        self.second_factor = second_factor
        self.require_for_new_devices = bool(settings.new_device_second_factor)
        self.remember_for = timedelta(days=settings.remember_device_days)
        self.code_lifetime = timedelta(minutes=settings.one_time_code_minutes)
        self.zone = ZoneInfo(settings.clinic_timezone)
        self.has_passkeys = has_passkeys or (lambda account_id: False)

    # ---- the password step -----------------------------------------------------------------

    def password(self, email: str, password: str, device: Device, at: datetime,
                 source: str | None) -> Completed | Challenge:
        account = self.identity.authenticate(email, password, at=at, source=source)
        remembered = device.token is not None and account.is_remembered(
            device.device_id, digest(device.token), at)
        if not remembered and (account.has_second_factor or self.require_for_new_devices):
            return Challenge(account, self.methods(account))
        return self.finish(account, device, at, verified_by=None, remember=False)

    def methods(self, account: Account) -> list[str]:
        methods = []
        if account.has_second_factor:
            methods += ["totp", "recovery_code"]
        if self.has_passkeys(account.id):
            methods.append("passkey")
        methods.append("email_code")
        if account.mobile_phone:
            methods.append("sms_code")
        return methods

    # ---- codes by email or SMS ---------------------------------------------------------------

    def send_code(self, account_id: UUID, purpose: str, channel: str, at: datetime) -> SentCode:
        account = self.identity.account(account_id)
        if account.is_locked(at):
            raise Unauthenticated(BAD_CREDENTIALS)
        if channel == "sms" and not account.mobile_phone:
            raise NoSuchChannel("There is no mobile number on this account. Choose email, or "
                                "add a mobile number to your profile.")
        if channel not in CHANNELS:
            raise InvalidInput([FieldError("channel", "Choose email or sms.")])
        code = f"{secrets.randbelow(1_000_000):06d}"
        expires_at = at + self.code_lifetime
        by = "anonymous" if purpose == SIGN_IN else f"{account.role}:{account.id}"
        account.send_code(purpose, channel, code_digest(account.id, purpose, code), expires_at,
                          by=by, at=at)
        recipient = account.email if channel == "email" else str(account.mobile_phone)
        kind = "sign_in_code" if purpose == SIGN_IN else "step_up_code"
        message = Message(kind, channel, account.id, recipient,
                          {"code": code, "minutes": str(int(self.code_lifetime.total_seconds()
                                                            // 60))})
        self.identity.save_all(account, also=enqueue(message, at))
        destination = mask_email(recipient) if channel == "email" else mask_phone(recipient)
        return SentCode(channel, destination, expires_at)

    def _accept(self, account: Account, purpose: str, code: str, at: datetime) -> str | None:
        """Which method this code proves, if any (the account is changed, not saved)."""
        by = f"{account.role}:{account.id}"
        pending = account.codes.get(purpose)
        if pending is not None and account.use_code(purpose, code_digest(account.id, purpose, code),
                                                    by=by, at=at):
            if pending["channel"] == "email" and not account.email_verified:
                # Typing the code we emailed proves the mailbox as well as a link would.
                account.confirm_email(by=by, at=at)
            return f"{pending['channel']}_code"
        return self.second_factor.check(account, code, at)

    # ---- finishing -----------------------------------------------------------------------

    def answer(self, account_id: UUID, code: str, device: Device, remember: bool,
               at: datetime) -> Completed:
        """Finishes a sign-in with a code: authenticator, recovery, or one sent to the person."""
        account = self.identity.account(account_id)
        if account.is_locked(at):
            raise Unauthenticated(BAD_CREDENTIALS)
        method = self._accept(account, SIGN_IN, code, at)
        if method is None:
            account.record_failed_sign_in(at=at)
            self.identity.save_all(account)
            raise SecondFactorRefused(
                "That code is not valid, has expired, or was already used. Enter the latest "
                "code we sent you, the current code from your authenticator app, or a "
                "recovery code; or ask for a new code.")
        return self.finish(account, device, at, verified_by=method, remember=remember)

    def finish(self, account: Account, device: Device, at: datetime, verified_by: str | None,
               remember: bool) -> Completed:
        """Records the sign-in and starts the session, with any notices, in one transaction."""
        by = f"{account.role}:{account.id}"
        account.record_sign_in(by=by, at=at)
        also: list[Statement] = []
        if account.note_device(device.device_id, device.label, by=by, at=at) and \
                len(account.known_devices) > 1:
            # Not for the very first device: the person has just registered on it.
            also += enqueue(Message("new_sign_in", "email", account.id, account.email,
                                    {"device": device.label,
                                     "when": local_when(at, self.zone)}), at)
        token, until = None, None
        if remember and verified_by is not None and self.remember_for > timedelta(0):
            token, until = secrets.token_urlsafe(32), at + self.remember_for
            account.remember_device(device.device_id, device.label, digest(token), until,
                                    by=by, at=at)
        session, statement, issued = self.sessions.begin(account, device.device_id, device.label,
                                                         at, verified_by)
        self.identity.save_all(account, session, also=[*also, statement])
        return Completed(account, issued, token, until)

    # ---- step-up -----------------------------------------------------------------------------

    def step_up(self, actor: Actor, session_id: UUID, code: str, at: datetime) -> str:
        """Confirms a sensitive action's second factor on this session; returns the method."""
        account = self.identity.account(actor.account_id)
        if account.is_locked(at):
            raise SecondFactorRefused("Confirming is paused for a while after several wrong "
                                      "codes. Try again later.")
        method = self._accept(account, STEP_UP, code, at)
        if method is None:
            account.record_failed_sign_in(at=at)
            self.identity.save_all(account)
            raise InvalidInput([FieldError(
                "code", "That code is not valid, has expired, or was already used. Enter the "
                        "latest code we sent you or the current code from your authenticator "
                        "app.")])
        self.identity.save_all(account)
        self.sessions.verified(actor, session_id, method, at)
        return method

    # ---- devices -------------------------------------------------------------------------------

    def forget_device(self, actor: Actor, device_id: str, at: datetime) -> bool:
        account = self.identity.account(actor.account_id)
        forgotten = account.forget_devices([device_id], by=actor.ref, at=at)
        if forgotten:
            self.identity.save_all(account)
        return bool(forgotten)

    # ---- password ------------------------------------------------------------------------------

    def change_password(self, actor: Actor, session_id: UUID, current: str, new: str,
                        at: datetime) -> int:
        """Changes the password; ends every other session. Returns how many ended."""
        account = self.identity.account(actor.account_id)
        errors = Rejections()
        if not self.identity.password_matches(account, current):
            account.record_failed_sign_in(at=at)
            self.identity.save_all(account)
            raise InvalidInput([FieldError("current_password", "This is not your current "
                                                               "password.")])
        check_password(new, account.email, COMMON_PASSWORDS, errors)
        if not errors.errors and self.identity.password_matches(account, new):
            errors.add("new_password", "Choose a password different from the current one.")
        errors.errors = [FieldError("new_password" if e.field == "password" else e.field,
                                    e.message) for e in errors.errors]
        errors.raise_if_any()
        account.change_password(self.identity.hasher.hash(new), reason="changed", by=actor.ref,
                                at=at)
        ended, statements = self.sessions.ending_all(account.id, actor.ref, at, session_id,
                                                     EndReason.PASSWORD_CHANGED)
        self.identity.save_all(account, *ended, also=[*statements, *enqueue(Message(
            "password_changed", "email", account.id, account.email,
            {"when": local_when(at, self.zone)}), at)])
        return len(ended)
