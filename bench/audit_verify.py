"""How fast `carebridge audit verify` checks a million sealed events, and that it still catches one.

    uv run python -m bench.audit_verify [--events 1000000] [--checkpoint-every 1000]

COPYs `--events` synthetic rows (ciphertext-sized random states, 10 versions per stream) into
the consents events table of a fresh embedded database, seals them with the real sealer (signed
checkpoints every `--checkpoint-every` events), then times `verify` over every log. Afterwards
it alters one event behind the application's back and checks that verify names it.
Target: verify in under 30 s.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from typing import Any

import psycopg

from bench.common import report, server_facts, throwaway_container
from commands.audit_chain import signing_key, verify
from projections.audit_chain import AuditSealer

TARGET_SECONDS = 30.0
VERSIONS_PER_STREAM = 10
STATE_SIZES = (176, 240, 312, 416, 528, 640)  # bytes of ciphertext, like stored consent events
TOPICS = ("carebridge:consents.Consent.Created.v1", "carebridge:consents.Consent.Given.v1",
          "carebridge:consents.Consent.Withdrawn.v1")


def copy_events(owner_url: str, events: int) -> None:
    """COPYs synthetic events into eventstore.consents_events (notification ids from its
    sequence, so in insertion order)."""
    noise = os.urandom(1 << 16)
    statement = ("COPY eventstore.consents_events (originator_id, originator_version, topic,"
                 " state) FROM STDIN (FORMAT BINARY)")
    with psycopg.connect(owner_url) as conn, conn.cursor() as cur, cur.copy(statement) as copy:
        copy.set_types(["uuid", "int8", "text", "bytea"])
        stream = uuid.uuid4()
        for index in range(events):
            version = index % VERSIONS_PER_STREAM + 1
            if version == 1:
                stream = uuid.uuid4()
            size = STATE_SIZES[index % len(STATE_SIZES)]
            offset = (index * 7919) % (len(noise) - size)
            copy.write_row((stream, version, TOPICS[min(version - 1, 1 + version % 2)],
                            noise[offset:offset + size]))


def tamper_one(owner_url: str, position: int) -> None:
    with psycopg.connect(owner_url, autocommit=True) as conn, conn.transaction():
        conn.execute("ALTER TABLE eventstore.consents_events DISABLE TRIGGER ALL")
        conn.execute("UPDATE eventstore.consents_events SET state = state || '\\x00'::bytea"
                     " WHERE notification_id = %s", (position,))
        conn.execute("ALTER TABLE eventstore.consents_events ENABLE TRIGGER ALL")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_verify",
                                     description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000,
                        help="synthetic events to COPY in (default 1000000, at most 10000000)")
    parser.add_argument("--checkpoint-every", type=int, default=1000,
                        help="events per signed checkpoint (default 1000, the setting's default)")
    args = parser.parse_args()
    events = max(1, min(args.events, 10_000_000))

    with throwaway_container("audit-verify") as container:
        url, owner_url = container.database.url, container.database.owner_url
        facts = server_facts(url)
        key = signing_key(None, container.encryption_key)
        began = time.monotonic()
        copy_events(owner_url, events)
        copied = time.monotonic() - began
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE eventstore.consents_events")
            size = conn.execute("SELECT pg_total_relation_size('eventstore.consents_events')"
                                ).fetchone()[0]  # type: ignore[index]
        print(f"PostgreSQL {facts['server_version']}, {facts['cpus']} CPUs, load "
              f"{facts['loadavg_1m']}; copied {events:,} events ({size / 2**20:.0f} MiB) in "
              f"{copied:.1f} s", flush=True)
        sealer = AuditSealer(container.applications, url, key, args.checkpoint_every)
        began = time.monotonic()
        with psycopg.connect(url, autocommit=True) as conn:
            sealed = sealer.catch_up(conn)
        sealing = time.monotonic() - began
        print(f"sealed {sealed:,} events in {sealing:.1f} s ({sealed / sealing:,.0f} events/s)",
              flush=True)
        began = time.monotonic()
        with psycopg.connect(url) as conn:
            reports = verify(conn, key.public_key())
        seconds = time.monotonic() - began
        verified = sum(r.events for r in reports)
        clean = not any(r.findings for r in reports) and all(r.unsealed == 0 for r in reports)
        print(f"verify: {verified:,} events in {len(reports)} logs, "
              f"{sum(r.checkpoints for r in reports):,} checkpoints, in {seconds:.2f} s = "
              f"{verified / seconds:,.0f} events/s; {'meets' if seconds < TARGET_SECONDS else 'MISSES'}"
              f" target {TARGET_SECONDS:g} s; findings: {'none' if clean else 'SOME'}", flush=True)
        target = events // 2
        tamper_one(owner_url, target)
        with psycopg.connect(url) as conn:
            caught = [f for r in verify(conn, key.public_key(), ["consents"]) for f in r.findings]
        named = [(f.position, f.kind) for f in caught] == [(target, "altered")]
        print(f"after altering consents:{target} behind the application's back, verify names: "
              f"{', '.join(str(f) for f in caught) or 'nothing'}")
    figures: dict[str, Any] = {
        "events": events, "verified_events": verified, "seconds": round(seconds, 3),
        "events_per_s": round(verified / seconds, 1), "checkpoint_every": args.checkpoint_every,
        "checkpoints": sum(r.checkpoints for r in reports), "table_mib": round(size / 2**20, 1),
        "copy_seconds": round(copied, 1), "seal_seconds": round(sealing, 1),
        "seal_events_per_s": round(sealed / sealing, 1), "target_seconds": TARGET_SECONDS,
        "meets_target": seconds < TARGET_SECONDS, "clean": clean, "tamper_named": named,
        **facts, "loadavg_1m_end": round(os.getloadavg()[0], 2),
    }
    report("audit_verify", figures)
    if not (clean and named):
        raise SystemExit("verify did not give the expected verdicts")


if __name__ == "__main__":
    main()
