"""The audit trail: every change and every read, of a stream, a patient or an actor.

The event logs are the audit log of changes; `carebridge.record_access` is the log of reads.
A patient's streams are found through the write-side lookup tables (written in the same
transaction as the events, so they never lag) and the stream ids derived from the patient's
id; an actor's changes by scanning every application's notification log in pages. Secrets
(password hashes, token, code and refresh hashes, TOTP secrets) are redacted by field name;
clinical content is shown, because auditors are the audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

from commands.calendar import feed_id
from commands.eventstore import CareApplication
from domain.consents import ConsentType, consent_id
from domain.consultations import consultation_id
from domain.prescriptions import medications_id
from domain.profiles import profile_id

REDACTED = "[redacted]"
# Field names (of events and aggregate state) that hold secrets or what proves one.
SECRET_PARTS = ("password", "secret", "token", "recovery", "code_hash", "code_sha256", "codes",
                "refresh", "nonce", "remembered", "email_verification", "spent")
_META = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic",
                   "by", "at"})
SCAN_PAGE = 1_000

# Where each kind of patient stream is listed: (application, SQL giving its ids for a patient).
_PATIENT_STREAMS: tuple[tuple[str, str], ...] = (
    ("records", "SELECT record_id FROM carebridge.records WHERE patient_id = %s"),
    ("documents", "SELECT document_id FROM carebridge.documents WHERE patient_id = %s"),
    ("messaging", "SELECT thread_id FROM carebridge.message_threads WHERE patient_id = %s"),
    ("emergency", "SELECT share_id FROM carebridge.emergency_shares WHERE patient_id = %s"),
    ("care", "SELECT aggregate_id FROM carebridge.access_relationships WHERE patient_id = %s"),
    ("prescriptions",
     "SELECT request_id FROM carebridge.prescription_requests WHERE patient_id = %s"),
    ("waitlist", "SELECT entry_id FROM carebridge.waitlist_entries WHERE patient_id = %s"),
    ("forms", "SELECT response_id FROM carebridge.form_responses WHERE patient_id = %s"),
    ("identity", "SELECT passkey_id FROM carebridge.passkeys WHERE account_id = %s"),
    ("identity", "SELECT session_id FROM carebridge.session_activity WHERE account_id = %s"),
)
_APPOINTMENTS = ("SELECT appointment_id FROM carebridge.slot_bookings WHERE patient_id = %s"
                 " UNION SELECT appointment_id FROM views.appointments WHERE patient_id = %s")


def is_secret(name: str) -> bool:
    return any(part in name for part in SECRET_PARTS)


def plain(value: Any) -> Any:
    """A JSON-ready copy of an event field or state value."""
    return msgspec.to_builtins(value, str_keys=True, enc_hook=str)


def redacted(values: dict[str, Any]) -> dict[str, Any]:
    return {name: REDACTED if is_secret(name) else plain(value) for name, value in values.items()}


@dataclass(frozen=True)
class Entry:
    """One line of a trail: a change (an event) or a read (a row of the access log)."""

    kind: str  # "change" or "read"
    at: datetime
    actor: str
    application: str
    aggregate_id: UUID
    version: int | None  # the event's version; None for a read
    event_type: str  # e.g. records.Record.Released.v1, or "read:record"
    patient_id: UUID | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    access_id: int | None = None  # reads: the access log row
    action: str | None = None  # reads: view or download

    def as_dict(self) -> dict[str, Any]:
        return plain(self)


def _event_type(event: Any) -> str:
    topic: str = getattr(type(event), "TOPIC", "") or type(event).__qualname__
    return topic.split(":", 1)[-1]


def _at(event: Any) -> datetime:
    return getattr(event, "at", None) or event.timestamp


def change(app_name: str, event: Any) -> Entry:
    values = {k: v for k, v in vars(event).items() if k not in _META}
    patient = values.get("patient_id")
    return Entry("change", _at(event), getattr(event, "by", "unknown"), app_name,
                 event.originator_id, event.originator_version, _event_type(event),
                 patient if isinstance(patient, UUID) else None, redacted(values))


def _read(row: dict[str, Any]) -> Entry:
    return Entry("read", row["at"], row["actor"], row["resource"], row["resource_id"], None,
                 f"read:{row['resource']}", row["patient_id"], {}, row["access_id"],
                 row["action"])


def _ordered(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.at, e.kind, e.application, e.version or 0,
                                          e.access_id or 0))


class AuditTrail:
    """Trails and past states, read from the event store and the access log."""

    def __init__(self, applications: dict[str, CareApplication], zone: ZoneInfo) -> None:
        self.applications, self.zone = applications, zone
        any_app: Any = next(iter(applications.values()))
        self.datastore = any_app.factory.datastore

    def _rows(self, query: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        with self.datastore.get_connection() as conn:
            return list(conn.execute(query, params).fetchall())

    # ---- one stream -------------------------------------------------------------------------

    def find_stream(self, aggregate_id: UUID) -> CareApplication | None:
        for app in self.applications.values():
            if app.recorder.select_events(aggregate_id, limit=1):
                return app
        return None

    def stream(self, app: CareApplication, aggregate_id: UUID) -> list[Entry]:
        return [change(app.name, e) for e in app.events.get(aggregate_id)]

    def state_as_of(self, app: CareApplication, aggregate_id: UUID,
                    as_of: datetime) -> tuple[int, dict[str, Any]] | None:
        """The aggregate's version and state as they were at `as_of` (None: not yet there)."""
        versions = [e.version for e in self.stream(app, aggregate_id) if e.at <= as_of]
        if not versions:
            return None
        aggregate: Any = app.repository.get(aggregate_id, version=max(v or 0 for v in versions))
        state = {name.lstrip("_"): value for name, value in vars(aggregate).items()
                 if name != "_pending_events"}
        return aggregate.version, redacted(state)

    # ---- a patient ----------------------------------------------------------------------------

    def patient_streams(self, patient_id: UUID) -> list[tuple[str, UUID]]:
        """Every stream about the patient, in every context, as (application, id)."""
        found: list[tuple[str, UUID]] = [
            ("identity", patient_id), ("profiles", profile_id(patient_id)),
            ("prescriptions", medications_id(patient_id)), ("calendar", feed_id(patient_id)),
            *(("consents", consent_id(patient_id, t)) for t in ConsentType)]
        for app_name, query in _PATIENT_STREAMS:
            found += [(app_name, next(iter(r.values()))) for r in self._rows(query, (patient_id,))]
        for row in self._rows(_APPOINTMENTS, (patient_id, patient_id)):
            found += [("appointments", row["appointment_id"]),
                      ("telemedicine", consultation_id(row["appointment_id"]))]
        return list(dict.fromkeys(s for s in found if s[0] in self.applications))

    def patient(self, patient_id: UUID) -> list[Entry]:
        """Every change to any of the patient's streams and every read of their record."""
        changes = (replace(change(name, event), patient_id=patient_id)
                   for name, stream_id in self.patient_streams(patient_id)
                   for event in self.applications[name].events.get(stream_id))
        reads = map(_read, self._rows(
            "SELECT * FROM carebridge.record_access WHERE patient_id = %s ORDER BY access_id",
            (patient_id,)))
        return _ordered([*changes, *reads])

    def seen_on(self, patient_id: UUID, day: date) -> list[dict[str, Any]]:
        """The records the patient could see on `day` (in the clinic's zone), each as it stood
        when the day ended."""
        return self.seen_at(patient_id, self.end_of(day))

    def end_of(self, day: date) -> datetime:
        return datetime.combine(day + timedelta(days=1), time(), self.zone)

    def seen_at(self, patient_id: UUID, moment: datetime) -> list[dict[str, Any]]:
        """The records the patient could see just before `moment`: released before it and not
        withdrawn by then, each at the version it had then (from the events, not the view)."""
        app = self.applications["records"]
        visible = []
        # The lookup only lists the patient's records; whether and how each was visible is
        # decided from its events.
        for row in self._rows("SELECT record_id FROM carebridge.records WHERE patient_id = %s"
                              " ORDER BY occurred_at, record_id", (patient_id,)):
            versions = [e.version or 0 for e in self.stream(app, row["record_id"])
                        if e.at < moment]
            if not versions:
                continue
            record: Any = app.repository.get(row["record_id"], version=max(versions))
            if record.released_at is None or record.released_at >= moment \
                    or record.entered_in_error is not None:
                continue
            visible.append(plain({
                "record_id": record.id, "version": record.version, "kind": record.kind,
                "code": record.code, "title": record.title, "status": record.status,
                "content": record.content, "occurred_at": record.occurred_at,
                "released_at": record.released_at, "released_by": record.released_by}))
        return visible

    # ---- an actor -----------------------------------------------------------------------------

    def actor(self, actor: str) -> list[Entry]:
        """Every event recorded by the actor, in every application, and everything they read.
        `actor` is an actor ref (`doctor:<id>`, `system`) or a bare account id (any role)."""
        def mine(by: str) -> bool:
            return by == actor or by.endswith(":" + actor)

        changes = [entry for entry in self._scan() if mine(entry.actor)]
        reads = [_read(r) for r in self._rows(
            "SELECT * FROM carebridge.record_access WHERE actor = %s OR actor LIKE %s"
            " ORDER BY access_id", (actor, "%:" + actor)) if mine(r["actor"])]
        return _ordered([*changes, *reads])

    def _scan(self) -> Iterator[Entry]:
        """Every event of every application, a page at a time."""
        for app in self.applications.values():
            start = 1
            while page := app.recorder.select_notifications(start=start, limit=SCAN_PAGE):
                for notification in page:
                    yield change(app.name, app.mapper.to_domain_event(notification))
                start = page[-1].id + 1
