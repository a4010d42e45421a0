"""Housekeeping of the write side: idempotency keys are kept for a day, as payment APIs do."""

from __future__ import annotations

import psycopg

from commands.eventstore import IDEMPOTENCY_TABLE

IDEMPOTENCY_RETENTION_HOURS = 24


def purge_expired_idempotency_keys(database_url: str,
                                   hours: int = IDEMPOTENCY_RETENTION_HOURS) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(
            f"DELETE FROM {IDEMPOTENCY_TABLE} WHERE created_at < now() - make_interval(hours => %s)",
            (hours,),
        )
        return cur.rowcount
