"""The pharmacy directory, and the handoff of approved prescriptions to pharmacies.

Clinic administrators keep the directory: where each pharmacy is and how a prescription reaches
it, by HTTPS (a JSON POST) or by file drop (a JSON file in a folder the pharmacy's own system
collects from). Patients choose from it and never see the channel or the endpoint.

The handoff works like the notification outbox (commands/outbox.py): the approval saves a
handoff row with its events (`PharmacyDirectory.handoff` gives the statements), so a
prescription goes out if and only if it was approved. A dispatcher claims due rows (`FOR UPDATE
SKIP LOCKED`, so several processes can share the work), delivers each through the pharmacy's
channel, retries failures with exponential backoff and jitter, and after the last attempt (or a
refusal no retry can cure) marks the handoff dead; staff see dead handoffs in the dead-letter
view and may send them again. Once delivered, the prescription is erased from the row; its
SHA-256 stays to show what was sent. The pharmacy deduplicates by the handoff id (the HTTP
`Idempotency-Key`, the file's name), because a crash between sending and marking delivered
sends it again.

Logs and `last_error` name handoff and request ids, error classes and HTTP statuses, never the
prescription, the endpoint's answer or a token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
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
from domain.identity import Role

log = logging.getLogger("carebridge.pharmacy")

PHARMACIES = "carebridge.pharmacies"
HANDOFFS = "carebridge.pharmacy_handoffs"
CHANNEL = "carebridge_pharmacy_handoffs"

# Who may do what. Pharmacies serve the whole network, so the directory is the clinic
# administrators'; a handoff belongs to its request's clinic, and that clinic's coordinators
# and administrators work its dead letters.
DIRECTORY_KEEPERS = frozenset({Role.CLINIC_ADMIN})
HANDOFF_WORKERS = frozenset({Role.PRESCRIPTION_COORDINATOR, Role.CLINIC_ADMIN})

_PHARMACY_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_FOLDER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_POSTCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ]{1,9}$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{5,24}$")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})
CHANNELS = ("http", "file")


@dataclass(frozen=True)
class Pharmacy:
    """A directory entry as its administrators keep it (the endpoint is never shown to
    patients: see `Listing`)."""

    pharmacy_id: str
    name: str
    address: str
    postcode: str
    phone: str
    channel: str  # http | file
    endpoint: str  # an URL, or a folder name under the drop directory
    active: bool = True


@dataclass(frozen=True)
class Listing:
    """What a patient sees of a pharmacy when choosing one."""

    pharmacy_id: str
    name: str
    address: str
    postcode: str
    phone: str


@dataclass(frozen=True)
class HandoffView:
    """A handoff as staff see it: where and how it went, never the prescription."""

    handoff_id: UUID
    request_id: UUID
    clinic_id: str
    pharmacy_id: str
    pharmacy_name: str
    status: str  # pending | delivered | dead
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None
    retried_at: datetime | None


def _collapse(value: str) -> str:
    return " ".join(value.split())


def _postcode_key(postcode: str) -> str:
    return postcode.replace(" ", "").upper()


class PharmacyDirectory:
    """The directory of pharmacies, the statements that queue a handoff, and the dead-letter
    view. `allow_loopback_http` lets development and tests use http://127.0.0.1 and
    http://localhost endpoints; everything else must be https://."""

    def __init__(self, datastore: PostgresDatastore, allow_loopback_http: bool = True) -> None:
        self.datastore = datastore
        self.allow_loopback_http = allow_loopback_http

    # ---- the directory ------------------------------------------------------------------------

    def put(self, actor: Actor, pharmacy: Pharmacy, at: datetime) -> Pharmacy:
        """Adds or replaces a pharmacy (clinic administrators). Every field error at once."""
        if actor.role not in DIRECTORY_KEEPERS:
            raise Forbidden("Only clinic administrators keep the pharmacy directory.")
        clean = self._checked(pharmacy)
        with self.datastore.transaction(commit=True) as cur:
            cur.execute(
                f"INSERT INTO {PHARMACIES} (pharmacy_id, name, address, postcode, phone, channel,"
                " endpoint, active, updated_at, updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s,"
                " %s, %s, %s) ON CONFLICT (pharmacy_id) DO UPDATE SET name = EXCLUDED.name,"
                " address = EXCLUDED.address, postcode = EXCLUDED.postcode,"
                " phone = EXCLUDED.phone, channel = EXCLUDED.channel,"
                " endpoint = EXCLUDED.endpoint, active = EXCLUDED.active,"
                " updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by",
                (clean.pharmacy_id, clean.name, clean.address, clean.postcode, clean.phone,
                 clean.channel, clean.endpoint, clean.active, at, actor.ref))
        log.info("pharmacy %s saved by %s", clean.pharmacy_id, actor.ref)
        return clean

    def _checked(self, pharmacy: Pharmacy) -> Pharmacy:
        errors = Rejections()
        if not _PHARMACY_ID.match(pharmacy.pharmacy_id):
            errors.add("pharmacy_id", "Use 2 to 63 lower-case letters, digits and dashes, "
                                      "starting with a letter or digit.")
        name, address = _collapse(pharmacy.name), _collapse(pharmacy.address)
        if not 1 <= len(name) <= 200:
            errors.add("name", "Give the pharmacy's name (at most 200 characters).")
        if not 1 <= len(address) <= 300:
            errors.add("address", "Give the pharmacy's address (at most 300 characters).")
        postcode = _collapse(pharmacy.postcode).upper()
        if not _POSTCODE.match(postcode):
            errors.add("postcode", "Give the postcode, for example BS1 4DJ.")
        phone = _collapse(pharmacy.phone)
        if not _PHONE.match(phone):
            errors.add("phone", "Give a phone number of digits, spaces and dashes, for "
                                "example 0117 496 0000.")
        endpoint = pharmacy.endpoint.strip()
        if pharmacy.channel not in CHANNELS:
            errors.add("channel", "Choose 'http' (the pharmacy's HTTPS endpoint) or 'file' "
                                  "(a folder in the drop directory).")
        elif pharmacy.channel == "http":
            problem = self._url_problem(endpoint)
            if problem:
                errors.add("endpoint", problem)
        elif not _FOLDER.match(endpoint):
            errors.add("endpoint", "Give a folder name of letters, digits, '.', '_' and '-' "
                                   "(at most 64), without slashes.")
        errors.raise_if_any()
        return Pharmacy(pharmacy.pharmacy_id, name, address, postcode, phone, pharmacy.channel,
                        endpoint, pharmacy.active)

    def _url_problem(self, endpoint: str) -> str | None:
        if len(endpoint) > 500:
            return "The address is too long (at most 500 characters)."
        try:
            parts = urlsplit(endpoint)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError:
            return "Give the pharmacy's https:// address."
        if not parts.hostname or parts.username or parts.password or parts.fragment:
            return "Give the pharmacy's https:// address, without a user name or '#'."
        if parts.scheme == "https":
            return None
        if parts.scheme == "http" and self.allow_loopback_http \
                and parts.hostname in _LOOPBACK_HOSTS:
            return None
        return "The address must start with https:// (prescriptions travel encrypted)."

    def search(self, q: str | None = None, postcode: str | None = None,
               limit: int = 20) -> list[Listing]:
        """Active pharmacies whose name or address contains `q` and whose postcode starts with
        `postcode`, by name."""
        conditions, params = ["active"], []
        if q and q.strip():
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", _collapse(q)) + "%"
            conditions.append("(name ILIKE %s OR address ILIKE %s)")
            params += [pattern, pattern]
        if postcode and postcode.strip():
            conditions.append("upper(replace(postcode, ' ', '')) LIKE %s")
            params.append(re.sub(r"[^A-Z0-9]", "", _postcode_key(postcode)) + "%")
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"SELECT pharmacy_id, name, address, postcode, phone FROM {PHARMACIES}"
                f" WHERE {' AND '.join(conditions)} ORDER BY name, pharmacy_id LIMIT %s",
                (*params, max(1, min(limit, 100)))).fetchall()
        return [Listing(**row) for row in rows]

    def get(self, pharmacy_id: str) -> Pharmacy | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                f"SELECT pharmacy_id, name, address, postcode, phone, channel, endpoint, active"
                f" FROM {PHARMACIES} WHERE pharmacy_id = %s", (pharmacy_id,)).fetchone()
        return Pharmacy(**row) if row else None

    # ---- handing off ------------------------------------------------------------------------

    def handoff(self, request_id: UUID, pharmacy_id: str, payload: dict[str, Any],
                at: datetime) -> list[Statement]:
        """The statements that queue a prescription for its pharmacy; save them with the
        approval (`save_all(..., also=...)`). The payload names the request's clinic
        (`clinic_id`), whose staff then see the handoff."""
        return handoff(request_id, pharmacy_id, payload, at)

    # ---- the dead-letter view ---------------------------------------------------------------

    def handoffs(self, actor: Actor, status: str = "dead", limit: int = 100) -> list[HandoffView]:
        """Handoffs of the actor's clinics with this status, oldest first."""
        _may_work_handoffs(actor)
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                f"{_VIEW} WHERE h.status = %s AND h.clinic_id = ANY(%s)"
                " ORDER BY h.created_at, h.handoff_id LIMIT %s",
                (status, sorted(actor.clinic_ids), max(1, min(limit, 500)))).fetchall()
        return [HandoffView(**row) for row in rows]

    def dead_letters(self, actor: Actor, limit: int = 100) -> list[HandoffView]:
        return self.handoffs(actor, "dead", limit)

    def retry(self, handoff_id: UUID, actor: Actor, at: datetime) -> HandoffView:
        """Sends a dead handoff again: back in the queue with a fresh count of attempts. A
        handoff already back in the queue stays as it is (a repeated click does nothing)."""
        _may_work_handoffs(actor)
        with self.datastore.transaction(commit=True) as cur:
            row = cur.execute(
                f"SELECT status, clinic_id FROM {HANDOFFS} WHERE handoff_id = %s FOR UPDATE",
                (handoff_id,)).fetchone()
            if row is None or row["clinic_id"] not in actor.clinic_ids:
                raise NotFound("There is no such pharmacy handoff at your clinics.")
            if row["status"] == "delivered":
                raise Conflict("The pharmacy has already received this prescription; there is "
                               "nothing to send again.")
            if row["status"] == "dead":
                cur.execute(
                    f"UPDATE {HANDOFFS} SET status = 'pending', attempts = 0, dead_at = NULL,"
                    " next_attempt_at = %s, retried_by = %s, retried_at = %s"
                    " WHERE handoff_id = %s", (at, actor.ref, at, handoff_id))
                cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
                log.info("pharmacy handoff %s sent back to the queue by %s", handoff_id,
                         actor.ref)
            view = cur.execute(f"{_VIEW} WHERE h.handoff_id = %s", (handoff_id,)).fetchone()
        assert view is not None  # locked above
        return HandoffView(**view)


