"""The record access log: every view or download of part of a patient's record, with who and
when. Rows are only ever added (the database rejects changes); auditors read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

RECORD_ACCESS = "carebridge.record_access"


def record_access(datastore: Any, actor_ref: str, patient_id: UUID, resource: str,
                  resource_id: UUID, at: datetime, action: str = "view") -> None:
    with datastore.get_connection() as conn:
        conn.execute(f"INSERT INTO {RECORD_ACCESS} (at, actor, patient_id, resource,"
                     " resource_id, action) VALUES (%s, %s, %s, %s, %s, %s)",
                     (at, actor_ref, patient_id, resource, resource_id, action))
