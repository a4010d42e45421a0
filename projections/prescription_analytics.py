"""Prescription analytics: how long repeat prescription requests spend at each step, per clinic.

Two tables in the `analytics` schema, which analysts read with SQL as `carebridge_analyst` (the
schema's default privileges give that role SELECT on every table the projection creates,
rebuilt tables included):

- `prescription_steps`: one row per step a request went through, with when it entered and left
  the step. A step is a status in a queue: when a coordinator escalates a request to a
  prescriber, its current step ends and a new `submitted` step begins in the prescriber queue,
  so that the wait for each queue can be measured on its own. The last step of a rejected,
  completed or cancelled request never ends (`left_at` stays null).
- `prescription_turnaround`: one row per request: when it was submitted, decided (approved or
  rejected), handed over (ready for collection or sent to the pharmacy) and closed, with the
  outcome and the rejection reason code.

`delayed` on a request says it was ever marked past its promised date; on a step, that the
request was delayed while it was at that step. Durations are computed by the database from the
times (generated columns), in seconds.

Pseudonymous by construction: the only key is the request id (`request_key`), which analysts
cannot join to a patient (they read nothing outside this schema). No patient id, actor,
pharmacy, medication, dose, note or explanation is ever read from an event.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import Cursor

from domain.prescriptions import PrescriptionRequest, Queue, Status
from projections.base import Envelope, Projection, Tables

log = logging.getLogger("carebridge.projections")

_R = PrescriptionRequest
SUBMITTED = _R.Created.TOPIC  # type: ignore[attr-defined]
ESCALATED = _R.Escalated.TOPIC  # type: ignore[attr-defined]
DELAYED = _R.Delayed.TOPIC  # type: ignore[attr-defined]
REJECTED = _R.Rejected.TOPIC  # type: ignore[attr-defined]
_STEP_OF = {
    _R.ReviewStarted.TOPIC: Status.UNDER_REVIEW,  # type: ignore[attr-defined]
    _R.Approved.TOPIC: Status.APPROVED,  # type: ignore[attr-defined]
    REJECTED: Status.REJECTED,
    _R.ReadyForCollection.TOPIC: Status.READY_FOR_COLLECTION,  # type: ignore[attr-defined]
    _R.SentToPharmacy.TOPIC: Status.SENT_TO_PHARMACY,  # type: ignore[attr-defined]
    _R.Completed.TOPIC: Status.COMPLETED,  # type: ignore[attr-defined]
    _R.Cancelled.TOPIC: Status.CANCELLED,  # type: ignore[attr-defined]
}
_DECIDED = {Status.APPROVED, Status.REJECTED}
_HANDED_OVER = {Status.READY_FOR_COLLECTION, Status.SENT_TO_PHARMACY}
_CLOSED = {Status.REJECTED, Status.COMPLETED, Status.CANCELLED}

_STEP_COLUMNS = ("request_key", "step_number", "clinic_id", "queue", "step", "entered_at",
                 "left_at", "fulfilment", "medication_count", "delayed")
_REQUEST_COLUMNS = ("request_key", "clinic_id", "queue", "fulfilment", "medication_count",
                    "escalated", "submitted_at", "decided_at", "handed_over_at", "closed_at",
                    "outcome", "delayed", "rejection_reason")


def _seconds(until: str, since: str) -> str:
    return f"numeric GENERATED ALWAYS AS (extract(epoch FROM {until} - {since})) STORED"


@dataclass
class _Step:
    number: int
    step: str
    queue: str
    entered_at: datetime
    delayed: bool
    left_at: datetime | None = None
    changed: bool = False


@dataclass
class _Request:
    request_key: UUID
    clinic_id: str
    queue: str
    fulfilment: str
    medication_count: int
    escalated: bool
    submitted_at: datetime
    decided_at: datetime | None = None
    handed_over_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: str | None = None
    delayed: bool = False
    rejection_reason: str | None = None
    stored: bool = False  # already a row (submitted in an earlier batch)
    current: _Step | None = None
    stored_step: _Step | None = None  # the current step as the table held it
    new_steps: list[_Step] = field(default_factory=list)

    def enter(self, step: str, at: datetime) -> None:
        if self.current is not None:
            self.current.left_at, self.current.changed = at, True
        number = self.current.number + 1 if self.current is not None else 1
        self.current = _Step(number, step, self.queue, at, self.delayed)
        self.new_steps.append(self.current)

    def step_row(self, s: _Step) -> tuple[Any, ...]:
        return (self.request_key, s.number, self.clinic_id, s.queue, s.step, s.entered_at,
                s.left_at, self.fulfilment, self.medication_count, s.delayed)

    def row(self) -> tuple[Any, ...]:
        return (self.request_key, self.clinic_id, self.queue, self.fulfilment,
                self.medication_count, self.escalated, self.submitted_at, self.decided_at,
                self.handed_over_at, self.closed_at, self.outcome, self.delayed,
                self.rejection_reason)


class PrescriptionAnalytics(Projection):
    name = "prescription_analytics"
    schema = "analytics"
    settle_seconds = 0.5
    sources = {"prescriptions": (SUBMITTED, ESCALATED, DELAYED, *_STEP_OF)}
    tables = ("prescription_steps", "prescription_turnaround")

    def ddl(self) -> Sequence[str]:
        return [
            "CREATE TABLE IF NOT EXISTS {prescription_steps} ("
            " request_key uuid NOT NULL, step_number integer NOT NULL, clinic_id text NOT NULL,"
            " queue text NOT NULL, step text NOT NULL, entered_at timestamptz NOT NULL,"
            " left_at timestamptz,"
            f" seconds_in_step {_seconds('left_at', 'entered_at')},"
            " fulfilment text NOT NULL, medication_count integer NOT NULL,"
            " delayed boolean NOT NULL, PRIMARY KEY (request_key, step_number))",
            "CREATE INDEX IF NOT EXISTS {ix_prescription_steps_clinic}"
            " ON {prescription_steps} (clinic_id, step, entered_at)",
            "CREATE TABLE IF NOT EXISTS {prescription_turnaround} ("
            " request_key uuid PRIMARY KEY, clinic_id text NOT NULL, queue text NOT NULL,"
            " fulfilment text NOT NULL, medication_count integer NOT NULL,"
            " escalated boolean NOT NULL, submitted_at timestamptz NOT NULL,"
            " decided_at timestamptz, handed_over_at timestamptz, closed_at timestamptz,"
            " outcome text,"
            f" decision_seconds {_seconds('decided_at', 'submitted_at')},"
            f" total_seconds {_seconds('closed_at', 'submitted_at')},"
            " delayed boolean NOT NULL, rejection_reason text)",
            "CREATE INDEX IF NOT EXISTS {ix_prescription_turnaround_clinic}"
            " ON {prescription_turnaround} (clinic_id, submitted_at)",
        ]

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        requests = self._stored(cur, t, batch)
        for envelope in batch:
            e, topic = envelope.event, envelope.topic
            if topic == SUBMITTED:
                new = requests[e.originator_id] = _Request(
                    e.originator_id, e.clinic_id, e.queue, e.fulfilment, len(e.items),
                    escalated=False, submitted_at=e.at)
                new.enter(Status.SUBMITTED.value, e.at)
                continue
            r = requests.get(e.originator_id)
            if r is None:
                log.warning("prescription analytics: no submission for request %s; event skipped",
                            e.originator_id)
            elif topic == ESCALATED:
                r.queue, r.escalated = Queue.PRESCRIBER.value, True
                r.enter(Status.SUBMITTED.value, e.at)
            elif topic == DELAYED:
                r.delayed = True
                if r.current is not None:
                    r.current.delayed, r.current.changed = True, True
            else:
                _step(r, _STEP_OF[topic], e)
        self._write(cur, t, list(requests.values()))

    def _stored(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> dict[UUID, _Request]:
        """The requests this batch continues (submitted in an earlier batch), with their
        current step, in one query."""
        submitted = {e.event.originator_id for e in batch if e.topic == SUBMITTED}
        earlier = list({e.event.originator_id for e in batch} - submitted)
        if not earlier:
            return {}
        found = cur.execute(t.format(
            "SELECT r.request_key, r.clinic_id, r.queue, r.fulfilment, r.medication_count,"
            " r.escalated, r.submitted_at, r.decided_at, r.handed_over_at, r.closed_at,"
            " r.outcome, r.delayed, r.rejection_reason,"
            " s.step_number, s.step, s.queue, s.entered_at, s.delayed"
            " FROM {prescription_turnaround} r JOIN {prescription_steps} s"
            " ON s.request_key = r.request_key AND s.left_at IS NULL"
            " WHERE r.request_key = ANY(%s)"), (earlier,)).fetchall()
        requests = {}
        for row in found:
            r = _Request(*row[:13])
            r.stored = True
            r.current = r.stored_step = _Step(*row[13:])
            requests[r.request_key] = r
        return requests

    def _write(self, cur: Cursor[Any], t: Tables, requests: list[_Request]) -> None:
        new_steps = [r.step_row(s) for r in requests for s in r.new_steps]
        if new_steps:
            with cur.copy(t.format(
                    f"COPY {{prescription_steps}} ({', '.join(_STEP_COLUMNS)}) FROM STDIN")) as copy:
                for step_row in new_steps:
                    copy.write_row(step_row)
        ended = [(s.left_at, s.delayed, r.request_key, s.number)
                 for r in requests if (s := r.stored_step) is not None and s.changed]
        if ended:
            cur.executemany(t.format(
                "UPDATE {prescription_steps} SET left_at = %s, delayed = %s"
                " WHERE request_key = %s AND step_number = %s"), ended)
        fresh = [r.row() for r in requests if not r.stored]
        if fresh:
            with cur.copy(t.format(
                    f"COPY {{prescription_turnaround}} ({', '.join(_REQUEST_COLUMNS)}) FROM STDIN"
            )) as copy:
                for request_row in fresh:
                    copy.write_row(request_row)
        changed = [(*r.row()[1:], r.request_key) for r in requests if r.stored]
        if changed:
            cur.executemany(t.format(
                "UPDATE {prescription_turnaround} SET "
                + ", ".join(f"{c} = %s" for c in _REQUEST_COLUMNS[1:])
                + " WHERE request_key = %s"), changed)


def _step(r: _Request, status: Status, e: Any) -> None:
    r.enter(status.value, e.at)
    if status in _DECIDED:
        r.decided_at = e.at
    if status in _HANDED_OVER:
        r.handed_over_at = e.at
    if status in _CLOSED:
        r.closed_at, r.outcome = e.at, status.value
    if status is Status.REJECTED:
        r.rejection_reason = e.reason
