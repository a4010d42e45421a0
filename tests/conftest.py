"""Shared fixtures: a real PostgreSQL for the session, a fresh database per test.

The session starts the same embedded PostgreSQL the product uses (in a temporary directory),
migrates a template database once, and gives each test that asks for `database` its own copy.
Set CAREBRIDGE_TEST_DATABASE_URL to a superuser URL of another server to run against it.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api.database import APP_ROLE, Database, start_embedded, with_user

TEMPLATE = "carebridge_template"
ENCRYPTION_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
TOKEN_SECRET = secrets.token_urlsafe(48)


def _url_for(url: str, dbname: str) -> str:
    params: dict[str, Any] = conninfo_to_dict(url)
    params["dbname"] = dbname
    return make_conninfo(**params)


@pytest.fixture(scope="session")
def server() -> Iterator[Database]:
    """A migrated template database on a real PostgreSQL server."""
    external = os.environ.get("CAREBRIDGE_TEST_DATABASE_URL")
    if external:
        owner = _url_for(external, "postgres")
        base = Database(url=owner, owner_url=owner)
        embedded = False
    else:
        workdir = Path(tempfile.mkdtemp(prefix="carebridge-test-"))
        base = start_embedded(workdir, dbname="postgres")
        embedded = True
    from api.container import migrate

    with psycopg.connect(base.owner_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    owner = _url_for(base.owner_url, TEMPLATE)
    template = Database(url=with_user(owner, APP_ROLE) if embedded else owner, owner_url=owner,
                        embedded_dir=base.embedded_dir)
    migrate(test_settings(), template, ENCRYPTION_KEY)
    from commands.eventstore import CareFactory

    CareFactory.close_shared_pools()
    yield template


def test_settings(**overrides: Any) -> Any:
    from api.settings import Settings


    values: dict[str, Any] = {
        "password_hash_memory_kib": 1024,
        "password_hash_time_cost": 1,
        "rate_limit_per_minute": 100_000,
        "read_your_writes_timeout_ms": 5000,
        # Most tests sign in with a password alone; tests of second factors and devices
        # turn this back on (it is on by default).
        "new_device_second_factor": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def database(server: Database) -> Iterator[Database]:
    """A fresh, migrated database for one test (a copy of the template)."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_url_for(server.owner_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
            sql.Identifier(name), sql.Identifier(TEMPLATE)))
    yield Database(url=_url_for(server.url, name), owner_url=_url_for(server.owner_url, name),
                   embedded_dir=server.embedded_dir)
    from commands.eventstore import CareFactory

    CareFactory.close_shared_pools()
    with psycopg.connect(_url_for(server.owner_url, "postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings a test module changes for its container (override this fixture)."""
    return {}


@pytest.fixture
def container(database: Database, tmp_path: Path, settings_overrides: dict[str, Any]) -> Iterator[Any]:
    """The applications and projection runners wired to this test's database. Emails and
    texts go to logs in the test's temporary directory (see `mailbox`)."""
    from api.container import Container
    from api.default_forms import publish_default_forms
    from api.seed import publish_default_consent_texts

    settings = test_settings(data_dir=tmp_path, mail_log_path=tmp_path / "mail.log",
                             sms_log_path=tmp_path / "sms.log", **settings_overrides)
    with Container(settings, database, ENCRYPTION_KEY) as built:
        publish_default_consent_texts(built)
        publish_default_forms(built)
        yield built


class Mailbox:
    """What CareBridge sent, read from the local mail and SMS logs after delivering the
    outbox (synchronously, so tests never wait on a background thread)."""

    def __init__(self, container: Any) -> None:
        self.container = container

    def messages(self, channel: str = "email") -> list[dict[str, Any]]:
        import json

        self.container.outbox.deliver_due()
        path = self.container.settings.mail_log_path if channel == "email" else \
            self.container.settings.sms_log_path
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def last(self, account_id: str, kind: str, channel: str = "email") -> dict[str, Any]:
        found = [m for m in self.messages(channel)
                 if m["account_id"] == str(account_id) and m["kind"] == kind]
        assert found, f"no {kind} message for {account_id} by {channel}"
        return found[-1]


@pytest.fixture
def mailbox(container: Any) -> Mailbox:
    return Mailbox(container)


class Clock:
    """A clock the test moves by hand; the API reads it through `provide_clock`."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(container: Any, clock: Clock) -> Iterator[Any]:
    """A Litestar test client with the projection runners running in the background."""
    from litestar.testing import TestClient

    container.start_projections()
    app = _app_for(container, clock)
    with TestClient(app) as test_client:
        yield test_client


_APPS: dict[Any, Any] = {}


def _app_for(container: Any, clock: Clock) -> Any:
    """The Litestar app, built once per settings that shape it (building it takes longer than
    most tests), and pointed at this test's container and clock."""
    from api.app import create_app

    settings = container.settings
    key = (settings.rate_limit_per_minute, settings.access_token_minutes, settings.broker_url)
    app = _APPS.get(key)
    if app is None:
        app = _APPS[key] = create_app(container, TOKEN_SECRET, clock=clock)
    app.state.container = container
    app.state.clock = clock
    return app


@pytest.fixture
def sign_up(client: Any) -> Callable[..., dict[str, str]]:
    """Registers a patient and signs them in; returns ids and an Authorization header."""

    def register(email: str | None = None, password: str = "a long enough passphrase",
                 given_name: str = "Ada", family_name: str = "Lovelace") -> dict[str, str]:
        email = email or f"{uuid.uuid4().hex[:10]}@patients.test"
        response = client.post("/v1/auth/register", json={
            "email": email, "password": password, "given_name": given_name,
            "family_name": family_name, "date_of_birth": "1958-12-10"})
        assert response.status_code == 201, response.text
        token = client.post("/v1/auth/login", json={"email": email, "password": password})
        assert token.status_code == 200, token.text
        return {"account_id": response.json()["account_id"], "email": email,
                "Authorization": f"Bearer {token.json()['access_token']}"}

    return register


@pytest.fixture
def staff_member(container: Any, client: Any) -> Callable[..., dict[str, str]]:
    """Creates a staff account with a role and signs it in."""
    from commands.identity import NewAccount
    from domain.identity import Role

    def create(role: str, clinics: tuple[str, ...] = ("riverside",)) -> dict[str, str]:
        email = f"{role}.{uuid.uuid4().hex[:8]}@clinic.test"
        password = "staff passphrase 2026"
        outcome = container.identity.add_staff(NewAccount(email, password, "Sam", "Staff"),
                                               Role(role), list(clinics), by="test",
                                               at=datetime.now(UTC))
        token = client.post("/v1/auth/login", json={"email": email, "password": password})
        assert token.status_code == 200, token.text
        return {"account_id": outcome.result["account_id"],
                "Authorization": f"Bearer {token.json()['access_token']}"}

    return create


# ---- every notification the suite writes or sends is read for medical detail ----------------

NOT_IN_NOTIFICATIONS = ("canary-", "internal-", "marker")  # the markers tests plant (#8)
# The one phrase the product asks for when a result is released (as test_verification allows).
ALLOWED_PHRASES = ("a new result is available",)


def notification_problems(text: str) -> list[str]:
    """The canary markers and health words in a notification's wording (subject, text, push)."""
    from tests.api.test_verification import HEALTH_WORDS

    lowered = text.lower()
    for phrase in ALLOWED_PHRASES:
        lowered = lowered.replace(phrase, "")
    return [word for word in (*NOT_IN_NOTIFICATIONS, *HEALTH_WORDS) if word in lowered]


def _wordings(kind: str, params: dict[str, str], message_id: uuid.UUID) -> str:
    """Every wording a message can take: email subject and body, SMS text and push alert."""
    from commands.outbox import TEMPLATES, Outgoing
    from commands.push import alert

    texts = [*params.values()]
    for route in ("email", "sms", "push"):
        outgoing = Outgoing(message_id, None, route, kind, "", dict(params))
        try:
            texts += [outgoing.subject(), outgoing.text()]
            if route == "push":
                push = alert(outgoing)
                texts += [push.title, push.body, push.link]
        except (KeyError, IndexError, ValueError):  # params missing: read the raw template
            template = TEMPLATES[kind]
            texts += [template.subject, template.body, template.sms or ""]
    return "\n".join(texts)


@pytest.fixture(autouse=True)
def notifications_scanned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Records every notification written (each outbox `Message`) and sent (the dispatcher's
    one way out), in every wording, and fails the test that produced one carrying a canary
    marker or a health word."""
    from commands.outbox import Message, OutboxDispatcher

    seen: list[str] = []
    written, sent = Message.__post_init__, OutboxDispatcher._send

    def record_written(message: Any) -> None:
        written(message)
        seen.extend(f"{message.kind} written: {problem}" for problem in notification_problems(
            _wordings(message.kind, message.params, message.message_id)))

    def record_sent(dispatcher: Any, sender: Any, message: Any) -> None:
        seen.extend(f"{message.kind} sent by {message.channel}: {problem}"
                    for problem in notification_problems(_wordings(
                        message.kind, message.params, message.message_id)))
        sent(dispatcher, sender, message)

    monkeypatch.setattr(Message, "__post_init__", record_written)
    monkeypatch.setattr(OutboxDispatcher, "_send", record_sent)
    yield seen
    if seen:
        pytest.fail("notifications carry what no notification may: " + "; ".join(sorted(set(seen))))


# ---- Redis, for the one test of the production broker ---------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of our own on loopback (no persistence) for the session; its URL."""
    import redis

    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", str(workdir), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with redis.Redis.from_url(url) as client:
                    client.ping()
                break
            except redis.ConnectionError:
                assert process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not answer within 30 s"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
