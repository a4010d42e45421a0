"""Outbound webhooks: clinic systems hear of appointments, released records and prescription
requests as they change, by signed HTTP POSTs.

A clinic's administrators subscribe an endpoint (`Webhooks.put`: an https:// address, a signing
secret, the event types wanted). A follower of the appointments, records and prescriptions logs
runs `WebhookPlanner.statements` in the same transaction as its tracking position, so each
event plans exactly one delivery per matching subscription (`carebridge.webhook_deliveries`;
the unique source event key makes planning idempotent too). `WebhookDispatcher` works like the
pharmacy handoff (commands/pharmacy.py): it claims due deliveries with `FOR UPDATE SKIP
LOCKED`, POSTs them, retries failures with doubling, jittered waits, and after the last attempt
(or an answer no retry can cure) marks them dead, where administrators see them and may send
them again.

What is sent: ids and statuses only, never clinical content (no record kind or title, no
medication, no reason, no note). Each POST is signed Stripe-style:
`X-CareBridge-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" with the secret>`;
`X-CareBridge-Delivery` carries the delivery id, which the receiver deduplicates by (a crash
between sending and recording sends it again). Logs and `last_error` name delivery ids, error
classes and HTTP statuses, never the payload, the answer or the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import psycopg
from eventsourcing.postgres import PostgresDatastore
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from commands.eventstore import ListeningWorker, Statement
from commands.http_post import (
    FIRST_RETRY,
    HTTP_TIMEOUT_SECONDS,
    MAX_ATTEMPTS,
    DeliveryFailed,
    backoff,
    direct_opener,
    post,
)
from domain.access import Actor
from domain.errors import Conflict, Forbidden, NotFound, Rejections
from domain.identifiers import NHS, clinic_of
from domain.identity import Role

log = logging.getLogger("carebridge.webhooks")

SUBSCRIPTIONS = "carebridge.webhook_subscriptions"
DELIVERIES = "carebridge.webhook_deliveries"
INDEX = "carebridge.patient_identifier_index"
CHANNEL = "carebridge_webhook_deliveries"
SIGNATURE_HEADER = "X-CareBridge-Signature"
KEEPERS = frozenset({Role.CLINIC_ADMIN})
_SUBSCRIPTION_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

_APPOINTMENT = "carebridge:appointments.Appointment.{}.v1"
_PRESCRIPTION = "carebridge:prescriptions.PrescriptionRequest.{}.v1"
RECORD_RELEASED = "carebridge:records.Record.Released.v1"
APPOINTMENT_TYPES = {_APPOINTMENT.format("Confirmed"): ("appointment.booked", "booked"),
                     _APPOINTMENT.format("Cancelled"): ("appointment.cancelled", "cancelled"),
                     _APPOINTMENT.format("Rescheduled"): ("appointment.moved", "booked")}
# Statuses only, by topic (the event classes' own names may differ: Submitted is `Created`);
# the events' other fields (items, notes, reasons) never leave.
PRESCRIPTION_STATUSES = {
    "Submitted": "submitted", "ReviewStarted": "under_review", "Escalated": "escalated",
    "Approved": "approved", "Rejected": "rejected", "ReadyForCollection": "ready_for_collection",
    "SentToPharmacy": "sent_to_pharmacy", "HandoffFailed": "handoff_failed",
    "Completed": "completed", "Cancelled": "cancelled", "Delayed": "delayed"}
PRESCRIPTION_TOPICS = {_PRESCRIPTION.format(name): status
                       for name, status in PRESCRIPTION_STATUSES.items()}
EVENT_TYPES = ("appointment.booked", "appointment.cancelled", "appointment.moved",
               "record.released", "prescription.status")
TOPICS = {
    "appointments": tuple(APPOINTMENT_TYPES),
    "records": (RECORD_RELEASED,),
    "prescriptions": tuple(PRESCRIPTION_TOPICS),
}
_LOOKUPS = {"appointment": "SELECT clinic_id, patient_id FROM carebridge.slot_bookings"
                           " WHERE appointment_id = %s",
            "record": "SELECT clinic_id, patient_id FROM carebridge.records WHERE record_id = %s",
            "prescription_request": "SELECT clinic_id, patient_id FROM"
                                    " carebridge.prescription_requests WHERE request_id = %s"}


@dataclass(frozen=True)
class Subscription:
    clinic_id: str
    subscription_id: str
    url: str
    event_types: list[str]
    active: bool
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class DeliveryView:
    """A delivery as administrators see it: what and where, never the payload."""

    delivery_id: UUID
    clinic_id: str
    subscription_id: str
    event_type: str
    status: str  # pending | delivered | dead
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    retried_at: datetime | None


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header's value for `body` sent at `timestamp` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now: int, tolerance: int = 300) -> bool:
    """What a receiver checks: a v1 signature of this body, made within `tolerance` seconds."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts.get("t", ""))
    except ValueError:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(
        expected.encode(), parts.get("v1", "").encode())  # bytes: any header text compares


