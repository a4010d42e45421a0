"""The patient's record: what a patient (or their proxy) may read of their medical records.

Visibility is by construction, not by a filter:
- This projection subscribes to the patient-facing events only (a record entered, revised,
  released or marked entered in error; a document uploaded and its review outcome). Internal
  notes (`Record.InternalNoteAdded`, `Document.NoteAdded`) are separate events that it never
  receives: the runner does not even decode them for it.
- A record waits in `pending.record_drafts` (outside the `views` schema, which the API's
  patient reads use) until it is released; `views.patient_records` holds released
  records and the patient's own uploads only, and the patient API reads nothing else. So lists,
  counts, search and filters are computed over what the patient may see, and nothing that is
  not released can be inferred from them.
- The columns hold the entry as the domain checked it: a record's content carries only the
  fields of its kind (`domain/records.py` refuses any other), and no column is meant for notes.

An amendment stays visible as one: the row keeps the earlier versions (`earlier`) and the
reason the clinic gave.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Cursor
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from domain.documents import Document
from domain.records import KIND_WORDS, Record, Status
from projections.base import Envelope, Projection, Tables

PROJECTION = "patient_records"


def _record(name: str) -> str:
    return f"{Record.TOPIC.removesuffix('.Record.v1')}.Record.{name}.v1"


def _document(name: str) -> str:
    return f"{Document.TOPIC.removesuffix('.Document.v1')}.Document.{name}.v1"


ENTERED, REVISED = _record("Entered"), _record("Revised")
RELEASED, WITHDRAWN = _record("Released"), _record("EnteredInError")
UPLOADED = _document("Uploaded")
DOCUMENT_STEPS = {_document("Accepted"): "accepted", _document("Rejected"): "rejected",
                  _document("ActionRequired"): "action_required",
                  _document("Expired"): "expired", _document("Replaced"): "replaced"}
DOCUMENT_KIND = "document"
# A video consultation's follow-up instructions, which the clinician writes for the patient
# (its internal notes are another event, `Consultation.InternalNotesWritten`).
FOLLOW_UP = "carebridge:telemedicine.Consultation.FollowUpWritten.v1"
VIDEO_SUMMARY_TITLE = "Video consultation: what to do next"

_COLUMNS = ("record_id, patient_id, clinic_id, kind, code, title, status, content, occurred_at,"
            " released_at, amended_at, amendment_reason, earlier, abnormal, search_text,"
            " aggregate_version, updated_at")


def _table_ddl(table: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {{{table}}} ("
            " record_id uuid PRIMARY KEY, patient_id uuid NOT NULL, clinic_id text NOT NULL,"
            " kind text NOT NULL, code text NOT NULL, title text NOT NULL, status text NOT NULL,"
            " content jsonb NOT NULL, occurred_at timestamptz NOT NULL, released_at timestamptz,"
            " amended_at timestamptz, amendment_reason text,"
            " earlier jsonb NOT NULL DEFAULT '[]', abnormal boolean NOT NULL DEFAULT false,"
            " search_text text NOT NULL, aggregate_version bigint NOT NULL,"
            " updated_at timestamptz NOT NULL)")


class PatientRecords(Projection):
    name = PROJECTION
    sources = {"records": (ENTERED, REVISED, RELEASED, WITHDRAWN),
               "documents": (UPLOADED, *DOCUMENT_STEPS), "telemedicine": (FOLLOW_UP,)}
    tables = ("patient_records", "record_drafts")
    # Records waiting for release are nobody's view yet: they are kept out of `views`.
    table_schemas = {"record_drafts": "pending"}

    def ddl(self) -> Sequence[str]:
        return [
            _table_ddl("patient_records"),
            _table_ddl("record_drafts"),
            "CREATE INDEX IF NOT EXISTS {ix_patient_records_patient} ON {patient_records}"
            " (patient_id, occurred_at DESC, record_id)",
        ]

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            e, topic = envelope.event, envelope.topic
            if topic == ENTERED:
                cur.execute(t.format(
                    f"INSERT INTO {{record_drafts}} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s,"
                    " %s, %s, %s, %s, NULL, %s, NULL, '[]', %s, %s, %s, %s)"
                    " ON CONFLICT (record_id) DO NOTHING"),
                    (e.originator_id, e.patient_id, e.clinic_id, e.kind, e.code, e.title,
                     e.status, Jsonb(e.content), e.occurred_at,
                     e.at if e.status == Status.AMENDED else None, _abnormal(e.content),
                     _search_text(e.kind, e.title, e.content), e.originator_version, e.at))
            elif topic == REVISED:
                for table in ("record_drafts", "patient_records"):
                    cur.execute(t.format(
                        f"UPDATE {{{table}}} SET earlier = earlier || jsonb_build_array("
                        " jsonb_build_object('status', status, 'title', title, 'content',"
                        " content, 'until', %s::timestamptz)), title = %s, status = %s,"
                        " content = %s, abnormal = %s, search_text = %s,"
                        " amended_at = CASE WHEN %s = 'amended' THEN %s ELSE amended_at END,"
                        " amendment_reason = CASE WHEN %s = 'amended' THEN %s"
                        " ELSE amendment_reason END, aggregate_version = %s, updated_at = %s"
                        " WHERE record_id = %s"),
                        (e.at, e.title, e.status, Jsonb(e.content), _abnormal(e.content),
                         _search_text(_kind_of(cur, t, table, e.originator_id), e.title,
                                      e.content),
                         e.status, e.at, e.status, e.reason, e.originator_version, e.at,
                         e.originator_id))
            elif topic == RELEASED:
                cur.execute(t.format(
                    f"INSERT INTO {{patient_records}} ({_COLUMNS}) SELECT record_id,"
                    " patient_id, clinic_id, kind, code, title, status, content, occurred_at,"
                    " %s, amended_at, amendment_reason, earlier, abnormal, search_text, %s, %s"
                    " FROM {record_drafts} WHERE record_id = %s"
                    " ON CONFLICT (record_id) DO NOTHING"),
                    (e.at, e.originator_version, e.at, e.originator_id))
                cur.execute(t.format("DELETE FROM {record_drafts} WHERE record_id = %s"),
                            (e.originator_id,))
            elif topic == WITHDRAWN:
                for table in ("record_drafts", "patient_records"):
                    cur.execute(t.format(f"DELETE FROM {{{table}}} WHERE record_id = %s"),
                                (e.originator_id,))
            elif topic == FOLLOW_UP:
                self._follow_up(cur, t, e)
            elif topic == UPLOADED:
                content = {"document_type": e.document_type, "filename": e.filename,
                           "content_type": e.content_type, "size": e.size,
                           "appointment_id": str(e.appointment_id) if e.appointment_id
                           else None, "reason": None, "note": None}
                cur.execute(t.format(
                    f"INSERT INTO {{patient_records}} ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s,"
                    " %s, 'pending_review', %s, %s, %s, NULL, NULL, '[]', false, %s, %s, %s)"
                    " ON CONFLICT (record_id) DO NOTHING"),
                    (e.originator_id, e.patient_id, e.clinic_id, DOCUMENT_KIND, e.document_type,
                     e.filename, Jsonb(content), e.at, e.at,
                     _search_text(DOCUMENT_KIND, e.filename, content), e.originator_version,
                     e.at))
            else:  # a document's review outcome, in words written for the patient
                reason = getattr(e, "reason", None)
                note = getattr(e, "note", None)
                cur.execute(t.format(
                    "UPDATE {patient_records} SET status = %s,"
                    " content = content || jsonb_build_object('reason', %s::text, 'note',"
                    " %s::text), aggregate_version = %s, updated_at = %s WHERE record_id = %s"),
                    (DOCUMENT_STEPS[topic], reason, note, e.originator_version, e.at,
                     e.originator_id))


    @staticmethod
    def _follow_up(cur: Cursor[Any], t: Tables, e: Any) -> None:
        if not e.follow_up_instructions:
            cur.execute(t.format("DELETE FROM {patient_records} WHERE record_id = %s"),
                        (e.originator_id,))
            return
        content = {"summary": None, "appointment_id": str(e.originator_id), "comment": None,
                   "follow_up": e.follow_up_instructions}
        cur.execute(t.format(
            f"INSERT INTO {{patient_records}} ({_COLUMNS}) VALUES (%s, %s, %s,"
            " 'appointment_summary', 'video_consultation', %s, 'final', %s, %s, %s, NULL, NULL,"
            " '[]', false, %s, %s, %s) ON CONFLICT (record_id) DO UPDATE SET"
            " earlier = {patient_records}.earlier || jsonb_build_array(jsonb_build_object("
            " 'status', {patient_records}.status, 'title', {patient_records}.title, 'content',"
            " {patient_records}.content, 'until', EXCLUDED.updated_at)),"
            " content = EXCLUDED.content, amended_at = EXCLUDED.updated_at,"
            " aggregate_version = EXCLUDED.aggregate_version, updated_at = EXCLUDED.updated_at"),
            (e.originator_id, e.patient_id, e.clinic_id, VIDEO_SUMMARY_TITLE, Jsonb(content),
             e.starts_at, e.at, _search_text("appointment_summary", VIDEO_SUMMARY_TITLE, content),
             e.originator_version, e.at))


def _kind_of(cur: Cursor[Any], t: Tables, table: str, record_id: UUID) -> str:
    row = cur.execute(t.format(f"SELECT kind FROM {{{table}}} WHERE record_id = %s"),
                      (record_id,)).fetchone()
    return row[0] if row else ""


def _abnormal(content: dict[str, Any]) -> bool:
    return any(o.get("flag") not in (None, "normal") for o in content.get("observations") or ())


def _search_text(kind: str, title: str, content: dict[str, Any]) -> str:
    """What a patient's search matches: the words they can read in the list and the record,
    never a value or anything they cannot see."""
    words = [title, KIND_WORDS.get(kind, "Document") if kind else ""]  # type: ignore[call-overload]
    words += [o.get("name") or "" for o in content.get("observations") or ()]
    for key in ("vaccine", "condition", "to", "filename", "document_type"):
        if isinstance(content.get(key), str):
            words.append(content[key])
    return " ".join(w for w in words if w).lower()


# ---- reading (the patient API) ----------------------------------------------------------------


async def patient_records(conn: psycopg.AsyncConnection[Any], patient_id: UUID, *,
                          kind: str | None = None, status: str | None = None,
                          code: str | None = None, text: str | None = None,
                          abnormal: bool | None = None, since: datetime | None = None,
                          until: datetime | None = None,
                          after: tuple[datetime, UUID] | None = None,
                          limit: int = 50) -> list[dict[str, Any]]:
    """One page of a patient's released records, newest first (keyset: `after` is the last
    row's occurred_at and id)."""
    where: list[str] = ["patient_id = %s"]
    params: list[Any] = [patient_id]
    for column, value in (("kind", kind), ("status", status), ("code", code)):
        if value is not None:
            where.append(f"{column} = %s")
            params.append(value)
    if abnormal is not None:
        where.append("abnormal = %s")
        params.append(abnormal)
    if since is not None:
        where.append("occurred_at >= %s")
        params.append(since)
    if until is not None:
        where.append("occurred_at < %s")
        params.append(until)
    if text:
        for word in text.lower().split()[:8]:
            where.append("strpos(search_text, %s) > 0")
            params.append(word)
    if after is not None:
        where.append("(occurred_at, record_id) < (%s, %s)")
        params.extend(after)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        f"SELECT {_COLUMNS} FROM views.patient_records WHERE {' AND '.join(where)}"
        " ORDER BY occurred_at DESC, record_id DESC LIMIT %s", [*params, limit])
    return await cur.fetchall()


async def patient_record(conn: psycopg.AsyncConnection[Any],
                         record_id: UUID) -> dict[str, Any] | None:
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(f"SELECT {_COLUMNS} FROM views.patient_records WHERE record_id = %s",
                      (record_id,))
    return await cur.fetchone()
