"""Migrations: running them again applies nothing, keeps every event and view, keeps the guards."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from api.container import Container, migrate
from api.database import migration_files, pending_migrations
from domain.consents import ConsentType
from tests.conftest import ENCRYPTION_KEY
from tests.conftest import test_settings as settings_for_tests

from .support import a_patient, give, rows, stored_events, withdraw

pytestmark = pytest.mark.integration


def views(url: str) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(rows(url, f"SELECT * FROM views.{table}"), key=repr)
            for table in ("patient_consents", "consent_history", "consent_texts")}


def test_a_fresh_database_has_every_migration_applied(database):
    applied = rows(database.url, "SELECT name FROM carebridge.schema_migrations ORDER BY name")

    assert [name for (name,) in applied] == [p.name for p in migration_files()]
    assert pending_migrations(database.url) == []


def test_migrating_again_applies_nothing_and_keeps_the_data(container, database):
    ada = a_patient()
    give(container, ada)
    withdraw(container, ada)
    with psycopg.connect(database.url, autocommit=True) as conn:
        container.runner("consent_views").catch_up(conn)
    events_before, views_before = stored_events(database.owner_url), views(database.url)

    applied = migrate(settings_for_tests(), database, ENCRYPTION_KEY)

    assert applied == []
    assert stored_events(database.owner_url) == events_before
    assert views(database.url) == views_before
    with Container(settings_for_tests(), database, ENCRYPTION_KEY) as restarted:
        assert not restarted.consents.holds(ada.account_id, ConsentType.TELEMEDICINE)
        assert restarted.consents.current_text(ConsentType.TELEMEDICINE).current_version


def test_migrating_again_keeps_the_event_tables_append_only(container, database):
    migrate(settings_for_tests(), database, ENCRYPTION_KEY)

    with psycopg.connect(database.url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM eventstore.consents_events")
    with psycopg.connect(database.owner_url, autocommit=True) as conn, \
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        conn.execute("DELETE FROM eventstore.consents_events")
