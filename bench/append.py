"""Durable consent commands per second against plain single-row INSERTs on the same server.

    uv run python -m bench.append [--seconds 6] [--max-ops 30000] [--rounds 3] [--threads 8]

Commands go through ConsentsApplication (give and withdraw alternate on many distinct
patients, so every command writes an event), with and without an Idempotency key. Plain
inserts are autocommit single-row INSERTs of a bytea payload the size of a stored event.
Target: commands/s / plain inserts/s >= 0.5, sequentially and with 8 threads.
"""

from __future__ import annotations

import argparse
import os
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg

from api.container import Container
from bench.common import MakeOp, Op, Rate, report, run_threads, server_facts, throwaway_container
from commands.idempotency import IdempotencyKey
from domain.access import Actor
from domain.consents import ConsentType
from domain.identity import Role

TARGET_RATIO = 0.5
PATIENTS_PER_THREAD = 500
CONSENT = ConsentType.TELEMEDICINE
PLAIN_TABLE = "public.bench_plain"
PLAIN_LOCK = 7_130_099


def command_op(container: Container, keyed: bool) -> Op:
    """One thread's commands: give then withdraw for each of its patients in turn, so every
    command writes an event and the mix stays half and half however long it runs."""
    app = container.consents
    version = app.current_text(CONSENT).current_version or ""
    actors = [Actor(uuid4(), Role.PATIENT) for _ in range(PATIENTS_PER_THREAD)]
    count = 0

    def op() -> None:
        nonlocal count
        actor = actors[(count // 2) % len(actors)]
        give = count % 2 == 0
        count += 1
        at = datetime.now(UTC)
        key = None
        if keyed:
            operation = "consent.give" if give else "consent.withdraw"
            key = IdempotencyKey.for_request(actor.ref, uuid4().hex, operation,
                                             {"type": CONSENT.value, "version": version})
        if give:
            outcome = app.give(actor, actor.account_id, CONSENT, version, at, key=key)
        else:
            outcome = app.withdraw(actor, actor.account_id, CONSENT, "bench", at, key=key)
        if not outcome.result["changed"]:
            raise RuntimeError(f"a command wrote no event: {outcome}")

    return op


def stored_event_bytes(container: Container) -> int:
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        row = conn.execute("SELECT avg(octet_length(state))::int FROM eventstore.consents_events"
                           " WHERE topic LIKE 'carebridge:consents.Consent.%'").fetchone()
    return int(row[0]) if row and row[0] else 200


def prepare_plain_table(container: Container) -> None:
    with psycopg.connect(container.database.owner_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {PLAIN_TABLE} (id bigserial PRIMARY KEY, payload bytea NOT NULL)")
        conn.execute(f"GRANT SELECT, INSERT ON {PLAIN_TABLE} TO carebridge_app")
        conn.execute("GRANT USAGE ON SEQUENCE public.bench_plain_id_seq TO carebridge_app")


def plain_op(url: str, payload: bytes, stack: ExitStack, locked: bool = False) -> Op:
    """One autocommit INSERT per call. `locked` also takes a transaction-scoped advisory lock in
    the same statement, as the event recorder does to commit notification ids in order: it shows
    what serialising the commits alone costs."""
    conn = stack.enter_context(psycopg.connect(url, autocommit=True))
    statement = f"INSERT INTO {PLAIN_TABLE} (payload) VALUES (%s)"
    if locked:
        statement = (f"WITH lock AS MATERIALIZED (SELECT pg_advisory_xact_lock({PLAIN_LOCK}))"
                     f" INSERT INTO {PLAIN_TABLE} (payload) SELECT %s FROM lock")

    def op() -> None:
        conn.execute(statement, (payload,), prepare=True)

    return op


def measure(rounds: int, seconds: float, max_ops: int, threads: int,
            kinds: dict[str, MakeOp]) -> dict[str, Rate]:
    """Each kind runs `rounds` times, interleaved with the others, so that load from other
    processes on the machine falls on all of them alike; ops and time are summed."""
    totals = {name: Rate(0, 0.0) for name in kinds}
    for _ in range(rounds):
        for name, make_op in kinds.items():
            rate = run_threads(threads, seconds / rounds, max_ops // rounds, make_op)
            totals[name] = Rate(totals[name].ops + rate.ops, totals[name].seconds + rate.seconds)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.append", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement (default 6)")
    parser.add_argument("--max-ops", type=int, default=30000, help="per measurement (default 30000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--threads", type=int, default=8, help="concurrent variant (default 8)")
    args = parser.parse_args()
    seconds, max_ops = min(args.seconds, 60.0), min(args.max_ops, 200_000)
    rounds = max(1, min(args.rounds, 10))

    with throwaway_container("append") as container:
        facts = server_facts(container.database.url)
        run_threads(1, 1.0, 200, lambda _i, _s: command_op(container, keyed=True))  # warm-up
        payload = b"\x5a" * stored_event_bytes(container)
        prepare_plain_table(container)
        url = container.database.url
        print(f"PostgreSQL {facts['server_version']} (synchronous_commit={facts['synchronous_commit']},"
              f" wal_sync_method={facts['wal_sync_method']}), {facts['cpus']} CPUs,"
              f" load {facts['loadavg_1m']}; each measurement {seconds:g} s or {max_ops} ops"
              f" in {rounds} interleaved rounds; payload {len(payload)} bytes")
        figures: dict[str, Any] = {"seconds": seconds, "max_ops": max_ops, "rounds": rounds,
                                   "payload_bytes": len(payload), **facts}
        ratios = []
        for threads in (1, args.threads):
            rates = measure(rounds, seconds, max_ops, threads, {
                "plain_inserts": lambda _i, s: plain_op(url, payload, s),
                "locked_inserts": lambda _i, s: plain_op(url, payload, s, locked=True),
                "commands": lambda _i, _s: command_op(container, keyed=False),
                "keyed_commands": lambda _i, _s: command_op(container, keyed=True),
            })
            plain, locked = rates.pop("plain_inserts"), rates.pop("locked_inserts")
            print(f"{threads} thread(s): {'plain INSERTs':<14} {plain.per_second:8.0f}/s"
                  f" ({plain.ops} in {plain.seconds:.2f} s)")
            print(f"{threads} thread(s): {'locked INSERTs':<14} {locked.per_second:8.0f}/s"
                  f" ({locked.ops} in {locked.seconds:.2f} s)  (with the recorder's advisory lock;"
                  f" not a target)")
            figures[f"plain_inserts_per_s_t{threads}"] = round(plain.per_second, 1)
            figures[f"locked_inserts_per_s_t{threads}"] = round(locked.per_second, 1)
            for label, rate in rates.items():
                ratio = rate.per_second / plain.per_second
                ratios.append(ratio)
                print(f"{threads} thread(s): {label:<14} {rate.per_second:8.0f}/s"
                      f" ({rate.ops} in {rate.seconds:.2f} s)  ratio {ratio:.2f}"
                      f" {'meets' if ratio >= TARGET_RATIO else 'MISSES'} target {TARGET_RATIO}")
                figures[f"{label}_per_s_t{threads}"] = round(rate.per_second, 1)
                figures[f"{label}_ratio_t{threads}"] = round(ratio, 3)
        figures["target_ratio"] = TARGET_RATIO
        figures["meets_target"] = min(ratios) >= TARGET_RATIO
        figures["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    report("append", figures)


if __name__ == "__main__":
    main()
