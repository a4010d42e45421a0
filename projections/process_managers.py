"""Process managers: followers of the appointments log that issue commands or plan messages.

They run like projections (own tracking rows, batches, one leader by advisory lock) but own no
tables, and are never rebuilt: replaying them from the start would offer and remind again.
- `WaitlistOffers` offers freed slots to waiting patients. Its commands commit in the waitlist
  context's own transactions, so an event may be handled again after a crash; handling is
  idempotent (an open offer of a slot is never opened twice). Its runner also lapses offers
  that ran out, on every round.
- `ReminderPlanning` plans and withdraws reminders in the outbox, in the same transaction as
  its tracking position: exactly once. `WebhookPlanning` plans webhook deliveries the same way;
  `PatientDemographics` keeps the names and birth dates that identifier matching uses.
- Sweeps do time-driven work on every round of their runner, as one leader: prescription
  requests past their promised date, records whose release delay has passed, emergency shares
  whose time ran out. Each of their changes is an event by `system`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from eventsourcing.application import Application
from psycopg import Cursor

from commands.identifiers import DEMOGRAPHIC_TOPICS, demographics_statements
from commands.reminders import REMINDER_TOPICS, ReminderPlanner
from commands.waitlist import FREEING_TOPICS, Accounts, WaitlistApplication
from commands.webhooks import WebhookPlanner
from domain.emergency import EmergencyShare
from domain.prescriptions import PrescriptionRequest
from domain.records import Record
from projections.base import Envelope, Projection, Tables
from projections.runner import TRACKING, ProjectionRunner

Clock = Callable[[], datetime]


class WaitlistOffers(Projection):
    name = "waitlist_offers"
    sources = {"appointments": FREEING_TOPICS}
    tables = ()

    def __init__(self, waitlist: WaitlistApplication, clock: Clock) -> None:
        self.waitlist, self.clock = waitlist, clock

    def ddl(self) -> Sequence[str]:
        return []

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            self.waitlist.handle(envelope.topic, envelope.event, self.clock())


class ReminderPlanning(Projection):
    name = "appointment_reminders"
    sources = {"appointments": REMINDER_TOPICS}
    tables = ()

    def __init__(self, planner: ReminderPlanner) -> None:
        self.planner = planner

    def ddl(self) -> Sequence[str]:
        return []

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            for statement in self.planner.statements(envelope.topic, envelope.event, cur):
                cur.execute(statement.sql, statement.params)


class WaitlistRunner(ProjectionRunner):
    """Follows the appointments log for the waitlist, and lapses offers that ran out."""

    def __init__(self, offers: WaitlistOffers, applications: Mapping[str, Application[Any]],
                 url: str, batch_size: int = 100) -> None:
        super().__init__(offers, applications, url, batch_size)
        self.offers = offers

    def catch_up(self, conn: psycopg.Connection[Any],
                 applications: Collection[str] | None = None) -> int:
        now = self.offers.clock()
        booking = self.offers.waitlist.booking
        lapse = getattr(booking, "lapse_expired_holds", None)
        if lapse is not None:
            # Holds lapse by time; recording it (HoldLapsed) is what frees the slot for the
            # waitlist, so the leader records them as it goes.
            lapse(now)
        consumed = super().catch_up(conn, applications)
        self.offers.waitlist.tick(now)
        return consumed


class Sweep(Projection):
    """Time-driven work done on every round of its runner (`SweepRunner`): it follows its
    context's log only so that one process leads at a time, and owns no tables."""

    tables = ()

    def __init__(self, work: Callable[[datetime], object], clock: Clock) -> None:
        self.work, self.clock = work, clock

    def ddl(self) -> Sequence[str]:
        return []

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        return None


class PrescriptionDelays(Sweep):
    """Marks repeat prescription requests past their promised date as delayed (and tells the
    patient), and catches up pharmacy handoffs whose outcome never reached the request."""

    name = "prescription_delays"
    sources = {"prescriptions": (PrescriptionRequest.TOPIC,)}

    def __init__(self, prescriptions: Any, clock: Clock) -> None:
        def work(now: datetime) -> None:
            prescriptions.mark_delayed(now)
            prescriptions.reconcile_handoffs(now)

        super().__init__(work, clock)


