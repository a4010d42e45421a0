"""A database restart or failover drops the service's connections; the next save still succeeds."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from domain.consents import Consent, ConsentType

from .support import MONDAY, a_patient, eventually, give, rows

pytestmark = pytest.mark.integration

SERVICE_SESSIONS = ("SELECT pid FROM pg_stat_activity WHERE usename = %s"
                    " AND datname = current_database() AND pid <> pg_backend_pid()")


def drop_the_service_connections(database: Any) -> None:
    """What a failover does to every pooled connection of the service."""
    service = (conninfo_to_dict(database.url)["user"],)
    with psycopg.connect(database.owner_url, autocommit=True) as conn:
        terminated = conn.execute(
            f"SELECT pg_terminate_backend(pid) FROM ({SERVICE_SESSIONS}) AS service", service
        ).fetchall()
    assert terminated, "the service had pooled connections to drop"
    assert eventually(lambda: rows(database.owner_url, SERVICE_SESSIONS, service) == [])


def test_a_save_after_the_database_dropped_the_pooled_connections_succeeds(container, database):
    ada = a_patient()
    give(container, ada)
    sharing = Consent(patient_id=ada.account_id, consent_type=ConsentType.DATA_SHARING.value,
                      by=ada.ref, at=MONDAY)
    drop_the_service_connections(database)

    position = container.consents.save_all(sharing)

    assert position is not None
    assert container.consents.repository.get(sharing.id).consent_type == "data_sharing"


def test_a_read_after_the_database_dropped_the_pooled_connections_succeeds(container, database):
    ada = a_patient()
    give(container, ada)
    drop_the_service_connections(database)

    assert container.consents.holds(ada.account_id, ConsentType.TELEMEDICINE)
