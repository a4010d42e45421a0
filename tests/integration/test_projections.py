"""The projection runner: exactly-once batches, status, rebuild, one leader, live updates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from commands.default_consent_texts import DEFAULT_VERSION
from domain.consents import ConsentType
from projections.consents import ConsentViews
from projections.runner import ProjectionRunner

from .support import a_patient, eventually, give, minutes_after_monday, rows, sample, withdraw

pytestmark = pytest.mark.integration

VIEWS = ("patient_consents", "consent_history", "consent_texts")


@pytest.fixture
def conn(database: Any) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database.url, autocommit=True) as connection:
        yield connection


def view(conn: psycopg.Connection[Any], table: str) -> list[tuple[Any, ...]]:
    return sorted(conn.execute(f"SELECT * FROM views.{table}").fetchall(), key=repr)


def consent_status(url: str, patient: Any) -> list[tuple[Any, ...]]:
    return rows(url, "SELECT consent_type, status, text_version FROM views.patient_consents"
                     " WHERE patient_id = %s", (patient.account_id,))


def a_morning_of_consents(container: Any) -> None:
    """Three patients give, withdraw and give again over a morning."""
    for n in range(3):
        patient = a_patient()
        give(container, patient, minutes_after_monday(n))
        give(container, patient, minutes_after_monday(n), ConsentType.DATA_SHARING)
        withdraw(container, patient, minutes_after_monday(n + 10))
        if n == 0:
            give(container, patient, minutes_after_monday(n + 20))


def test_catching_up_applies_the_new_events_to_the_views(container, database, conn):
    runner = container.runner("consent_views")
    ada = a_patient()
    give(container, ada, minutes_after_monday(1))
    withdraw(container, ada, minutes_after_monday(2))

    applied = runner.catch_up(conn)

    assert applied == len(rows(database.url, "SELECT 1 FROM eventstore.consents_events"))
    assert consent_status(database.url, ada) == [("telemedicine", "withdrawn", DEFAULT_VERSION)]
    history = rows(database.url, "SELECT action, actor, at FROM views.consent_history"
                                 " WHERE patient_id = %s ORDER BY aggregate_version",
                   (ada.account_id,))
    assert history == [("given", ada.ref, minutes_after_monday(1)),
                       ("withdrawn", ada.ref, minutes_after_monday(2))]
    assert {r[0] for r in view(conn, "consent_texts")} == {t.value for t in ConsentType}
    assert runner.catch_up(conn) == 0


def test_the_lag_falls_to_zero_once_the_runner_has_caught_up(container, conn):
    runner = container.runner("consent_views")
    give(container, a_patient())
    [behind] = runner.status(conn)

    runner.catch_up(conn)

    [caught_up] = runner.status(conn)
    assert (behind.application, behind.position) == ("consents", 0)
    assert behind.lag == behind.head > 0
    assert caught_up.lag == 0
    assert caught_up.position == caught_up.head == behind.head


def test_a_rebuild_reproduces_the_live_views_and_tracks_the_head(container, conn):
    runner = container.runner("consent_views")
    a_morning_of_consents(container)
    runner.catch_up(conn)
    live = {table: view(conn, table) for table in VIEWS}
    reported: list[tuple[int, int]] = []

    applied = runner.rebuild(conn, progress=lambda done, total: reported.append((done, total)))

    rebuilt = {table: view(conn, table) for table in VIEWS}
    [status] = runner.status(conn)
    assert rebuilt == live
    assert all(live.values())
    assert applied == status.head
    assert status.position == status.head
    assert reported[-1] == (applied, applied)
    leftovers = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'views'"
                             " AND tablename LIKE '%%rebuild'").fetchall()
    assert leftovers == [(0,)]


def test_the_rebuilt_views_keep_following_new_events(container, database, conn):
    runner = container.runner("consent_views")
    runner.rebuild(conn)
    ada = a_patient()

    give(container, ada)
    runner.catch_up(conn)

    assert consent_status(database.url, ada) == [("telemedicine", "given", DEFAULT_VERSION)]


def test_only_one_of_two_runners_of_a_projection_leads(container, database):
    first = container.runner("consent_views")
    second = ProjectionRunner(ConsentViews(), container.applications, database.url)
    runners = (first, second)
    for runner in runners:
        runner.start()
    try:
        assert eventually(lambda: any(r.is_leader for r in runners))
        leaders = sample(lambda: sum(r.is_leader for r in runners), times=40)
        assert leaders == [1] * 40
        leader = next(r for r in runners if r.is_leader)
        standby = second if leader is first else first

        leader.stop()

        assert not leader.is_leader
        assert eventually(lambda: standby.is_leader), "the standby takes over"
    finally:
        for runner in runners:
            runner.stop()
    assert not any(r.is_leader for r in runners)


def test_events_written_while_the_runner_runs_reach_the_view(container, database):
    runner = container.runner("consent_views")
    runner.start()
    try:
        assert eventually(lambda: runner.is_leader)
        ada = a_patient()

        give(container, ada)
        assert eventually(lambda: consent_status(database.url, ada) == [
            ("telemedicine", "given", DEFAULT_VERSION)])

        withdraw(container, ada, minutes_after_monday(5))
        assert eventually(lambda: consent_status(database.url, ada) == [
            ("telemedicine", "withdrawn", DEFAULT_VERSION)])
    finally:
        runner.stop()


def test_indexes_survive_rebuild_after_rebuild(container, conn):
    """A rebuild's fresh tables get the live index names, so the next rebuild builds its own
    indexes instead of finding the old ones and skipping them."""
    runner = container.runner("appointment_views")

    def indexes() -> set[str]:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'views'"
                            " AND tablename = 'appointments'").fetchall()
        return {row[0] if isinstance(row, tuple) else row["indexname"] for row in rows}

    before = indexes()
    assert {"ix_appointments_patient", "ix_appointments_clinic",
            "ix_appointments_clinician"} <= before
    for _ in range(2):
        runner.rebuild(conn)
        assert indexes() == before
