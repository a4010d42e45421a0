"""The notification outbox: messages written with the events that call for them, sent afterwards.

A command that needs to tell someone something (a confirmation link, a sign-in code, a "new
sign-in" notice) adds an outbox row in the same transaction as its events, so a message is
sent if and only if the change happened. A dispatcher claims due rows (`FOR UPDATE SKIP
LOCKED`, so several processes can share the work), sends each by email (SMTP, or locally a mail
log), SMS (an HTTP gateway, or locally an SMS log) or push, and then erases the recipient and
the content. What stays is the fact that a message of a kind went to an account, when, and how
many attempts it took.

Messages never carry medical detail: every template here is about the account itself. Logs name
message ids and kinds, never addresses, links or codes; the local mail and SMS logs hold only
the link or code, which is what a developer needs to finish a flow on their machine.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from commands.eventstore import ListeningWorker, Statement

log = logging.getLogger("carebridge.outbox")

OUTBOX = "carebridge.outbox"
CHANNEL = "carebridge_outbox"
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)


@dataclass(frozen=True)
class Template:
    subject: str
    body: str  # str.format fields from the message's params
    sms: str | None = None


# The wording of every message CareBridge sends about an account. None of it is medical.
TEMPLATES: dict[str, Template] = {
    "verify_email": Template(
        "Confirm your email address for CareBridge",
        "Hello,\n\nOpen this link to confirm the email address of your CareBridge account:\n\n"
        "{link}\n\nThe link works for 24 hours. If you did not create a CareBridge account, "
        "you can ignore this email.\n"),
    "sign_in_code": Template(
        "Your CareBridge sign-in code",
        "Your sign-in code is {code}. It works for {minutes} minutes.\n\nCareBridge staff will "
        "never ask you for this code. If you are not signing in, change your password.\n",
        sms="CareBridge sign-in code: {code}. Valid {minutes} min. Never share it."),
    "step_up_code": Template(
        "Your CareBridge confirmation code",
        "Your confirmation code is {code}. It works for {minutes} minutes.\n\nCareBridge staff "
        "will never ask you for this code.\n",
        sms="CareBridge confirmation code: {code}. Valid {minutes} min. Never share it."),
    "new_sign_in": Template(
        "New sign-in to your CareBridge account",
        "Your CareBridge account was signed in on a new device ({device}) on {when}.\n\n"
        "If this was you, there is nothing to do. If it was not, change your password and "
        "choose 'Sign out everywhere' in the app.\n"),
    "password_changed": Template(
        "Your CareBridge password was changed",
        "The password of your CareBridge account was changed on {when}.\n\nIf you did not do "
        "this, reset your password now and contact the clinic.\n"),
    "proxy_invitation": Template(
        "You have been invited to help someone with CareBridge",
        "Someone who uses CareBridge has invited you to help them with their account, for "
        "example with bookings.\n\nSign in to the CareBridge app and open 'People I help' to "
        "accept or decline. If you do not know why you received this, decline or ignore it.\n"),
    # Only the time and the clinic: never the type of consultation, the clinician or a reason.
    "appointment_moved_by_clinic": Template(
        "Your appointment has been moved",
        "The clinic has moved your appointment at {clinic}. It is now on {when}.\n\nOpen the "
        "CareBridge app to see the details, or to choose another time.\n",
        sms="CareBridge: your appointment at {clinic} is now on {when}. Open the app for "
        "details."),
    "appointment_cancelled_by_clinic": Template(
        "Your appointment has been cancelled",
        "Your appointment on {when} at {clinic} has been cancelled by the clinic. We are "
        "sorry for the inconvenience.\n\nOpen the CareBridge app to book a new time.\n",
        sms="CareBridge: your appointment on {when} at {clinic} was cancelled. Open the app "
        "to rebook."),
    "password_reset": Template(
        "Reset your CareBridge password",
        "Open this link to choose a new password for your CareBridge account:\n\n{link}\n\n"
        "The link works for {minutes} minutes and only once. If you did not ask for this, you "
        "can ignore this email; your password has not changed.\n"),
    # Appointment messages name the time and the clinic only: never the specialty, the
    # clinician's field or the reason for the visit.
    "appointment_reminder": Template(
        "Your CareBridge appointment reminder",
        "You have an appointment on {when} at {clinic}.\n\nIf you cannot come, please cancel "
        "or move it in the app so that someone else can have the time.\n",
        sms="CareBridge reminder: appointment {when} at {clinic}. Cancel in the app if you "
            "cannot come."),
    "video_join_reminder": Template(
        "Your CareBridge video appointment starts soon",
        "Your video appointment starts soon. Open the app to join.\n",
        sms="CareBridge: your video appointment starts soon. Open the app to join."),
    # Says only that someone is ready: never who, the clinic's specialty or why.
    "clinician_joined": Template(
        "Your clinician is ready for your video call",
        "Your clinician has joined your video call. Open the CareBridge app to join.\n",
        sms="CareBridge: your clinician is ready for your video call. Open the app to join."),
    # Repeat prescription requests: the step only. Like every notification these may show on a
    # lock screen, so they name no medicine, dose or reason, and not even what was requested.
    "prescription_review_needed": Template(
        "Your request needs a review",
        "Your request needs a review by the clinic's team before it can be approved. We will "
        "let you know when it has been decided.\n",
        sms="CareBridge: your request needs a review by the clinic. We will tell you when it "
            "is decided."),
    "prescription_approved": Template(
        "Your request has been approved",
        "Your request has been approved. Open the CareBridge app to see the next step.\n",
        sms="CareBridge: your request has been approved. Open the app for details."),
    "prescription_rejected": Template(
        "An update on your request",
        "Your request could not be approved. Open the CareBridge app to see why and what to do "
        "next.\n",
        sms="CareBridge: there is an update on your request. Open the app."),
    "prescription_ready": Template(
        "Ready to collect",
        "What you asked for is ready to collect at the clinic.\n",
        sms="CareBridge: what you asked for is ready to collect at the clinic."),
    "prescription_sent": Template(
        "Sent to your pharmacy",
        "Your request has been sent to the pharmacy you chose.\n",
        sms="CareBridge: your request has been sent to the pharmacy you chose."),
    "prescription_delayed": Template(
        "Your request is taking longer",
        "Your request is taking longer than we promised. We are sorry; the clinic is working on "
        "it. Open the CareBridge app to follow it.\n",
        sms="CareBridge: your request is taking longer than promised. Open the app to follow "
            "it."),
    # An upload was checked: says nothing of what it was or why.
    "document_update": Template(
        "An update on something you sent us",
        "There is an update on something you uploaded. Open the CareBridge app to see it.\n",
        sms="CareBridge: there is an update on something you uploaded. Open the app."),
    # Something is left to do before a visit (a form, an upload): never which, or why.
    "visit_preparation_reminder": Template(
        "Before your CareBridge appointment",
        "You have an appointment on {when} at {clinic}. There is still something to do before "
        "it, such as questions to answer or a document to send.\n\nOpen the CareBridge app and "
        "choose 'Before your visit' to finish it.\n",
        sms="CareBridge: before your appointment on {when} at {clinic} there is still something "
            "to do. Open the app."),
    # Something new in the patient's record: never what it is, which test, or its outcome. The
    # link opens the record in the app, after the patient has signed in.
    "result_available": Template(
        "A new result is available",
        "A new result is available in your CareBridge record. Open the app to read it:\n\n"
        "{link}\n",
        sms="CareBridge: a new result is available. Open the app to read it."),
    "record_available": Template(
        "Something new is in your record",
        "Something new has been added to your CareBridge record. Open the app to read it:\n\n"
        "{link}\n",
        sms="CareBridge: something new has been added to your record. Open the app."),
    "waitlist_offer": Template(
        "An earlier appointment is available",
        "An earlier appointment is available. Open the app within {minutes} minutes to take "
        "it.\n\nIf you do nothing, it will be offered to someone else and you stay on the "
        "waiting list.\n",
        sms="CareBridge: an earlier appointment is available. Open the app within {minutes} "
            "minutes to take it."),
}

# What the local logs keep of each message: the link or the code, nothing else.
_LOGGED_PARAMS = ("link", "code")


@dataclass(frozen=True)
class Message:
    kind: str
    channel: str  # email, sms or push
    account_id: UUID
    recipient: str
    params: dict[str, str] = field(default_factory=dict)
    message_id: UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        if self.kind not in TEMPLATES:
            raise ValueError(f"no template for message kind {self.kind!r}")


def enqueue(message: Message, at: datetime, not_before: datetime | None = None,
            about_id: UUID | None = None) -> list[Statement]:
    """The statements that put a message in the outbox; pass them as `also=` to save_all so
    they commit with the events. A planned message (a reminder) is not sent before
    `not_before`; `about_id` names what it is about, so that it can be withdrawn."""
    return [
        Statement(f"INSERT INTO {OUTBOX} (message_id, account_id, channel, kind, recipient,"
                  " payload, created_at, next_attempt_at, not_before, about_id)"
                  " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                  (message.message_id, message.account_id, message.channel, message.kind,
                   message.recipient, Jsonb(message.params), at, not_before or at, not_before,
                   about_id)),
        Statement("SELECT pg_notify(%s, '')", (CHANNEL,)),
    ]


@dataclass(frozen=True)
class Outgoing:
    """A claimed outbox row, ready to send."""

    message_id: UUID
    account_id: UUID | None
    channel: str
    kind: str
    recipient: str
    params: dict[str, str]

    @property
    def template(self) -> Template:
        return TEMPLATES[self.kind]

    def subject(self) -> str:
        return self.template.subject.format(**self.params)

    def text(self) -> str:
        template = self.template
        wording = template.sms if self.channel == "sms" and template.sms else template.body
        return wording.format(**self.params)


class Sender(Protocol):
    def send(self, message: Outgoing) -> None: ...


class LocalLog:
    """Development delivery: one JSON line per message, holding only the link or code."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> None:
        line: dict[str, Any] = {"message_id": str(message.message_id), "kind": message.kind,
                                "account_id": str(message.account_id)}
        line.update({k: v for k, v in message.params.items() if k in _LOGGED_PARAMS})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


