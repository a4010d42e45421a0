"""Tamper evidence: the sealer's signed chain, and verify naming each tampered event by position.

Tampering happens as it would in an attack: as the database superuser, behind the application's
back, with the append-only triggers disabled.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.cli_chain import audit_public_key, audit_verify
from commands.audit_chain import (
    CHECKPOINTS,
    ChainReport,
    checkpoint_message,
    content_digest,
    key_id,
    signing_key,
    verify,
)
from commands.identity import NewAccount
from domain.identity import Role
from projections.audit_chain import AuditSealer
from tests.conftest import ENCRYPTION_KEY

KEY = signing_key(None, ENCRYPTION_KEY)


def sealer_for(container: Any, every: int = 1000) -> AuditSealer:
    return AuditSealer(container.applications, container.database.url, KEY, every)


def seal(container: Any, every: int = 1000) -> int:
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        return sealer_for(container, every).catch_up(conn)


def verified(database: Any, key: Ed25519PrivateKey = KEY) -> list[ChainReport]:
    with psycopg.connect(database.url) as conn:
        return verify(conn, key.public_key())


def findings(database: Any) -> set[tuple[str, int, str]]:
    return {(f.application, f.position, f.kind) for r in verified(database) for f in r.findings}


def behind_the_back(database: Any, table: str, *statements: str) -> None:
    """Runs `statements` as the superuser with every trigger on `table` disabled."""
    with psycopg.connect(database.owner_url, autocommit=True) as conn, conn.transaction():
        conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER ALL")
        for statement in statements:
            conn.execute(statement)
        conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER ALL")


def positions(database: Any, application: str = "identity") -> list[int]:
    with psycopg.connect(database.url) as conn:
        return [r[0] for r in conn.execute(
            f"SELECT notification_id FROM eventstore.{application}_events ORDER BY 1").fetchall()]


def add_staff(container: Any, count: int) -> None:
    for _ in range(count):
        email = f"staff.{uuid.uuid4().hex[:8]}@clinic.test"
        container.identity.add_staff(NewAccount(email, "staff passphrase 2026", "Sam", "Staff"),
                                     Role.NURSE, ["riverside"], by="test", at=datetime.now(UTC))


def test_an_untouched_log_verifies_with_a_checkpoint_every_n_events_and_at_the_end(database,
                                                                                   container):
    add_staff(container, 4)
    total = sum(len(positions(database, a)) for a in container.applications)
    assert seal(container, every=3) == total
    reports = {r.application: r for r in verified(database)}
    assert all(not r.findings for r in reports.values())
    assert sum(r.events for r in reports.values()) == total
    identity = positions(database)
    assert reports["identity"].sealed_to == identity[-1] and reports["identity"].unsealed == 0
    with psycopg.connect(database.owner_url, autocommit=True) as conn:  # as an auditor would
        conn.execute("SET ROLE carebridge_auditor")
        assert verify(conn, KEY.public_key()) == list(reports.values())
    with psycopg.connect(database.url) as conn:
        counts = [r[0] for r in conn.execute(
            f"SELECT event_count FROM {CHECKPOINTS} WHERE application = 'identity'"
            " ORDER BY position").fetchall()]
    assert counts == [3] * (len(identity) // 3) + ([len(identity) % 3] if len(identity) % 3 else [])


def test_the_chain_goes_on_from_its_last_checkpoint_and_new_events_wait_to_be_sealed(database,
                                                                                     container):
    add_staff(container, 1)
    seal(container)
    add_staff(container, 1)
    identity = {r.application: r for r in verified(database)}["identity"]
    assert identity.unsealed > 0 and not identity.findings
    seal(container)
    identity = {r.application: r for r in verified(database)}["identity"]
    assert (identity.unsealed, identity.checkpoints, identity.findings) == (0, 2, [])
    assert identity.sealed_to == positions(database)[-1]


def test_verify_names_an_altered_a_removed_and_two_swapped_events_by_position(database, container):
    add_staff(container, 5)
    seal(container)
    p = positions(database)
    table = "eventstore.identity_events"
    behind_the_back(
        database, table,
        f"UPDATE {table} SET state = state || '\\x00'::bytea WHERE notification_id = {p[1]}",
        f"DELETE FROM {table} WHERE notification_id = {p[3]}",
        f"UPDATE {table} SET notification_id = -1 WHERE notification_id = {p[5]}",
        f"UPDATE {table} SET notification_id = {p[5]} WHERE notification_id = {p[6]}",
        f"UPDATE {table} SET notification_id = {p[6]} WHERE notification_id = -1")
    assert findings(database) == {("identity", p[1], "altered"), ("identity", p[3], "removed"),
                                  ("identity", p[5], "reordered"), ("identity", p[6], "reordered")}


def test_a_finding_in_one_checkpoint_leaves_the_later_ones_intact(database, container):
    add_staff(container, 5)
    seal(container, every=2)
    p = positions(database)
    table = "eventstore.identity_events"
    behind_the_back(database, table, f"UPDATE {table} SET topic = topic || 'x'"
                                     f" WHERE notification_id = {p[2]}")
    assert findings(database) == {("identity", p[2], "altered")}


def test_a_removed_checkpoint_is_named_by_the_one_that_follows_it(database, container):
    add_staff(container, 3)
    seal(container, every=2)
    with psycopg.connect(database.url) as conn:
        middle, after = conn.execute(f"SELECT position FROM {CHECKPOINTS} WHERE application ="
                                     " 'identity' ORDER BY position OFFSET 1 LIMIT 2").fetchall()
    behind_the_back(database, CHECKPOINTS, f"DELETE FROM {CHECKPOINTS} WHERE application ="
                                           f" 'identity' AND position = {middle[0]}")
    assert findings(database) == {("identity", after[0], "checkpoint")}


def test_an_event_inserted_behind_the_sealers_back_is_named(database, container):
    add_staff(container, 1)
    table = "eventstore.identity_events"
    with psycopg.connect(database.owner_url, autocommit=True) as conn:  # a rolled-back insert
        gap = conn.execute("SELECT nextval(pg_get_serial_sequence(%s, 'notification_id'))",
                           (table,)).fetchone()[0]  # type: ignore[index]
    add_staff(container, 1)
    seal(container)
    forged = ("(originator_id, originator_version, topic, state, notification_id) VALUES"
              " (gen_random_uuid(), 1, 'carebridge:forged', '\\x00'::bytea, {})")
    behind_the_back(database, table, f"INSERT INTO {table} " + forged.format(gap),
                    f"INSERT INTO {table} " + forged.format(-5))
    assert findings(database) == {("identity", gap, "inserted"), ("identity", -5, "inserted")}


def test_a_forged_checkpoint_is_named_and_an_altered_one_too(database, container):
    add_staff(container, 2)
    seal(container)
    head = positions(database)[-1]
    forger = Ed25519PrivateKey.generate()
    signed_at = datetime.now(UTC)
    chain = b"\x01" * 32
    with psycopg.connect(container.database.url, autocommit=True) as conn:  # the service's role
        conn.execute(
            f"INSERT INTO {CHECKPOINTS} (application, position, previous_position, event_count,"
            " chain_hash, signed_at, key_id, signature, positions, digests)"
            " VALUES ('identity', %s, %s, 1, %s, %s, %s, %s, %s, %s)",
            (head + 100, head, chain, signed_at, key_id(KEY.public_key()),
             forger.sign(checkpoint_message("identity", head, head + 100, 1, chain, signed_at)),
             [head + 100], b"\x02" * 32))
    assert findings(database) == {("identity", head + 100, "checkpoint")}
    behind_the_back(database, CHECKPOINTS, f"UPDATE {CHECKPOINTS} SET event_count = event_count + 1"
                                           f" WHERE application = 'consents'")
    consents = positions(database, "consents")[-1]
    assert ("consents", consents, "checkpoint") in findings(database)


def test_checkpoints_are_append_only_and_the_sealer_will_not_extend_a_forged_one(database,
                                                                                container):
    seal(container)
    for url, refusal in ((database.url, "permission denied"), (database.owner_url, "append-only")):
        with psycopg.connect(url, autocommit=True) as conn, pytest.raises(psycopg.Error,
                                                                          match=refusal):
            conn.execute(f"UPDATE {CHECKPOINTS} SET event_count = 0")
    add_staff(container, 1)  # consents has sealed events and none new; identity, new ones
    other = AuditSealer(container.applications, container.database.url,
                        Ed25519PrivateKey.generate())
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        other.run_batch(conn)
        keys = conn.execute(f"SELECT DISTINCT key_id FROM {CHECKPOINTS}"
                            " WHERE application = 'consents'").fetchall()
    assert "consents" in other.broken and "identity" not in other.broken
    assert keys == [(key_id(KEY.public_key()),)]


def test_the_content_digest_is_the_one_documented(database, container):
    seal(container)
    with psycopg.connect(database.url) as conn:
        oid, version, topic, state = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM eventstore.consents_events"
            " ORDER BY notification_id LIMIT 1").fetchone()  # type: ignore[misc]
        sealed = conn.execute(f"SELECT substring(digests FROM 1 FOR 32) FROM {CHECKPOINTS}"
                              " WHERE application = 'consents' ORDER BY position LIMIT 1").fetchone()
    assert sealed is not None
    assert content_digest(oid.bytes, version, topic, bytes(state)) == bytes(sealed[0])


def cli_env(database: Any, tmp_path: Path) -> dict[str, str]:
    return {"DATABASE_URL": database.url, "CAREBRIDGE_ENCRYPTION_KEY": ENCRYPTION_KEY,
            "CAREBRIDGE_TOKEN_SECRET": "x" * 40, "CAREBRIDGE_DATA_DIR": str(tmp_path)}


def test_the_verify_command_exits_non_zero_naming_the_event(database, container, tmp_path):
    seal(container)
    p = positions(database, "consents")
    runner = CliRunner()
    clean = runner.invoke(audit_verify, [], env=cli_env(database, tmp_path), catch_exceptions=False)
    assert clean.exit_code == 0, clean.output
    assert "no findings" in clean.output
    table = "eventstore.consents_events"
    behind_the_back(database, table, f"DELETE FROM {table} WHERE notification_id = {p[0]}")
    public = runner.invoke(audit_public_key, [], env=cli_env(database, tmp_path)).output.strip()
    caught = runner.invoke(audit_verify, ["--public-key", public, "--application", "consents"],
                           env=cli_env(database, tmp_path), catch_exceptions=False)
    assert caught.exit_code == 1
    assert f"REMOVED    consents:{p[0]}" in caught.output


def test_the_sealer_runs_as_a_follower_and_seals_what_is_written_while_it_runs(database,
                                                                                container):
    sealer = sealer_for(container)
    sealer.start()
    try:
        add_staff(container, 2)
        head = positions(database)[-1]
        for _ in range(500):  # bounded: it wakes on the insert's NOTIFY or its 1 s poll
            reports = {r.application: r for r in verified(database)}
            if reports["identity"].sealed_to == head:
                break
            time.sleep(0.02)
    finally:
        sealer.stop()
    assert reports["identity"].sealed_to == head
    assert not any(r.findings for r in reports.values())
