"""Auditor replay: every event of a stream, and the state of an aggregate at any moment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from commands.eventstore import CareApplication

REDACTED = "[redacted]"
_SECRET_PARTS = ("password", "secret", "token", "recovery")


@dataclass(frozen=True)
class TrailEntry:
    application: str
    version: int
    event_type: str
    at: datetime
    actor: str


def find_stream(applications: dict[str, CareApplication], aggregate_id: UUID) -> CareApplication | None:
    for app in applications.values():
        if app.recorder.select_events(aggregate_id, limit=1):
            return app
    return None


def trail(app: CareApplication, aggregate_id: UUID) -> Iterator[TrailEntry]:
    for event in app.events.get(aggregate_id):
        topic: str = getattr(type(event), "TOPIC", "")  # e.g. carebridge:consents.Consent.Given.v1
        yield TrailEntry(app.name, event.originator_version, topic.split(":", 1)[1],
                         getattr(event, "at", None) or getattr(event, "timestamp"),  # noqa: B009
                         getattr(event, "by", "unknown"))


def state_as_of(app: CareApplication, aggregate_id: UUID, as_of: datetime) -> dict[str, Any] | None:
    """The aggregate's state as it was at `as_of`, or None if it did not exist yet."""
    version = None
    for entry in trail(app, aggregate_id):
        if entry.at <= as_of:
            version = entry.version
    if version is None:
        return None
    aggregate: Any = app.repository.get(aggregate_id, version=version)
    return {
        name.lstrip("_"): REDACTED if any(p in name for p in _SECRET_PARTS) else value
        for name, value in vars(aggregate).items()
        if name not in ("_pending_events",)
    }
