"""Per-source backoff for sign-in: too many failures from one address pause it for a while.

Not event-sourced on purpose: a source address is not a person's record, and counting every
guess of an attacker into the audit log would let them grow it at will. The per-account
lockout (an event on the account) is the part that belongs in the history.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from eventsourcing.postgres import PostgresDatastore

TABLE = "carebridge.sign_in_sources"
SOURCE_THRESHOLD = 20
SOURCE_WINDOW = timedelta(minutes=15)
SOURCE_BLOCK = timedelta(minutes=15)


class SignInSources:
    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    def is_blocked(self, source: str, at: datetime) -> bool:
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT blocked_until FROM {TABLE} WHERE source = %s",
                               (source,), prepare=True).fetchone()
        return bool(row and row["blocked_until"] and at < row["blocked_until"])

    def record_failure(self, source: str, at: datetime) -> None:
        """Counts a failure in the source's window; at the threshold, blocks the source."""
        with self.datastore.get_connection() as conn:
            conn.execute(
                f"INSERT INTO {TABLE} AS s (source, window_started_at, failures)"
                " VALUES (%(source)s, %(at)s, 1)"
                " ON CONFLICT (source) DO UPDATE SET"
                "  failures = CASE WHEN s.window_started_at <= %(at)s - %(window)s"
                "    THEN 1 ELSE s.failures + 1 END,"
                "  window_started_at = CASE WHEN s.window_started_at <= %(at)s - %(window)s"
                "    THEN %(at)s ELSE s.window_started_at END,"
                "  blocked_until = CASE"
                "    WHEN s.window_started_at > %(at)s - %(window)s"
                "     AND s.failures + 1 >= %(threshold)s THEN %(at)s + %(block)s"
                "    ELSE s.blocked_until END",
                {"source": source, "at": at, "window": SOURCE_WINDOW,
                 "threshold": SOURCE_THRESHOLD, "block": SOURCE_BLOCK},
                prepare=True,
            )
