"""The event store: PostgreSQL through eventsourcing, shared by every bounded context.

Each context is an Application with its own events table in the `eventstore` schema. Payloads
are encrypted with AES-GCM. The recorder here keeps the stock recorder's guarantee that
notification ids are committed in order (inserts are serialised per table) but takes an
advisory transaction lock instead of `LOCK TABLE`, so the application role needs no UPDATE
grant on the append-only table, and it sends the whole transaction in one pipeline sync
instead of two round trips.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    JSONTranscoder,
    OperationalError,
    StoredEvent,
    Transcoding,
)
from eventsourcing.postgres import (
    BasePostgresFactory,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresFactory,
)
from eventsourcing.utils import retry
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from domain.aggregate import CareAggregate
from domain.errors import ConcurrentChange

EVENTSTORE_SCHEMA = "eventstore"
IDEMPOTENCY_TABLE = "carebridge.idempotency_keys"


@dataclass(frozen=True)
class IdempotencyRecord:
    """Remembers a command's result under the caller's key, in the transaction that wrote it."""

    scope: str
    key: str
    fingerprint: str
    result: bytes


@dataclass(frozen=True)
class Statement:
    """A write to a write-side lookup table that must commit with the events (or not at all)."""

    sql: str
    params: tuple[Any, ...]


def events_table(app_name: str) -> str:
    return f"{app_name.lower()}_events"


class CareRecorder(PostgresApplicationRecorder):
    """Application recorder with one round trip per save and an optional idempotency record."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        qualified = f"{self.datastore.schema}.{self.events_table_name}"
        self.lock_key = zlib.crc32(qualified.encode())
        self.lock_statement = sql.SQL("SELECT pg_advisory_xact_lock(%s)")
        self.notify_statement = sql.SQL("NOTIFY {0}").format(sql.Identifier(self.channel_name))
        self.remember_statement = sql.SQL(
            "INSERT INTO " + IDEMPOTENCY_TABLE + " (scope, key, fingerprint, result, position)"
            " VALUES (%s, %s, %s, %s, {position})"
        ).format(
            position=sql.SQL("currval(pg_get_serial_sequence({0}, 'notification_id'))").format(
                sql.Literal(qualified)
            )
        )

    # A dropped connection (restart, failover) is retried on a fresh one. Should the first
    # attempt have committed before the connection dropped, the retry meets the primary key
    # and reports a concurrent change: never a duplicate.
    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        idempotency: IdempotencyRecord | None = kwargs.get("idempotency")
        also: Sequence[Statement] = kwargs.get("also") or ()
        pg_events = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        with self.datastore.get_connection() as conn:
            inserted = conn.cursor()
            try:
                with conn.pipeline():
                    conn.execute("BEGIN")
                    conn.execute(self.lock_statement, (self.lock_key,), prepare=True)
                    conn.execute(self.notify_statement)
                    inserted.execute(self.insert_events_statement, (pg_events,), prepare=True)
                    if idempotency is not None:
                        conn.execute(
                            self.remember_statement,
                            (idempotency.scope, idempotency.key, idempotency.fingerprint,
                             idempotency.result),
                            prepare=True,
                        )
                    for statement in also:
                        conn.execute(statement.sql, statement.params, prepare=True)
                    conn.execute("COMMIT")
            except psycopg.Error:
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                raise
            return [row["notification_id"] for row in inserted.fetchall()]


class CareFactory(PostgresFactory):
    """Infrastructure factory whose applications share one connection pool per database."""

    _shared: dict[tuple[str, ...], PostgresDatastore] = {}
    _lock = threading.Lock()

    def __init__(self, env: Any) -> None:
        key = tuple(
            str(env.get(k) or "")
            for k in ("POOL_SCOPE", "POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT",
                      "POSTGRES_USER", "POSTGRES_SCHEMA")
        )
        with self._lock:
            shared = self._shared.get(key)
            if shared is None:
                super().__init__(env)
                self._shared[key] = self.datastore
            else:
                super(BasePostgresFactory, self).__init__(env)
                self.datastore = shared

    def close(self) -> None:
        """Pools are shared; `close_shared_pools(scope)` closes them at shutdown."""

    @classmethod
    def close_shared_pools(cls, scope: str | None = None) -> None:
        """Closes the pools of one scope (one set of applications), or all of them."""
        with cls._lock:
            for key in [k for k in cls._shared if scope is None or k[0] == scope]:
                cls._shared.pop(key).close()