def _may_keep(actor: Actor, clinic_id: str | None = None) -> None:
    if actor.role not in KEEPERS or actor.system or (
            clinic_id is not None and clinic_id not in actor.clinic_ids):
        raise Forbidden("Only the clinic's administrators manage its webhooks.")


class Webhooks:
    """Subscriptions, and the dead-letter view of deliveries. `allow_loopback_http` lets
    development and tests use http://127.0.0.1 endpoints; everything else must be https://."""

    def __init__(self, datastore: PostgresDatastore, allow_loopback_http: bool = True) -> None:
        self.datastore = datastore
        self.allow_loopback_http = allow_loopback_http

    def put(self, actor: Actor, clinic_id: str, subscription_id: str, url: str,
            event_types: Sequence[str], secret: str | None, at: datetime,
            active: bool = True) -> tuple[Subscription, str | None]:
        """Adds or replaces a subscription (every field error at once). A new subscription
        without a secret gets one, returned once (the second value); a changed one without a
        secret keeps its secret."""
        _may_keep(actor, clinic_id)
        errors = Rejections()
        if not _SUBSCRIPTION_ID.match(subscription_id):
            errors.add("subscription_id", "Use up to 63 lower-case letters, digits and dashes.")
        problem = self._url_problem(url.strip())
        if problem:
            errors.add("url", problem)
        unknown = sorted(set(event_types) - set(EVENT_TYPES))
        if unknown or not event_types:
            errors.add("event_types", "Choose among " + ", ".join(EVENT_TYPES) + ".")
        if secret is not None and not 24 <= len(secret) <= 200:
            errors.add("secret", "Use a secret of 24 to 200 characters (or leave it out and "
                                 "CareBridge makes one).")
        errors.raise_if_any()
        issued = None
        with self.datastore.transaction(commit=True) as cur:
            known = cur.execute(
                f"SELECT secret FROM {SUBSCRIPTIONS} WHERE clinic_id = %s AND subscription_id = %s"
                " FOR UPDATE", (clinic_id, subscription_id)).fetchone()
            if secret is None and known is None:
                secret = issued = secrets.token_urlsafe(32)
            cur.execute(
                f"INSERT INTO {SUBSCRIPTIONS} (clinic_id, subscription_id, url, secret,"
                " event_types, active, updated_at, updated_by) VALUES (%s, %s, %s, %s, %s, %s,"
                " %s, %s) ON CONFLICT (clinic_id, subscription_id) DO UPDATE SET url = EXCLUDED.url,"
                " secret = coalesce(%s, webhook_subscriptions.secret),"
                " event_types = EXCLUDED.event_types, active = EXCLUDED.active,"
                " updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
                (clinic_id, subscription_id, url.strip(), secret or "", sorted(set(event_types)),
                 active, at, actor.ref, secret))
        log.info("webhook %s/%s saved by %s", clinic_id, subscription_id, actor.ref)
        found = self.get(actor, clinic_id, subscription_id)
        assert found is not None
        return found, issued

    def _url_problem(self, url: str) -> str | None:
        if len(url) > 500:
            return "The address is too long (at most 500 characters)."
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            return "Give the endpoint's https:// address."
        if not parts.hostname or parts.username or parts.password or parts.fragment:
            return "Give the endpoint's https:// address, without a user name or '#'."
        if parts.scheme == "https" or (parts.scheme == "http" and self.allow_loopback_http
                                       and parts.hostname in _LOOPBACK_HOSTS):
            return None
        return "The address must start with https://."

    def get(self, actor: Actor, clinic_id: str, subscription_id: str) -> Subscription | None:
        _may_keep(actor, clinic_id)
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"{_SUBSCRIPTION} WHERE clinic_id = %s AND subscription_id = %s",
                               (clinic_id, subscription_id)).fetchone()
        return Subscription(**row) if row else None

    def delete(self, actor: Actor, clinic_id: str, subscription_id: str) -> None:
        """Removes a subscription; its pending deliveries die with 'subscription removed'."""
        _may_keep(actor, clinic_id)
        with self.datastore.transaction(commit=True) as cur:
            gone = cur.execute(f"DELETE FROM {SUBSCRIPTIONS} WHERE clinic_id = %s"
                               " AND subscription_id = %s", (clinic_id, subscription_id)).rowcount
        if not gone:
            raise NotFound("There is no such webhook at this clinic.")
        log.info("webhook %s/%s removed by %s", clinic_id, subscription_id, actor.ref)

    def deliveries(self, actor: Actor, status: str = "dead", limit: int = 100) -> list[DeliveryView]:
        """Deliveries of the administrator's clinics with this status, oldest first."""
        _may_keep(actor)
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"{_DELIVERY} WHERE status = %s AND clinic_id = ANY(%s)"
                " ORDER BY created_at, delivery_id LIMIT %s",
                (status, sorted(actor.clinic_ids), max(1, min(limit, 500)))).fetchall()
        return [DeliveryView(**row) for row in rows]

    def retry(self, actor: Actor, delivery_id: UUID, at: datetime) -> DeliveryView:
        """Sends a dead delivery again with a fresh count; one already queued stays as it is."""
        _may_keep(actor)
        with self.datastore.transaction(commit=True) as cur:
            row = cur.execute(f"SELECT status, clinic_id FROM {DELIVERIES} WHERE delivery_id = %s"
                              " FOR UPDATE", (delivery_id,)).fetchone()
            if row is None or row["clinic_id"] not in actor.clinic_ids:
                raise NotFound("There is no such webhook delivery at your clinics.")
            if row["status"] == "delivered":
                raise Conflict("This delivery has already been received; there is nothing to "
                               "send again.")
            if row["status"] == "dead":
                cur.execute(f"UPDATE {DELIVERIES} SET status = 'pending', attempts = 0,"
                            " dead_at = NULL, next_attempt_at = %s, retried_by = %s,"
                            " retried_at = %s WHERE delivery_id = %s",
                            (at, actor.ref, at, delivery_id))
                cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
                log.info("webhook delivery %s sent back to the queue by %s", delivery_id,
                         actor.ref)
            view = cur.execute(f"{_DELIVERY} WHERE delivery_id = %s", (delivery_id,)).fetchone()
        assert view is not None
        return DeliveryView(**view)


