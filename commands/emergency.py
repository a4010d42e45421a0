"""Emergency location sharing, the write side, and where live positions go.

Starting a share checks who may start it (the patient, or a proxy with the messaging scope),
the clinic's feature flag and the data-sharing consent (which the same request may give, so a
patient in distress is asked once, in one step); it tells the emergency contact by text, with a
link to a plain page that works while the share lasts. Each share is saved with its row in
`carebridge.emergency_shares` (the on-call list and the expiry sweep read it) and a NOTIFY on
`carebridge_emergency` so that every API process's on-call screens hear of it.

Positions are never events and never touch PostgreSQL: `LivePositions` keeps only the latest
one per share, with an expiry, in this process's memory or in Redis when there is a broker, and
hands each new one to the current viewers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from commands.care import CareAccessApplication
from commands.eventstore import CareApplication, EventStoreSettings, Statement
from commands.idempotency import IdempotencyKey, IdempotencyStore, Outcome, run_retrying
from commands.outbox import Message, enqueue
from commands.record_access import record_access
from domain.access import (
    Action,
    Actor,
    ClinicResource,
    PatientResource,
    authorise,
    authorise_ever,
)
from domain.consents import ConsentType
from domain.emergency import EmergencyShare, Position
from domain.emergency import Outcome as ShareOutcome
from domain.errors import FieldError, Forbidden, InvalidInput, NotFound, Unauthenticated
from domain.feature_flags import Feature

log = logging.getLogger("carebridge.emergency")

SHARES = "carebridge.emergency_shares"
CHANNEL = "carebridge_emergency"


class ConsentRequired(Forbidden):
    code = "consent-required"
    title = "Consent to share your information is needed first"


class LinkSigner:
    """Links for the emergency contact's page: the share, the link, when it stops working,
    signed with a key derived from the encryption key (HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        self._key = hashlib.sha256(b"carebridge emergency links\0" + key).digest()

    def sign(self, share_id: UUID, link_id: UUID, until: datetime) -> str:
        body = f"{share_id}.{link_id}.{int(until.timestamp())}"
        mac = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(body.encode() + b"." + mac).decode().rstrip("=")

    def verify(self, token: str, now: datetime) -> tuple[UUID, UUID]:
        refused = Unauthenticated("This link is not valid. Ask the person who sent it to share "
                                  "their location again.")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            body, mac = raw[:-19], raw[-18:]  # the MAC is 18 bytes and may hold a "."
            expected = hmac.new(self._key, body, hashlib.sha256).digest()[:18]
            share, link, until = body.decode().split(".")
        except (ValueError, UnicodeDecodeError):
            raise refused from None
        if not hmac.compare_digest(mac, expected) or int(until) < now.timestamp():
            raise refused
        return UUID(share), UUID(link)


class EmergencyApplication(CareApplication):
    name = "emergency"

    def __init__(self, store: EventStoreSettings, care: CareAccessApplication, consents: Any,
                 profiles: Any, feature_flags: Any, lasts: timedelta, limit: timedelta,
                 page_base: str, signer: LinkSigner) -> None:
        super().__init__(store)
        self.idempotency = IdempotencyStore(self.factory.datastore)  # type: ignore[attr-defined]
        self.care, self.consents, self.profiles = care, consents, profiles
        self.feature_flags, self.lasts, self.limit = feature_flags, lasts, limit
        self.page_base, self.signer = page_base.rstrip("/"), signer

    # ---- the patient's side -------------------------------------------------------------------

    def start(self, actor: Actor, patient_id: UUID, note: str | None,
              consent_version: str | None, clinic_id: str | None, at: datetime,
              key: IdempotencyKey | None = None) -> Outcome:
        """Starts sharing: the clinic named, else the patient's chosen clinic, else a clinic
        whose care team knows them; its on-call staff see the share."""
        authorise_ever(actor, Action.EMERGENCY_SHARE)
        relationship = self.care.relationship(actor, patient_id, at)
        authorise(actor, Action.EMERGENCY_SHARE, PatientResource(patient_id, relationship))
        clinic_id = clinic_id or self.profiles.preferred_clinic(patient_id) or next(
            iter(sorted(relationship.patient_clinics)), None)
        if clinic_id is None:
            raise InvalidInput([FieldError("clinic_id", "Say which clinic should see your "
                                           "location, or choose your clinic in your profile.")])
        self.feature_flags.require(Feature.EMERGENCY_LOCATION, patient_id, clinic_id)
        if not self.consents.holds(patient_id, ConsentType.DATA_SHARING):
            text = self.consents.current_text(ConsentType.DATA_SHARING)
            if consent_version is None:
                raise ConsentRequired(
                    "To share your location we need your consent to share your information "
                    "with your care team. Read it, then start again with consent_version set: "
                    "one step.", consent_type=ConsentType.DATA_SHARING.value,
                    text_version=text.current_version, text=text.texts[text.current_version])
            self.consents.give(actor, patient_id, ConsentType.DATA_SHARING, consent_version, at)
        contact = self._contact(patient_id)

        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            share = EmergencyShare.start(patient_id, clinic_id, note, self.lasts, by=actor.ref,
                                         at=at)
            also: list[Statement] = []
            if contact is not None:
                link_id = uuid.uuid4()
                share.grant_contact(link_id, contact.name, contact.relationship, by=actor.ref,
                                    at=at)
                also += self._tell_contact(share, link_id, contact, at)
            return self.view(share, at), [share], [*self._row(share, at), *also]

        return self._run(key, decide)

    def extend(self, actor: Actor, share_ref: UUID, at: datetime,
               key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.EMERGENCY_SHARE)
        self._patient_side(actor, self._get(share_ref), at)

        def extended(share: EmergencyShare) -> bool:
            share.extend(self.lasts, self.limit, by=actor.ref, at=at)
            return True

        return self._change(share_ref, at, key, extended)

    def stop(self, actor: Actor, share_ref: UUID, at: datetime,
             key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.EMERGENCY_SHARE)
        self._patient_side(actor, self._get(share_ref), at)
        return self._change(share_ref, at, key, lambda s: s.stop(by=actor.ref, at=at))

    def sender_share(self, actor: Actor, share_ref: UUID, at: datetime) -> EmergencyShare:
        """The share whose positions this caller's phone may send (the patient or the proxy
        who started it); refused once it has ended."""
        authorise_ever(actor, Action.EMERGENCY_SHARE)
        share = self._get(share_ref)
        self._patient_side(actor, share, at)
        share._require_active(at)
        return share

    def patient_share(self, actor: Actor, share_ref: UUID, at: datetime) -> dict[str, Any]:
        authorise_ever(actor, Action.EMERGENCY_SHARE)
        share = self._get(share_ref)
        self._patient_side(actor, share, at)
        return self.view(share, at)

    # ---- the clinic's on-call staff -----------------------------------------------------------

    def active(self, actor: Actor, clinic_id: str, at: datetime) -> list[dict[str, Any]]:
        authorise_ever(actor, Action.EMERGENCY_RESPOND)
        authorise(actor, Action.EMERGENCY_RESPOND, ClinicResource(clinic_id))
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(f"SELECT share_id FROM {SHARES} WHERE clinic_id = %s"
                                " AND state = 'active' AND expires_at > %s ORDER BY started_at",
                                (clinic_id, at)).fetchall()
        return [self.staff_view(self._get(r["share_id"]), at) for r in rows]

    def staff_share(self, actor: Actor, share_ref: UUID, at: datetime) -> dict[str, Any]:
        """One share for the on-call staff; the view is recorded, and the first look is part
        of the share's story."""
        authorise_ever(actor, Action.EMERGENCY_RESPOND)
        share = self._get(share_ref)
        authorise(actor, Action.EMERGENCY_RESPOND, ClinicResource(share.clinic_id))
        self._looked(share, actor.ref, at)
        return self.staff_view(share, at)

    def close_share(self, actor: Actor, share_ref: UUID, outcome: ShareOutcome, at: datetime,
                    key: IdempotencyKey | None = None) -> Outcome:
        authorise_ever(actor, Action.EMERGENCY_RESPOND)
        share = self._get(share_ref)
        authorise(actor, Action.EMERGENCY_RESPOND, ClinicResource(share.clinic_id))
        return self._change(share_ref, at, key, lambda s: s.close(outcome, by=actor.ref, at=at))

    def may_watch(self, actor: Actor, clinic_id: str) -> None:
        authorise_ever(actor, Action.EMERGENCY_RESPOND)
        authorise(actor, Action.EMERGENCY_RESPOND, ClinicResource(clinic_id))

    # ---- the emergency contact ----------------------------------------------------------------

    def contact_share(self, token: str, at: datetime) -> EmergencyShare:
        """The share behind a contact's link: refused once the share has ended. The view is
        recorded (by the link, not a person's name)."""
        share_id, link_id = self.signer.verify(token, at)
        share = self._get(share_id)
        if link_id not in share.links:
            raise Unauthenticated("This link is not valid.")
        share._require_active(at)
        self._looked(share, f"emergency_contact:{link_id}", at)
        return share

    # ---- the sweep ----------------------------------------------------------------------------

    def expire_due(self, at: datetime) -> int:
        with self.factory.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(f"SELECT share_id FROM {SHARES} WHERE state = 'active'"
                                " AND expires_at <= %s LIMIT 500", (at,)).fetchall()
        ended = 0
        for row in rows:
            outcome = self._change(row["share_id"], at, None, lambda s: s.expire(at))
            ended += bool(outcome.result.get("changed"))
        return ended

    # ---- views --------------------------------------------------------------------------------

    def view(self, s: EmergencyShare, at: datetime) -> dict[str, Any]:
        return {"share_id": str(s.id), "patient_id": str(s.patient_id),
                "clinic_id": s.clinic_id, "state": s.state.value if s.is_active(at) or
                s.state.value != "active" else "expired",
                "started_at": s.started_at.isoformat(), "expires_at": s.expires_at.isoformat(),
                "ended_at": s.ended_at.isoformat() if s.ended_at else None,
                "contact_told": bool(s.told), "version": s.version}

    def staff_view(self, s: EmergencyShare, at: datetime) -> dict[str, Any]:
        account = self.care.identity.find_account(s.patient_id)
        return {**self.view(s, at), "note": s.note,
                "patient_name": f"{account.given_name} {account.family_name}" if account
                else None, "phone": getattr(account, "mobile_phone", None),
                "outcome": s.outcome.value if s.outcome else None}

    # ---- helpers ------------------------------------------------------------------------------

    def _patient_side(self, actor: Actor, share: EmergencyShare, at: datetime) -> None:
        authorise_ever(actor, Action.EMERGENCY_SHARE)
        relationship = self.care.relationship(actor, share.patient_id, at)
        authorise(actor, Action.EMERGENCY_SHARE, PatientResource(share.patient_id, relationship))

    def _looked(self, share: EmergencyShare, viewer: str, at: datetime) -> None:
        record_access(self.factory.datastore, viewer,  # type: ignore[attr-defined]
                      share.patient_id, "emergency_share", share.id, at)
        if viewer not in share.lookers:
            self._change(share.id, at, None, lambda s: s.looked(viewer, at), notify=False)

    def _contact(self, patient_id: UUID) -> Any:
        profile = self.profiles._state(patient_id)
        contact = getattr(profile, "emergency_contact", None)
        return contact if contact is not None and getattr(contact, "phone", None) else None

    def _tell_contact(self, share: EmergencyShare, link_id: UUID, contact: Any,
                      at: datetime) -> list[Statement]:
        account = self.care.identity.find_account(share.patient_id)
        name = account.given_name if account else "Someone you know"
        token = self.signer.sign(share.id, link_id, share.started_at + self.limit)
        return enqueue(Message("emergency_contact_alert", "sms", share.patient_id, contact.phone,
                               {"name": name, "link": f"{self.page_base}/emergency/{token}"}),
                       at, about_id=share.id)

    def _change(self, share_ref: UUID, at: datetime, key: IdempotencyKey | None,
                change: Callable[[EmergencyShare], bool], notify: bool = True) -> Outcome:
        def decide() -> tuple[dict[str, Any], list[Any], list[Statement]]:
            current = self._get(share_ref)
            if not change(current):
                return self.view(current, at), [], []
            rows = self._row(current, at) if notify else self._row(current, at)[:1]
            return self.view(current, at), [current], rows

        return self._run(key, decide)

    def _row(self, s: EmergencyShare, at: datetime) -> list[Statement]:
        return [Statement(
            f"INSERT INTO {SHARES} (share_id, patient_id, clinic_id, state, started_at,"
            " expires_at, ended_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (share_id) DO UPDATE SET state = EXCLUDED.state,"
            " expires_at = EXCLUDED.expires_at, ended_at = EXCLUDED.ended_at,"
            " updated_at = EXCLUDED.updated_at",
            (s.id, s.patient_id, s.clinic_id, s.state.value, s.started_at, s.expires_at,
             s.ended_at, at)),
            Statement("SELECT pg_notify(%s, %s)", (CHANNEL, json.dumps({
                "share_id": str(s.id), "clinic_id": s.clinic_id,
                "patient_id": str(s.patient_id), "state": s.state.value})))]

    def _run(self, key: IdempotencyKey | None, decide: Any) -> Outcome:
        return run_retrying(self, self.idempotency, key, decide, "this emergency share")

    def _get(self, ref: UUID) -> EmergencyShare:
        try:
            found: Any = self.repository.get(ref)
        except AggregateNotFoundError:
            found = None
        if not isinstance(found, EmergencyShare):
            raise NotFound("There is no such emergency share.")
        return found


# ---- live positions ---------------------------------------------------------------------------


class LivePositions:
    """The latest position of each active share, and the viewers to hand new ones to.

    Only the latest position (and the first, to say how far the patient has moved) is kept, for
    `keep_seconds`, in this process's memory — or in Redis (SET with an expiry, and PUBLISH to
    the other API processes) when a broker URL is configured. Nothing here is ever written to
    PostgreSQL or logged.
    """

    def __init__(self, keep_seconds: float, redis_url: str | None = None) -> None:
        self.keep_seconds = keep_seconds
        self._held: dict[UUID, tuple[Position, Position, float]] = {}  # first, latest, until
        self._lock = threading.Lock()
        self._viewers: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Queue[Any]]] = []
        self._origin = uuid.uuid4().hex
        self._redis_url = redis_url
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None
        # One writer thread: Redis gets the positions in the order they came.
        self._writer = ThreadPoolExecutor(1, "positions-redis") if redis_url else None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url)

    def put(self, share_id: UUID, clinic_id: str, position: Position) -> None:
        """A new position (from a coroutine on the API's event loop)."""
        with self._lock:
            held = self._held.get(share_id)
            first = held[0] if held is not None and held[2] > time.monotonic() else position
            self._held[share_id] = (first, position, time.monotonic() + self.keep_seconds)
        frame = _frame(share_id, clinic_id, position)
        if self._redis is not None:
            payload = json.dumps({**frame, "first": _frame(share_id, clinic_id, first),
                                  "origin": self._origin})
            # Called on the event loop: Redis is written from a worker thread.
            asyncio.get_running_loop().run_in_executor(self._writer, self._share, share_id, payload)
        self.hand_out(frame)

    def _share(self, share_id: UUID, payload: str) -> None:
        """Keeps the latest position in Redis for the other API processes, and tells them."""
        try:
            self._redis.set(f"carebridge:position:{share_id}", payload,
                            ex=max(1, int(self.keep_seconds)))
            self._redis.publish("carebridge:positions", payload)
        except Exception as error:  # the local viewers were served; say so, without content
            log.warning("positions: Redis unavailable (%s)", type(error).__name__)

    def latest(self, share_id: UUID) -> tuple[Position, Position] | None:
        """(first, latest) for the share, if a position is still held."""
        with self._lock:
            held = self._held.get(share_id)
            if held is not None and held[2] > time.monotonic():
                return held[0], held[1]
        if self._redis is not None:
            raw = self._redis.get(f"carebridge:position:{share_id}")
            if raw:
                data = json.loads(raw)
                return _position(data["first"]), _position(data)
        return None

    def forget(self, share_id: UUID) -> None:
        with self._lock:
            self._held.pop(share_id, None)
        if self._redis is not None:
            self._redis.delete(f"carebridge:position:{share_id}")

    def watch(self, may_see: Callable[[dict[str, Any]], bool]) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._viewers.append((may_see, queue))
        return queue

    def unwatch(self, queue: asyncio.Queue[Any]) -> None:
        self._viewers = [v for v in self._viewers if v[1] is not queue]

    def hand_out(self, frame: dict[str, Any]) -> None:
        for may_see, queue in list(self._viewers):
            if may_see(frame):
                queue.put_nowait(frame)

    async def start(self) -> None:
        if self._redis_url:
            self._task = asyncio.create_task(self._relay(), name="positions-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._writer is not None:  # the writes under way finish first
            await asyncio.to_thread(self._writer.shutdown)
        if self._redis is not None:
            self._redis.close()

    async def _relay(self) -> None:
        """Positions other API processes received, for this process's viewers."""
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self._redis_url or "")
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe("carebridge:positions")
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    frame = json.loads(message["data"])
                    frame.pop("first", None)
                    if frame.pop("origin", None) != self._origin:
                        self.hand_out(frame)
        finally:
            await client.aclose()


def _frame(share_id: UUID, clinic_id: str, p: Position) -> dict[str, Any]:
    return {"type": "position", "share_id": str(share_id), "clinic_id": clinic_id,
            "latitude": p.latitude, "longitude": p.longitude, "accuracy": p.accuracy,
            "at": p.at.isoformat()}


def _position(data: dict[str, Any]) -> Position:
    return Position(data["latitude"], data["longitude"], data["accuracy"],
                    datetime.fromisoformat(data["at"]))
