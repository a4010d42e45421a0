"""Calendar entries for appointments: an iCalendar file per appointment and a private feed per
patient, whose entries never carry medical detail (no specialty, type or reason).

The feed's URL holds a token, which is the only credential a calendar app can send. The token
is derived (HMAC) from a secret and a random nonce recorded in the feed's events, so a retried
request with the same Idempotency-Key can answer with the same URL without any table holding
the token: the lookup table keeps only its SHA-256. Opening the feed again rotates the token;
revoking it ends the feed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import event
from psycopg.rows import tuple_row

from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_once
from domain.access import Action, Actor, PatientResource, authorise
from domain.aggregate import CareAggregate, topic
from domain.errors import NotFound
from domain.ids import stream_id
from domain.schedule_types import ClinicInfo, Mode, ScheduleSource

FEED_PATH = "/v1/calendar-feeds/{token}.ics"
RECENT = timedelta(days=30)  # the feed keeps past appointments this long
PRODUCT = "-//CareBridge//Appointments//EN"

# ---- iCalendar text (RFC 5545) -----------------------------------------------------------------


@dataclass(frozen=True)
class CalendarEntry:
    uid: str
    starts_at: datetime  # UTC
    ends_at: datetime
    summary: str
    location: str | None
    status: str  # CONFIRMED | TENTATIVE | CANCELLED
    sequence: int = 0


def escape_text(value: str) -> str:
    """A TEXT value: backslash, semicolon and comma escaped, newlines as \\n."""
    return (value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
            .replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n"))


def fold(line: str) -> str:
    """Folds a content line at 75 octets, never inside a UTF-8 character (RFC 5545 3.1)."""
    encoded = line.encode()
    if len(encoded) <= 75:
        return line
    parts, start, width = [], 0, 75
    while start < len(encoded):
        end = min(start + width, len(encoded))
        while end < len(encoded) and (encoded[end] & 0xC0) == 0x80:
            end -= 1  # back off to the start of a character
        parts.append(encoded[start:end].decode())
        start, width = end, 74  # continuation lines begin with one space
    return "\r\n ".join(parts)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def render(entries: Iterable[CalendarEntry], stamp: datetime, name: str = "CareBridge") -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODUCT}", "CALSCALE:GREGORIAN",
             "METHOD:PUBLISH", f"X-WR-CALNAME:{escape_text(name)}"]
    for entry in entries:
        lines += ["BEGIN:VEVENT", f"UID:{entry.uid}@carebridge", f"DTSTAMP:{_utc(stamp)}",
                  f"DTSTART:{_utc(entry.starts_at)}", f"DTEND:{_utc(entry.ends_at)}",
                  f"SUMMARY:{escape_text(entry.summary)}", f"STATUS:{entry.status}",
                  f"SEQUENCE:{entry.sequence}", "TRANSP:OPAQUE"]
        if entry.location:
            lines.append(f"LOCATION:{escape_text(entry.location)}")
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)


def title_and_location(clinic: ClinicInfo | None, mode: Mode | None) -> tuple[str, str | None]:
    """What a calendar shows: where, never what for."""
    if mode is Mode.VIDEO:
        return "Video appointment (CareBridge)", None
    if clinic is None:
        return "Appointment (CareBridge)", None
    address = ", ".join([*clinic.address_lines, clinic.town, clinic.postcode])
    return f"Appointment at {clinic.name}", address


# ---- the feed ---------------------------------------------------------------------------------


class CalendarFeed(CareAggregate):
    """A patient's private calendar feed. Event names and fields are stored forever."""

    @classmethod
    def create_id(cls, account_id: UUID, **_: object) -> UUID:
        return feed_id(account_id)

    @event("Created", topic=topic("calendar", "CalendarFeed.Created"))
    def __init__(self, account_id: UUID, nonce: str, token_sha256: str, by: str,
                 at: datetime) -> None:
        self.account_id, self.nonce, self.token_sha256 = account_id, nonce, token_sha256
        self.revoked = False

    @event("Rotated", topic=topic("calendar", "CalendarFeed.Rotated"))
    def rotate(self, nonce: str, token_sha256: str, by: str, at: datetime) -> None:
        self.nonce, self.token_sha256, self.revoked = nonce, token_sha256, False

    def revoke(self, by: str, at: datetime) -> None:
        if not self.revoked:
            self._revoked(by=by, at=at)

    @event("Revoked", topic=topic("calendar", "CalendarFeed.Revoked"))
    def _revoked(self, by: str, at: datetime) -> None:
        self.revoked = True


def feed_id(account_id: UUID) -> UUID:
    return stream_id("calendar_feed", account_id)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


_ADD = ("INSERT INTO carebridge.calendar_feeds (token_sha256, account_id, created_at)"
        " VALUES (%s, %s, %s)")
_REVOKE = ("UPDATE carebridge.calendar_feeds SET revoked_at = %s"
           " WHERE account_id = %s AND revoked_at IS NULL")
_FIND = ("SELECT account_id FROM carebridge.calendar_feeds"
         " WHERE token_sha256 = %s AND revoked_at IS NULL")
_APPOINTMENTS = """
SELECT appointment_id, clinic_id, consultation_type_id, starts_at, ends_at, status
  FROM carebridge.slot_bookings
 WHERE patient_id = %s AND starts_at >= %s AND status IN ('booked', 'released')
 ORDER BY starts_at
 LIMIT 500
"""
_ONE = ("SELECT patient_id, clinic_id, consultation_type_id, starts_at, ends_at, status,"
        " hold_expires_at FROM carebridge.slot_bookings WHERE appointment_id = %s")


