"""Delivery on a real PostgreSQL: the patient's channel and quiet hours for care notifications
(across clock changes), account messages untouched, the actor's exactly-once delivery, the
dispatcher's queue and its lease, and failed notifications sent again by support."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from commands.outbox import (
    MAX_ATTEMPTS,
    Contacts,
    FailedNotifications,
    OutboxDispatcher,
    Outgoing,
    quiet_until,
)
from commands.push import PushDevices, PushSender
from domain.access import Actor
from domain.errors import Conflict, Forbidden
from domain.identity import Role
from tests.integration.delivery_support import (
    NOW,
    Patient,
    Recorder,
    preferring,
    put,
    reminder,
    row,
    sign_in_code,
)

pytestmark = pytest.mark.integration
LONDON_NIGHT = ("21:00", "07:00", "Europe/London")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def dispatcher(database, patient: Patient, clock: Clock | None = None, **senders):
    senders = {"email": Recorder(), "sms": Recorder(), **senders}
    return OutboxDispatcher(database.url, senders, preferences=patient.preferences_of,
                            contacts=patient.contacts_of, clock=clock or Clock(NOW))


# ---- which channel -----------------------------------------------------------------------------


def test_a_reminder_goes_by_text_when_the_patient_chose_text(database):
    delivery = dispatcher(database, Patient(preferring("sms")))
    message = reminder()
    put(database.url, message)

    assert delivery.deliver_due() == 1

    assert delivery.senders["email"].sent == []
    (text,) = delivery.senders["sms"].sent
    assert text.recipient == "+44 7700 900123"
    assert text.text() == ("CareBridge reminder: appointment 24 November 2026 at 10:30 GMT at "
                           "Riverside. Cancel in the app if you cannot come.")
    assert row(database.url, message.message_id)["channel"] == "sms"


def test_push_comes_first_when_a_device_is_registered_and_chosen(database, tmp_path):
    devices = PushDevices(database.url)
    message = reminder()
    devices.register(message.account_id, "phone-1", "fcm", "token-abcdefgh", NOW)
    push = PushSender(devices, {}, tmp_path / "push.log")
    delivery = dispatcher(database, Patient(preferring("email", "sms", "push")), push=push)
    put(database.url, message)

    assert delivery.deliver_due() == 1

    assert delivery.senders["email"].sent == delivery.senders["sms"].sent == []
    assert str(message.message_id) in (tmp_path / "push.log").read_text()
    assert row(database.url, message.message_id)["channel"] == "push"


def test_a_chosen_channel_that_cannot_reach_the_patient_is_passed_over(database, tmp_path):
    no_mobile = Patient(preferring("push", "sms", "email"), Contacts("ada@patients.test", None))
    no_device = PushSender(PushDevices(database.url), {}, tmp_path / "push.log")
    delivery = dispatcher(database, no_mobile, push=no_device)
    message = reminder()
    put(database.url, message)

    assert delivery.deliver_due() == 1

    (email,) = delivery.senders["email"].sent
    assert email.recipient == "ada@patients.test"


def test_an_account_message_keeps_its_channel_whatever_the_preferences(database):
    delivery = dispatcher(database, Patient(preferring("sms", quiet=("00:00", "23:59",
                                                                     "Europe/London"))))
    message = sign_in_code()
    put(database.url, message)

    assert delivery.deliver_due() == 1

    (email,) = delivery.senders["email"].sent
    assert email.kind == "sign_in_code" and email.recipient == "ada@patients.test"


def test_without_preferences_a_message_goes_where_it_was_written_for(database):
    delivery = dispatcher(database, Patient(None))
    put(database.url, reminder())

    assert delivery.deliver_due() == 1
    assert len(delivery.senders["email"].sent) == 1


# ---- quiet hours ---------------------------------------------------------------------------------


def test_a_reminder_in_quiet_hours_waits_for_their_end_without_counting_an_attempt(database):
    clock = Clock(datetime(2026, 11, 23, 22, 30, tzinfo=UTC))  # 22:30 in London (GMT)
    delivery = dispatcher(database, Patient(preferring("email", quiet=LONDON_NIGHT)), clock)
    message = reminder()
    put(database.url, message, at=clock.now)

    assert delivery.deliver_due() == 0

    waiting = row(database.url, message.message_id)
    assert waiting["not_before"] == datetime(2026, 11, 24, 7, tzinfo=UTC)
    assert waiting["attempts"] == 0 and waiting["deferred_count"] == 1
    assert delivery.senders["email"].sent == []
    clock.now = datetime(2026, 11, 24, 6, 59, tzinfo=UTC)
    assert delivery.deliver_due() == 0  # not yet
    clock.now = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
    assert delivery.deliver_due() == 1
    assert row(database.url, message.message_id)["attempts"] == 1


@pytest.mark.parametrize("kind", ["clinician_joined", "video_join_reminder"])
def test_time_critical_notifications_ignore_quiet_hours(database, kind):
    clock = Clock(datetime(2026, 11, 23, 23, 0, tzinfo=UTC))
    delivery = dispatcher(database, Patient(preferring("email", quiet=LONDON_NIGHT)), clock)
    put(database.url, reminder(kind=kind), at=clock.now)

    assert delivery.deliver_due() == 1


@pytest.mark.parametrize(("at", "ends"), [
    # The clocks go back at 02:00 BST on 25 October 2026: 07:00 is then 07:00 UTC, not 06:00.
    (datetime(2026, 10, 24, 21, 0, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
    # They go forward at 01:00 GMT on 29 March 2026: 07:00 BST is 06:00 UTC.
    (datetime(2026, 3, 28, 22, 0, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
    # Just after midnight, inside the window that began the evening before.
    (datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
])
def test_a_deferral_ends_at_seven_on_the_patients_clock_across_a_clock_change(database, at, ends):
    assert quiet_until(preferring("email", quiet=LONDON_NIGHT), at) == ends

    delivery = dispatcher(database, Patient(preferring("email", quiet=LONDON_NIGHT)), Clock(at))
    message = reminder()
    put(database.url, message, at=at)
    assert delivery.deliver_due() == 0
    assert row(database.url, message.message_id)["not_before"] == ends


def test_outside_quiet_hours_nothing_waits():
    assert quiet_until(preferring("email", quiet=LONDON_NIGHT),
                       datetime(2026, 7, 1, 12, tzinfo=UTC)) is None
    assert quiet_until(preferring("email"), datetime(2026, 7, 1, 23, tzinfo=UTC)) is None


# ---- the actor: exactly once ---------------------------------------------------------------------


def test_a_redelivered_message_finds_its_row_sent_and_does_nothing(database):
    delivery = dispatcher(database, Patient(None))
    message = reminder()
    put(database.url, message)

    assert delivery.deliver(message.message_id) == "delivered"
    assert delivery.deliver(message.message_id) == "done"

    assert len(delivery.senders["email"].sent) == 1
    stored = row(database.url, message.message_id)
    assert stored["recipient"] is None and stored["payload"] is None


def test_a_message_whose_row_another_worker_holds_is_left_to_that_worker(database):
    delivery = dispatcher(database, Patient(None))
    message = reminder()
    put(database.url, message)

    with psycopg.connect(database.url) as holder:
        holder.execute("SELECT 1 FROM carebridge.outbox WHERE message_id = %s FOR UPDATE",
                       (message.message_id,))
        assert delivery.deliver(message.message_id) == "busy"
    assert delivery.senders["email"].sent == []


def test_the_dispatcher_queues_each_due_row_once_until_its_lease_runs_out(database):
    clock = Clock(datetime.now(UTC))
    queued: list[uuid.UUID] = []
    delivery = dispatcher(database, Patient(None), clock)
    delivery.queue, delivery.lease = queued.append, timedelta(minutes=5)
    due, later = reminder(), reminder()
    put(database.url, due, at=clock.now)
    put(database.url, later, at=clock.now, not_before=clock.now + timedelta(hours=1))

    assert delivery.queue_due() == 1
    assert delivery.queue_due() == 0  # queued, within its lease
    clock.now += timedelta(minutes=5)  # the broker lost it: queued again
    assert delivery.queue_due() == 1
    assert queued == [due.message_id, due.message_id]

    assert delivery.deliver(due.message_id) == "delivered"
    clock.now += timedelta(minutes=10)
    assert delivery.queue_due() == 0
    assert row(database.url, due.message_id)["queued_at"] is None


def test_a_failure_is_retried_with_backoff_through_the_queue(database):
    clock = Clock(datetime.now(UTC))

    class Down:
        def send(self, message: Outgoing) -> None:
            raise ConnectionRefusedError("provider down")

    queued: list[uuid.UUID] = []
    delivery = dispatcher(database, Patient(None), clock, email=Down())
    delivery.queue = queued.append
    message = reminder()
    put(database.url, message, at=clock.now)

    assert delivery.queue_due() == 1
    assert delivery.deliver(message.message_id) == "retry"
    assert delivery.queue_due() == 0  # not due again for 30 seconds
    clock.now += timedelta(seconds=30)
    assert delivery.queue_due() == 1
    assert row(database.url, message.message_id)["attempts"] == 1


# ---- failed notifications, for support ----------------------------------------------------------


def failed_message(database, clock: Clock):
    class Down:
        def send(self, message: Outgoing) -> None:
            raise TimeoutError("provider timed out")

    delivery = dispatcher(database, Patient(None), clock, email=Down())
    message = reminder()
    put(database.url, message, at=clock.now)
    for _ in range(MAX_ATTEMPTS):
        delivery.deliver(message.message_id)
        clock.now += timedelta(days=3)
    return delivery, message


def test_support_sees_failed_notifications_without_recipient_or_content(database):
    clock = Clock(datetime.now(UTC))
    _, message = failed_message(database, clock)
    support = Actor(uuid.uuid4(), Role.SUPPORT)

    (failed,) = FailedNotifications(database.url).failed(support)

    assert failed.message_id == message.message_id and failed.kind == "appointment_reminder"
    assert failed.attempts == MAX_ATTEMPTS and failed.last_error == "TimeoutError"
    assert not {"recipient", "payload", "params"} & set(vars(failed))
    with pytest.raises(Forbidden):
        FailedNotifications(database.url).failed(Actor(uuid.uuid4(), Role.NURSE))


def test_a_retried_notification_is_delivered_and_cannot_be_retried_again(database):
    clock = Clock(datetime.now(UTC))
    delivery, message = failed_message(database, clock)
    admin = Actor(uuid.uuid4(), Role.CLINIC_ADMIN)
    notifications = FailedNotifications(database.url)

    again = notifications.retry(message.message_id, admin, clock.now)
    assert again.failed_at is None and again.attempts == 0 and again.retried_at == clock.now
    assert notifications.retry(message.message_id, admin, clock.now) == again  # no change

    delivery.senders["email"] = Recorder()
    assert delivery.deliver(message.message_id) == "delivered"
    assert notifications.failed(admin) == []
    with pytest.raises(Conflict):
        notifications.retry(message.message_id, admin, clock.now)
