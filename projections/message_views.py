"""The patient's conversations with their clinic, as the patient (or a proxy) reads them.

Subscribes to the patient-facing events of a thread only: started, a message posted, closed,
reopened, passed to another team. Staff notes (`Thread.StaffNoteAdded`) are events this
projection never receives, and no column could hold one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from domain.messaging import Thread
from projections.base import Envelope, Projection, Tables

PROJECTION = "patient_threads"


def _topic(name: str) -> str:
    return f"{Thread.TOPIC.removesuffix('.Thread.v1')}.Thread.{name}.v1"


STARTED, POSTED = _topic("Started"), _topic("MessagePosted")
CLOSED, REOPENED, REASSIGNED = _topic("Closed"), _topic("Reopened"), _topic("Reassigned")


class PatientThreads(Projection):
    name = PROJECTION
    sources = {"messaging": (STARTED, POSTED, CLOSED, REOPENED, REASSIGNED)}
    tables = ("patient_threads", "patient_messages")

    def ddl(self) -> Sequence[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {patient_threads} ("
            " thread_id uuid PRIMARY KEY, patient_id uuid NOT NULL, clinic_id text NOT NULL,"
            " category text NOT NULL, subject text NOT NULL, context_kind text,"
            " context_id uuid, team text NOT NULL, clinician_id uuid, state text NOT NULL,"
            " due_by timestamptz, started_at timestamptz NOT NULL,"
            " last_message_at timestamptz NOT NULL, message_count integer NOT NULL,"
            " aggregate_version bigint NOT NULL, updated_at timestamptz NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {ix_patient_threads_patient} ON {patient_threads}"
            " (patient_id, last_message_at DESC)",
            "CREATE TABLE IF NOT EXISTS {patient_messages} ("
            " message_id uuid PRIMARY KEY, thread_id uuid NOT NULL, seq bigint NOT NULL,"
            " author text NOT NULL,"
            " from_patient boolean NOT NULL, body text NOT NULL, attachments jsonb NOT NULL,"
            " at timestamptz NOT NULL)",
            "CREATE INDEX IF NOT EXISTS {ix_patient_messages_thread} ON {patient_messages}"
            " (thread_id, seq)",
        ]

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            e, topic = envelope.event, envelope.topic
            if topic == STARTED:
                cur.execute(t.format(
                    "INSERT INTO {patient_threads} (thread_id, patient_id, clinic_id, category,"
                    " subject, context_kind, context_id, team, clinician_id, state, due_by,"
                    " started_at, last_message_at, message_count, aggregate_version, updated_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'open', %s, %s, %s, 1, %s, %s)"
                    " ON CONFLICT (thread_id) DO NOTHING"),
                    (e.originator_id, e.patient_id, e.clinic_id, e.category, e.subject,
                     e.context_kind, e.context_id, e.team, e.clinician_id, e.due_by, e.at, e.at,
                     e.originator_version, e.at))
                self._message(cur, t, e, True)
            elif topic == POSTED:
                cur.execute(t.format(
                    "UPDATE {patient_threads} SET state = %s, due_by = %s,"
                    " last_message_at = %s, message_count = message_count + 1,"
                    " aggregate_version = %s, updated_at = %s WHERE thread_id = %s"),
                    (e.state, e.due_by, e.at, e.originator_version, e.at, e.originator_id))
                self._message(cur, t, e, e.from_patient)
            elif topic == REASSIGNED:
                cur.execute(t.format(
                    "UPDATE {patient_threads} SET team = %s, clinician_id = %s,"
                    " aggregate_version = %s, updated_at = %s WHERE thread_id = %s"),
                    (e.team, e.clinician_id, e.originator_version, e.at, e.originator_id))
            else:
                state, due = ("closed", None) if topic == CLOSED else ("reopened", e.due_by)
                cur.execute(t.format(
                    "UPDATE {patient_threads} SET state = %s, due_by = %s,"
                    " aggregate_version = %s, updated_at = %s WHERE thread_id = %s"),
                    (state, due, e.originator_version, e.at, e.originator_id))

    @staticmethod
    def _message(cur: Cursor[Any], t: Tables, e: Any, from_patient: bool) -> None:
        """A message in the thread's own order (the version of the event that posted it)."""
        cur.execute(t.format(
            "INSERT INTO {patient_messages} (message_id, thread_id, seq, author, from_patient,"
            " body, attachments, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (message_id) DO NOTHING"),
            (e.message_id, e.originator_id, e.originator_version, e.by, from_patient, e.body,
             Jsonb([str(a) for a in e.attachments]), e.at))


# ---- reading (the patient API) ----------------------------------------------------------------


async def patient_threads(conn: psycopg.AsyncConnection[Any], patient_id: UUID,
                          state: str | None, limit: int) -> list[dict[str, Any]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        "SELECT * FROM views.patient_threads WHERE patient_id = %s"
        " AND (%s::text IS NULL OR state = %s) ORDER BY last_message_at DESC LIMIT %s",
        (patient_id, state, state, limit))
    return await cur.fetchall()


async def patient_thread(conn: psycopg.AsyncConnection[Any], thread_id: UUID,
                         ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute("SELECT * FROM views.patient_threads WHERE thread_id = %s", (thread_id,))
    thread = await cur.fetchone()
    if thread is None:
        return None, []
    await cur.execute("SELECT * FROM views.patient_messages WHERE thread_id = %s ORDER BY seq", (thread_id,))
    return thread, await cur.fetchall()
