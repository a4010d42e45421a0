"""Links sent by email: confirming the address of a new account, and resetting a password.

A link carries `<account id>.<random secret>`; only the secret's hash is recorded, a newer link
replaces an older one, and each works once and for a limited time. Asking for a password reset
answers the same whether or not the address has an account, and never says why nothing came.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.application import AggregateNotFoundError

from commands.eventstore import Statement
from commands.identity import COMMON_PASSWORDS, IdentityApplication
from commands.outbox import Message, enqueue, local_when
from commands.sessions import Sessions
from commands.sign_in import digest
from domain.access import Actor
from domain.errors import FieldError, InvalidInput, Rejections
from domain.identity import Account, LinkNotValid, TooManyCodes, check_password
from domain.sessions import EndReason

log = logging.getLogger("carebridge.identity")


def _split(token: str) -> UUID:
    account_id, _, secret = token.partition(".")
    try:
        if not secret:
            raise ValueError
        return UUID(account_id)
    except ValueError:
        raise LinkNotValid("This link is not complete. Open the whole link from the email, or "
                           "ask for a new one.") from None


class EmailLinks:
    def __init__(self, identity: IdentityApplication, sessions: Sessions, settings: Any) -> None:
        self.identity = identity
        self.sessions = sessions
        self.base = settings.app_link_base.rstrip("/")
        self.verification_lifetime = timedelta(hours=settings.email_verification_hours)
        self.reset_lifetime = timedelta(minutes=settings.password_reset_minutes)
        self.zone = ZoneInfo(settings.clinic_timezone)

    # ---- confirming the address ---------------------------------------------------------------

    def welcome(self, account: Account, at: datetime) -> list[Statement]:
        """For registration: the confirmation link, written with the new account."""
        return self._verification(account, at)

    def resend_verification(self, actor: Actor, at: datetime) -> None:
        account = self.identity.account(actor.account_id)
        also = self._verification(account, at)
        self.identity.save_all(account, also=also)

    def _verification(self, account: Account, at: datetime) -> list[Statement]:
        token = f"{account.id}.{secrets.token_urlsafe(32)}"
        account.send_email_verification(digest(token), at + self.verification_lifetime,
                                        by=f"{account.role}:{account.id}", at=at)
        link = f"{self.base}/verify-email?token={quote(token)}"
        return enqueue(Message("verify_email", "email", account.id, account.email,
                               {"link": link}), at)

    def confirm(self, token: str, at: datetime) -> bool:
        """Confirms the address the link was sent to; False if it already was."""
        account = self._account(_split(token))
        if not account.verify_email(digest(token), at):
            return False
        self.identity.save_all(account)
        return True

    # ---- resetting a password -------------------------------------------------------------------

    def request_reset(self, email: str, at: datetime) -> None:
        """Sends a reset link if the address has an account. Says nothing either way."""
        account = self.identity.account_by_email(email)
        if account is None:
            return
        token = f"{account.id}.{secrets.token_urlsafe(32)}"
        try:
            account.request_password_reset(digest(token), at + self.reset_lifetime, at=at)
        except TooManyCodes:
            log.info("password reset for account %s not sent: too many recent", account.id)
            return
        link = f"{self.base}/reset-password?token={quote(token)}"
        minutes = str(int(self.reset_lifetime.total_seconds() // 60))
        self.identity.save_all(account, also=enqueue(Message(
            "password_reset", "email", account.id, account.email,
            {"link": link, "minutes": minutes}), at))

    def complete_reset(self, token: str, new_password: str, at: datetime) -> None:
        """Sets the new password and signs the account out everywhere."""
        account = self._account(_split(token))
        errors = Rejections()
        check_password(new_password, account.email, COMMON_PASSWORDS, errors)
        if errors.errors:
            raise InvalidInput([FieldError("new_password", e.message) for e in errors.errors])
        account.reset_password(digest(token), self.identity.hasher.hash(new_password), at=at)
        ended, statements = self.sessions.ending_all(account.id, f"{account.role}:{account.id}",
                                                     at, None, EndReason.PASSWORD_CHANGED)
        self.identity.save_all(account, *ended, also=[*statements, *enqueue(Message(
            "password_changed", "email", account.id, account.email,
            {"when": local_when(at, self.zone)}), at)])

    def _account(self, account_id: UUID) -> Account:
        try:
            return self.identity.account(account_id)
        except AggregateNotFoundError:
            raise LinkNotValid("This link is not valid any more. Ask for a new one.") from None
