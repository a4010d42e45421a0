"""How fast the consent_views projection rebuilds from the consents log, and whether it is right.

    uv run python -m bench.rebuild [--events 200000] [--max-seconds 600]

Seeds `--events` Given/Withdrawn events (9 per consent, 4 consents per patient, saved many
aggregates per `save_all`), then times `ProjectionRunner.rebuild` of consent_views and checks
the rebuilt tables against the log. Target: 20,000 events/s or more.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from api.container import Container
from bench.common import report, server_facts, throwaway_container
from domain.consents import Consent, ConsentType
from domain.ids import stream_id
from projections.consents import GIVEN, WITHDRAWN

TARGET_EVENTS_PER_S = 20_000
EVENTS_PER_CONSENT = 9  # given 5 times and withdrawn 4: each ends given
CONSENTS_PER_SAVE = 200
SEED_THREADS = 2
TYPES = tuple(ConsentType)
START = datetime(2026, 1, 1, tzinfo=UTC)


def build_consent(index: int, events: int, texts: dict[ConsentType, tuple[str, str]]) -> Consent:
    """Consent `index`: given, withdrawn, given... `events` times (given first)."""
    patient = stream_id("bench-patient", index // len(TYPES))
    consent_type = TYPES[index % len(TYPES)]
    version, sha = texts[consent_type]
    by = f"patient:{patient}"
    at = START + timedelta(seconds=index)
    consent = Consent(patient_id=patient, consent_type=consent_type.value, by=by, at=at)
    for k in range(events):
        when = at + timedelta(minutes=k + 1)
        if k % 2 == 0:
            consent.give(version, sha, version, by=by, at=when)
        else:
            consent.withdraw("bench", by=by, at=when)
    return consent


def seed(container: Container, events: int) -> dict[str, int]:
    """Saves `events` Given/Withdrawn events; returns what the projection should then hold."""
    app = container.consents
    texts = {}
    for consent_type in TYPES:
        document = app.current_text(consent_type)
        version = document.current_version or ""
        texts[consent_type] = (version, document.versions[version])
    consents = math.ceil(events / EVENTS_PER_CONSENT)
    sizes = [min(EVENTS_PER_CONSENT, events - i * EVENTS_PER_CONSENT) for i in range(consents)]

    def save(first: int) -> None:
        last = min(first + CONSENTS_PER_SAVE, consents)
        app.save_all(*(build_consent(i, sizes[i], texts) for i in range(first, last)))

    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(save, range(0, consents, CONSENTS_PER_SAVE)))
    return {"history": events, "consents": consents, "given_now": sum(s % 2 for s in sizes),
            "texts": len(TYPES)}


def check(conn: psycopg.Connection[Any], expected: dict[str, int]) -> dict[str, Any]:
    """Compares the rebuilt tables with the log and with what was seeded."""
    def one(query: str, *params: Any) -> int:
        row = conn.execute(query, params).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    found = {
        "history": one("SELECT count(*) FROM views.consent_history"),
        "consents": one("SELECT count(*) FROM views.patient_consents"),
        "given_now": one("SELECT count(*) FROM views.patient_consents WHERE status = 'given'"),
        "texts": one("SELECT count(*) FROM views.consent_texts WHERE is_current"),
    }
    logged = one("SELECT count(*) FROM eventstore.consents_events WHERE topic = ANY(%s)",
                 [GIVEN, WITHDRAWN])
    head = one("SELECT max(notification_id) FROM eventstore.consents_events")
    position = one("SELECT position FROM carebridge.projection_tracking"
                   " WHERE projection = 'consent_views' AND application = 'consents'")
    correct = found == expected and logged == expected["history"] and position == head
    return {"correct": correct, "found": found, "expected": expected,
            "given_withdrawn_in_log": logged, "head": head, "position": position}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000,
                        help="Given/Withdrawn events to seed (default 200000, at most 5000000)")
    parser.add_argument("--max-seconds", type=float, default=600.0,
                        help="give up if the rebuild takes longer (default 600)")
    args = parser.parse_args()
    events = max(1, min(args.events, 5_000_000))

    with throwaway_container("rebuild") as container:
        url = container.database.url
        facts = server_facts(url)
        began = time.monotonic()
        expected = seed(container, events)
        seeded = time.monotonic() - began
        print(f"PostgreSQL {facts['server_version']}, {facts['cpus']} CPUs, load {facts['loadavg_1m']};"
              f" seeded {events} Given/Withdrawn events on {expected['consents']} consents"
              f" in {seeded:.1f} s ({events / seeded:.0f}/s, not the figure)")
        runner = container.runner("consent_views")
        shown = {"at": 0.0, "applied": 0}
        start = 0.0

        def progress(applied: int, total: int) -> None:
            now = time.monotonic() - start
            if now > args.max_seconds:
                raise TimeoutError(f"rebuild took more than {args.max_seconds:g} s")
            if (now - shown["at"] >= 1.0 or applied >= total) and applied != shown["applied"]:
                shown.update(at=now, applied=applied)
                print(f"  rebuild: {applied}/{total} events ({applied / max(total, 1):.0%})"
                      f" {now:.1f} s, {applied / max(now, 1e-9):.0f} events/s", flush=True)

        with psycopg.connect(url, autocommit=True) as conn:
            start = time.monotonic()
            applied = runner.rebuild(conn, progress=progress)
            seconds = time.monotonic() - start
            verdict = check(conn, expected)
    rate, projected_rate = applied / seconds, events / seconds
    print(f"rebuild of consent_views: {applied} log events in {seconds:.2f} s = {rate:.0f} events/s"
          f" ({projected_rate:.0f} Given/Withdrawn/s);"
          f" {'meets' if rate >= TARGET_EVENTS_PER_S else 'MISSES'} target {TARGET_EVENTS_PER_S}/s")
    print(f"correct: {'yes' if verdict['correct'] else 'NO'} (history {verdict['found']['history']}"
          f" rows = {verdict['given_withdrawn_in_log']} Given+Withdrawn in the log;"
          f" current {verdict['found']['consents']} rows, {verdict['found']['given_now']} given;"
          f" position {verdict['position']} of {verdict['head']})")
    report("rebuild", {
        "events": events, "log_events": applied, "seconds": round(seconds, 3),
        "events_per_s": round(rate, 1), "given_withdrawn_per_s": round(projected_rate, 1),
        "batch_size": runner.batch_size, "seed_seconds": round(seeded, 1),
        "target_events_per_s": TARGET_EVENTS_PER_S, "meets_target": rate >= TARGET_EVENTS_PER_S,
        "correct": verdict["correct"], **facts, "loadavg_1m_end": round(os.getloadavg()[0], 2),
    })
    if not verdict["correct"]:
        raise SystemExit(f"rebuilt projection is wrong: {verdict}")


if __name__ == "__main__":
    main()
