"""Concurrent writers: a stale copy cannot overwrite, and the log is committed in id order."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from eventsourcing.application import AggregateNotFoundError

from domain.access import Actor
from domain.consents import Consent, ConsentType, consent_id
from domain.errors import ConcurrentChange

from .support import (
    GIVEN,
    WITHDRAWN,
    a_patient,
    count_topics,
    give,
    minutes_after_monday,
    stored_events,
    withdraw,
)

pytestmark = pytest.mark.integration

WRITERS = 8
CHANGES_PER_WRITER = 12


def test_a_stale_copy_of_a_consent_cannot_be_saved_and_nothing_is_half_written(container, database):
    ada = a_patient()
    give(container, ada)
    app = container.consents
    stream = consent_id(ada.account_id, ConsentType.TELEMEDICINE)
    on_the_phone, in_the_app = app.repository.get(stream), app.repository.get(stream)
    on_the_phone.withdraw("by phone", by=ada.ref, at=minutes_after_monday(1))
    app.save_all(on_the_phone)
    log_before = stored_events(database.url)

    in_the_app.withdraw("in the app", by=ada.ref, at=minutes_after_monday(2))
    sharing = Consent(patient_id=ada.account_id, consent_type=ConsentType.DATA_SHARING.value,
                      by=ada.ref, at=minutes_after_monday(2))
    with pytest.raises(ConcurrentChange) as refusal:
        app.save_all(in_the_app, sharing)

    assert "Nothing was saved" in refusal.value.detail
    assert stored_events(database.url) == log_before
    with pytest.raises(AggregateNotFoundError):
        app.repository.get(sharing.id)
    saved = app.repository.get(stream)
    assert (saved.version, saved.withdrawn_at) == (on_the_phone.version, minutes_after_monday(1))


def test_two_first_consents_of_the_same_stream_cannot_both_be_created(container, database):
    ada = a_patient()
    app = container.consents
    twins = [Consent(patient_id=ada.account_id, consent_type=ConsentType.TELEMEDICINE.value,
                     by=ada.ref, at=minutes_after_monday(n)) for n in (1, 2)]

    app.save_all(twins[0])
    with pytest.raises(ConcurrentChange):
        app.save_all(twins[1])

    assert app.repository.get(twins[0].id).created_on == minutes_after_monday(1)


def change_consents_of(container: object, patient: Actor, start: threading.Barrier) -> int:
    """One writer: a patient who gives and withdraws a consent over and over."""
    start.wait(timeout=30)
    for n in range(CHANGES_PER_WRITER):
        at = minutes_after_monday(n)
        (give if n % 2 == 0 else withdraw)(container, patient, at)
    return CHANGES_PER_WRITER


def test_a_reader_tailing_the_log_under_concurrent_writers_misses_nothing(container, database):
    """Notification ids are issued in commit order: a reader that only ever asks for ids above
    the last one it saw, as a projection does, sees every event exactly once."""
    runner = container.runner("consent_views")
    seen: list[int] = []
    writing = threading.Event()
    writing.set()

    def tail() -> None:
        with psycopg.connect(database.url, autocommit=True) as reader, \
                psycopg.connect(database.url, autocommit=True) as projector:
            while True:
                last_round = not writing.is_set()
                seen.extend(r[0] for r in reader.execute(
                    "SELECT notification_id FROM eventstore.consents_events"
                    " WHERE notification_id > %s ORDER BY notification_id",
                    (seen[-1] if seen else 0,)))
                runner.catch_up(projector)
                if last_round:
                    return

    start = threading.Barrier(WRITERS)
    with ThreadPoolExecutor(max_workers=WRITERS + 1) as pool:
        reader = pool.submit(tail)
        writers = [pool.submit(change_consents_of, container, a_patient(), start)
                   for _ in range(WRITERS)]
        try:
            written = sum(w.result() for w in writers)
        finally:
            writing.clear()
        reader.result()

    committed = [r[0] for r in stored_events(database.url)]
    assert seen == committed
    assert len(set(seen)) == len(seen)
    assert count_topics(database.url, GIVEN, WITHDRAWN) == written
    with psycopg.connect(database.url, autocommit=True) as conn:
        [(history,)] = conn.execute("SELECT count(*) FROM views.consent_history").fetchall()
        [(current,)] = conn.execute("SELECT count(*) FROM views.patient_consents"
                                    " WHERE status = 'withdrawn'").fetchall()
        assert [s.lag for s in runner.status(conn)] == [0]
    assert history == written
    assert current == WRITERS