class CalendarApplication(CareApplication):
    name = "calendar"

    def __init__(self, store: EventStoreSettings) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.datastore = self.factory.datastore  # type: ignore[attr-defined]
        self._secret = hmac.new(store.encryption_key.encode(), b"carebridge calendar feeds",
                                hashlib.sha256).digest()

    def token_for(self, account_id: UUID, nonce: str) -> str:
        mac = hmac.new(self._secret, f"{account_id}/{nonce}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def open_feed(self, actor: Actor, at: datetime, key: IdempotencyKey | None = None) -> Outcome:
        """Creates the patient's feed, or rotates its token (the old URL stops working)."""
        authorise(actor, Action.APPOINTMENTS_READ, PatientResource(actor.account_id))
        account_id = actor.account_id

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            nonce = secrets.token_urlsafe(16)
            digest = token_hash(self.token_for(account_id, nonce))
            feed = self._feed(account_id)
            if feed is None:
                feed = CalendarFeed(account_id=account_id, nonce=nonce,
                                    token_sha256=digest.hex(), by=actor.ref, at=at)
            else:
                feed.rotate(nonce=nonce, token_sha256=digest.hex(), by=actor.ref, at=at)
            return {"nonce": nonce}, [feed], [Statement(_REVOKE, (at, account_id)),
                                              Statement(_ADD, (digest, account_id, at))]

        outcome = run_once(self, self.idempotency, key, decide)
        token = self.token_for(account_id, outcome.result["nonce"])
        return Outcome({"url": FEED_PATH.format(token=token), "token": token},
                       outcome.position, outcome.replayed)

    def revoke_feed(self, actor: Actor, at: datetime) -> Outcome:
        authorise(actor, Action.APPOINTMENTS_READ, PatientResource(actor.account_id))
        account_id = actor.account_id

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            feed = self._feed(account_id)
            if feed is None:
                return {}, [], []
            feed.revoke(by=actor.ref, at=at)
            return {}, [feed], [Statement(_REVOKE, (at, account_id))]

        return run_once(self, self.idempotency, None, decide)

    def feed_owner(self, token: str) -> UUID | None:
        with self.datastore.get_connection() as conn:
            row = conn.cursor(row_factory=tuple_row).execute(
                _FIND, (token_hash(token),)).fetchone()
        return row[0] if row else None

    def feed(self, token: str, schedule: ScheduleSource, at: datetime,
             appointments: Any = None) -> str | None:
        """The feed's iCalendar text, or None for an unknown or revoked token."""
        account_id = self.feed_owner(token)
        if account_id is None:
            return None
        with self.datastore.get_connection() as conn:
            rows = conn.cursor(row_factory=tuple_row).execute(
                _APPOINTMENTS, (account_id, at - RECENT)).fetchall()
        entries = []
        for appointment_id, clinic_id, type_id, starts_at, ends_at, status in rows:
            state = "CONFIRMED" if status == "booked" else _cancelled(appointments, appointment_id)
            if state is not None:
                entries.append(_entry(schedule, appointment_id, clinic_id, type_id, starts_at,
                                      ends_at, state))
        return render(entries, at, name="My appointments (CareBridge)")

    def appointment_entry(self, appointment_id: UUID, schedule: ScheduleSource, at: datetime,
                          appointments: Any = None) -> tuple[UUID, CalendarEntry] | None:
        """(patient, entry) for one appointment, or None if there is no such appointment."""
        with self.datastore.get_connection() as conn:
            row = conn.cursor(row_factory=tuple_row).execute(_ONE, (appointment_id,)).fetchone()
        if row is None:
            return None
        patient_id, clinic_id, type_id, starts_at, ends_at, status, hold_expires_at = row
        if status == "booked":
            state: str | None = "CONFIRMED"
        elif status == "held":
            state = "TENTATIVE" if hold_expires_at and hold_expires_at > at else None
        else:
            state = _cancelled(appointments, appointment_id)
        if state is None:
            return None
        return patient_id, _entry(schedule, appointment_id, clinic_id, type_id, starts_at,
                                  ends_at, state)

    def _feed(self, account_id: UUID) -> CalendarFeed | None:
        try:
            return self.repository.get(feed_id(account_id))
        except AggregateNotFoundError:
            return None


def _cancelled(appointments: Any, appointment_id: UUID) -> str | None:
    """A released entry is shown as cancelled if the appointment was cancelled (not a hold that
    lapsed); without the appointments context it is left out."""
    if appointments is None:
        return None
    try:
        appointment = appointments.appointment(appointment_id)
    except (AggregateNotFoundError, NotFound):
        return None
    return "CANCELLED" if getattr(appointment, "status", None) == "cancelled" else None


def _entry(schedule: ScheduleSource, appointment_id: UUID, clinic_id: str, type_id: str,
           starts_at: datetime, ends_at: datetime, status: str) -> CalendarEntry:
    kind = schedule.consultation_type(type_id)
    summary, location = title_and_location(schedule.clinic(clinic_id),
                                           kind.mode if kind else None)
    if kind is not None:  # the patient's time: without the clinician's buffers
        starts_at += timedelta(minutes=kind.buffer_before_minutes)
        ends_at = starts_at + timedelta(minutes=kind.duration_minutes)
    return CalendarEntry(str(appointment_id), starts_at, ends_at, summary, location, status,
                         sequence=1 if status == "CANCELLED" else 0)
