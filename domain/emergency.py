"""Emergency assistance: a patient in distress shares their live location with the clinic's
on-call staff and their emergency contact, so that help can find them.

The share is an aggregate: who started it and why, who was told, who looked, and how it ended
(stopped by the patient, closed by staff with an outcome, or expired). Positions themselves are
deliberately *not* events: they flow to the current viewers and only the latest is kept, in
memory or Redis with an expiry (`commands/emergency.py`).

    active ──stop──▶ stopped
       ├──close (staff, with an outcome)──▶ closed
       └──its time runs out (unless extended)──▶ expired
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, FieldError, InvalidInput

CONTEXT = "emergency"
NOTE_MAX = 280
MAX_ACCURACY_METRES = 5000.0
STALE_AFTER = timedelta(minutes=2)
FUTURE_TOLERANCE = timedelta(seconds=30)
# Faster than an airliner between two fixes is not a real movement (a bad fix).
MAX_SPEED_METRES_PER_SECOND = 300.0


class ShareState(StrEnum):
    ACTIVE = "active"
    STOPPED = "stopped"
    CLOSED = "closed"
    EXPIRED = "expired"


class Outcome(StrEnum):
    HELP_ARRIVED = "help_arrived"
    PATIENT_SAFE = "patient_safe"
    EMERGENCY_SERVICES_CALLED = "emergency_services_called"
    NO_RESPONSE = "no_response"
    FALSE_ALARM = "false_alarm"


ENDED_WORDS = {
    ShareState.STOPPED: "You stopped sharing your location.",
    ShareState.CLOSED: "The clinic closed this emergency share.",
    ShareState.EXPIRED: "This emergency share ended after its time ran out.",
}


class ShareEnded(Conflict):
    code = "share-ended"
    title = "This emergency share has ended"


@dataclass(frozen=True)
class Position:
    """One fix from the patient's phone: degrees, metres, and when it was taken (UTC)."""

    latitude: float
    longitude: float
    accuracy: float
    at: datetime

    def metres_to(self, other: Position) -> float:
        """Great-circle distance (haversine, mean Earth radius)."""
        lat1, lat2 = math.radians(self.latitude), math.radians(other.latitude)
        dlat = lat2 - lat1
        dlon = math.radians(other.longitude - self.longitude)
        a = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
        return 2 * 6_371_000 * math.asin(min(1.0, math.sqrt(a)))


def checked_position(latitude: object, longitude: object, accuracy: object, at: datetime | None,
                     now: datetime, previous: Position | None) -> Position:
    """A position the viewers may be shown, or InvalidInput naming what is wrong with it: out
    of range, too inaccurate to help, stale, from the future, or an impossible jump from the
    last one."""
    errors: list[FieldError] = []

    def number(value: object, name: str, low: float, high: float) -> float:
        try:
            given = float(value) if isinstance(value, (int, float)) \
                and not isinstance(value, bool) else math.nan
        except OverflowError:  # an integer too large for a float
            given = math.nan
        if not math.isfinite(given):
            errors.append(FieldError(name, "must be a number"))
            return 0.0
        value = given
        if not low <= value <= high:
            errors.append(FieldError(name, f"must be between {low:g} and {high:g}"))
        return float(value)

    lat = number(latitude, "latitude", -90, 90)
    lon = number(longitude, "longitude", -180, 180)
    acc = number(accuracy, "accuracy", 0, MAX_ACCURACY_METRES)
    if at is None:
        errors.append(FieldError("at", "say when the position was taken (ISO 8601 with zone)"))
    elif at.tzinfo is None:
        errors.append(FieldError("at", "include the time zone"))
    elif at < now - STALE_AFTER:
        errors.append(FieldError("at", "this position is too old to help; send a fresh one"))
    elif at > now + FUTURE_TOLERANCE:
        errors.append(FieldError("at", "this position is from the future; check the phone's "
                                 "clock"))
    if errors:
        raise InvalidInput(errors)
    assert at is not None
    position = Position(lat, lon, acc, at)
    if previous is not None and at >= previous.at:
        seconds = (at - previous.at).total_seconds()
        moved = position.metres_to(previous) - acc - previous.accuracy
        if moved > MAX_SPEED_METRES_PER_SECOND * seconds:
            raise InvalidInput([FieldError("latitude", "this position is too far from the last "
                                           "one to be real; send a fresh fix")])
    elif previous is not None and at < previous.at:
        raise InvalidInput([FieldError("at", "older than the last position sent")])
    return position


