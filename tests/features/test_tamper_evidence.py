"""Step definitions for features/tamper_evidence.feature: the sealer, the database and the CLI."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from pytest_bdd import given, parsers, scenarios, then, when

from api.cli_chain import audit_verify
from commands.audit_chain import signing_key
from commands.identity import NewAccount
from domain.identity import Role
from projections.audit_chain import AuditSealer
from tests.conftest import ENCRYPTION_KEY

scenarios("tamper_evidence.feature")


@pytest.fixture
def scene() -> dict[str, Any]:
    return {}


def run_verify(database: Any, tmp_path: Any) -> Any:
    env = {"DATABASE_URL": database.url, "CAREBRIDGE_ENCRYPTION_KEY": ENCRYPTION_KEY,
           "CAREBRIDGE_TOKEN_SECRET": "x" * 40, "CAREBRIDGE_DATA_DIR": str(tmp_path)}
    return CliRunner().invoke(audit_verify, [], env=env, catch_exceptions=False)


@given(parsers.parse("the clinic has registered {count:d} staff members"))
def staff_registered(container, scene, count):
    scene["accounts"] = [
        container.identity.add_staff(
            NewAccount(f"staff.{uuid.uuid4().hex[:8]}@clinic.test", "staff passphrase 2026",
                       "Sam", "Staff"), Role.NURSE, ["riverside"], by="test",
            at=datetime.now(UTC)).result["account_id"]
        for _ in range(count)]


@given("the audit sealer has sealed every event")
def sealed(container):
    sealer = AuditSealer(container.applications, container.database.url,
                         signing_key(None, ENCRYPTION_KEY))
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        assert sealer.catch_up(conn) > 0


@given("the auditor's verification finds nothing wrong")
def verification_clean(database, tmp_path):
    result = run_verify(database, tmp_path)
    assert result.exit_code == 0, result.output
    assert "no findings" in result.output


@when(parsers.parse("someone with database superuser rights changes the {nth:d}nd registration "
                    "behind the application's back"))
def tamper(database, scene, nth):
    account = scene["accounts"][nth - 1]
    with psycopg.connect(database.owner_url, autocommit=True) as conn, conn.transaction():
        position = conn.execute(
            "SELECT min(notification_id) FROM eventstore.identity_events WHERE originator_id = %s",
            (account,)).fetchone()[0]  # type: ignore[index]
        conn.execute("ALTER TABLE eventstore.identity_events DISABLE TRIGGER ALL")
        conn.execute("UPDATE eventstore.identity_events SET state = state || '\\x00'::bytea"
                     " WHERE notification_id = %s", (position,))
        conn.execute("ALTER TABLE eventstore.identity_events ENABLE TRIGGER ALL")
    scene["position"] = position


@then(parsers.parse('the auditor\'s verification names that event as "{kind}" by its position in '
                    'the "{application}" log'))
def named(database, tmp_path, scene, kind, application):
    result = run_verify(database, tmp_path)
    scene["result"] = result
    lines = [line for line in result.output.splitlines() if line.startswith(kind.upper())]
    assert [line.split()[1] for line in lines] == [f"{application}:{scene['position']}"]


@then("the auditor's verification fails")
def fails(scene):
    assert scene["result"].exit_code == 1
