"""Helpers for tests on a real PostgreSQL: patients, clinic times, raw event rows, bounded waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID, uuid4

import psycopg
from psycopg import sql

from commands.default_consent_texts import DEFAULT_VERSION
from commands.idempotency import Outcome
from domain.access import Actor
from domain.consents import Consent, ConsentText, ConsentType
from domain.identity import Role

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
GIVEN = Consent.Given.TOPIC  # type: ignore[attr-defined]
WITHDRAWN = Consent.Withdrawn.TOPIC  # type: ignore[attr-defined]
PUBLISHED = ConsentText.VersionPublished.TOPIC  # type: ignore[attr-defined]

T = TypeVar("T")


def a_patient() -> Actor:
    return Actor(uuid4(), Role.PATIENT)


def minutes_after_monday(minutes: float) -> datetime:
    return MONDAY + timedelta(minutes=minutes)


def give(container: Any, patient: Actor, at: datetime = MONDAY,
         consent_type: ConsentType = ConsentType.TELEMEDICINE, **kwargs: Any) -> Outcome:
    """The patient agrees to the current (default) text of a consent type."""
    outcome: Outcome = container.consents.give(patient, patient.account_id, consent_type,
                                               DEFAULT_VERSION, at=at, **kwargs)
    return outcome


def withdraw(container: Any, patient: Actor, at: datetime = MONDAY,
             consent_type: ConsentType = ConsentType.TELEMEDICINE) -> Outcome:
    outcome: Outcome = container.consents.withdraw(patient, patient.account_id, consent_type,
                                                   "changed my mind", at=at)
    return outcome


def rows(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Runs one read on its own autocommit connection (closed before returning)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


def stored_events(url: str, table: str = "consents_events") -> list[tuple[Any, ...]]:
    """(notification_id, originator_id, originator_version, topic, state) in log order."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {}"
            " ORDER BY notification_id").format(sql.Identifier("eventstore", table))).fetchall()


def events_of(url: str, stream: UUID) -> list[str]:
    """Topic of each stored event of one stream, in version order."""
    return [r[0] for r in rows(url, "SELECT topic FROM eventstore.consents_events"
                                    " WHERE originator_id = %s ORDER BY originator_version",
                               (stream,))]


def count_topics(url: str, *topics: str) -> int:
    found = rows(url, "SELECT count(*) FROM eventstore.consents_events WHERE topic = ANY(%s)",
                 (list(topics),))
    return int(found[0][0])


def eventually(check: Callable[[], bool], within: float = 20.0, every: float = 0.05) -> bool:
    """Polls `check` until it holds or `within` seconds pass: a bound, never a timing claim."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


def sample(read: Callable[[], T], times: int, every: float = 0.05) -> list[T]:
    """Reads a value `times` times, `every` seconds apart, to show that it stays as it is."""
    values = []
    for _ in range(times):
        values.append(read())
        time.sleep(every)
    return values