_SUBSCRIPTION = (f"SELECT clinic_id, subscription_id, url, event_types, active, updated_at,"
                 f" updated_by FROM {SUBSCRIPTIONS}")
_DELIVERY = (f"SELECT delivery_id, clinic_id, subscription_id, event_type, status, attempts,"
             f" last_error, created_at, next_attempt_at, delivered_at, dead_at, retried_at"
             f" FROM {DELIVERIES}")


# ---- planning ---------------------------------------------------------------------------------


class WebhookPlanner:
    """Turns events into planned deliveries; run by a follower of the appointments, records and
    prescriptions logs (`TOPICS`), with its tracking position."""

    sources = TOPICS

    def statements(self, topic: str, event: Any, cur: Any) -> list[Statement]:
        """The deliveries one event calls for (`cur` reads the lookups)."""
        found = self._describe(topic, event)
        if found is None:
            return []
        event_type, kind, status = found
        row = cur.execute(_LOOKUPS[kind], (event.originator_id,)).fetchone()
        if row is None:
            return []
        clinic_id, patient_id = (row["clinic_id"], row["patient_id"]) if isinstance(row, dict) \
            else row
        event_key = f"{event.originator_id}:{event.originator_version}"
        payload = {"event_id": event_key, "type": event_type, "clinic_id": clinic_id,
                   "occurred_at": event.at.astimezone(UTC).isoformat(),
                   "data": {f"{kind}_id": str(event.originator_id), "status": status,
                            "patient": self._patient(cur, patient_id, clinic_id)}}
        return [
            Statement(f"INSERT INTO {DELIVERIES} (delivery_id, clinic_id, subscription_id,"
                      " event_type, event_key, payload, status, attempts, next_attempt_at,"
                      " created_at) SELECT gen_random_uuid(), clinic_id, subscription_id, %s, %s,"
                      f" %s, 'pending', 0, %s, %s FROM {SUBSCRIPTIONS} WHERE clinic_id = %s AND"
                      " active AND %s = ANY(event_types)"
                      " ON CONFLICT (clinic_id, subscription_id, event_key) DO NOTHING",
                      (event_type, event_key, Jsonb(payload), event.at, event.at, clinic_id,
                       event_type)),
            Statement("SELECT pg_notify(%s, '')", (CHANNEL,)),
        ]

    @staticmethod
    def _describe(topic: str, event: Any) -> tuple[str, str, str] | None:
        if topic in APPOINTMENT_TYPES:
            event_type, status = APPOINTMENT_TYPES[topic]
            return event_type, "appointment", status
        if topic == RECORD_RELEASED:
            return "record.released", "record", "released"
        if topic in PRESCRIPTION_TOPICS:
            return "prescription.status", "prescription_request", PRESCRIPTION_TOPICS[topic]
        return None

    @staticmethod
    def _patient(cur: Any, patient_id: UUID, clinic_id: str) -> dict[str, Any]:
        """The patient as the clinic's own systems know them: CareBridge's id and the local
        numbers of the clinic's systems (never the NHS number or a name)."""
        rows = cur.execute(f"SELECT system, value FROM {INDEX} WHERE patient_id = %s"
                           " ORDER BY system", (patient_id,)).fetchall()
        local = {}
        for row in rows:
            system, value = (row["system"], row["value"]) if isinstance(row, dict) else row
            if system != NHS and clinic_of(system) == clinic_id:
                local[system] = value
        return {"id": str(patient_id), "identifiers": local}


