"""Notifications over the API: a patient's push devices (registered, renewed, removed, and then
chosen for care notifications), and the failed notifications clinic administrators and support
see and send again, never with a recipient or content."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from commands.outbox import MAX_ATTEMPTS, Message
from tests.api.support import auth
from tests.integration.delivery_support import put

SHOWN = {"message_id", "kind", "channel", "attempts", "last_error", "created_at", "failed_at",
         "retried_at"}


def with_notification_routes(client: Any) -> Any:
    """The client, with the notification controllers on its app (until api/app.py has them)."""
    from api.controllers.notifications import NotificationAdminController, PushDeviceController

    if not any(route.path.startswith("/v1/me/push-devices") for route in client.app.routes):
        client.app.register(PushDeviceController)
        client.app.register(NotificationAdminController)
    return client


@pytest.fixture
def api(client: Any) -> Any:
    return with_notification_routes(client)


def devices(container: Any, account_id: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(container.database.url) as conn:
        return conn.execute("SELECT device_id, platform, token FROM carebridge.push_devices"
                            " WHERE account_id = %s ORDER BY device_id", (account_id,)).fetchall()


def test_a_patient_registers_renews_and_removes_a_push_device(api, container, sign_up):
    ada = sign_up()
    path = "/v1/me/push-devices/ada-iphone-1"

    first = api.put(path, json={"platform": "apns", "token": "a1b2c3d4e5f6"}, headers=auth(ada))
    assert first.status_code == 201, first.text
    assert set(first.json()) == {"device_id", "platform", "registered_at"}  # no token echoed
    renewed = api.put(path, json={"platform": "apns", "token": "ffeeddccbbaa"},
                      headers=auth(ada))
    assert renewed.status_code == 200
    assert devices(container, ada["account_id"]) == [("ada-iphone-1", "apns", "ffeeddccbbaa")]

    assert api.delete(path, headers=auth(ada)).status_code == 204
    assert devices(container, ada["account_id"]) == []
    assert api.delete(path, headers=auth(ada)).status_code == 204  # already gone: same answer


def test_a_device_needs_a_known_platform_and_a_real_token(api, sign_up):
    ada = sign_up()
    unknown = api.put("/v1/me/push-devices/phone", json={"platform": "pager", "token": "x" * 20},
                      headers=auth(ada))
    assert unknown.status_code == 400
    bad = api.put("/v1/me/push-devices/phone", json={"platform": "fcm", "token": "no spaces!"},
                  headers=auth(ada))
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["token"]
    assert api.put("/v1/me/push-devices/phone", json={"platform": "fcm", "token": "x" * 20}
                   ).status_code == 401


def test_a_care_notification_goes_to_the_registered_device_of_a_patient_who_chose_push(
        api, container, sign_up, mailbox):
    ada = sign_up()
    assert api.put("/v1/me/profile/communication", headers=auth(ada),
                   json={"channels": ["push", "email"], "language": "en"}).status_code == 200
    assert api.put("/v1/me/push-devices/pixel", json={"platform": "fcm",
                                                      "token": "fcm-token-0001"},
                   headers=auth(ada)).status_code == 201
    update = Message("document_update", "email", uuid.UUID(ada["account_id"]), ada["email"], {})
    put(container.database.url, update)

    assert container.outbox.deliver_due() >= 1

    pushed = [json.loads(line) for line in
              (container.settings.data_dir / "push.log").read_text().splitlines()]
    assert [p["message_id"] for p in pushed] == [str(update.message_id)]
    assert not [m for m in mailbox.messages() if m["kind"] == "document_update"]


def failed_reminder(container: Any) -> Message:
    message = Message("appointment_reminder", "email", uuid.uuid4(), "ada@patients.test",
                      {"when": "24 November 2026 at 10:30 GMT", "clinic": "Riverside"})
    put(container.database.url, message)
    with psycopg.connect(container.database.owner_url, autocommit=True) as conn:
        conn.execute("UPDATE carebridge.outbox SET attempts = %s, failed_at = now(),"
                     " last_error = 'ConnectionRefusedError' WHERE message_id = %s",
                     (MAX_ATTEMPTS, message.message_id))
    return message


def test_administrators_and_support_see_failed_notifications_without_who_or_what(
        api, container, staff_member, sign_up):
    message = failed_reminder(container)

    for role in ("clinic_admin", "support"):
        answer = api.get("/v1/admin/notifications/failed", headers=auth(staff_member(role)))
        assert answer.status_code == 200, answer.text
        (failed,) = answer.json()
        assert set(failed) == SHOWN
        assert failed["message_id"] == str(message.message_id)
        assert failed["attempts"] == MAX_ATTEMPTS
        assert failed["last_error"] == "ConnectionRefusedError"
        assert "ada@patients.test" not in answer.text and "Riverside" not in answer.text
    for headers in (auth(staff_member("nurse")), auth(sign_up())):
        assert api.get("/v1/admin/notifications/failed", headers=headers).status_code == 403


def test_support_sends_a_failed_notification_again(api, container, staff_member, mailbox):
    message = failed_reminder(container)
    support = auth(staff_member("support"))
    path = f"/v1/admin/notifications/{message.message_id}/retry"

    again = api.post(path, headers=support)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "pending" and again.json()["attempts"] == 0

    assert [m["message_id"] for m in mailbox.messages()] == [str(message.message_id)]
    assert api.get("/v1/admin/notifications/failed", headers=support).json() == []
    assert api.post(path, headers=support).status_code == 409  # delivered: nothing to resend
    assert api.post(f"/v1/admin/notifications/{uuid.uuid4()}/retry",
                    headers=support).status_code == 404
