"""Shared fixtures: a real PostgreSQL for the session, a fresh database per test.

The session starts the same embedded PostgreSQL the product uses (in a temporary directory),
migrates a template database once, and gives each test that asks for `database` its own copy.
Set CAREBRIDGE_TEST_DATABASE_URL to a superuser URL of another server to run against it.
"""

from __future__ import annotations

import base64
import os
import secrets
import tempfile
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
