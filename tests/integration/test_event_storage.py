"""Stored events are append-only for everyone, and unreadable at rest without the key."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from api.database import APP_ROLE
from commands.default_consent_texts import DEFAULT_TEXTS, DEFAULT_VERSION
from domain.consents import ConsentType, consent_id, consent_text_id

from .support import GIVEN, PUBLISHED, a_patient, give, rows, stored_events

pytestmark = pytest.mark.integration

CHANGES = {
    "UPDATE": "UPDATE eventstore.consents_events SET topic = topic",
    "DELETE": "DELETE FROM eventstore.consents_events",
    "TRUNCATE": "TRUNCATE eventstore.consents_events",
}


def attempt(owner_url: str, statement: str, role: str | None = None) -> psycopg.Error:
    """Runs a change to the events table as the owner, or as `role`, and returns the refusal
    (the test fails if there is none)."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        if role is not None:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        with pytest.raises(psycopg.Error) as refusal:
            conn.execute(statement)
    return refusal.value


@pytest.mark.parametrize("change", CHANGES)
def test_the_service_role_cannot_change_or_remove_stored_events(container, database, change):
    before = stored_events(database.owner_url)

    refusal = attempt(database.owner_url, CHANGES[change], role=APP_ROLE)

    assert isinstance(refusal, psycopg.errors.InsufficientPrivilege)
    assert "permission denied" in str(refusal)
    assert before and stored_events(database.owner_url) == before


@pytest.mark.parametrize("change", CHANGES)
def test_even_the_owner_is_stopped_by_the_append_only_trigger(container, database, change):
    before = stored_events(database.owner_url)

    refusal = attempt(database.owner_url, CHANGES[change])

    assert isinstance(refusal, psycopg.errors.InsufficientPrivilege)
    assert f"stored events are append-only: {change}" in str(refusal)
    assert stored_events(database.owner_url) == before


def test_the_service_role_may_only_append_to_and_read_the_events_tables(container, database):
    give(container, a_patient())

    granted = rows(database.owner_url,
                   "SELECT privilege, has_table_privilege(%s, t.name, privilege)"
                   " FROM unnest(%s::text[]) AS t(name),"
                   " unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE']) AS privilege",
                   (APP_ROLE, ["eventstore.consents_events", "eventstore.identity_events"]))

    assert sorted({p for p, allowed in granted if allowed}) == ["INSERT", "SELECT"]
    assert sorted({p for p, allowed in granted if not allowed}) == ["DELETE", "TRUNCATE", "UPDATE"]
    assert GIVEN in [r[3] for r in stored_events(database.url)]


def test_a_consent_event_keeps_neither_the_patient_nor_the_text_readable_at_rest(container, database):
    patient = a_patient()
    give(container, patient)
    stream = consent_id(patient.account_id, ConsentType.TELEMEDICINE)

    stored = [bytes(r[4]) for r in stored_events(database.owner_url) if r[1] == stream]

    assert len(stored) == 2  # created, then given
    for state in stored:
        assert str(patient.account_id).encode() not in state
        assert patient.account_id.hex.encode() not in state
        assert DEFAULT_VERSION.encode() not in state
        assert b"telemedicine" not in state
    consent = container.consents.repository.get(stream)
    assert (consent.patient_id, consent.status) == (patient.account_id, "given")
    assert consent.text_version == DEFAULT_VERSION


@pytest.mark.parametrize("consent_type", list(ConsentType))
def test_a_published_consent_text_is_not_readable_at_rest(container, database, consent_type):
    wording = DEFAULT_TEXTS[consent_type]
    distinctive = wording[10:60].encode()
    stream = consent_text_id(consent_type)

    published = [bytes(r[4]) for r in stored_events(database.owner_url)
                 if r[1] == stream and r[3] == PUBLISHED]

    assert len(published) == 1
    assert distinctive not in published[0]
    assert b"I agree" not in published[0]
    assert container.consents.current_text(consent_type).texts[DEFAULT_VERSION] == wording
