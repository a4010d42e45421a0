"""Crash without loss: kill -9 the API, the projection runners and the worker under load.

    uv run python -m bench.crash [--rounds 3] [--seconds 90] [--patients 32] [--no-redis]

Starts a throwaway embedded PostgreSQL, a private redis-server on 127.0.0.1 when `redis-server`
is installed (otherwise the worker uses its in-process broker; the figures say which), and a
loopback sink that plays the push provider (FCM HTTP v1) and the SMTP server and records every
delivery with its de-duplication key (the outbox message id: FCM `data.message_id`, the email's
Message-ID). Then runs `carebridge api`, `carebridge projections run` and `carebridge worker`
as separate processes with the same secrets.

Patients (accounts and sessions created directly, tokens signed with the server's secret) each
book an appointment (hold and confirm), cancel every other one, and start a conversation that
reception answers, which notifies them (half by push, half by email). Reminders are planned one
hour ahead of each appointment and the first slot's fall due in the middle of the run. Every
write carries an Idempotency-Key; a request cut off by a dropped connection is sent again with
the same key once the API is back. Meanwhile each process in turn is killed with SIGKILL and
restarted after a short pause, `--rounds` times. The outbox's queue lease is 10 s here (300 s
by default), so that a notification whose worker died is handed over again within the run.

After the load stops and everything has settled, it checks and prints: every acknowledged
command is in the event store at the version it answered; no command acted twice (no
unacknowledged appointments or conversations, no aggregate past its last acknowledged version,
bookings equal to those kept); every projection's live tables equal a rebuild from zero (built
into side tables with the runner's own batches); every due notification reached the sink,
each message id at least once, and a resend after a kill carries the same id (at-least-once
sending, exactly-once with the provider's de-duplication; `duplicate_sends_deduplicated_by_key`
counts them). Exits 1 if a check fails. Loopback only; bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import email
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
from psycopg import sql

from api.auth import TokenService
from bench.booking_rush import CARE_BRIDGE
from bench.common import free_port, report, server_env, server_facts, throwaway_container, wait_until_ready
from commands.eventstore import EVENTSTORE_SCHEMA, events_table
from commands.identity import NewAccount
from commands.push import PushDevices
from domain.access import Actor
from domain.feature_flags import Feature
from domain.identity import Role
from domain.profiles import CommunicationPreferences
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    StaticSchedule,
)
from projections.base import Tables
from projections.runner import TABLE_OWNER, TRACKING, ensure_tracking

SLOTS = 30  # five-minute slots per clinician, and bookings per patient
CHECKUP = ConsultationTypeInfo("check-up", "Check-up", Mode.IN_PERSON, 5)
LEASE_SECONDS = 10  # the outbox re-queues a row its worker never finished after this long
WORKER_THREADS = 4  # each send waits for the sink's answer
RETRY_PAUSE = 0.3
SETTLE_SECONDS = 120
PROVIDER_SECONDS = 0.05  # the sink's answer time, as a provider's round trip
SIDE = "__crashcheck"  # suffix of the side tables a projection is rebuilt into


def crash_schedule() -> StaticSchedule:
    """The schedule the server books against (named by CAREBRIDGE_STATIC_SCHEDULE): one
    clinician per patient, SLOTS slots from CAREBRIDGE_BENCH_FIRST_SLOT, in a fixed-offset zone
    where that is mid-morning, so that the slots never cross midnight."""
    clinicians = [UUID(n) for n in os.environ.get("CAREBRIDGE_BENCH_NURSES", "").split(",") if n]
    first = datetime.fromisoformat(os.environ.get("CAREBRIDGE_BENCH_FIRST_SLOT",
                                                  "2030-01-01T10:00:00+00:00"))
    zone, local = _mid_morning_zone(first)
    start = local.time()
    end = (local + timedelta(minutes=5 * SLOTS)).time()
    return StaticSchedule(
        clinic_list=[ClinicInfo("riverside", "Riverside Health Centre", ("1 River Walk",),
                                "London", "SE1 1AA", zone)],
        type_list=[CHECKUP],
        clinician_list=[ClinicianInfo(c, f"Nurse {i}", "practice nursing", ("en",),
                                      ("riverside",), (CHECKUP.type_id,))
                        for i, c in enumerate(clinicians)],
        room_list=[RoomInfo(f"riverside-{i}", "riverside", "consulting", f"Room {i}")
                   for i in range(len(clinicians))],
        weekly={c: {d: [("riverside", start, end, 5, (CHECKUP.type_id,), f"riverside-{i}")]
                    for d in range(7)} for i, c in enumerate(clinicians)})


def _mid_morning_zone(at: datetime) -> tuple[str, datetime]:
    """A fixed-offset zone (Etc/GMT-N is UTC+N) in which `at` is about ten in the morning."""
    offset = (10 - at.astimezone(UTC).hour) % 24
    name = f"Etc/GMT-{offset}" if offset <= 14 else f"Etc/GMT+{24 - offset}"
    return name, at.astimezone(UTC) + timedelta(hours=offset if offset <= 14 else offset - 24)


# ---- the delivery sink --------------------------------------------------------------------


@dataclass
class Sink:
    """Plays FCM and an SMTP server on loopback; keeps every delivery's de-duplication key."""

    raw: list[tuple[str, str, float]] = field(default_factory=list)  # channel, message id, when
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, channel: str, key: str) -> None:
        with self.lock:
            self.raw.append((channel, key, time.monotonic()))

    def arrived_within(self, seconds: float, before: float) -> int:
        with self.lock:
            return sum(1 for *_, at in self.raw if before - seconds <= at <= before)

    def keys(self) -> Counter[str]:
        with self.lock:
            return Counter(key for _, key, _ in self.raw)

    @contextmanager
    def serving(self) -> Iterator[tuple[str, int]]:
        """Yields the FCM base URL and the SMTP port."""
        from aiosmtpd.controller import Controller

        sink = self

        class Fcm(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sink.record("push", body["message"]["data"]["message_id"])
                time.sleep(PROVIDER_SECONDS)  # a kill may land in it
                answer = b'{"name": "projects/bench/messages/1"}'
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker was killed while it waited: it sends this one again

            def log_message(self, *args: Any) -> None:
                pass

        class Smtp:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                message_id = email.message_from_bytes(envelope.content)["Message-ID"] or ""
                sink.record("email", message_id.strip("<>").split("@")[0])
                await asyncio.sleep(PROVIDER_SECONDS)
                return "250 OK"

        http = ThreadingHTTPServer(("127.0.0.1", 0), Fcm)
        http.daemon_threads = True
        threading.Thread(target=http.serve_forever, daemon=True).start()
        smtp = Controller(Smtp(), hostname="127.0.0.1", port=free_port())
        smtp.start()
        try:
            yield f"http://127.0.0.1:{http.server_address[1]}", smtp.port
        finally:
            smtp.stop()
            http.shutdown()
            http.server_close()


@contextmanager
def private_redis(workdir: Path, wanted: bool = True) -> Iterator[str | None]:
    """A redis-server of our own on 127.0.0.1 (no persistence), or None if none is installed
    (or none is `wanted`)."""
    executable = shutil.which("redis-server")
    if executable is None or not wanted:
        yield None
        return
    import redis

    port = free_port()
    process = subprocess.Popen(
        [executable, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly",
         "no", "--dir", str(workdir), "--daemonize", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(300):
            try:
                with redis.Redis.from_url(url) as client:
                    client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None:
                    raise SystemExit("redis-server exited at start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


# ---- the processes ------------------------------------------------------------------------

COMMANDS = {"api": ["api", "--host", "127.0.0.1"], "projections": ["projections", "run"],
            "worker": ["worker"]}


class Fleet:
    """The three CareBridge processes, each in its own session so a kill takes all of it."""

    def __init__(self, env: dict[str, str], workdir: Path, port: int) -> None:
        self.env, self.workdir, self.port = env, workdir, port
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: Counter[str] = Counter()
        self.kills: Counter[str] = Counter()
        self.killed_at: dict[str, list[float]] = {name: [] for name in COMMANDS}

    def start(self, name: str) -> None:
        self.starts[name] += 1
        command = [CARE_BRIDGE, *COMMANDS[name]] + (["--port", str(self.port)]
                                                     if name == "api" else [])
        with (self.workdir / f"{name}-{self.starts[name]}.log").open("wb") as log:
            self.running[name] = subprocess.Popen(command, env=self.env, stdout=log,
                                                  stderr=subprocess.STDOUT,
                                                  start_new_session=True)

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        self.killed_at[name].append(time.monotonic())
        process.wait(30)
        self.kills[name] += 1

    def stop_all(self) -> None:
        for process in self.running.values():
            os.killpg(process.pid, signal.SIGTERM)
        for name, process in list(self.running.items()):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
            del self.running[name]

    async def faults(self, rounds: int, seconds: float, pause: float) -> None:
        """Kills the API, then the projection runners, then the worker, `rounds` times, spread
        over `seconds`; each comes back after `pause`."""
        gap = seconds / (3 * rounds + 1)
        for _ in range(rounds):
            for name in COMMANDS:
                await asyncio.sleep(gap)
                self.kill(name)
                await asyncio.sleep(pause)
                self.start(name)


# ---- the load -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    account_id: UUID
    token: str
    clinician_id: UUID
    by_push: bool


@dataclass
class Ledger:
    """What the clients sent and what the server acknowledged."""

    database_url: str  # to see whether a request cut off by a kill had committed
    acked: list[dict[str, Any]] = field(default_factory=list)  # kind, key, app, id, version
    refused: Counter[str] = field(default_factory=Counter)
    refused_connections: int = 0  # the API was down: sent again once it is back
    # Requests cut off by a kill, by whether the command had committed when the API died
    # (and `timed_out` for an answer that took longer than the client's timeout).
    cut: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    retried_then_acked: int = 0
    gave_up: list[str] = field(default_factory=list)

    def ack(self, kind: str, key: str, app: str, aggregate_id: str, version: int) -> None:
        self.acked.append({"kind": kind, "key": key, "app": app, "id": aggregate_id,
                           "version": version})

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.acked if a["kind"] == kind]


async def send(client: httpx.AsyncClient, ledger: Ledger, path: str, body: Any, token: str,
               key: str, deadline: float) -> httpx.Response | None:
    """POSTs until the server answers (not 5xx), sending the same Idempotency-Key each time;
    None if the deadline passed first."""
    tried_before = False
    while time.monotonic() < deadline:
        try:
            response = await client.post(path, json=body, headers={
                "Authorization": f"Bearer {token}", "Idempotency-Key": key})
        except httpx.ConnectError:
            ledger.refused_connections += 1
        except httpx.TimeoutException:
            ledger.cut["timed_out"] += 1
        except httpx.TransportError:
            ledger.cut["committed" if await _committed(ledger.database_url, key)
                       else "not_committed"] += 1
        else:
            if response.status_code < 500:
                ledger.retried_then_acked += tried_before and response.status_code < 300
                return response
            ledger.server_errors += 1
        tried_before = True
        await asyncio.sleep(RETRY_PAUSE)
    ledger.gave_up.append(key)
    return None


async def _committed(url: str, key: str) -> bool:
    """Whether a command's Idempotency-Key is stored, i.e. it committed (its key is written
    in the same transaction as its events)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT 1 FROM carebridge.idempotency_keys WHERE key = %s",
                                 (key,))
        return await cur.fetchone() is not None


async def patient_day(client: httpx.AsyncClient, ledger: Ledger, patient: Patient,
                      reception: str, first_slot: datetime, started: float, seconds: float,
                      deadline: float) -> None:
    """Books each slot in turn (iteration i starts no sooner than i/SLOTS of the run), cancels
    every other booking, and asks reception something that reception answers."""
    who = str(patient.account_id)[:8]
    for i in range(SLOTS):
        await asyncio.sleep(max(0.0, started + i * seconds / SLOTS - time.monotonic()))
        if time.monotonic() > deadline:
            return
        hold_key = f"hold-{who}-{i}"
        held = await send(client, ledger, "/v1/appointments/holds", {
            "clinician_id": str(patient.clinician_id), "consultation_type_id": CHECKUP.type_id,
            "starts_at": (first_slot + timedelta(minutes=5 * i)).isoformat()},
            patient.token, hold_key, deadline)
        if held is not None and held.status_code == 201:
            appointment = held.json()
            ledger.ack("hold", hold_key, "appointments", appointment["appointment_id"],
                       appointment["version"])
            await _step(client, ledger, patient.token, deadline, "confirm", f"confirm-{who}-{i}",
                        f"/v1/appointments/{appointment['appointment_id']}/confirm", None)
            if i % 2:
                await _step(client, ledger, patient.token, deadline, "cancel",
                            f"cancel-{who}-{i}",
                            f"/v1/appointments/{appointment['appointment_id']}/cancel",
                            {"reason_code": "cannot_attend"})
        elif held is not None:
            ledger.refused[f"hold {held.status_code}"] += 1
        thread = await _step(client, ledger, patient.token, deadline, "start", f"ask-{who}-{i}",
                             "/v1/message-threads", {
                                 "category": "general", "subject": f"Question {i}",
                                 "body": "Is there parking near the clinic?",
                                 "clinic_id": "riverside"})
        if thread is not None:
            await _step(client, ledger, reception, deadline, "answer", f"answer-{who}-{i}",
                        f"/v1/staff/message-threads/{thread}/messages",
                        {"body": "Yes, behind the building."})


async def _step(client: httpx.AsyncClient, ledger: Ledger, token: str, deadline: float,
                kind: str, key: str, path: str, body: Any) -> str | None:
    response = await send(client, ledger, path, body, token, key, deadline)
    if response is None:
        return None
    if response.status_code >= 300:
        ledger.refused[f"{kind} {response.status_code}"] += 1
        return None
    answer = response.json()
    app = "appointments" if kind in ("confirm", "cancel") else "messaging"
    aggregate_id = answer.get("appointment_id") or answer["thread_id"]
    ledger.ack(kind, key, app, aggregate_id, answer["version"])
    return str(aggregate_id)


async def run_load(base: str, fleet: Fleet, patients: list[Patient], reception: str,
                   first_slot: datetime, rounds: int, seconds: float, pause: float,
                   database_url: str) -> Ledger:
    ledger = Ledger(database_url)
    started = time.monotonic()
    deadline = started + seconds + 120  # retries may outlast the run, never by much
    limits = httpx.Limits(max_connections=len(patients) * 2)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        faults = asyncio.create_task(fleet.faults(rounds, seconds, pause))
        await asyncio.gather(*(patient_day(client, ledger, p, reception, first_slot, started,
                                           seconds, deadline) for p in patients))
        await faults
    return ledger


# ---- the checks ---------------------------------------------------------------------------


def _rows(conn: psycopg.Connection[Any], query: sql.Composable | str, *params: Any
          ) -> list[tuple[Any, ...]]:
    return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def check_commands(url: str, ledger: Ledger) -> dict[str, Any]:
    """Every acknowledged command in the event store; nothing done twice."""
    with psycopg.connect(url) as conn:
        present = {(app, str(i), v) for app in ("appointments", "messaging")
                   for i, v in _rows(conn, sql.SQL(
                       "SELECT originator_id, originator_version FROM {}").format(
                       sql.Identifier(EVENTSTORE_SCHEMA, events_table(app))))}
        latest = {str(i): v for app in ("appointments", "messaging") for i, v in _rows(
            conn, sql.SQL("SELECT originator_id, max(originator_version) FROM {}"
                          " GROUP BY originator_id").format(
                sql.Identifier(EVENTSTORE_SCHEMA, events_table(app))))}
        created = {kind: {str(i) for (i,) in _rows(conn, sql.SQL(
            "SELECT originator_id FROM {} WHERE topic LIKE %s").format(
            sql.Identifier(EVENTSTORE_SCHEMA, events_table(app))), f"%{topic}%")}
            for kind, app, topic in (("hold", "appointments", "Appointment.Held"),
                                     ("start", "messaging", "Thread.Started"))}
        posted = dict(_rows(conn, sql.SQL(
            "SELECT originator_id::text, count(*) FROM {} WHERE topic LIKE %s"
            " GROUP BY originator_id").format(
            sql.Identifier(EVENTSTORE_SCHEMA, events_table("messaging"))),
            "%Thread.MessagePosted%"))
        booked = _rows(conn, "SELECT appointment_id::text FROM carebridge.slot_bookings"
                             " WHERE status = 'booked'")
    missing = [a for a in ledger.acked if (a["app"], a["id"], a["version"]) not in present]
    last_acked: dict[str, int] = {}
    for a in ledger.acked:
        last_acked[a["id"]] = max(last_acked.get(a["id"], 0), a["version"])
    beyond = sorted(i for i, v in last_acked.items() if latest.get(i, 0) != v)
    cancelled = {a["id"] for a in ledger.of("cancel")}
    kept = {a["id"] for a in ledger.of("confirm")} - cancelled
    answered = {a["id"] for a in ledger.of("answer")}
    return {
        "acknowledged": len(ledger.acked),
        "acknowledged_missing_from_event_store": len(missing),
        "aggregates_past_last_acknowledged_version": len(beyond),
        "appointments_created_without_acknowledgement":
            len(created["hold"] - {a["id"] for a in ledger.of("hold")}),
        "conversations_created_without_acknowledgement":
            len(created["start"] - {a["id"] for a in ledger.of("start")}),
        "conversations_with_wrong_message_count": sum(
            1 for a in ledger.of("start")
            if posted.get(a["id"], 0) != (a["id"] in answered)),  # the first is in Started
        "bookings_kept_acknowledged": len(kept),
        "bookings_in_database": len(booked),
        "bookings_match": {b for (b,) in booked} == kept,
    }


def check_projections(container: Any) -> dict[str, Any]:
    """Each projection rebuilt from zero into side tables with the runner's own batches, then
    compared with its live tables row by row (as text, column by column)."""
    results: dict[str, Any] = {}
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(TABLE_OWNER)))
        for runner in container.runners:
            projection, name = runner.projection, runner.projection.name + SIDE
            side = Tables.of(projection, SIDE)
            with conn.transaction():
                cur = conn.cursor()
                projection.drop(cur, side)
                projection.create(cur, side)
                cur.execute(f"DELETE FROM {TRACKING} WHERE projection = %s", (name,))
                ensure_tracking(cur, projection, name)
            try:
                while runner.run_batch(conn, side, name) > 0:
                    pass
                lag = sum(s.lag for s in runner.status(conn))
                differences, rows = 0, 0
                for table in projection.tables:
                    d, n = _differences(conn, runner.live, side, table)
                    differences, rows = differences + d, rows + n
                results[projection.name] = {"rows": rows, "differences": differences,
                                            "live_lag": lag}
            finally:
                with conn.transaction():
                    projection.drop(conn.cursor(), side)
                    conn.execute(f"DELETE FROM {TRACKING} WHERE projection = %s", (name,))
    return results


def _differences(conn: psycopg.Connection[Any], live: Tables, side: Tables,
                 table: str) -> tuple[int, int]:
    columns = [c for (c,) in _rows(
        conn, "SELECT column_name FROM information_schema.columns WHERE table_schema = %s"
              " AND table_name = %s ORDER BY ordinal_position",
        live.schema_of(table), live.name(table))]
    row = sql.SQL("ROW({})::text").format(sql.SQL(", ").join(map(sql.Identifier, columns)))
    counted = _rows(conn, sql.SQL(
        "SELECT (SELECT count(*) FROM ((SELECT {row} FROM {live} EXCEPT ALL"
        " SELECT {row} FROM {side}) UNION ALL (SELECT {row} FROM {side} EXCEPT ALL"
        " SELECT {row} FROM {live})) d), (SELECT count(*) FROM {live})").format(
        row=row, live=live(table), side=side(table)))
    return int(counted[0][0]), int(counted[0][1])


def followers_lag(container: Any) -> int:
    """How far the process managers (reminders, waitlist, sweeps, the audit sealer) are behind
    their logs."""
    with psycopg.connect(container.database.url, autocommit=True) as conn:
        return sum(s.lag for f in container.followers for s in f.status(conn))


def outbox_state(url: str, cutoff: datetime) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        rows = _rows(conn, "SELECT message_id::text, kind, channel, delivered_at IS NOT NULL,"
                           " failed_at IS NOT NULL, withdrawn_at IS NOT NULL,"
                           " coalesce(not_before, created_at) <= %s, about_id::text, attempts"
                           " FROM carebridge.outbox", cutoff)
    return {"rows": rows,
            "pending_due": sum(1 for r in rows if r[6] and not (r[3] or r[4] or r[5]))}


def check_notifications(url: str, cutoff: datetime, sink: Sink, ledger: Ledger
                        ) -> dict[str, Any]:
    rows = outbox_state(url, cutoff)["rows"]
    delivered = {r[0] for r in rows if r[3]}
    due = {r[0] for r in rows if r[6] and not r[5]}  # withdrawn rows are not due
    at_sink = sink.keys()
    reminders = Counter(r[7] for r in rows if r[1] == "appointment_reminder" and not r[5])
    kept = {a["id"] for a in ledger.of("confirm")} - {a["id"] for a in ledger.of("cancel")}
    return {
        "outbox_rows": len(rows),
        "due": len(due),
        "delivered": len(delivered),
        "by_kind": dict(Counter(r[1] for r in rows if r[0] in due)),
        "by_channel": dict(Counter(r[2] for r in rows if r[3])),
        "delivered_by_attempts": dict(Counter(r[8] for r in rows if r[3])),
        "raw_deliveries": sum(at_sink.values()),
        "distinct_delivered": len(at_sink),
        "duplicate_sends_deduplicated_by_key": sum(n - 1 for n in at_sink.values()),
        "lost": len(due - set(at_sink)),
        "marked_delivered_but_never_sent": len(delivered - set(at_sink)),
        "delivered_but_not_marked": len(set(at_sink) - delivered),
        "failed": sum(1 for r in rows if r[4]),
        "withdrawn": sum(1 for r in rows if r[5]),
        "planned_not_yet_due": sum(1 for r in rows if not r[6] and not r[5]),
        "new_message_notices": sum(1 for r in rows if r[1] == "new_message"),
        "answers_acknowledged": len(ledger.of("answer")),
        "reminders_planned_twice": sum(1 for n in reminders.values() if n > 1),
        "kept_bookings_without_reminder": len(kept - set(reminders)),
    }


def settle(container: Any, cutoff: datetime) -> dict[str, float | None]:
    """Waits until the projections and process managers are at the head of their logs and
    every notification due by `cutoff` is delivered (or given up on); returns how many seconds
    each took (None: not within SETTLE_SECONDS)."""
    started = time.monotonic()
    took: dict[str, float | None] = {"projections": None, "notifications": None}
    while time.monotonic() - started < SETTLE_SECONDS:
        with psycopg.connect(container.database.url, autocommit=True) as conn:
            lag = sum(s.lag for r in container.runners for s in r.status(conn))
        if took["projections"] is None and lag == 0 and followers_lag(container) == 0:
            took["projections"] = round(time.monotonic() - started, 1)
        if took["notifications"] is None \
                and outbox_state(container.database.url, cutoff)["pending_due"] == 0:
            took["notifications"] = round(time.monotonic() - started, 1)
        if None not in took.values():
            break
        time.sleep(0.5)
    return took


# ---- set-up -------------------------------------------------------------------------------


def seed(container: Any, patients: int, token_secret: str
         ) -> tuple[list[UUID], list[Patient], str]:
    """One clinician per patient, a receptionist, and patients with a session each; half of
    them hear from the clinic by push (a registered phone), the others by email."""
    now = datetime.now(UTC)
    tokens = TokenService(token_secret, timedelta(minutes=10))
    clinicians = [UUID(container.identity.add_staff(
        NewAccount(f"nurse{i}@clinic.test", "staff passphrase 2026", "Nurse", f"N{i}"),
        Role.NURSE, ["riverside"], by="bench", at=now).result["account_id"])
        for i in range(patients)]
    receptionist = UUID(container.identity.add_staff(
        NewAccount("reception@clinic.test", "staff passphrase 2026", "Rita", "Reception"),
        Role.RECEPTION, ["riverside"], by="bench", at=now).result["account_id"])
    desk = container.sessions.start(container.identity.account(receptionist), "desk", "bench",
                                    now)
    reception = tokens.issue(Actor(receptionist, Role.RECEPTION, frozenset({"riverside"})),
                             desk.session_id, now).token
    admin = Actor(receptionist, Role.CLINIC_ADMIN, frozenset({"riverside"}))
    container.feature_flags.set_rule(admin, Feature.MESSAGING, "riverside", None, 100, [],
                                     "crash bench", now)
    devices = PushDevices(container.database.url)
    people = []
    for n in range(patients):
        outcome = container.identity.register_patient(NewAccount(
            f"patient{n}@patients.test", "a long enough passphrase", "Pat", f"P{n}",
            datetime(1970, 1, 1).date()), at=now)
        account = container.identity.account(UUID(outcome.result["account_id"]))
        session = container.sessions.start(account, f"phone-{n}", "bench", now)
        by_push = n % 2 == 0
        if by_push:
            devices.register(account.id, f"phone-{n}", "fcm", f"fcm-token-{n}", now)
            container.profiles.change_communication(
                Actor(account.id, Role.PATIENT), account.id,
                CommunicationPreferences(("push", "email"), None, "en").checked(), now)
        people.append(Patient(account.id, tokens.issue(Actor(account.id, Role.PATIENT),
                                                       session.session_id, now).token,
                              clinicians[n], by_push))
    return clinicians, people, reception




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="kills of each process")
    parser.add_argument("--seconds", type=float, default=90.0, help="length of the load")
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--no-redis", action="store_true", help="use the worker's "
                        "in-process broker even if redis-server is installed")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds a killed process "
                        "stays down")
    args = parser.parse_args()
    if not 0 < args.seconds <= 420:
        parser.error("--seconds must be at most 420: the patients' access tokens last 10 min")
    token_secret = secrets.token_urlsafe(48)
    begun = time.monotonic()
    sink = Sink()
    with throwaway_container("crash") as container, sink.serving() as (fcm, smtp_port), \
            private_redis(container.settings.data_dir, not args.no_redis) as broker_url:
        workdir = container.settings.data_dir
        clinicians, patients, reception = seed(container, args.patients, token_secret)
        # The first slot's reminders (one hour ahead) fall due half-way through the load.
        first_slot = (datetime.now(UTC) + timedelta(hours=1, seconds=args.seconds / 2 + 10)
                      ).replace(microsecond=0)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = server_env(
            container, token_secret,
            CAREBRIDGE_STATIC_SCHEDULE="bench.crash:crash_schedule",
            CAREBRIDGE_BENCH_NURSES=",".join(map(str, clinicians)),
            CAREBRIDGE_BENCH_FIRST_SLOT=first_slot.isoformat(),
            CAREBRIDGE_REMINDER_HOURS="[1]",
            CAREBRIDGE_NOTIFICATION_QUEUE_LEASE_SECONDS=str(LEASE_SECONDS),
            CAREBRIDGE_WORKER_THREADS=str(WORKER_THREADS),
            CAREBRIDGE_FCM_ENDPOINT=fcm, CAREBRIDGE_FCM_PROJECT_ID="bench",
            CAREBRIDGE_FCM_ACCESS_TOKEN=secrets.token_urlsafe(16),
            CAREBRIDGE_SMTP_HOST="127.0.0.1", CAREBRIDGE_SMTP_PORT=str(smtp_port))
        env.pop("BROKER_URL", None)
        if broker_url:
            env["CAREBRIDGE_BROKER_URL"] = broker_url
        fleet = Fleet(env, workdir, port)
        try:
            for name in COMMANDS:
                fleet.start(name)
            wait_until_ready(base, fleet.running["api"])
            print(f"seeded {len(patients)} patients; load for {args.seconds:.0f}s with "
                  f"{args.rounds} round(s) of kills", flush=True)
            ledger = asyncio.run(run_load(base, fleet, patients, reception, first_slot,
                                          args.rounds, args.seconds, args.pause,
                                          container.database.owner_url))
            cutoff = datetime.now(UTC)
            settled = settle(container, cutoff)
        finally:
            fleet.stop_all()
        commands = check_commands(container.database.owner_url, ledger)
        notifications = check_notifications(container.database.owner_url, cutoff, sink, ledger)
        projections = check_projections(container)
        follower_lag = followers_lag(container)
        facts = server_facts(container.database.owner_url)
    checks = {
        "every_acknowledged_command_stored": commands["acknowledged_missing_from_event_store"]
        == 0 and not ledger.gave_up,
        "nothing_applied_twice": commands["aggregates_past_last_acknowledged_version"]
        == commands["appointments_created_without_acknowledgement"]
        == commands["conversations_created_without_acknowledgement"]
        == commands["conversations_with_wrong_message_count"] == 0
        and commands["bookings_match"]
        and notifications["new_message_notices"] == notifications["answers_acknowledged"]
        and notifications["reminders_planned_twice"] == 0,
        "projections_converge_to_rebuild": all(
            p["differences"] == 0 and p["live_lag"] == 0 for p in projections.values())
        and follower_lag == 0,
        "every_due_notification_delivered_once_by_key": notifications["lost"]
        == notifications["marked_delivered_but_never_sent"]
        == notifications["delivered_but_not_marked"] == notifications["failed"] == 0
        and notifications["kept_bookings_without_reminder"] == 0,
        "no_command_refused": not ledger.refused,
    }
    figures = {
        "broker": "redis" if broker_url else "in-process (dramatiq StubBroker in the worker)",
        "rounds": args.rounds, "load_seconds": args.seconds, "patients": args.patients,
        "kills": dict(fleet.kills), "starts": dict(fleet.starts),
        "notification_lease_seconds": LEASE_SECONDS, "worker_threads": WORKER_THREADS,
        "provider_answer_seconds": PROVIDER_SECONDS,
        "acknowledged_by_kind": dict(Counter(a["kind"] for a in ledger.acked)),
        "refused": dict(ledger.refused),
        "connections_refused_retried_same_key": ledger.refused_connections,
        "requests_cut_by_kill": dict(ledger.cut),
        "retried_then_acknowledged": ledger.retried_then_acked,
        "server_errors_retried": ledger.server_errors,
        "gave_up": len(ledger.gave_up),
        "sink_deliveries_in_second_before_each_worker_kill": [
            sink.arrived_within(1.0, at) for at in fleet.killed_at["worker"]],
        "settle_seconds": settled,
        "commands": commands, "notifications": notifications, "projections": projections,
        "followers_lag": follower_lag,
        "checks": checks, "all_checks_passed": all(checks.values()),
        "total_seconds": round(time.monotonic() - begun, 1),
        **facts,
    }
    report("crash", figures)
    if not all(checks.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