class EmergencyShare(CareAggregate):
    TOPIC = topic(CONTEXT, "Share")

    @event("Created", topic=topic(CONTEXT, "Share.Started"))
    def __init__(self, patient_id: UUID, clinic_id: str, note: str | None,
                 expires_at: datetime, by: str, at: datetime) -> None:
        self.patient_id, self.clinic_id, self.note = patient_id, clinic_id, note
        self.started_at, self.expires_at = at, expires_at
        self.state = ShareState.ACTIVE
        self.ended_at: datetime | None = None
        self.outcome: Outcome | None = None
        self.told: list[dict[str, object]] = []
        self.links: dict[UUID, datetime] = {}  # the contact's links and when each stops working
        self.lookers: set[str] = set()

    @classmethod
    def start(cls, patient_id: UUID, clinic_id: str, note: str | None, lasts: timedelta,
              by: str, at: datetime) -> EmergencyShare:
        words = (note or "").strip() or None
        if words is not None and len(words) > NOTE_MAX:
            raise InvalidInput([FieldError("note", f"Keep it under {NOTE_MAX} characters.")])
        return cls(patient_id=patient_id, clinic_id=clinic_id, note=words,
                   expires_at=at + lasts, by=by, at=at)

    def is_active(self, at: datetime) -> bool:
        return self.state is ShareState.ACTIVE and at < self.expires_at

    def _require_active(self, at: datetime) -> None:
        if not self.is_active(at):
            state = self.state if self.state is not ShareState.ACTIVE else ShareState.EXPIRED
            raise ShareEnded(ENDED_WORDS[state], state=state.value)

    def grant_contact(self, link_id: UUID, contact_name: str, relationship: str | None,
                      by: str, at: datetime) -> None:
        """The emergency contact was sent a link that works while the share lasts."""
        self._require_active(at)
        self._granted(link_id=link_id, viewer="emergency_contact", contact_name=contact_name,
                      relationship=relationship, by=by, at=at)

    def looked(self, viewer: str, at: datetime) -> bool:
        """The first time each viewer looks is part of the share's story (every look is in
        the record access log)."""
        if viewer in self.lookers:
            return False
        self._looked(viewer=viewer, by=viewer, at=at)
        return True

    def extend(self, lasts: timedelta, limit: timedelta, by: str, at: datetime) -> None:
        self._require_active(at)
        until = min(at + lasts, self.started_at + limit)
        if until <= self.expires_at:
            raise InvalidInput([FieldError("minutes", "This share cannot last any longer; "
                                           "start a new one if you still need help.")])
        self._extended(expires_at=until, by=by, at=at)

    def stop(self, by: str, at: datetime) -> bool:
        if self.state is not ShareState.ACTIVE:
            return False
        self._ended(state=ShareState.STOPPED.value, outcome=None, by=by, at=at)
        return True

    def close(self, outcome: Outcome, by: str, at: datetime) -> bool:
        if self.state is not ShareState.ACTIVE:
            return False
        self._ended(state=ShareState.CLOSED.value, outcome=outcome.value, by=by, at=at)
        return True

    def expire(self, at: datetime) -> bool:
        if self.state is not ShareState.ACTIVE or at < self.expires_at:
            return False
        self._ended(state=ShareState.EXPIRED.value, outcome=None, by="system", at=at)
        return True

    @event("ViewerGranted", topic=topic(CONTEXT, "Share.ViewerGranted"))
    def _granted(self, link_id: UUID, viewer: str, contact_name: str, relationship: str | None,
                 by: str, at: datetime) -> None:
        self.links[link_id] = self.expires_at
        self.told.append({"viewer": viewer, "name": contact_name, "at": at})

    @event("Looked", topic=topic(CONTEXT, "Share.Looked"))
    def _looked(self, viewer: str, by: str, at: datetime) -> None:
        self.lookers.add(viewer)

    @event("Extended", topic=topic(CONTEXT, "Share.Extended"))
    def _extended(self, expires_at: datetime, by: str, at: datetime) -> None:
        self.expires_at = expires_at

    @event("Ended", topic=topic(CONTEXT, "Share.Ended"))
    def _ended(self, state: str, outcome: str | None, by: str, at: datetime) -> None:
        self.state, self.ended_at = ShareState(state), at
        self.outcome = Outcome(outcome) if outcome else None
