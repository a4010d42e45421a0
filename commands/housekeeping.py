"""Housekeeping of the write side: idempotency keys are kept for a day, as payment APIs do;
spent passkey challenges only until the options that carried them have expired."""

from __future__ import annotations

import psycopg

from commands.eventstore import IDEMPOTENCY_TABLE
from commands.passkeys import SPENT as SPENT_CHALLENGES

IDEMPOTENCY_RETENTION_HOURS = 24


def purge_expired_idempotency_keys(database_url: str,
                                   hours: int = IDEMPOTENCY_RETENTION_HOURS) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(
            f"DELETE FROM {IDEMPOTENCY_TABLE} WHERE created_at < now() - make_interval(hours => %s)",
            (hours,),
        )
        return cur.rowcount


def purge_spent_webauthn_challenges(database_url: str) -> int:
    """A challenge past its options' expiry is refused anyway, so its record can go. The
    margin covers API hosts whose clocks lag the database's."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(f"DELETE FROM {SPENT_CHALLENGES}"
                            " WHERE expires_at < now() - interval '10 minutes'").rowcount
