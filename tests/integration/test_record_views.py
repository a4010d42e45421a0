"""The patient's record on a real PostgreSQL: records wait outside the patient views until they
are released, corrections keep what came before, and a rebuild reproduces both tables."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest

from commands.identity import NewAccount
from domain.access import Actor
from domain.identity import Role

pytestmark = pytest.mark.integration

AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def conn(database: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database.url, autocommit=True) as connection:
        yield connection


def person(container: Any, role: Role, n: int) -> Actor:
    account = NewAccount(f"{role.value}{n}@records.test", "a long enough passphrase", "Pat",
                         f"Person{n}")
    if role is Role.PATIENT:
        account = NewAccount(account.email, account.password, account.given_name,
                             account.family_name, date(1960, 1, 1))
        outcome = container.identity.register_patient(account, at=AT)
        account_id = UUID(outcome.result["account_id"])
    else:
        outcome = container.identity.add_staff(account, role, ["riverside"], by="test", at=AT)
        account_id = UUID(outcome.result["account_id"])
    return Actor(account_id, role, frozenset({"riverside"} if role is not Role.PATIENT else ()))


def result(value: float, code: str = "hba1c") -> dict[str, Any]:
    return {"kind": "lab_result", "code": code, "title": f"Test {code}", "content": {
        "observations": [{"name": code, "value": value, "unit": "mmol/mol",
                          "reference_low": 20, "reference_high": 41}]}}


def table(conn: psycopg.Connection[Any], name: str) -> list[tuple[Any, ...]]:
    return sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr)


def test_records_wait_outside_the_views_and_a_rebuild_reproduces_them(container, conn):
    doctor = person(container, Role.DOCTOR, 0)
    patients = [person(container, Role.PATIENT, n) for n in range(3)]
    for patient in patients:
        container.care.join_through_appointment(
            patient.account_id, doctor.account_id, "riverside", f"appointment-{patient.account_id}",
            starts_at=AT, ends_at=AT + timedelta(days=30), at=AT)
    records = container.records
    released = []
    for n, patient in enumerate(patients):
        shown = records.enter(doctor, patient.account_id, result(30 + n) | {"release_now": True},
                              AT).result["record_id"]
        records.add_note(doctor, UUID(shown), "for staff", AT)
        records.revise(doctor, UUID(shown), {"content": result(45)["content"],
                                             "reason": "Corrected by the laboratory."}, None, AT)
        released.append(shown)
        records.enter(doctor, patient.account_id, result(50, "histology"), AT)  # waits
    gone = records.enter(doctor, patients[0].account_id, result(1) | {"release_now": True}, AT)
    records.mark_entered_in_error(doctor, UUID(gone.result["record_id"]), "Wrong patient.", AT)

    runner = container.runner("patient_records")
    runner.catch_up(conn)
    live = {name: table(conn, name) for name in ("views.patient_records",
                                                   "pending.record_drafts")}
    assert sorted(str(r[0]) for r in live["views.patient_records"]) == sorted(released)
    assert {r[4] for r in live["pending.record_drafts"]} == {"histology"}
    assert all(r[6] == "amended" for r in live["views.patient_records"])
    views_tables = {r[0] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'views'").fetchall()}
    assert "record_drafts" not in views_tables

    runner.rebuild(conn)
    assert {name: table(conn, name) for name in live} == live
    leftovers = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname IN"
                             " ('views', 'pending') AND tablename LIKE '%%rebuild'").fetchall()
    assert leftovers == [(0,)]