# ---- delivery ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    status: str
    reason: str | None


class WebhookDispatcher(ListeningWorker):
    """Delivers due webhook deliveries: `deliver_due()` once, or `start()` a thread that waits
    for new ones (LISTEN) and retries failed ones with backoff. `loopback_only` refuses, without
    opening any connection, every address that is not a loopback one (tests and development)."""

    channel, thread_name = CHANNEL, "webhooks"

    def __init__(self, database_url: str, max_attempts: int = MAX_ATTEMPTS,
                 first_retry: timedelta = FIRST_RETRY, poll_seconds: float = 5.0,
                 timeout: float = HTTP_TIMEOUT_SECONDS, loopback_only: bool = False,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(database_url, poll_seconds)
        self.max_attempts, self.first_retry = max_attempts, first_retry
        self.timeout, self.loopback_only, self.clock = timeout, loopback_only, clock
        self._opener = direct_opener()

    def deliver_due(self, limit: int = 100) -> int:
        """Tries each due delivery once, each in its own transaction; returns how many were
        delivered."""
        delivered = 0
        tried: list[UUID] = []
        with psycopg.connect(self.url, autocommit=False, row_factory=dict_row) as conn:
            for _ in range(limit):
                with conn.transaction():
                    row = conn.execute(
                        f"SELECT d.delivery_id, d.event_type, d.payload, d.attempts, s.url,"
                        f" s.secret FROM {DELIVERIES} d LEFT JOIN {SUBSCRIPTIONS} s"
                        " USING (clinic_id, subscription_id)"
                        " WHERE d.status = 'pending' AND d.next_attempt_at <= %s"
                        " AND d.delivery_id <> ALL(%s::uuid[])"
                        " ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED",
                        (self.clock(), tried)).fetchone()
                    if row is None:
                        break
                    tried.append(row["delivery_id"])
                    outcome = self._attempt(conn, row)
                delivered += outcome.status == "delivered"
        return delivered

    def _attempt(self, conn: psycopg.Connection[Any], row: dict[str, Any]) -> _Outcome:
        delivery_id, attempts = row["delivery_id"], row["attempts"] + 1
        try:
            if row["url"] is None:
                raise DeliveryFailed("subscription removed", permanent=True)
            self._post(row["url"], row["secret"], delivery_id, row["event_type"],
                       _body(row["payload"]))
        except Exception as error:  # every failure is either retried or dead-lettered
            reason = error.reason if isinstance(error, DeliveryFailed) else type(error).__name__
            permanent = isinstance(error, DeliveryFailed) and error.permanent
            return self._failed(conn, delivery_id, attempts, reason,
                                permanent or attempts >= self.max_attempts)
        conn.execute(f"UPDATE {DELIVERIES} SET status = 'delivered', attempts = %s,"
                     " delivered_at = %s, last_error = NULL WHERE delivery_id = %s",
                     (attempts, self.clock(), delivery_id))
        log.info("webhook delivery %s (%s) delivered, attempt %d", delivery_id,
                 row["event_type"], attempts)
        return _Outcome("delivered", None)

    def _post(self, url: str, secret: str, delivery_id: UUID, event_type: str,
              body: bytes) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http"):
            raise DeliveryFailed("unsupported address", permanent=True)
        if self.loopback_only and parts.hostname not in _LOOPBACK_HOSTS:
            raise DeliveryFailed("address not allowed", permanent=True)
        timestamp = int(self.clock().timestamp())
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "CareBridge-Webhooks/1",
                     SIGNATURE_HEADER: sign(secret, body, timestamp),
                     "X-CareBridge-Event": event_type,
                     "X-CareBridge-Delivery": str(delivery_id)})
        post(self._opener, request, self.timeout)

    def _failed(self, conn: psycopg.Connection[Any], delivery_id: UUID, attempts: int,
                reason: str, give_up: bool) -> _Outcome:
        at = self.clock()
        if give_up:
            conn.execute(f"UPDATE {DELIVERIES} SET status = 'dead', attempts = %s,"
                         " last_error = %s, dead_at = %s WHERE delivery_id = %s",
                         (attempts, reason, at, delivery_id))
            log.warning("webhook delivery %s is dead after attempt %d: %s", delivery_id,
                        attempts, reason)
            return _Outcome("dead", reason)
        conn.execute(f"UPDATE {DELIVERIES} SET attempts = %s, last_error = %s,"
                     " next_attempt_at = %s WHERE delivery_id = %s",
                     (attempts, reason, at + self._backoff(attempts), delivery_id))
        log.warning("webhook delivery %s not delivered, attempt %d: %s", delivery_id, attempts,
                    reason)
        return _Outcome("pending", reason)

    def _backoff(self, attempts: int) -> timedelta:
        """Doubling waits, capped, with jitter so that an endpoint back from an outage is not
        hit by every queued delivery at once."""
        return backoff(self.first_retry, attempts)

    def work(self) -> int:
        return self.deliver_due()


def _body(payload: Any) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