_VIEW = (f"SELECT h.handoff_id, h.request_id, h.clinic_id, h.pharmacy_id,"
         f" p.name AS pharmacy_name, h.status, h.attempts, h.last_error, h.created_at,"
         f" h.next_attempt_at, h.delivered_at, h.dead_at, h.retried_at"
         f" FROM {HANDOFFS} h JOIN {PHARMACIES} p USING (pharmacy_id)")


def _may_work_handoffs(actor: Actor) -> None:
    if actor.role not in HANDOFF_WORKERS:
        raise Forbidden("Only prescription coordinators and clinic administrators work the "
                        "pharmacy handoffs.")


def canonical(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def handoff(request_id: UUID, pharmacy_id: str, payload: dict[str, Any],
            at: datetime) -> list[Statement]:
    """The statements that queue a handoff (and wake the dispatchers when they commit)."""
    clinic_id = payload.get("clinic_id")
    if not isinstance(clinic_id, str) or not clinic_id:
        raise ValueError("a pharmacy handoff's payload must name its clinic (clinic_id)")
    digest = hashlib.sha256(canonical(payload)).hexdigest()
    return [
        Statement(f"INSERT INTO {HANDOFFS} (handoff_id, request_id, clinic_id, pharmacy_id,"
                  " payload, payload_sha256, status, attempts, next_attempt_at, created_at)"
                  " VALUES (%s, %s, %s, %s, %s, %s, 'pending', 0, %s, %s)",
                  (uuid.uuid4(), request_id, clinic_id, pharmacy_id, Jsonb(payload), digest, at,
                   at)),
        Statement("SELECT pg_notify(%s, '')", (CHANNEL,)),
    ]


# ---- delivery -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingHandoff:
    """A claimed handoff, ready to deliver."""

    handoff_id: UUID
    request_id: UUID
    pharmacy_id: str
    endpoint: str
    payload: dict[str, Any]

    def document(self) -> bytes:
        """What the pharmacy receives, the same by either channel."""
        return canonical({"handoff_id": str(self.handoff_id),
                          "request_id": str(self.request_id),
                          "pharmacy_id": self.pharmacy_id, "prescription": self.payload})


class Adapter(Protocol):
    def deliver(self, handoff: OutgoingHandoff) -> None: ...


class HttpPharmacyAdapter:
    """POSTs the handoff as JSON to the pharmacy's endpoint, with `Idempotency-Key: <handoff
    id>` and an optional bearer token. 2xx is delivered; 408, 429, 5xx and network errors are
    retried; any other answer is permanent. No proxies from the environment, no redirects."""

    def __init__(self, token: str | None = None, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        self.token, self.timeout = token, timeout
        self._opener = direct_opener()

    def deliver(self, handoff: OutgoingHandoff) -> None:
        if urlsplit(handoff.endpoint).scheme not in ("https", "http"):
            raise DeliveryFailed("unsupported address", permanent=True)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
            handoff.endpoint, data=handoff.document(), method="POST",
            headers={"Content-Type": "application/json",
                     "Idempotency-Key": str(handoff.handoff_id)})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        post(self._opener, request, self.timeout)


class FileDropAdapter:
    """Writes the handoff to `<root>/<endpoint>/<handoff id>.json` atomically (a hidden temp
    file, fsync, rename, fsync of the folder), so the pharmacy's collector never sees half a
    file. A file already there with the same id counts as delivered."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def deliver(self, handoff: OutgoingHandoff) -> None:
        if not _FOLDER.match(handoff.endpoint):
            raise DeliveryFailed("unsupported folder", permanent=True)
        folder = self.root / handoff.endpoint
        final = folder / f"{handoff.handoff_id}.json"
        if final.exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{handoff.handoff_id}.{uuid.uuid4().hex}.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        try:
            with os.fdopen(descriptor, "wb") as out:
                out.write(handoff.document())
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


OnDelivered = Callable[[UUID, UUID, datetime], None]
OnDead = Callable[[UUID, UUID, str, datetime], None]


@dataclass(frozen=True)
class _Outcome:
    request_id: UUID
    handoff_id: UUID
    status: str  # pending | delivered | dead
    reason: str | None
    at: datetime


class PharmacyHandoffDispatcher(ListeningWorker):
    """Delivers due handoffs: `deliver_due()` once, or `start()` a thread that waits for new
    ones (LISTEN) and retries failed ones with backoff.

    `on_delivered(request_id, handoff_id, at)` and `on_dead(request_id, handoff_id, reason, at)`
    run after the handoff's row has committed. They must be idempotent: a callback that raises
    is logged and the row keeps its status, and a handoff sent again from the dead-letter view
    reports its outcome again."""

    channel, thread_name = CHANNEL, "pharmacy-handoffs"

    def __init__(self, database_url: str, adapters: dict[str, Adapter],
                 on_delivered: OnDelivered | None = None, on_dead: OnDead | None = None,
                 max_attempts: int = MAX_ATTEMPTS, first_retry: timedelta = FIRST_RETRY,
                 poll_seconds: float = 5.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        super().__init__(database_url, poll_seconds)
        self.adapters = adapters
        self.on_delivered, self.on_dead = on_delivered, on_dead
        self.max_attempts, self.first_retry = max_attempts, first_retry
        self.clock = clock

    def deliver_due(self, limit: int = 100) -> int:
        """Tries each due handoff once, each in its own transaction (up to `limit`); returns
        how many were delivered."""
        delivered = 0
        tried: list[UUID] = []
        with psycopg.connect(self.url, autocommit=False, row_factory=dict_row) as conn:
            for _ in range(limit):
                with conn.transaction():
                    # A pharmacy made inactive after the approval still gets what was approved
                    # for it: inactive only takes it out of the patients' choice.
                    row = conn.execute(
                        f"SELECT h.handoff_id, h.request_id, h.pharmacy_id, h.payload,"
                        f" h.attempts, p.channel, p.endpoint FROM {HANDOFFS} h"
                        f" JOIN {PHARMACIES} p USING (pharmacy_id)"
                        " WHERE h.status = 'pending' AND h.next_attempt_at <= %s"
                        " AND h.handoff_id <> ALL(%s::uuid[])"
                        " ORDER BY h.next_attempt_at LIMIT 1 FOR UPDATE OF h SKIP LOCKED",
                        (self.clock(), tried)).fetchone()
                    if row is None:
                        break
                    tried.append(row["handoff_id"])
                    outcome = self._attempt(conn, row)
                self._report(outcome)
                delivered += outcome.status == "delivered"
        return delivered

    def _attempt(self, conn: psycopg.Connection[Any], row: dict[str, Any]) -> _Outcome:
        handoff = OutgoingHandoff(row["handoff_id"], row["request_id"], row["pharmacy_id"],
                                  row["endpoint"], dict(row["payload"] or {}))
        attempts = row["attempts"] + 1
        adapter = self.adapters.get(row["channel"])
        try:
            if adapter is None:
                raise DeliveryFailed(f"no {row['channel']} channel configured", permanent=False)
            adapter.deliver(handoff)
        except Exception as error:  # every failure is either retried or dead-lettered
            reason = error.reason if isinstance(error, DeliveryFailed) else type(error).__name__
            permanent = isinstance(error, DeliveryFailed) and error.permanent
            return self._failed(conn, handoff, attempts, reason,
                                permanent or attempts >= self.max_attempts)
        at = self.clock()
        conn.execute(
            f"UPDATE {HANDOFFS} SET status = 'delivered', attempts = %s, delivered_at = %s,"
            " payload = NULL, last_error = NULL WHERE handoff_id = %s",
            (attempts, at, handoff.handoff_id))
        log.info("pharmacy handoff %s (request %s) delivered to %s, attempt %d",
                 handoff.handoff_id, handoff.request_id, handoff.pharmacy_id, attempts)
        return _Outcome(handoff.request_id, handoff.handoff_id, "delivered", None, at)

    def _failed(self, conn: psycopg.Connection[Any], handoff: OutgoingHandoff, attempts: int,
                reason: str, give_up: bool) -> _Outcome:
        at = self.clock()
        if give_up:
            conn.execute(
                f"UPDATE {HANDOFFS} SET status = 'dead', attempts = %s, last_error = %s,"
                " dead_at = %s WHERE handoff_id = %s",
                (attempts, reason, at, handoff.handoff_id))
            log.warning("pharmacy handoff %s (request %s) to %s is dead after attempt %d: %s",
                        handoff.handoff_id, handoff.request_id, handoff.pharmacy_id, attempts,
                        reason)
            return _Outcome(handoff.request_id, handoff.handoff_id, "dead", reason, at)
        conn.execute(
            f"UPDATE {HANDOFFS} SET attempts = %s, last_error = %s, next_attempt_at = %s"
            " WHERE handoff_id = %s",
            (attempts, reason, at + self._backoff(attempts), handoff.handoff_id))
        log.warning("pharmacy handoff %s (request %s) to %s not delivered, attempt %d: %s",
                    handoff.handoff_id, handoff.request_id, handoff.pharmacy_id, attempts, reason)
        return _Outcome(handoff.request_id, handoff.handoff_id, "pending", reason, at)

    def _backoff(self, attempts: int) -> timedelta:
        """Doubling waits, capped, with jitter so that a pharmacy back from an outage is not
        hit by every queued handoff at the same moment."""
        return backoff(self.first_retry, attempts)

    def _report(self, outcome: _Outcome) -> None:
        try:
            if outcome.status == "delivered" and self.on_delivered is not None:
                self.on_delivered(outcome.request_id, outcome.handoff_id, outcome.at)
            elif outcome.status == "dead" and self.on_dead is not None:
                self.on_dead(outcome.request_id, outcome.handoff_id, outcome.reason or "",
                             outcome.at)
        except Exception as error:  # the handoff itself is settled: keep its status
            log.warning("pharmacy handoff %s (request %s): the %s callback failed: %s",
                        outcome.handoff_id, outcome.request_id, outcome.status,
                        type(error).__name__)

    def work(self) -> int:
        return self.deliver_due()


def adapters_from(settings: Any, data_dir: Path) -> dict[str, Adapter]:
    """HTTPS with the configured bearer token, and the file drop under `pharmacy_drop_dir`
    (by default <data_dir>/pharmacy-drop)."""
    token = settings.pharmacy_http_token
    return {"http": HttpPharmacyAdapter(token.get_secret_value() if token else None),
            "file": FileDropAdapter(settings.pharmacy_drop_dir or data_dir / "pharmacy-drop")}
