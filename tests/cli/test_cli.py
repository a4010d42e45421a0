"""The `carebridge` command: refusals in production, the settings table, staff and audit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from click.testing import CliRunner

from api.cli import main
from domain.consents import ConsentType, consent_id
from tests.conftest import ENCRYPTION_KEY


def run(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, args, env=env or {}, catch_exceptions=False)


def database_env(database: Any) -> dict[str, str]:
    return {"DATABASE_URL": database.url, "CAREBRIDGE_MIGRATION_DATABASE_URL": database.owner_url,
            "CAREBRIDGE_ENCRYPTION_KEY": ENCRYPTION_KEY, "CAREBRIDGE_TOKEN_SECRET": "x" * 40,
            "CAREBRIDGE_PASSWORD_HASH_MEMORY_KIB": "1024", "CAREBRIDGE_PASSWORD_HASH_TIME_COST": "1"}


@pytest.mark.parametrize("command", [["serve"], ["api"], ["migrate"], ["worker"]])
def test_production_refuses_to_start_without_keys_naming_each_missing_setting(command):
    result = run(command, {"CAREBRIDGE_MODE": "production"})
    assert result.exit_code == 2
    for name in ("CAREBRIDGE_ENCRYPTION_KEY", "CAREBRIDGE_TOKEN_SECRET", "DATABASE_URL",
                 "CAREBRIDGE_SMTP_HOST"):
        assert name in result.output


def test_a_malformed_encryption_key_is_refused_with_what_to_do():
    result = run(["migrate"], {"CAREBRIDGE_ENCRYPTION_KEY": "not base64!"})
    assert result.exit_code == 2
    assert "CAREBRIDGE_ENCRYPTION_KEY" in result.output
    assert "openssl rand -base64 32" in result.output


def test_the_settings_table_lists_every_setting():
    from api.settings import Settings

    result = run(["settings"])
    assert result.exit_code == 0
    for name in Settings.model_fields:
        assert f"CAREBRIDGE_{name.upper()}" in result.output


def test_staff_add_creates_an_account_that_can_sign_in(database, container):
    result = run(["staff", "add", "--role", "nurse", "--email", "ffion@clinic.test",
                  "--given-name", "Ffion", "--family-name", "Jones", "--clinic", "riverside",
                  "--generate-password"], database_env(database))
    assert result.exit_code == 0, result.output
    password = re.search(r"password: (\S+)", result.output).group(1)  # type: ignore[union-attr]
    account = container.identity.authenticate("ffion@clinic.test", password,
                                              at=datetime.now(UTC))
    assert account.role == "nurse"
    assert account.clinic_ids == ["riverside"]


def test_staff_add_names_what_is_wrong(database):
    result = CliRunner().invoke(main, ["staff", "add", "--role", "doctor", "--email", "nope",
                                       "--given-name", "A", "--family-name", "B",
                                       "--password", "short"], env=database_env(database))
    assert result.exit_code == 2
    assert "email:" in result.output
    assert "password:" in result.output


def test_audit_trail_prints_each_event_with_actor_and_time_and_the_state_as_of(database,
                                                                                 container):
    from domain.access import Actor
    from domain.identity import Role

    patient = UUID("6f1e9a52-3c1d-4b7e-8f00-000000000001")
    actor = Actor(patient, Role.PATIENT)
    given_at = datetime(2026, 3, 28, 10, 0, tzinfo=UTC)
    container.consents.give(actor, patient, ConsentType.TELEMEDICINE, "2026-11", at=given_at)
    container.consents.withdraw(actor, patient, ConsentType.TELEMEDICINE, None,
                                at=given_at + timedelta(days=2))
    stream = consent_id(patient, ConsentType.TELEMEDICINE)
    result = run(["audit", "trail", "--aggregate", str(stream), "--as-of",
                  "2026-03-29T12:00:00"], database_env(database))
    assert result.exit_code == 0, result.output
    assert "consents.Consent.Given.v1" in result.output
    assert "consents.Consent.Withdrawn.v1" in result.output
    assert f"patient:{patient}" in result.output
    assert "2026-03-28T10:00:00+00:00" in result.output  # UTC
    assert "2026-03-30T11:00:00+01:00" in result.output  # Europe/London after the clock change
    assert "status: given" in result.output  # as of 29 March, before the withdrawal


def test_audit_trail_of_an_unknown_stream_says_so(database):
    result = CliRunner().invoke(main, ["audit", "trail", "--aggregate",
                                       "00000000-0000-0000-0000-000000000000"],
                                env=database_env(database))
    assert result.exit_code == 2
    assert "no stream" in result.output


def test_projection_status_and_rebuild(database, container):
    from domain.access import Actor
    from domain.identity import Role

    patient = UUID("6f1e9a52-3c1d-4b7e-8f00-000000000002")
    container.consents.give(Actor(patient, Role.PATIENT), patient, ConsentType.DATA_SHARING,
                            "2026-11", at=datetime.now(UTC))
    rebuilt = run(["projections", "rebuild", "consent_views"], database_env(database))
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt consent_views" in rebuilt.output
    status = run(["projections", "status"], database_env(database))
    row = next(line for line in status.output.splitlines() if line.startswith("consent_views"))
    position, head, lag = row.split()[2:]
    assert position == head
    assert lag == "0"


def test_rebuilding_an_unknown_projection_lists_the_known_ones(database):
    result = CliRunner().invoke(main, ["projections", "rebuild", "nope"],
                                env=database_env(database))
    assert result.exit_code == 2
    assert "consent_views" in result.output
