"""The notification outbox: messages written with the events that call for them, sent afterwards.

A command that needs to tell someone something (a confirmation link, a sign-in code, a "new
sign-in" notice) adds an outbox row in the same transaction as its events, so a message is
sent if and only if the change happened. A dispatcher hands due rows to dramatiq actors (or
sends them itself, `deliver_due`); a row is sent while locked (`FOR UPDATE SKIP LOCKED`, so
several processes can share the work) by email (SMTP, or locally a mail log), SMS (an HTTP
gateway, or locally an SMS log) or push (commands/push.py), and then its recipient and content
are erased. What stays is the fact that a message of a kind went to an account, by which
channel, when, and how many attempts it took.

Account messages (codes, links, security notices) go where they were written for, at once.
Every other kind is a care notification: at delivery the patient's communication preferences
choose the channel, and their quiet hours hold it back (unless it cannot wait).

Messages never carry medical detail, as they may show on a lock screen. Logs name message ids
and kinds, never addresses, links or codes; the local mail and SMS logs hold only the link or
code, which is what a developer needs to finish a flow on their machine.
"""

from __future__ import annotations

import json
import logging
import smtplib
import threading
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from commands.eventstore import ListeningWorker, Statement
from domain.access import Actor
from domain.errors import Conflict, Forbidden, NotFound
from domain.identity import Role
from domain.profiles import CommunicationPreferences, in_quiet_hours

log = logging.getLogger("carebridge.outbox")

OUTBOX = "carebridge.outbox"
CHANNEL = "carebridge_outbox"
MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
QUEUE_LEASE = timedelta(minutes=5)
# Messages about the account itself, and messages to someone who is not the account holder (a
# patient's emergency contact): they go where they were written for, whatever the hour.
ACCOUNT_KINDS = frozenset({"verify_email", "sign_in_code", "step_up_code", "password_reset",
                           "new_sign_in", "password_changed", "proxy_invitation",
                           "emergency_contact_alert"})
# Care notifications that are useless later: quiet hours do not hold them back.
TIME_CRITICAL = frozenset({"clinician_joined", "video_join_reminder"})
# A care notification goes by the first of the patient's chosen channels that reaches them.
ROUTING_ORDER = ("push", "sms", "email")
NOTIFICATION_SUPPORT = frozenset({Role.CLINIC_ADMIN, Role.SUPPORT})


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
    # To the patient's emergency contact (not an account holder), by text: who is sharing and
    # the link to their live location; nothing about their health.
    "emergency_contact_alert": Template(
        "{name} is sharing their location with you",
        "{name} is sharing their live location with you through CareBridge because they may "
        "need help. See where they are:\n\n{link}\n\nIf they are in danger, call the "
        "emergency services.\n",
        sms="CareBridge: {name} is sharing their live location with you and may need help. "
            "See where they are: {link}"),
    # The clinic answered in a conversation: never who, about what, or what it says.
    "new_message": Template(
        "You have a new message from your clinic",
        "Your clinic has answered you in CareBridge. Open the app to read it:\n\n{link}\n",
        sms="CareBridge: you have a new message from your clinic. Open the app to read it."),
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


@dataclass(frozen=True)
class Contacts:
    """Where an account can be reached, read at delivery time (they may have changed)."""

    email: str | None = None
    mobile_phone: str | None = None


PreferencesOf = Callable[[UUID], CommunicationPreferences | None]
ContactsOf = Callable[[UUID], Contacts]


def is_care_notification(kind: str) -> bool:
    return kind not in ACCOUNT_KINDS


def choose_channel(preferences: CommunicationPreferences | None, contacts: Contacts,
                   has_push_device: bool) -> tuple[str, str] | None:
    """The channel and recipient of a care notification: the first of the patient's chosen
    channels that can reach them (push with a registered device, then SMS with a mobile
    number, then email); None keeps the channel the message was written for."""
    if preferences is None:
        return None
    for channel in ROUTING_ORDER:
        if channel not in preferences.channels:
            continue
        if channel == "push" and has_push_device:
            return "push", "devices"
        if channel == "sms" and contacts.mobile_phone:
            return "sms", contacts.mobile_phone
        if channel == "email" and contacts.email:
            return "email", contacts.email
    return None


