"""Push notifications: the devices an account registered, and senders in the request formats of
Firebase Cloud Messaging (HTTP v1) and Apple Push Notification service, to configurable
endpoints.

A push shows on a lock screen, so it carries a generic line (the template's short wording or
its subject) and an opaque link to the right screen of the app, never medical detail. The
outbox message id travels as the provider's de-duplication key (`apns-id`, FCM
`data.message_id`). A token the provider says is no longer registered is deleted, so the next
attempt chooses another channel.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

import httpx
import jwt
import psycopg
from psycopg.rows import dict_row

from commands.outbox import LocalLog, Outgoing

log = logging.getLogger("carebridge.push")

PUSH_DEVICES = "carebridge.push_devices"
PLATFORMS = ("fcm", "apns")
MAX_DEVICES = 20  # per account: a phone, a tablet, their replacements
# Opaque links to the app's screens, by the start of the message kind.
_SCREENS = (("appointment", "carebridge://appointments"), ("video", "carebridge://appointments"),
            ("clinician", "carebridge://appointments"), ("visit", "carebridge://appointments"),
            ("waitlist", "carebridge://waitlist"), ("prescription", "carebridge://requests"),
            ("document", "carebridge://documents"))


class Unregistered(Exception):
    """The provider no longer knows this device token."""


class NoPushDevice(Exception):
    """The account has no registered device left (each was unregistered or failed)."""


@dataclass(frozen=True)
class Device:
    device_id: str
    platform: str
    token: str


@dataclass(frozen=True)
class Alert:
    """What a push says: a title, one generic line, the link it opens and its message id."""

    title: str
    body: str
    link: str
    message_id: str


def alert(message: Outgoing) -> Alert:
    template = message.template
    body = (template.sms or template.subject).format(**message.params)
    link = message.params.get("link") or next(
        (screen for prefix, screen in _SCREENS if message.kind.startswith(prefix)),
        "carebridge://home")
    return Alert(message.subject(), body, link, str(message.message_id))


class PushDevices:
    """The push devices of each account (carebridge.push_devices)."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url

    def register(self, account_id: UUID, device_id: str, platform: str, token: str,
                 at: datetime) -> bool:
        """Adds or updates a device; returns whether it was new."""
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                f"INSERT INTO {PUSH_DEVICES} (account_id, device_id, platform, token,"
                " registered_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (account_id, device_id) DO UPDATE SET platform = excluded.platform,"
                " token = excluded.token, registered_at = excluded.registered_at"
                " RETURNING (xmax = 0) AS inserted",
                (account_id, device_id, platform, token, at)).fetchone()
            # One token belongs to one installation: an account that signed in on a phone
            # another account used before takes its pushes over.
            conn.execute(f"DELETE FROM {PUSH_DEVICES} WHERE token = %s AND platform = %s"
                         " AND NOT (account_id = %s AND device_id = %s)",
                         (token, platform, account_id, device_id))
        return bool(row and row[0])

    def count(self, account_id: UUID) -> int:
        with psycopg.connect(self.url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {PUSH_DEVICES} WHERE account_id = %s",
                               (account_id,)).fetchone()
        return int(row[0]) if row else 0

    def remove(self, account_id: UUID, device_id: str) -> bool:
        with psycopg.connect(self.url) as conn:
            cur = conn.execute(f"DELETE FROM {PUSH_DEVICES} WHERE account_id = %s"
                               " AND device_id = %s", (account_id, device_id))
            return cur.rowcount > 0

    def devices(self, account_id: UUID) -> list[Device]:
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            rows = conn.execute(f"SELECT device_id, platform, token FROM {PUSH_DEVICES}"
                                " WHERE account_id = %s ORDER BY registered_at DESC",
                                (account_id,)).fetchall()
        return [Device(**row) for row in rows]

    def has_device(self, account_id: UUID) -> bool:
        return self.count(account_id) > 0

    def forget_token(self, platform: str, token: str) -> None:
        with psycopg.connect(self.url) as conn:
            conn.execute(f"DELETE FROM {PUSH_DEVICES} WHERE platform = %s AND token = %s",
                         (platform, token))


class Provider(Protocol):
    def send(self, token: str, alert: Alert) -> None: ...


