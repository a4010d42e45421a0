"""The audit sealer: a follower of every application's log that extends its signed hash chain.

It runs like the process managers (tracking rows, one leader by advisory lock, woken by each
insert's NOTIFY) but reads the stored rows as they are, ciphertext included, and never decodes
them. Each batch of at most `checkpoint_every` events becomes one signed checkpoint, written in
the transaction that advances its tracking position; so there is a checkpoint every N events and
at the end of every round. It owns no tables of its own to rebuild: checkpoints are append-only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.application import Application
from psycopg import Cursor

from commands.audit_chain import ChainBroken, seal_next
from projections.base import Envelope, Projection, Tables
from projections.runner import TRACKING, ProjectionRunner

log = logging.getLogger("carebridge.audit")

Clock = Callable[[], datetime]


class ChainSealing(Projection):
    name = "audit_chain"
    tables = ()
    settle_seconds = 0.5

    def __init__(self, applications: Sequence[str]) -> None:
        # Every application's log, whichever contexts this process wires.
        self.sources = {name: () for name in applications}  # type: ignore[misc]

    def ddl(self) -> Sequence[str]:
        return []

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        return None


class AuditSealer(ProjectionRunner):
    """Seals each application's new events into its chain, one signed checkpoint per batch."""

    def __init__(self, applications: Mapping[str, Application[Any]], url: str,
                 key: Ed25519PrivateKey, checkpoint_every: int = 1000,
                 clock: Clock = lambda: datetime.now(UTC)) -> None:
        super().__init__(ChainSealing(list(applications)), applications, url, checkpoint_every)
        self.key, self.clock = key, clock
        self.broken: set[str] = set()  # chains it refused to extend (logged once each)

    def catch_up(self, conn: psycopg.Connection[Any],
                 applications: Collection[str] | None = None) -> int:
        """Seals each log named (all by default) up to its head, one log after the other (a
        log with nothing new costs one short transaction)."""
        total = 0
        for application in self.projection.sources:
            if applications is not None and application not in applications:
                continue
            while (sealed := self._seal(conn, application)) > 0:
                total += sealed
        return total

    def _seal(self, conn: psycopg.Connection[Any], application: str) -> int:
        with conn.transaction():
            return self._batch(conn, self.live, self.projection.name, application, ())

    def _batch(self, conn: psycopg.Connection[Any], tables: Tables, name: str,
               application: str, topics: tuple[str, ...], limit: int | None = None) -> int:
        if application in self.broken:
            return 0
        cur = conn.cursor()
        cur.execute(f"INSERT INTO {TRACKING} (projection, application) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING", (name, application))
        cur.execute(f"SELECT position FROM {TRACKING} WHERE projection = %s AND application = %s"
                    " FOR UPDATE", (name, application))
        try:
            sealed, position = seal_next(cur, application, self.key, limit or self.batch_size,
                                         self.clock())
        except ChainBroken as error:
            self.broken.add(application)
            log.error("audit sealer: %s", error)
            return 0
        if sealed:
            cur.execute(f"UPDATE {TRACKING} SET position = %s, updated_at = now()"
                        " WHERE projection = %s AND application = %s", (position, name, application))
        return sealed
