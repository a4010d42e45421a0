"""Idempotency keys: a retried command returns the first result and never acts twice.

The key is recorded in the same transaction as the events it produced (see CareRecorder), so a
crash can never leave events without their key or a key without its events.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from eventsourcing.postgres import PostgresDatastore

from commands.eventstore import (
    IDEMPOTENCY_TABLE,
    CareAggregate,
    CareApplication,
    IdempotencyRecord,
    Statement,
)
from domain.errors import ConcurrentChange, Conflict

MAX_KEY_LENGTH = 200


class IdempotencyKeyReused(Conflict):
    code = "idempotency-key-reused"
    title = "This Idempotency-Key was already used for a different request"


@dataclass(frozen=True)
class IdempotencyKey:
    scope: str  # the caller, so that two people's keys never collide
    key: str
    fingerprint: str  # what the request asked for; the same key with other content is refused

    @classmethod
    def for_request(cls, scope: str, key: str, operation: str, payload: Any) -> IdempotencyKey:
        digest = hashlib.sha256(operation.encode() + b"\0" + msgspec.json.encode(payload))
        return cls(scope=scope, key=key, fingerprint=digest.hexdigest())


@dataclass(frozen=True)
class Outcome:
    """What a command handler returns: its result and the log position it wrote (if any)."""

    result: dict[str, Any]
    position: int | None
    replayed: bool = False


class IdempotencyStore:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def find(self, key: IdempotencyKey) -> Outcome | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                f"SELECT fingerprint, result, position FROM {IDEMPOTENCY_TABLE}"
                " WHERE scope = %s AND key = %s",
                (key.scope, key.key),
                prepare=True,
            ).fetchone()
        if row is None:
            return None
        if row["fingerprint"] != key.fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used for a different request. "
                "Use a new key for a new request."
            )
        return Outcome(msgspec.json.decode(row["result"]), row["position"], replayed=True)

    def remember(self, key: IdempotencyKey, result: dict[str, Any]) -> Outcome:
        """Records a key for a command that produced no events (it was already done). If a
        concurrent attempt with the same key recorded first, its result is the answer."""
        with self.datastore.get_connection() as conn:
            inserted = conn.execute(
                f"INSERT INTO {IDEMPOTENCY_TABLE} (scope, key, fingerprint, result, position)"
                " VALUES (%s, %s, %s, %s, NULL) ON CONFLICT DO NOTHING",
                (key.scope, key.key, key.fingerprint, msgspec.json.encode(result)),
            ).rowcount
        if inserted:
            return Outcome(result, None)
        previous = self.find(key)
        return previous if previous is not None else Outcome(result, None)


# A decision returns its result and the aggregates it touched, and optionally statements that
# must commit with their events (an outbox message, a lookup-table row).
Decision = Callable[[], tuple[dict[str, Any], list[CareAggregate]]
                    | tuple[dict[str, Any], list[CareAggregate], list[Statement]]]


def run_once(app: CareApplication, store: IdempotencyStore, key: IdempotencyKey | None,
             decide: Decision) -> Outcome:
    """Runs a decision at most once per key and saves what it touched in one transaction."""
    if key is not None and (previous := store.find(key)) is not None:
        return previous
    decided, touched, *more = decide()
    also: list[Statement] = more[0] if more else []
    pending = [a for a in touched if a.pending_events]
    result = {**decided, "changed": bool(pending)}
    record = None
    if key is not None:
        record = IdempotencyRecord(key.scope, key.key, key.fingerprint, msgspec.json.encode(result))
    if not pending:
        return store.remember(key, result) if key is not None else Outcome(result, None)
    try:
        position = app.save_all(*pending, idempotency=record, also=also)
    except ConcurrentChange:
        if key is not None and (previous := store.find(key)) is not None:
            return previous
        raise
    return Outcome(result, position)


RETRIES = 8


def run_retrying(app: CareApplication, store: IdempotencyStore, key: IdempotencyKey | None,
                 decide: Decision, what: str = "this") -> Outcome:
    """`run_once`, deciding again on fresh state each time a concurrent change wins (a few
    times); then 409 with guidance."""
    for _ in range(RETRIES):
        try:
            return run_once(app, store, key, decide)
        except ConcurrentChange:
            continue
    raise ConcurrentChange(f"Someone else changed {what} at the same moment. Nothing was saved; "
                           "reload it and try again.")