class FcmSender:
    """Firebase Cloud Messaging HTTP v1: `POST {endpoint}/v1/projects/{project}/messages:send`
    with an OAuth bearer token (obtained outside CareBridge and given in settings)."""

    def __init__(self, endpoint: str, project: str, access_token: str,
                 timeout: float = 10.0) -> None:
        self.url = f"{endpoint.rstrip('/')}/v1/projects/{project}/messages:send"
        self.access_token, self.timeout = access_token, timeout

    def send(self, token: str, alert: Alert) -> None:
        body = {"message": {"token": token,
                            "notification": {"title": alert.title, "body": alert.body},
                            "data": {"link": alert.link, "message_id": alert.message_id}}}
        response = httpx.post(self.url, json=body, timeout=self.timeout,
                              headers={"Authorization": f"Bearer {self.access_token}"})
        if response.status_code == 404 or "UNREGISTERED" in response.text:
            raise Unregistered("fcm")
        if response.status_code >= 300:
            raise OSError(f"FCM answered {response.status_code}")


class ApnsSender:
    """APNs provider API: `POST {endpoint}/3/device/{token}` over HTTP/2, authenticated with an
    ES256 token signed by the team's .p8 key (renewed every 50 minutes, as Apple asks).
    A plain `http://` endpoint (a relay, a test server) is spoken to with HTTP/2 prior
    knowledge."""

    def __init__(self, endpoint: str, topic: str, key_pem: str, key_id: str, team_id: str,
                 timeout: float = 10.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.topic, self.key_pem, self.key_id, self.team_id = topic, key_pem, key_id, team_id
        self.client = httpx.Client(http2=True, http1=not self.endpoint.startswith("http://"),
                                   timeout=timeout)
        self._token: tuple[float, str] | None = None
        self._lock = threading.Lock()

    def bearer(self) -> str:
        with self._lock:
            now = time.time()
            if self._token is None or now - self._token[0] > 50 * 60:
                signed = jwt.encode({"iss": self.team_id, "iat": int(now)}, self.key_pem,
                                    algorithm="ES256", headers={"kid": self.key_id})
                self._token = (now, signed)
            return self._token[1]

    def send(self, token: str, alert: Alert) -> None:
        body = {"aps": {"alert": {"title": alert.title, "body": alert.body}},
                "link": alert.link, "message_id": alert.message_id}
        response = self.client.post(
            f"{self.endpoint}/3/device/{token}", content=json.dumps(body).encode(),
            headers={"apns-topic": self.topic, "apns-push-type": "alert",
                     "apns-id": alert.message_id, "authorization": f"bearer {self.bearer()}"})
        if response.status_code == 410:
            raise Unregistered("apns")
        if response.status_code >= 300:
            raise OSError(f"APNs answered {response.status_code}")

    def close(self) -> None:
        self.client.close()


class PushSender:
    """Sends a push to every device of the message's account through its platform's provider
    (a local push log when the platform has none configured). Delivered when one device
    accepted it."""

    def __init__(self, devices: PushDevices, providers: dict[str, Provider],
                 local_log: Path) -> None:
        self.registry, self.providers = devices, providers
        self.local = LocalLog(local_log)

    def reaches(self, account_id: UUID) -> bool:
        return self.registry.has_device(account_id)

    def send(self, message: Outgoing) -> None:
        assert message.account_id is not None, "a push goes to an account's devices"
        accepted, error = 0, None
        for device in self.registry.devices(message.account_id):
            provider = self.providers.get(device.platform)
            try:
                if provider is None:
                    self.local.send(message)
                else:
                    provider.send(device.token, alert(message))
                accepted += 1
            except Unregistered:
                log.info("push device %s of account %s is no longer registered; removed",
                         device.device_id, message.account_id)
                self.registry.forget_token(device.platform, device.token)
            except Exception as failed:
                error = failed
        if accepted == 0:
            raise error or NoPushDevice(str(message.account_id))


def push_sender_from(settings: Any, database_url: str, data_dir: Path) -> PushSender:
    providers: dict[str, Provider] = {}
    if settings.fcm_project_id and settings.fcm_access_token:
        providers["fcm"] = FcmSender(settings.fcm_endpoint, settings.fcm_project_id,
                                     settings.fcm_access_token.get_secret_value())
    if settings.apns_key_path and settings.apns_key_id and settings.apns_team_id:
        providers["apns"] = ApnsSender(settings.apns_endpoint, settings.apns_topic,
                                       Path(settings.apns_key_path).read_text(),
                                       settings.apns_key_id, settings.apns_team_id)
    return PushSender(PushDevices(database_url), providers,
                      settings.push_log_path or data_dir / "push.log")