def quiet_until(preferences: CommunicationPreferences | None, at: datetime) -> datetime | None:
    """When the patient's quiet hours around `at` end (UTC), or None if `at` is not in them.
    The end is wall-clock time in the patient's zone, so it moves with the clocks."""
    if not in_quiet_hours(preferences, at):
        return None
    assert preferences is not None and preferences.quiet_hours is not None
    quiet = preferences.quiet_hours
    zone, end = ZoneInfo(quiet.zone or "UTC"), time.fromisoformat(quiet.end or "00:00")
    day = at.astimezone(zone).date()
    ends = [candidate
            for days in (0, 1, 2) for fold in (0, 1)
            if (candidate := datetime.combine(day + timedelta(days=days), end, tzinfo=zone)
                .replace(fold=fold).astimezone(UTC)) > at and not quiet.includes(candidate)]
    return min(ends)


_COLUMNS = ("message_id, account_id, channel, kind, recipient, payload, attempts, delivered_at,"
            " failed_at, withdrawn_at, not_before, next_attempt_at")
_DUE = ("delivered_at IS NULL AND failed_at IS NULL AND withdrawn_at IS NULL"
        " AND (not_before IS NULL OR not_before <= %(now)s)"
        " AND (attempts = 0 OR next_attempt_at <= %(now)s)")


