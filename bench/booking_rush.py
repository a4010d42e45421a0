"""A vaccination booking rush over HTTP: 5,000 patients ask at once for 1,000 places.

    uv run python -m bench.booking_rush [--requests 5000] [--in-flight 200]

Starts a throwaway embedded PostgreSQL and `carebridge api` on 127.0.0.1 (a free port), with
20 nurses each vaccinating 5 patients a slot in 10 five-minute slots (1,000 places) two days
ahead. The scheduling context is not used: the server reads that schedule through the
`CAREBRIDGE_STATIC_SCHEDULE=bench.booking_rush:rush_schedule` setting (nurse ids passed in
`CAREBRIDGE_BENCH_NURSES`). The patients' accounts and sessions are created directly; their
access tokens are signed with the server's token secret.

Every request holds one place (request i asks for nurse i mod 20, slot i div 20 mod 10, so
each slot is asked for 25 times); each hold won is then confirmed. The database must then
hold exactly 1,000 bookings, no slot over its capacity; every other request must be a 409.
Prints the answers by status and problem type, throughput, p50 and p99, and writes JSON to
bench/results/. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg

from api.auth import TokenService
from bench.common import (
    free_port,
    percentile,
    report,
    server_env,
    server_facts,
    throwaway_container,
    wait_until_ready,
)
from commands.identity import NewAccount
from domain.access import Actor
from domain.identity import Role
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    StaticSchedule,
)

NURSES = 20
SLOTS = 10  # five-minute slots per nurse
CAPACITY = 5  # patients per slot
PLACES = NURSES * SLOTS * CAPACITY
FLU = ConsultationTypeInfo("flu-vaccination", "Flu vaccination", Mode.IN_PERSON, 5,
                           room_kind="vaccination", capacity_per_slot=CAPACITY)
CARE_BRIDGE = str(Path(sys.executable).parent / "carebridge")
DEADLINE_SECONDS = 600


def rush_schedule() -> StaticSchedule:
    """The schedule the server books against (named by CAREBRIDGE_STATIC_SCHEDULE)."""
    nurses = [UUID(n) for n in os.environ.get("CAREBRIDGE_BENCH_NURSES", "").split(",") if n]
    return StaticSchedule(
        clinic_list=[ClinicInfo("riverside", "Riverside Health Centre", ("1 River Walk",),
                                "London", "SE1 1AA", "Europe/London")],
        type_list=[FLU],
        clinician_list=[ClinicianInfo(n, f"Nurse {i}", "practice nursing", ("en",),
                                      ("riverside",), (FLU.type_id,))
                        for i, n in enumerate(nurses)],
        room_list=[RoomInfo(f"riverside-vacc-{i}", "riverside", "vaccination", f"Room {i}")
                   for i in range(len(nurses))],
        weekly={n: {d: [("riverside", wall_time(9), wall_time(9, 5 * SLOTS), 5,
                         (FLU.type_id,), f"riverside-vacc-{i}")] for d in range(7)}
                for i, n in enumerate(nurses)})


def seed(container: Any, patients: int) -> tuple[list[UUID], list[tuple[UUID, UUID]]]:
    """Nurses (staff accounts) and patients with a live session each."""
    now = datetime.now(UTC)
    nurses = [UUID(container.identity.add_staff(
        NewAccount(f"nurse{i}@clinic.test", "staff passphrase 2026", "Nurse", f"N{i}"),
        Role.NURSE, ["riverside"], by="bench", at=now).result["account_id"])
        for i in range(NURSES)]

    def one(n: int) -> tuple[UUID, UUID]:
        outcome = container.identity.register_patient(NewAccount(
            f"patient{n}@patients.test", "a long enough passphrase", "Pat", f"P{n}",
            date(1970, 1, 1)), at=datetime.now(UTC))
        account = container.identity.account(UUID(outcome.result["account_id"]))
        issued = container.sessions.start(account, f"bench-{n}", "bench", datetime.now(UTC))
        return account.id, issued.session_id

    with ThreadPoolExecutor(8) as pool:
        people = list(pool.map(one, range(patients)))
    return nurses, people


async def rush(base: str, tokens: list[str], targets: list[dict[str, Any]],
               in_flight: int) -> tuple[list[tuple[int, str, float, str | None]], float]:
    limit = asyncio.Semaphore(in_flight)
    results: list[tuple[int, str, float, str | None]] = [(0, "", 0.0, None)] * len(targets)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:
        async def one(n: int) -> None:
            async with limit:
                started = time.perf_counter()
                response = await _post(client, "/v1/appointments/holds", targets[n],
                                       {"Authorization": f"Bearer {tokens[n]}",
                                        "Idempotency-Key": f"rush-{n:06d}"})
                elapsed = time.perf_counter() - started
                body = response.json()
                kind = body.get("type", "").rsplit("/", 1)[-1] if response.status_code >= 400 \
                    else "ok"
                alternatives = (body.get("extensions") or {}).get("alternatives")
                results[n] = (response.status_code, kind, elapsed,
                              body.get("appointment_id") if response.status_code < 300
                              else ("alternatives" if alternatives else None))

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(len(targets)))),
                               DEADLINE_SECONDS)
        return results, time.perf_counter() - started


async def _post(client: httpx.AsyncClient, path: str, body: Any,
                headers: dict[str, str]) -> httpx.Response:
    """A POST retried on a dropped connection (a keep-alive connection the server closed just
    as it was reused): safe, because the Idempotency-Key makes the retry return the first
    answer instead of acting twice."""
    for attempt in range(3):
        try:
            return await client.post(path, json=body, headers=headers)
        except httpx.TransportError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def confirm_all(base: str, tokens: dict[str, str], in_flight: int) -> dict[int, int]:
    limit = asyncio.Semaphore(in_flight)
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        async def one(appointment_id: str, token: str) -> None:
            async with limit:
                response = await _post(client, f"/v1/appointments/{appointment_id}/confirm",
                                       None, {"Authorization": f"Bearer {token}",
                                              "Idempotency-Key": f"confirm-{appointment_id}"})
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        await asyncio.wait_for(asyncio.gather(*(one(a, t) for a, t in tokens.items())),
                               DEADLINE_SECONDS)
    return statuses


def verify(url: str) -> dict[str, int]:
    def count(conn: psycopg.Connection[Any], query: str, *params: Any) -> int:
        row = conn.execute(query, params).fetchone()
        return int(row[0]) if row else 0

    with psycopg.connect(url) as conn:
        booked = count(conn, "SELECT count(*) FROM carebridge.slot_bookings"
                             " WHERE status = 'booked'")
        over_capacity = count(
            conn, "SELECT count(*) FROM (SELECT 1 FROM carebridge.slot_bookings WHERE status <> "
            "'released' GROUP BY clinician_id, starts_at HAVING count(*) > %s) o", CAPACITY)
        overlapping = count(
            conn, "SELECT count(*) FROM carebridge.slot_bookings a JOIN carebridge.slot_bookings b"
            " ON a.clinician_id = b.clinician_id AND a.starts_at < b.starts_at"
            " AND b.starts_at < a.ends_at WHERE a.status <> 'released'"
            " AND b.status <> 'released'")
        patients_twice = count(
            conn, "SELECT count(*) FROM (SELECT 1 FROM carebridge.slot_bookings WHERE status ="
            " 'booked' GROUP BY patient_id HAVING count(*) > 1) d")
    return {"booked": booked, "slots_over_capacity": over_capacity,
            "overlapping_bookings": overlapping, "patients_booked_twice": patients_twice}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=200)
    args = parser.parse_args()
    token_secret = secrets.token_urlsafe(48)
    with throwaway_container("booking-rush") as container:
        seeding = time.perf_counter()
        nurses, people = seed(container, args.requests)
        print(f"seeded {len(nurses)} nurses and {len(people)} patients in "
              f"{time.perf_counter() - seeding:.1f}s", flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = server_env(container, token_secret,
                         CAREBRIDGE_STATIC_SCHEDULE="bench.booking_rush:rush_schedule",
                         CAREBRIDGE_BENCH_NURSES=",".join(map(str, nurses)))
        server_log = (container.settings.data_dir / "api.log").open("w")
        server = subprocess.Popen([CARE_BRIDGE, "api", "--host", "127.0.0.1", "--port",
                                   str(port)], env=env, stdout=server_log,
                                  stderr=subprocess.STDOUT)
        try:
            wait_until_ready(base, server)
            now = datetime.now(UTC)
            tokens_service = TokenService(token_secret, timedelta(minutes=10))
            tokens = [tokens_service.issue(Actor(account_id, Role.PATIENT), session_id,
                                           now).token for account_id, session_id in people]
            day = rush_schedule_day(now)
            nine = _london_nine(day)
            targets = [{"clinician_id": str(nurses[n % NURSES]),
                        "consultation_type_id": FLU.type_id,
                        "starts_at": (nine + timedelta(minutes=5 * ((n // NURSES) % SLOTS)))
                        .isoformat()} for n in range(args.requests)]
            results, seconds = asyncio.run(rush(base, tokens, targets, args.in_flight))
            won = _tokens_of(results, tokens)
            confirmed = asyncio.run(confirm_all(base, won, args.in_flight))
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            server_log.close()
            if os.environ.get("BENCH_SHOW_SERVER_LOG"):
                print((container.settings.data_dir / "api.log").read_text()[-5000:])
        checks = verify(container.database.owner_url)
    latencies = [r[2] for r in results]
    by_answer: dict[str, int] = {}
    for status, kind, _, _ in results:
        by_answer[f"{status} {kind}"] = by_answer.get(f"{status} {kind}", 0) + 1
    refused = [r for r in results if r[0] == 409]
    figures = {
        "requests": len(results), "places": PLACES, "in_flight": args.in_flight,
        "holds_won": len(won), "answers": by_answer, "confirmations": confirmed,
        "conflicts_offering_alternatives": sum(1 for r in refused if r[3] == "alternatives"),
        **checks,
        "seconds": round(seconds, 2),
        "requests_per_second": round(len(results) / seconds, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "exactly_all_places_booked": checks["booked"] == PLACES,
        "none_double_booked": checks["slots_over_capacity"] == checks["overlapping_bookings"]
        == checks["patients_booked_twice"] == 0,
        "every_other_request_409": len(refused) == len(results) - len(won),
        **server_facts(container.database.owner_url),
    }
    report("booking_rush", figures)


def _tokens_of(results: list[tuple[int, str, float, str | None]],
               tokens: list[str]) -> dict[str, str]:
    """Each won hold's appointment id, with the token of the patient who holds it."""
    return {r[3]: tokens[n] for n, r in enumerate(results) if r[0] == 201 and r[3]}


def rush_schedule_day(now: datetime) -> date:
    return (now + timedelta(days=2)).date()


def _london_nine(day: date) -> datetime:
    from zoneinfo import ZoneInfo

    from domain.schedule_types import local_to_utc

    return local_to_utc(day, wall_time(9), ZoneInfo("Europe/London"))




if __name__ == "__main__":
    main()
