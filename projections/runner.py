"""Keeps projections current: batches, exactly-once tracking, one leader, status and rebuild.

Each batch runs in one transaction: lock the tracking row, read the next events of the
application's log, apply them, advance the position, commit. Locking the tracking row makes
a batch exclusive even if two runners raced; a session advisory lock elects the one runner
that works while the others stand by. Runners wake on the NOTIFY that every event insert
sends and poll as a fallback.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.application import Application
from psycopg import sql

from commands.codec import CareMapper
from commands.eventstore import EVENTSTORE_SCHEMA, events_table, notified_channels
from projections.base import REBUILD_SUFFIX, Envelope, Projection, Tables

log = logging.getLogger("carebridge.projections")

TRACKING = "carebridge.projection_tracking"
# Projection tables belong to the application role, whichever login role runs the projection,
# so that rebuilt tables keep their owner and the default grants to auditors and analysts.
TABLE_OWNER = "carebridge_app"
REBUILD_BATCH = 10_000
FULL_SWEEP_SECONDS = 30.0  # a quiet runner still reads every source this often
Progress = Callable[[int, int], None]  # (events applied so far, events to apply in total)


@dataclass(frozen=True)
class SourceStatus:
    projection: str
    application: str
    position: int
    head: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)


class ProjectionRunner:
    def __init__(self, projection: Projection, applications: Mapping[str, Application[Any]],
                 url: str, batch_size: int = 1000) -> None:
        self.projection = projection
        self.mappers: dict[str, CareMapper] = {
            name: app.mapper for name, app in applications.items()  # type: ignore[misc]
            if name in projection.sources}
        self.url = url
        self.batch_size = batch_size
        self.live = Tables.of(projection)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_leader = False

    # ---- tables and tracking -------------------------------------------------------------

    def _ensure_tracking(self, cur: psycopg.Cursor[Any], name: str) -> None:
        ensure_tracking(cur, self.projection, name)

    # ---- one batch -----------------------------------------------------------------------

    def run_batch(self, conn: psycopg.Connection[Any], tables: Tables | None = None,
                  tracking_name: str | None = None, in_transaction: bool = False,
                  limit: int | None = None) -> int:
        """Applies the next batch from each source; returns how many log rows it consumed."""
        tables = tables or self.live
        name = tracking_name or self.projection.name
        consumed = 0
        for application, topics in self.projection.sources.items():
            if in_transaction:
                consumed += self._batch(conn, tables, name, application, topics, limit)
            else:
                with conn.transaction():
                    consumed += self._batch(conn, tables, name, application, topics, limit)
        return consumed

    def _batch(self, conn: psycopg.Connection[Any], tables: Tables, name: str,
               application: str, topics: tuple[str, ...], limit: int | None = None) -> int:
        cur = conn.cursor()
        row = cur.execute(
            f"SELECT position FROM {TRACKING} WHERE projection = %s AND application = %s"
            " FOR UPDATE",
            (name, application),
        ).fetchone()
        if row is None:
            raise RuntimeError(f"projection {name} has no tracking row for {application}")
        position = row[0]
        rows = cur.execute(
            sql.SQL(
                "SELECT notification_id, originator_id, originator_version, topic,"
                " CASE WHEN topic = ANY(%s) THEN state END"
                " FROM {} WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
            ).format(sql.Identifier(EVENTSTORE_SCHEMA, events_table(application))),
            (list(topics), position, limit or self.batch_size),
            prepare=True,
        ).fetchall()
        if not rows:
            return 0
        decode = self.mappers[application].decode
        batch = [Envelope(application, r[0], decode(r[3], r[1], r[2], r[4]))
                 for r in rows if r[4] is not None]
        if batch:
            self.projection.apply(cur, tables, batch)
        cur.execute(
            f"UPDATE {TRACKING} SET position = %s, updated_at = now()"
            " WHERE projection = %s AND application = %s",
            (rows[-1][0], name, application),
            prepare=True,
        )
        return len(rows)

    def catch_up(self, conn: psycopg.Connection[Any],
                 applications: Collection[str] | None = None) -> int:
        """Applies everything new in the sources named (all of them by default), one batch
        (one transaction) at a time; a source is caught up when a batch comes back short."""
        total = 0
        for application, topics in self.projection.sources.items():
            if applications is not None and application not in applications:
                continue
            while True:
                with conn.transaction():
                    n = self._batch(conn, self.live, self.projection.name, application, topics)
                total += n
                if n < self.batch_size:
                    break
        return total

    # ---- the long-running loop -----------------------------------------------------------

    @property
    def lock_key(self) -> int:
        return zlib.crc32(f"projection:{self.projection.name}".encode())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"projection-{self.projection.name}",
                                        daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Asks the loop to end (it notices within its poll interval); `stop` waits for it."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._lead()
            except psycopg.Error as error:
                log.warning("projection %s: database error (%s); retrying",
                            self.projection.name, type(error).__name__)
                self._stop.wait(1.0)

    def _lead(self, poll_interval: float = 1.0) -> None:
        with psycopg.connect(self.url, autocommit=True) as control, \
                psycopg.connect(self.url, autocommit=True) as work:
            work.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(TABLE_OWNER)))
            while not self._stop.is_set():
                got = control.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_key,)).fetchone()
                if got and got[0]:
                    break
                self._stop.wait(poll_interval)  # another runner leads; stand by
            if self._stop.is_set():
                return
            self.is_leader = True
            log.info("projection %s: leading", self.projection.name)
            sources = {events_table(a): a for a in self.projection.sources}
            for channel in sources:
                control.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            settle = self.projection.settle_seconds
            try:
                self.catch_up(work)
                swept = time.monotonic()
                while not self._stop.is_set():
                    notified = notified_channels(control, self._stop, poll_interval, settle)
                    # Every commit notifies its log's channel, and this connection listened
                    # before the first catch-up: a notification names the log that grew, and
                    # only that source is read. A quiet interval runs only the time-driven work
                    # (subclasses); every source is read again now and then all the same.
                    if notified:
                        self.catch_up(work, {sources[c] for c in notified if c in sources})
                    elif time.monotonic() - swept >= FULL_SWEEP_SECONDS:
                        self.catch_up(work)
                        swept = time.monotonic()
                    else:
                        self.catch_up(work, ())
            finally:
                self.is_leader = False

    # ---- status and rebuild --------------------------------------------------------------

    def status(self, conn: psycopg.Connection[Any]) -> list[SourceStatus]:
        result = []
        for application in self.projection.sources:
            position = conn.execute(
                f"SELECT position FROM {TRACKING} WHERE projection = %s AND application = %s",
                (self.projection.name, application),
            ).fetchone()
            head = conn.execute(
                sql.SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(
                    sql.Identifier(EVENTSTORE_SCHEMA, events_table(application))
                )
            ).fetchone()
            result.append(SourceStatus(self.projection.name, application,
                                       position[0] if position else 0, head[0] if head else 0))
        return result

    def rebuild(self, conn: psycopg.Connection[Any], progress: Progress | None = None) -> int:
        """Rebuilds from position zero into fresh tables, then swaps them in atomically.

        The live tables keep serving (and the live runner keeps going) until the swap, which
        waits for the live runner's current batch and then blocks it for a moment.
        """
        fresh = Tables.of(self.projection, REBUILD_SUFFIX)
        name = self.projection.name + REBUILD_SUFFIX
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(TABLE_OWNER)))
        try:
            return self._rebuild(conn, fresh, name, progress)
        finally:
            conn.execute("RESET ROLE")

    def _rebuild(self, conn: psycopg.Connection[Any], fresh: Tables, name: str,
                 progress: Progress | None) -> int:
        with conn.transaction():
            cur = conn.cursor()
            self.projection.drop(cur, fresh)
            self.projection.create(cur, fresh)
            cur.execute(f"DELETE FROM {TRACKING} WHERE projection = %s", (name,))
            self._ensure_tracking(cur, name)
        total = sum(s.head for s in self.status(conn))
        applied = 0
        # Nobody reads the fresh tables before the swap, so larger transactions cost nothing.
        while (n := self.run_batch(conn, fresh, name, limit=REBUILD_BATCH)) > 0:
            applied += n
            if progress:
                progress(applied, total)
        with conn.transaction():
            cur = conn.cursor()
            cur.execute(
                f"SELECT position FROM {TRACKING} WHERE projection = %s FOR UPDATE",
                (self.projection.name,),
            )
            while (n := self.run_batch(conn, fresh, name, in_transaction=True)) > 0:
                applied += n
            self.projection.drop(cur, self.live)
            for table in self.projection.tables:
                cur.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    fresh(table), sql.Identifier(self.live.name(table))))
            # The fresh tables' indexes (and keys) carry the rebuild suffix: give them the live
            # names, or the next rebuild's CREATE INDEX IF NOT EXISTS would find them and skip
            # its own.
            for (schema, index) in cur.execute(
                    "SELECT schemaname, indexname FROM pg_indexes WHERE schemaname = ANY(%s)"
                    " AND tablename = ANY(%s) AND strpos(indexname, %s) > 0",
                    (list({self.live.schema_of(t) for t in self.projection.tables}),
                     [self.live.name(t) for t in self.projection.tables],
                     REBUILD_SUFFIX)).fetchall():
                cur.execute(sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(schema, index),
                    sql.Identifier(index.replace(REBUILD_SUFFIX, "", 1))))
            cur.execute(
                f"UPDATE {TRACKING} AS live SET position = fresh.position, updated_at = now()"
                f" FROM {TRACKING} AS fresh WHERE live.projection = %s"
                " AND fresh.projection = %s AND fresh.application = live.application",
                (self.projection.name, name),
            )
            cur.execute(f"DELETE FROM {TRACKING} WHERE projection = %s", (name,))
        if progress:
            progress(applied, max(total, applied))
        return applied


def ensure_tracking(cur: psycopg.Cursor[Any], projection: Projection, name: str) -> None:
    for application in projection.sources:
        cur.execute(
            f"INSERT INTO {TRACKING} (projection, application) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            (name, application),
        )


def ensure_tables(conn: psycopg.Connection[Any], projection: Projection) -> None:
    """Creates the live tables and tracking rows of a projection if they are missing."""
    with conn.transaction():
        cur = conn.cursor()
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(TABLE_OWNER)))
        projection.create(cur, Tables.of(projection))
        ensure_tracking(cur, projection, projection.name)