@dataclass(frozen=True)
class EventStoreSettings:
    """What every application needs to reach the event store."""

    database_url: str
    encryption_key: str
    pool_size: int = 4
    max_overflow: int = 16
    create_tables: bool = False
    # Applications built with the same settings object share one pool; closing it closes them.
    scope: str = field(default_factory=lambda: uuid4().hex)

    def env(self, app: type[Application[Any]]) -> dict[str, str]:
        params = conninfo_to_dict(self.database_url)
        return {
            "POOL_SCOPE": self.scope,
            "PERSISTENCE_MODULE": "commands.eventstore:CareFactory",
            "MAPPER_TOPIC": "commands.codec:CareMapper",
            "APPLICATION_RECORDER_TOPIC": "commands.eventstore:CareRecorder",
            "POSTGRES_DBNAME": str(params.get("dbname") or "postgres"),
            "POSTGRES_HOST": str(params.get("host") or "localhost"),
            "POSTGRES_PORT": str(params.get("port") or "5432"),
            "POSTGRES_USER": str(params.get("user") or "postgres"),
            "POSTGRES_PASSWORD": str(params.get("password") or ""),
            "POSTGRES_SCHEMA": EVENTSTORE_SCHEMA,
            "POSTGRES_POOL_SIZE": str(self.pool_size),
            "POSTGRES_MAX_OVERFLOW": str(self.max_overflow),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "CREATE_TABLE": "y" if self.create_tables else "n",
            "CIPHER_TOPIC": "commands.codec:CareCipher",
            "CIPHER_KEY": self.encryption_key,
        }


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class CareApplication(Application[UUID]):
    """Base of every bounded context's application."""

    def __init__(self, store: EventStoreSettings) -> None:
        super().__init__(env=store.env(type(self)))

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def save_all(self, *aggregates: CareAggregate,
                 idempotency: IdempotencyRecord | None = None,
                 also: Sequence[Statement] = ()) -> int | None:
        """Saves every touched aggregate in one transaction; returns the log position written.

        A concurrent change to any of them fails the whole save with ConcurrentChange.
        """
        try:
            recordings = self.save(*aggregates, idempotency=idempotency, also=also)
        except IntegrityError as error:
            raise ConcurrentChange(
                "Someone else changed this at the same moment. Nothing was saved; "
                "reload and try again."
            ) from error
        return max((r.notification.id for r in recordings), default=None)

    def table_name(self) -> str:
        return events_table(self.name)


def wait_for_notify(conn: psycopg.Connection[Any], stop: threading.Event, seconds: float,
                    slice_seconds: float = 0.1) -> bool:
    """Waits on a LISTENing connection for a NOTIFY, at most `seconds`, in short slices so
    that a stop request is noticed at once (waiting on the socket costs no query). True when
    a notification came."""
    waited = 0.0
    while waited < seconds and not stop.is_set():
        if any(True for _ in conn.notifies(timeout=slice_seconds, stop_after=1)):
            return True
        waited += slice_seconds
    return False


def notified_channels(conn: psycopg.Connection[Any], stop: threading.Event, seconds: float,
                      settle_seconds: float = 0.0, slice_seconds: float = 0.1) -> set[str]:
    """Waits like `wait_for_notify`, then gathers what else arrives within `settle_seconds`
    (work that can wait a moment then runs once for many commits); the channels notified,
    empty when none came within `seconds`."""
    channels: set[str] = set()
    waited = 0.0
    while waited < seconds and not stop.is_set() and not channels:
        channels.update(n.channel for n in conn.notifies(timeout=slice_seconds, stop_after=1))
        waited += slice_seconds
    if channels:
        if settle_seconds:
            stop.wait(settle_seconds)
        channels.update(n.channel for n in conn.notifies(timeout=0))
    return channels


class ListeningWorker:
    """A background thread that runs `work()` whenever its channel is notified, and at least
    every `poll_seconds` (work that is due later, retries); it reconnects after database
    errors. Subclasses set `channel` and `thread_name` and define `work`."""

    channel: str = ""
    thread_name: str = "worker"

    def __init__(self, database_url: str, poll_seconds: float) -> None:
        self.url, self.poll_seconds = database_url, poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def work(self) -> object:
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as control:
                    control.execute(f"LISTEN {self.channel}")
                    while not self._stop.is_set():
                        self.work()
                        wait_for_notify(control, self._stop, self.poll_seconds)
            except psycopg.Error as error:
                logging.getLogger("carebridge").warning(
                    "%s: database error (%s); retrying", self.thread_name, type(error).__name__)
                self._stop.wait(1.0)

