"""`carebridge projections run` killed (SIGKILL) half-way through a backlog of bookings, then
started again: every projection equals a rebuild from zero, and the reminder planner (a process
manager that writes to the outbox) planned each appointment's reminders exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from bench.crash import CHECKUP, check_projections, followers_lag
from commands.identity import NewAccount
from domain.access import Actor
from domain.identity import Role
from tests.conftest import ENCRYPTION_KEY, TOKEN_SECRET
from tests.conftest import test_settings as settings_for_tests

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CLINICIANS = 5
BOOKINGS_EACH = 20
REMINDERS_EACH = 2  # 48 and 2 hours ahead (the default reminder hours)


def start_runners(database: Any, workdir: Path, name: str, batch_size: int
                  ) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("BROKER_URL", "CAREBRIDGE_BROKER_URL", "DATABASE_URL")}
    env.update({"PYTHONPATH": str(ROOT), "CAREBRIDGE_DATABASE_URL": database.url,
                "CAREBRIDGE_ENCRYPTION_KEY": ENCRYPTION_KEY,
                "CAREBRIDGE_TOKEN_SECRET": TOKEN_SECRET, "CAREBRIDGE_DATA_DIR": str(workdir),
                "CAREBRIDGE_STATIC_SCHEDULE": "bench.crash:crash_schedule",
                "CAREBRIDGE_PROJECTION_BATCH_SIZE": str(batch_size)})
    with (workdir / f"{name}.log").open("wb") as log:  # the process keeps its own copy
        return subprocess.Popen([sys.executable, "-m", "api.cli", "projections", "run"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def reminders(database: Any) -> Counter[uuid.UUID]:
    """Planned appointment reminders, by appointment."""
    with psycopg.connect(database.url) as conn:
        rows = conn.execute("SELECT about_id FROM carebridge.outbox"
                            " WHERE kind = 'appointment_reminder'").fetchall()
    return Counter(row[0] for row in rows)


def caught_up(container: Any) -> bool:
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        lag = sum(s.lag for runner in container.runners for s in runner.status(conn))
    return lag == 0 and followers_lag(container) == 0


def wait_for(condition: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + 120  # a generous bound, not a measure
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen: {log.read_text()[-3000:]}"
        time.sleep(0.01)


def test_projection_runners_killed_mid_backlog_converge_and_plan_each_reminder_once(
        database, tmp_path, monkeypatch):
    from api.container import Container

    now = datetime.now(UTC)
    with Container(settings_for_tests(data_dir=tmp_path), database, ENCRYPTION_KEY) as setup:
        clinicians = [uuid.UUID(setup.identity.add_staff(
            NewAccount(f"nurse{n}@clinic.test", "staff passphrase 2026", "Nurse", f"N{n}"),
            Role.NURSE, ["riverside"], by="test", at=now).result["account_id"])
            for n in range(CLINICIANS)]
        patients = [uuid.UUID(setup.identity.register_patient(NewAccount(
            f"patient{n}@patients.test", "a long enough passphrase", "Pat", f"P{n}",
            date(1970, 1, 1)), at=now).result["account_id"]) for n in range(CLINICIANS)]
    first_slot = (now + timedelta(days=3)).replace(microsecond=0)
    monkeypatch.setenv("CAREBRIDGE_BENCH_NURSES", ",".join(map(str, clinicians)))
    monkeypatch.setenv("CAREBRIDGE_BENCH_FIRST_SLOT", first_slot.isoformat())
    settings = settings_for_tests(data_dir=tmp_path, static_schedule="bench.crash:crash_schedule")
    with Container(settings, database, ENCRYPTION_KEY) as container:
        booked = []
        for patient, clinician in zip(patients, clinicians, strict=True):
            actor = Actor(patient, Role.PATIENT)
            for slot in range(BOOKINGS_EACH):
                held = container.appointments.hold(
                    actor, patient, clinician, CHECKUP.type_id,
                    first_slot + timedelta(minutes=5 * slot), at=now).result["appointment_id"]
                container.appointments.confirm(actor, uuid.UUID(str(held)), at=now)
                booked.append(uuid.UUID(str(held)))

        # One event per transaction, so that the kill lands half-way through the backlog.
        first = start_runners(database, tmp_path, "first", batch_size=1)
        try:
            wait_for(lambda: len(reminders(database)) > 0, "reminder planning",
                     tmp_path / "first.log")
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(30)
        at_kill = reminders(database)
        assert 0 < sum(at_kill.values()) < REMINDERS_EACH * len(booked)

        second = start_runners(database, tmp_path, "second", batch_size=1000)
        try:
            wait_for(lambda: caught_up(container), "catching up", tmp_path / "second.log")
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(30)

        planned = reminders(database)
        assert set(planned) == set(booked)  # none missing
        assert set(planned.values()) == {REMINDERS_EACH}  # none planned twice
        converged = check_projections(container)
        assert {name: (p["differences"], p["live_lag"]) for name, p in converged.items()} == {
            name: (0, 0) for name in converged}
        assert converged["appointment_views"]["rows"] == len(booked)

        # The comparison sees a row the rebuild would not write.
        views = container.runner("appointment_views")
        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DELETE FROM {} WHERE appointment_id = %s").format(
                views.live("appointments")), (booked[0],))
        assert check_projections(container)["appointment_views"]["differences"] == 1
