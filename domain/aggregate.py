"""The aggregate base every CareBridge aggregate uses: explicit, stable topics for stored events.

Topics are the storage format. A class may be renamed or moved freely; its topic may not.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate

TOPIC_PREFIX = "carebridge"


def topic(context: str, name: str, version: int = 1) -> str:
    """The stable topic of an aggregate class or event, e.g. `carebridge:consents.Given.v1`."""
    return f"{TOPIC_PREFIX}:{context}.{name}.v{version}"


class CareAggregate(Aggregate):
    """Base class. Every event carries `by` (the actor) and `at` (the command's time, UTC)."""

    class Event(Aggregate.Event):
        by: str
        at: datetime

    # The recorded timestamp is the command's own time (`at`), so the domain never reads a clock.
    @classmethod
    def _create(cls, event_class: Any, *, id: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("timestamp", require_utc(kwargs["at"]))
        return super()._create(event_class, id=id, **kwargs)

    def trigger_event(self, event_class: Any, **kwargs: Any) -> None:
        kwargs.setdefault("timestamp", require_utc(kwargs["at"]))
        super().trigger_event(event_class, **kwargs)


def require_utc(at: datetime) -> datetime:
    """Times enter the domain in UTC, always aware; a naive time is a programming error."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("times passed to the domain must be timezone-aware")
    return at