class SmtpSender:
    def __init__(self, host: str, port: int, sender: str, username: str | None = None,
                 password: str | None = None, starttls: bool = False,
                 timeout: float = 10.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls = username, password, starttls
        self.timeout = timeout

    def send(self, message: Outgoing) -> None:
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.recipient
        email["Subject"] = message.subject()
        email["Message-ID"] = f"<{message.message_id}@carebridge>"
        email.set_content(message.text())
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(email)


class SmsGateway:
    """Posts `{"to": ..., "text": ...}` as JSON to an SMS provider's HTTP endpoint (or a relay
    in front of one), with a bearer token."""

    def __init__(self, url: str, token: str | None = None, timeout: float = 10.0) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, message: Outgoing) -> None:
        body = json.dumps({"to": message.recipient, "text": message.text(),
                           "reference": str(message.message_id)}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",  # noqa: S310
                                         headers={"Content-Type": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            if response.status >= 300:
                raise OSError(f"SMS gateway answered {response.status}")


class OutboxDispatcher(ListeningWorker):
    """Sends due outbox messages: `deliver_due()` once, or `start()` a thread that waits for
    new messages (LISTEN) and retries failed ones with backoff."""

    channel, thread_name = CHANNEL, "outbox"

    def __init__(self, database_url: str, senders: dict[str, Sender],
                 poll_seconds: float = 5.0) -> None:
        super().__init__(database_url, poll_seconds)
        self.senders = senders

    def deliver_due(self, limit: int = 100) -> int:
        """Sends up to `limit` due messages, each in its own transaction; returns how many
        were delivered."""
        delivered = 0
        with psycopg.connect(self.url, autocommit=False, row_factory=dict_row) as conn:
            for _ in range(limit):
                with conn.transaction():
                    row = conn.execute(
                        f"SELECT message_id, account_id, channel, kind, recipient, payload,"
                        f" attempts FROM {OUTBOX} WHERE delivered_at IS NULL AND failed_at IS NULL"
                        " AND withdrawn_at IS NULL"
                        " AND (not_before IS NULL OR not_before <= now())"
                        " AND (attempts = 0 OR next_attempt_at <= now())"
                        " ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
                    if row is None:
                        return delivered
                    delivered += self._deliver(conn, row)
        return delivered

    def _deliver(self, conn: psycopg.Connection[Any], row: dict[str, Any]) -> int:
        message = Outgoing(row["message_id"], row["account_id"], row["channel"], row["kind"],
                           row["recipient"], dict(row["payload"] or {}))
        attempts = row["attempts"] + 1
        sender = self.senders.get(message.channel)
        try:
            if sender is None:
                raise LookupError(f"no delivery configured for {message.channel}")
            sender.send(message)
        except Exception as error:
            give_up = attempts >= MAX_ATTEMPTS
            conn.execute(
                f"UPDATE {OUTBOX} SET attempts = %s, last_error = %s,"
                " next_attempt_at = now() + %s,"
                " failed_at = CASE WHEN %s THEN now() END,"
                " recipient = CASE WHEN %s THEN NULL ELSE recipient END,"
                " payload = CASE WHEN %s THEN NULL ELSE payload END"
                " WHERE message_id = %s",
                (attempts, type(error).__name__, FIRST_RETRY * 2 ** (attempts - 1), give_up,
                 give_up, give_up, message.message_id))
            log.warning("outbox message %s (%s by %s) not delivered, attempt %d: %s",
                        message.message_id, message.kind, message.channel, attempts,
                        type(error).__name__)
            return 0
        conn.execute(
            f"UPDATE {OUTBOX} SET attempts = %s, delivered_at = now(), recipient = NULL,"
            " payload = NULL, last_error = NULL WHERE message_id = %s",
            (attempts, message.message_id))
        log.info("outbox message %s (%s by %s) delivered", message.message_id, message.kind,
                 message.channel)
        return 1

    def work(self) -> int:
        return self.deliver_due()


def senders_from(settings: Any, data_dir: Path) -> dict[str, Sender]:
    """Email by SMTP when a host is configured, otherwise to the local mail log; SMS through
    the gateway when configured, otherwise to the local SMS log."""
    email: Sender
    if settings.smtp_host:
        email = SmtpSender(settings.smtp_host, settings.smtp_port, settings.mail_from,
                           settings.smtp_username,
                           settings.smtp_password.get_secret_value()
                           if settings.smtp_password else None, settings.smtp_starttls)
    else:
        email = LocalLog(settings.mail_log_path or data_dir / "mail.log")
    sms: Sender
    if settings.sms_gateway_url:
        sms = SmsGateway(str(settings.sms_gateway_url),
                         settings.sms_gateway_token.get_secret_value()
                         if settings.sms_gateway_token else None)
    else:
        sms = LocalLog(settings.sms_log_path or data_dir / "sms.log")
    return {"email": email, "sms": sms}


def local_when(at: datetime, zone: Any, render: Callable[[datetime], str] | None = None) -> str:
    """A time as the account holder reads it: in the clinic's zone, without seconds."""
    local = at.astimezone(zone)
    return render(local) if render else local.strftime("%d %B %Y at %H:%M %Z")
