"""Step definitions for features/notifications.feature: the outbox delivered on the scenario's
clock, preferences set and failures worked through the HTTP API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from commands.outbox import MAX_ATTEMPTS, Message, Outgoing
from tests.api.support import auth
from tests.api.test_notifications import with_notification_routes
from tests.api.test_profile import patient
from tests.integration.delivery_support import Recorder, put, row

scenarios("notifications.feature")

MOBILE = "+44 7700 900123"


@pytest.fixture
def api(client: Any) -> Any:
    return with_notification_routes(client)


@pytest.fixture
def scene(container: Any, clock: Any) -> dict[str, Any]:
    """The outbox's senders are recorders, and it reads the scenario's clock."""
    container.outbox.clock = clock
    container.outbox.senders.update({"email": Recorder(), "sms": Recorder()})
    return {}


def at(clock: Any, when: str) -> datetime:
    """'22:30 on 23 November' (November 2026: London time is UTC)."""
    moment = datetime.strptime(f"{when} 2026", "%H:%M on %d %B %Y").replace(tzinfo=UTC)
    clock.now = moment
    return moment


class Down:
    def send(self, message: Outgoing) -> None:
        raise ConnectionRefusedError("the email provider is down")


@given(parsers.parse("Ada wants to hear from the clinic by text, but not between {start} and "
                     "{end}"))
def ada_prefers_texts(api, scene, start, end):
    scene["ada"] = patient(api, mobile_phone=MOBILE, given_name="Ada")
    preferences = {"channels": ["sms"], "language": "en",
                   "quiet_hours": {"start": start, "end": end, "zone": "Europe/London"}}
    answer = api.put("/v1/me/profile/communication", headers=auth(scene["ada"]),
                     json=preferences)
    assert answer.status_code == 200, answer.text


@given(parsers.parse("Ada has an appointment reminder due at {when}"))
def reminder_due(container, clock, scene, sign_up, when):
    if "ada" not in scene:
        scene["ada"] = sign_up()
        container.outbox.deliver_due()  # the confirmation of her email address
    due = at(clock, when)
    scene["reminder"] = Message("appointment_reminder", "email",
                                uuid.UUID(scene["ada"]["account_id"]), scene["ada"]["email"],
                                {"when": "24 November 2026 at 10:30 GMT",
                                 "clinic": "Riverside Clinic"})
    put(container.database.url, scene["reminder"], at=due - timedelta(days=2), not_before=due)


@given("the email provider is down")
def email_down(container):
    container.outbox.senders["email"] = Down()


@when(parsers.parse("CareBridge sends what is due at {when}"))
def sends_due(container, clock, when):
    if " on " not in when:
        when = f"{when} on {clock.now.strftime('%d %B')}"
    at(clock, when)
    container.outbox.deliver_due()


def reminders(container: Any, channel: str) -> list[Outgoing]:
    return [m for m in container.outbox.senders[channel].sent if m.kind == "appointment_reminder"]


@then("Ada has received nothing")
def received_nothing(container):
    assert reminders(container, "email") == reminders(container, "sms") == []


@then(parsers.parse("her reminder waits until {hh_mm} the next morning"))
def waits_until(container, scene, hh_mm):
    stored = row(container.database.url, scene["reminder"].message_id)
    assert stored["not_before"] == datetime(2026, 11, 24, *map(int, hh_mm.split(":")),
                                            tzinfo=UTC)
    assert stored["attempts"] == 0


@then("Ada receives her reminder by text, naming only the time and the clinic")
def receives_text(container):
    (text,) = reminders(container, "sms")
    assert text.recipient == MOBILE
    assert text.text() == ("CareBridge reminder: appointment 24 November 2026 at 10:30 GMT at "
                           "Riverside Clinic. Cancel in the app if you cannot come.")


@when("CareBridge tries to send it, again and again, until it gives up")
def tries_until_it_gives_up(container, clock):
    for _ in range(MAX_ATTEMPTS + 2):
        container.outbox.deliver_due()
        clock.now += timedelta(days=3)  # past every backoff


@then(parsers.parse("the support team sees the reminder as failed after {attempts:d} attempts, "
                    "without Ada's address or its words"))
def support_sees_failure(api, scene, staff_member, attempts):
    scene["support"] = auth(staff_member("support"))
    answer = api.get("/v1/admin/notifications/failed", headers=scene["support"])
    (failed,) = answer.json()
    assert failed["message_id"] == str(scene["reminder"].message_id)
    assert failed["kind"] == "appointment_reminder" and failed["attempts"] == attempts
    assert failed["last_error"] == "ConnectionRefusedError"
    for private in (scene["ada"]["email"], "Riverside", "10:30"):
        assert private not in answer.text


@when("the email provider is back and support sends the reminder again")
def sends_again(api, container, scene):
    container.outbox.senders["email"] = Recorder()
    answer = api.post(f"/v1/admin/notifications/{scene['reminder'].message_id}/retry",
                      headers=scene["support"])
    assert answer.status_code == 200, answer.text
    container.outbox.deliver_due()


@then("Ada receives her reminder by email")
def receives_email(container, scene):
    (email,) = reminders(container, "email")
    assert email.message_id == scene["reminder"].message_id
    assert email.recipient == scene["ada"]["email"]


@then("the support team sees no failed notifications")
def nothing_failed(api, scene):
    assert api.get("/v1/admin/notifications/failed", headers=scene["support"]).json() == []