class OutboxDispatcher(ListeningWorker):
    """Delivers due outbox messages. With `queue` set (the worker process sets it to send a
    dramatiq message), the thread `start()` runs hands each due row to the broker and notes it
    (`queued_at`; after `lease` an unprocessed row is queued again) and the actor calls
    `deliver(message_id)`. Without it, or through `deliver_due()`, it sends them itself.

    Either way a row is sent while it is locked (`FOR UPDATE SKIP LOCKED`) and marked delivered
    in the same transaction, so a redelivered message finds it sent. A crash between the
    provider's acceptance and the commit sends it again with the same message id, which
    providers use to drop the duplicate."""

    channel, thread_name = CHANNEL, "outbox"

    def __init__(self, database_url: str, senders: dict[str, Sender],
                 poll_seconds: float = 5.0, *, preferences: PreferencesOf | None = None,
                 contacts: ContactsOf | None = None,
                 queue: Callable[[UUID], object] | None = None,
                 lease: timedelta = QUEUE_LEASE,
                 clock: Callable[[], datetime] | None = None) -> None:
        super().__init__(database_url, poll_seconds)
        self.senders = senders
        self.preferences, self.contacts = preferences, contacts
        self.queue, self.lease = queue, lease
        self.clock = clock or (lambda: datetime.now(UTC))

    def deliver_due(self, limit: int = 100) -> int:
        """Sends up to `limit` due messages, each in its own transaction; returns how many
        were delivered."""
        delivered = 0
        with psycopg.connect(self.url, autocommit=False, row_factory=dict_row) as conn:
            for _ in range(limit):
                with conn.transaction():
                    now = self.clock()
                    row = conn.execute(
                        f"SELECT {_COLUMNS} FROM {OUTBOX} WHERE {_DUE}"
                        " ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                        {"now": now}).fetchone()
                    if row is None:
                        return delivered
                    delivered += self._process(conn, row, now) == "delivered"
        return delivered

    def deliver(self, message_id: UUID) -> str:
        """The actor's work for one message: `delivered`, `deferred` (quiet hours), `retry`
        (failed, due again later), `failed` (the last attempt failed), `done` (already
        delivered, given up or withdrawn: a redelivered message), `busy` (another worker holds
        it) or `not_due`."""
        with psycopg.connect(self.url, autocommit=False, row_factory=dict_row) as conn, \
                conn.transaction():
            now = self.clock()
            row = conn.execute(f"SELECT {_COLUMNS} FROM {OUTBOX} WHERE message_id = %(id)s"
                               " FOR UPDATE SKIP LOCKED", {"id": message_id}).fetchone()
            if row is None:
                return "busy"
            if row["delivered_at"] or row["failed_at"] or row["withdrawn_at"]:
                return "done"
            not_before = row["not_before"]
            if (not_before is not None and not_before > now) or \
                    (row["attempts"] and row["next_attempt_at"] > now):
                return "not_due"
            return self._process(conn, row, now)

    def queue_due(self, limit: int = 100) -> int:
        """Hands due rows that are not already queued (or whose lease ran out) to `queue`;
        returns how many. The rows are marked first and queued after the commit, so an actor
        never finds its row still locked by the dispatcher."""
        assert self.queue is not None, "queue_due needs a queue (the dramatiq actor's send)"
        queued = 0
        while True:
            now = self.clock()
            with psycopg.connect(self.url, autocommit=False) as conn, conn.transaction():
                ids = [row[0] for row in conn.execute(
                    f"SELECT message_id FROM {OUTBOX} WHERE {_DUE}"
                    " AND (queued_at IS NULL OR queued_at <= %(stale)s)"
                    " ORDER BY created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
                    {"now": now, "stale": now - self.lease, "limit": limit})]
                conn.execute(f"UPDATE {OUTBOX} SET queued_at = %s WHERE message_id = ANY(%s)",
                             (now, ids))
            for message_id in ids:
                self.queue(message_id)
            queued += len(ids)
            if len(ids) < limit:
                return queued

    def work(self) -> int:
        return self.queue_due() if self.queue is not None else self.deliver_due()

    def _process(self, conn: psycopg.Connection[Any], row: dict[str, Any],
                 now: datetime) -> str:
        """Sends one locked row, or defers it for quiet hours; says which (see `deliver`)."""
        message = Outgoing(row["message_id"], row["account_id"], row["channel"], row["kind"],
                           row["recipient"], dict(row["payload"] or {}))
        attempts = row["attempts"] + 1
        try:
            message, deferred_to = self._route(message, now)
            if deferred_to is not None:
                conn.execute(
                    f"UPDATE {OUTBOX} SET not_before = %s, queued_at = NULL,"
                    " deferred_count = deferred_count + 1 WHERE message_id = %s",
                    (deferred_to, message.message_id))
                log.info("outbox message %s (%s) deferred to the end of quiet hours",
                         message.message_id, message.kind)
                return "deferred"
            sender = self.senders.get(message.channel)
            if sender is None:
                raise LookupError(f"no delivery configured for {message.channel}")
            self._send(sender, message)
        except Exception as error:
            give_up = attempts >= MAX_ATTEMPTS
            conn.execute(
                f"UPDATE {OUTBOX} SET attempts = %s, last_error = %s, channel = %s,"
                " next_attempt_at = %s, queued_at = NULL,"
                " failed_at = CASE WHEN %s THEN %s::timestamptz END WHERE message_id = %s",
                (attempts, type(error).__name__, message.channel,
                 now + FIRST_RETRY * 2 ** (attempts - 1), give_up, now, message.message_id))
            log.warning("outbox message %s (%s by %s) not delivered, attempt %d: %s",
                        message.message_id, message.kind, message.channel, attempts,
                        type(error).__name__)
            return "failed" if give_up else "retry"
        conn.execute(
            f"UPDATE {OUTBOX} SET attempts = %s, delivered_at = %s, channel = %s,"
            " recipient = NULL, payload = NULL, last_error = NULL, queued_at = NULL"
            " WHERE message_id = %s", (attempts, now, message.channel, message.message_id))
        log.info("outbox message %s (%s by %s) delivered", message.message_id, message.kind,
                 message.channel)
        return "delivered"

    def _route(self, message: Outgoing, now: datetime) -> tuple[Outgoing, datetime | None]:
        """A care notification goes by the patient's preferred channel, after quiet hours
        (unless it cannot wait); account messages keep the channel they were written for."""
        if not is_care_notification(message.kind) or message.account_id is None \
                or self.preferences is None:
            return message, None
        preferences = self.preferences(message.account_id)
        if message.kind not in TIME_CRITICAL:
            until = quiet_until(preferences, now)
            if until is not None:
                return message, until
        contacts = self.contacts(message.account_id) if self.contacts else Contacts()
        push = self.senders.get("push")
        reaches = getattr(push, "reaches", None)
        chosen = choose_channel(preferences, contacts,
                                bool(reaches and reaches(message.account_id)))
        if chosen is None:
            return message, None
        channel, recipient = chosen
        return replace(message, channel=channel, recipient=recipient), None

    def _send(self, sender: Sender, message: Outgoing) -> None:
        """The one place a message leaves CareBridge."""
        sender.send(message)


@dataclass(frozen=True)
class NotificationStatus:
    """A notification as support sees it: never its recipient or its content."""

    message_id: UUID
    kind: str
    channel: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    failed_at: datetime | None
    delivered_at: datetime | None
    retried_at: datetime | None


_STATUS = ("SELECT message_id, kind, channel, attempts, last_error, created_at, next_attempt_at,"
           f" failed_at, delivered_at, retried_at FROM {OUTBOX}")


class FailedNotifications:
    """Notifications given up on, for clinic administrators and support, and sending one
    again."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def failed(self, actor: Actor, limit: int = 100) -> list[NotificationStatus]:
        _may_see_notifications(actor)
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            rows = conn.execute(f"{_STATUS} WHERE failed_at IS NOT NULL"
                                " ORDER BY failed_at DESC, message_id LIMIT %s",
                                (max(1, min(limit, 500)),)).fetchall()
        return [NotificationStatus(**row) for row in rows]

    def retry(self, message_id: UUID, actor: Actor, at: datetime) -> NotificationStatus:
        """Puts a failed notification back in the outbox with a fresh count of attempts. One
        already back in the queue stays as it is (a repeated click does nothing)."""
        _may_see_notifications(actor)
        with psycopg.connect(self.url, row_factory=dict_row) as conn, conn.transaction():
            row = conn.execute(f"SELECT delivered_at, failed_at, withdrawn_at, payload FROM"
                               f" {OUTBOX} WHERE message_id = %s FOR UPDATE",
                               (message_id,)).fetchone()
            if row is None:
                raise NotFound("There is no such notification.")
            if row["delivered_at"] is not None:
                raise Conflict("This notification was delivered; there is nothing to send "
                               "again.")
            if row["withdrawn_at"] is not None:
                raise Conflict("This notification was withdrawn (what it was about changed); "
                               "it will not be sent.")
            if row["failed_at"] is not None:
                if row["payload"] is None:
                    raise Conflict("This notification's content was erased; it cannot be sent "
                                   "again.")
                conn.execute(f"UPDATE {OUTBOX} SET failed_at = NULL, attempts = 0,"
                             " next_attempt_at = %s, not_before = NULL, queued_at = NULL,"
                             " retried_at = %s WHERE message_id = %s", (at, at, message_id))
                conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
                log.info("outbox message %s sent back to the queue by %s", message_id,
                         actor.ref)
            status = conn.execute(f"{_STATUS} WHERE message_id = %s", (message_id,)).fetchone()
        assert status is not None  # locked above
        return NotificationStatus(**status)


def _may_see_notifications(actor: Actor) -> None:
    if actor.role not in NOTIFICATION_SUPPORT:
        raise Forbidden("Only clinic administrators and support see failed notifications.")


def senders_from(settings: Any, data_dir: Path,
                 database_url: str | None = None) -> dict[str, Sender]:
    """Email by SMTP when a host is configured, otherwise to the local mail log; SMS through
    the gateway when configured, otherwise to the local SMS log; push (given the database that
    holds the devices) through FCM and APNs when configured, otherwise to the local push log."""
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
    senders: dict[str, Sender] = {"email": email, "sms": sms}
    if database_url is not None:
        from commands.push import push_sender_from

        senders["push"] = push_sender_from(settings, database_url, data_dir)
    return senders


def local_when(at: datetime, zone: Any, render: Callable[[datetime], str] | None = None) -> str:
    """A time as the account holder reads it: in the clinic's zone, without seconds."""
    local = at.astimezone(zone)
    return render(local) if render else local.strftime("%d %B %Y at %H:%M %Z")
