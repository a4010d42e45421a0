"""Long-lived accounts are snapshotted, and a snapshot restores every type in the state."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from commands.identity import NewAccount
from commands.sign_in import Device

pytestmark = pytest.mark.integration


def test_an_account_with_a_long_history_loads_from_its_snapshot(container, database):
    identity = container.identity
    outcome = identity.register_patient(
        NewAccount("grace@patients.test", "a long enough passphrase", "Grace", "Hopper",
                   date(1946, 12, 9)), at=datetime(2026, 1, 5, 9, tzinfo=UTC))
    moment = datetime(2026, 1, 5, 10, tzinfo=UTC)
    for _ in range(60):
        moment += timedelta(minutes=1)
        container.sign_in.password("grace@patients.test", "a long enough passphrase",
                                   Device("grace-phone", "Phone"), at=moment, source=None)

    with psycopg.connect(database.owner_url) as conn:
        snapshots = conn.execute("SELECT count(*) FROM eventstore.identity_snapshots").fetchone()
    assert snapshots is not None and snapshots[0] >= 1

    account = identity.account(UUID(outcome.result["account_id"]))
    assert account.version == 62  # registered, 60 sign-ins, the first sign-in's new device
    assert list(account.known_devices) == ["grace-phone"]
    assert account.date_of_birth == date(1946, 12, 9)
    assert account.last_sign_in_at == moment
    assert account.last_sign_in_at.tzinfo is not None
