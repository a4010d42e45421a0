"""Notifications: the app registers the devices that receive pushes; clinic administrators and
support see the notifications that could not be delivered and send them again."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from api.dependencies import signed_in
from commands.outbox import FailedNotifications, NotificationStatus
from commands.push import MAX_DEVICES, PushDevices
from domain.access import Actor
from domain.errors import FieldError, InvalidInput, Rejections

_DEVICE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_.:-]{8,4096}$")


class Platform(StrEnum):
    FCM = "fcm"  # Android and web, through Firebase Cloud Messaging
    APNS = "apns"  # iOS, through Apple Push Notification service


class PushDeviceEntry(msgspec.Struct, forbid_unknown_fields=True):
    platform: Platform
    token: Annotated[str, msgspec.Meta(max_length=4096)]


class PushDeviceView(msgspec.Struct):
    """A registered device; the token stays with the device and the provider."""

    device_id: str
    platform: Platform
    registered_at: datetime


class FailedNotification(msgspec.Struct):
    """A notification given up on: what and how it fared, never to whom or what it said."""

    message_id: UUID
    kind: str
    channel: str
    attempts: int
    last_error: str | None
    created_at: datetime
    failed_at: datetime | None
    retried_at: datetime | None


class NotificationState(msgspec.Struct):
    message_id: UUID
    kind: str
    channel: str
    status: str  # failed | pending | delivered
    attempts: int
    next_attempt_at: datetime
    retried_at: datetime | None


def provide_push_devices(state: State) -> PushDevices:
    return PushDevices(state.container.database.url)


def provide_failed(state: State) -> FailedNotifications:
    return FailedNotifications(state.container.database.url)


def _failed(status: NotificationStatus) -> FailedNotification:
    return FailedNotification(status.message_id, status.kind, status.channel, status.attempts,
                              status.last_error, status.created_at, status.failed_at,
                              status.retried_at)


class PushDeviceController(Controller):
    path = "/v1/me/push-devices"
    tags = ["notifications"]
    dependencies = {**signed_in(),
                    "push_devices": Provide(provide_push_devices, sync_to_thread=False)}

    @put("/{device_id:str}", sync_to_thread=True, responses={201: ResponseSpec(
             PushDeviceView, description="A device registered for the first time")},
         summary="Register this device for push notifications (or renew its token)")
    def register(self, device_id: FromPath[str], data: JSONBody[PushDeviceEntry],
                 actor: NamedDependency[Actor], push_devices: NamedDependency[PushDevices],
                 now: NamedDependency[datetime]) -> Response[PushDeviceView]:
        errors = Rejections()
        if not _DEVICE_ID.match(device_id):
            errors.add("device_id", "Use 1 to 100 letters, digits or '-', '_', '.', ':' (the "
                                    "app's installation id).")
        if not _TOKEN.match(data.token):
            errors.add("token", "must be the token the push provider gave this device.")
        errors.raise_if_any()
        if push_devices.count(actor.account_id) >= MAX_DEVICES and not any(
                d.device_id == device_id for d in push_devices.devices(actor.account_id)):
            raise InvalidInput([FieldError("device_id", f"At most {MAX_DEVICES} devices "
                                           "receive notifications; remove one you no longer "
                                           "use.")])
        created = push_devices.register(actor.account_id, device_id, data.platform.value,
                                        data.token, now)
        return Response(PushDeviceView(device_id, data.platform, now),
                        status_code=201 if created else 200)

    @delete("/{device_id:str}", status_code=204, sync_to_thread=True,
            summary="Stop push notifications to this device")
    def remove(self, device_id: FromPath[str], actor: NamedDependency[Actor],
               push_devices: NamedDependency[PushDevices]) -> None:
        push_devices.remove(actor.account_id, device_id)


class NotificationAdminController(Controller):
    path = "/v1/admin/notifications"
    tags = ["notifications"]
    dependencies = {**signed_in(),
                    "notifications": Provide(provide_failed, sync_to_thread=False)}

    @get("/failed", sync_to_thread=True,
         summary="Notifications that could not be delivered, newest first (clinic "
                 "administrators and support)")
    def failed(self, actor: NamedDependency[Actor],
               notifications: NamedDependency[FailedNotifications],
               limit: Annotated[int, QueryParameter(name="limit", ge=1, le=500)] = 100,
               ) -> list[FailedNotification]:
        return [_failed(status) for status in notifications.failed(actor, limit)]

    @post("/{message_id:uuid}/retry", status_code=200, sync_to_thread=True,
          summary="Send a failed notification again, with a fresh count of attempts")
    def retry(self, message_id: FromPath[UUID], actor: NamedDependency[Actor],
              notifications: NamedDependency[FailedNotifications],
              now: NamedDependency[datetime]) -> NotificationState:
        status = notifications.retry(message_id, actor, now)
        state = ("delivered" if status.delivered_at else
                 "failed" if status.failed_at else "pending")
        return NotificationState(status.message_id, status.kind, status.channel, state,
                                 status.attempts, status.next_attempt_at, status.retried_at)