class RecordReleases(Sweep):
    """Releases records to patients when the delay configured for their test type has passed
    (each release is an event by `system`, and tells the patient)."""

    name = "record_releases"
    sources = {"records": (Record.TOPIC,)}

    def __init__(self, records: Any, clock: Clock) -> None:
        super().__init__(records.release_due, clock)


class ShareExpiry(Sweep):
    """Ends emergency location shares whose time ran out (an event by `system`; every viewer
    hears that it ended)."""

    name = "emergency_expiry"
    sources = {"emergency": (EmergencyShare.TOPIC,)}

    def __init__(self, emergency: Any, clock: Clock) -> None:
        super().__init__(emergency.expire_due, clock)


class SweepRunner(ProjectionRunner):
    def __init__(self, sweep: Sweep, applications: Mapping[str, Application[Any]],
                 url: str) -> None:
        super().__init__(sweep, applications, url)
        self.sweep = sweep

    def catch_up(self, conn: psycopg.Connection[Any],
                 applications: Collection[str] | None = None) -> int:
        consumed = super().catch_up(conn, applications)
        self.sweep.work(self.sweep.clock())
        return consumed


class WebhookPlanning(Projection):
    """Plans webhook deliveries to clinic systems (commands/webhooks.py) in the same transaction
    as its tracking position: exactly once per event and subscription."""

    name = "webhook_planning"
    sources = WebhookPlanner.sources
    tables = ()

    def __init__(self) -> None:
        self.planner = WebhookPlanner()

    def ddl(self) -> Sequence[str]:
        return []

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            for statement in self.planner.statements(envelope.topic, envelope.event, cur):
                cur.execute(statement.sql, statement.params)


class PatientDemographics(Projection):
    """Keeps patients' family names and dates of birth for matching records from clinic systems
    (commands/identifiers.py), from the identity log, with its tracking position."""

    name = "patient_demographics"
    sources = {"identity": DEMOGRAPHIC_TOPICS}
    tables = ()

    def ddl(self) -> Sequence[str]:
        return []

    def apply(self, cur: Cursor[Any], t: Tables, batch: Sequence[Envelope]) -> None:
        for envelope in batch:
            for statement in demographics_statements(envelope.topic, envelope.event):
                cur.execute(statement.sql, statement.params)


FOLLOWERS: tuple[type[Projection], ...] = (WaitlistOffers, ReminderPlanning, PrescriptionDelays,
                                           RecordReleases, ShareExpiry, WebhookPlanning,
                                           PatientDemographics)


def ensure_follower_tracking(conn: psycopg.Connection[Any]) -> None:
    """Creates the followers' tracking rows (they own no tables)."""
    with conn.transaction():
        for follower in FOLLOWERS:
            for application in follower.sources:
                conn.execute(f"INSERT INTO {TRACKING} (projection, application) VALUES (%s, %s)"
                             " ON CONFLICT DO NOTHING", (follower.name, application))


def followers_for(applications: Mapping[str, Application[Any]], waitlist: WaitlistApplication,
                  accounts: Accounts, settings: Any, url: str,
                  clock: Clock = lambda: datetime.now(UTC)) -> list[ProjectionRunner]:
    """The process managers' runners, once there is an appointments log to follow."""
    if "appointments" not in applications:
        return []
    planner = ReminderPlanner(lambda: waitlist.schedule, accounts, settings.reminder_hours)
    runners = [WaitlistRunner(WaitlistOffers(waitlist, clock), applications, url),
               ProjectionRunner(ReminderPlanning(planner), applications, url,
                                settings.projection_batch_size)]
    if "prescriptions" in applications:
        runners.append(SweepRunner(PrescriptionDelays(applications["prescriptions"], clock),
                                   applications, url))
    if "records" in applications:
        runners.append(SweepRunner(RecordReleases(applications["records"], clock),
                                   applications, url))
    if "emergency" in applications:
        runners.append(SweepRunner(ShareExpiry(applications["emergency"], clock),
                                   applications, url))
    if all(name in applications for name in WebhookPlanner.sources):
        runners.append(ProjectionRunner(WebhookPlanning(), applications, url,
                                        settings.projection_batch_size))
    if "identifiers" in applications:
        runners.append(ProjectionRunner(PatientDemographics(), applications, url,
                                        settings.projection_batch_size))
    return runners
