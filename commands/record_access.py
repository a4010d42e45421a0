"""The record access log: every view or download of part of a patient's record, with who and
when. Rows are only ever added (the database rejects changes); auditors read them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

RECORD_ACCESS = "carebridge.record_access"


_INSERT = (f"INSERT INTO {RECORD_ACCESS} (at, actor, patient_id, resource, resource_id, action)"
           " VALUES (%s, %s, %s, %s, %s, %s)")


def record_access(datastore: Any, actor_ref: str, patient_id: UUID, resource: str,
                  resource_id: UUID, at: datetime, action: str = "view") -> None:
    with datastore.get_connection() as conn:
        conn.execute(_INSERT, (at, actor_ref, patient_id, resource, resource_id, action))


async def record_access_async(conn: Any, actor_ref: str, patient_id: UUID, resource: str,
                              resource_id: UUID, at: datetime, action: str = "view") -> None:
    """`record_access` on an async connection (the API's read pool), committed before the
    read is answered."""
    async with conn.transaction():
        await conn.execute(_INSERT, (at, actor_ref, patient_id, resource, resource_id, action))


# What each kind of access was to, in the patient's words.
RESOURCE_WORDS = {
    "record": "a record", "record_list": "your list of records",
    "document": "a document", "consultation_summary": "a video consultation's summary",
    "prescription_request": "a repeat prescription request",
    "form_response": "answers to a form", "pre_consultation": "what you sent before a visit",
    "message_thread": "a conversation with the clinic",
    "emergency_share": "your emergency location share",
    "audit_trail": "your record's audit trail",
}
ROLE_WORDS = {"patient": "Patient", "doctor": "Doctor", "nurse": "Nurse",
              "reception": "Receptionist", "prescription_coordinator": "Prescription coordinator",
              "care_manager": "Care manager", "support": "Support", "clinic_admin":
              "Clinic administrator", "auditor": "Auditor"}


def access_report(datastore: Any, patient_id: UUID, before: int | None,
                  limit: int) -> list[dict[str, Any]]:
    """Who viewed or downloaded part of this patient's record, newest first, with whether the
    person held emergency (break-glass) access to the patient at that moment."""
    with datastore.get_connection() as conn:
        return conn.execute(
            f"SELECT a.access_id, a.at, a.actor, a.resource, a.resource_id, a.action,"
            " EXISTS (SELECT 1 FROM carebridge.access_relationships b"
            "  WHERE b.patient_id = a.patient_id AND b.kind = 'break_glass'"
            "  AND b.account_id::text = split_part(a.actor, ':', 2)"
            "  AND b.starts_at <= a.at AND (b.ends_at IS NULL OR b.ends_at > a.at)"
            "  AND (b.ended_at IS NULL OR b.ended_at > a.at)) AS break_glass"
            f" FROM {RECORD_ACCESS} a WHERE a.patient_id = %s"
            " AND (%s::bigint IS NULL OR a.access_id < %s)"
            " ORDER BY a.access_id DESC LIMIT %s",
            (patient_id, before, before, limit)).fetchall()
