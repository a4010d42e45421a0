"""The app's real traffic at a steady rate, with read-your-writes lag and a profile of the API.

    uv run python -m bench.load [--rate 1000] [--seconds 60] [--patients 1000] [--profile]

Starts a throwaway embedded PostgreSQL, seeds a clinic network (clinicians with twelve weeks of
bookable slots, patients with released records, repeat medicines, a conversation with the care
team and a signed-in phone each), then runs, as separate processes on this machine:
- `carebridge api` on 127.0.0.1 (a free port), the process under test;
- `carebridge projections run`, so patient views follow the writes as in production;
- a locust load generator (bench/load_locust.py) whose simulated patients open the app at a fixed
  total rate: they sign in (refresh their session; now and then with their password), search
  availability, book and cancel, read their appointments and records, read and send messages, and
  ask for repeat prescriptions, about 80% reads and 20% writes;
- a read-your-writes probe (a thread here): a patient books and writes to the clinic a few
  times a second, and the time from the write's acknowledgement to its patient view showing it
  is measured on the projection's tracking row (polled every half millisecond).

With `--profile`, py-spy samples the API process (every thread) for the middle of the run and
the top of its profile (own time by function, and by file) is printed and kept in the figures.

Prints the overall and per-request-kind throughput, p50/p95/p99 and failures, the lag
percentiles, CPU time per process, and writes JSON to bench/results/. Loopback only; bounded
in count and time (the run stops after `--seconds`).

The target (issue #11): 1,000 requests/s or more at p99 under 100 ms; lag p99 under 50 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import psutil
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
from domain.consents import ConsentType
from domain.feature_flags import Feature
from domain.identity import Role
from domain.messaging import Category
from domain.prescriptions import Medication
from domain.schedule_types import (
    ClinicianInfo,
    ClinicInfo,
    ConsultationTypeInfo,
    Mode,
    RoomInfo,
    StaticSchedule,
)
from projections.message_views import PROJECTION as THREAD_VIEWS

CLINIC = "riverside"
ZONE = "Europe/London"
GP = ConsultationTypeInfo("gp-appointment", "GP appointment", Mode.IN_PERSON, 10)
BIN = Path(sys.executable).parent
PASSWORD = "a long enough passphrase"
LOGIN_PATIENTS = 50  # patients whose password is hashed with the production argon2 settings
MEDICINES = ("amlodipine", "metformin", "salbutamol")
PROBE_EVERY_S = 0.2
APPOINTMENT_VIEWS = "appointment_views"


def load_schedule() -> StaticSchedule:
    """The schedule the server books against (named by CAREBRIDGE_STATIC_SCHEDULE): every
    clinician in CAREBRIDGE_BENCH_CLINICIANS works 08:00-20:00 every day in their own room."""
    clinicians = [UUID(c) for c in os.environ.get("CAREBRIDGE_BENCH_CLINICIANS", "").split(",")
                  if c]
    schedule = StaticSchedule(
        clinic_list=[ClinicInfo(CLINIC, "Riverside Health Centre", ("1 River Walk",), "London",
                                "SE1 1AA", ZONE)],
        type_list=[GP],
        clinician_list=[ClinicianInfo(c, f"Dr {i}", "general practice", ("en",), (CLINIC,),
                                      (GP.type_id,)) for i, c in enumerate(clinicians)],
        room_list=[RoomInfo(f"{CLINIC}-room-{i}", CLINIC, "consulting", f"Room {i}")
                   for i in range(len(clinicians))],
        weekly={c: {d: [(CLINIC, wall_time(8), wall_time(20), 10, (GP.type_id,),
                         f"{CLINIC}-room-{i}")] for d in range(7)}
                for i, c in enumerate(clinicians)})
    # It never changes while the server runs: its version lets availability keep its slot grid
    # (as the scheduling context's log position does in production).
    schedule.version = 1  # type: ignore[attr-defined]
    return schedule


@dataclass
class Seeded:
    clinicians: list[UUID]
    patients: list[dict[str, Any]] = field(default_factory=list)


def seed(container: Any, patients: int, clinicians: int) -> Seeded:
    """Clinicians, the features switched on, and patients ready to use the app."""
    now = datetime.now(UTC)
    seeded = Seeded([UUID(container.identity.add_staff(
        NewAccount(f"doctor{i}@clinic.test", "staff passphrase 2026", "Dr", f"D{i}"),
        Role.DOCTOR, [CLINIC], by="bench", at=now).result["account_id"])
        for i in range(clinicians)])
    admin = Actor(uuid4(), Role.CLINIC_ADMIN, frozenset({CLINIC}))
    for feature in (Feature.PRESCRIPTIONS, Feature.MESSAGING, Feature.RECORDS):
        container.feature_flags.set_rule(admin, feature, CLINIC, None, 100, [], "load test", now)
    consent_version = container.consents.current_text(ConsentType.PRESCRIPTION_REQUESTS).current_version
    strong = _production_hasher()

    def one(n: int) -> dict[str, Any]:
        at = datetime.now(UTC)
        identity = container.identity
        account_id = UUID(identity.register_patient(NewAccount(
            f"patient{n}@patients.test", PASSWORD, "Pat", f"P{n}", date(1970, 1, 1)),
            at=at).result["account_id"])
        patient = Actor(account_id, Role.PATIENT)
        issued = container.sessions.start(identity.account(account_id), f"phone-{n}", "Phone", at)
        clinician = seeded.clinicians[n % len(seeded.clinicians)]
        container.care.join_through_appointment(account_id, clinician, CLINIC, f"seed-{n}",
                                                starts_at=at, ends_at=at + timedelta(days=365),
                                                at=at)
        doctor = Actor(clinician, Role.DOCTOR, frozenset({CLINIC}))
        records = [container.records.enter(doctor, account_id, _record(i), at).result["record_id"]
                   for i in range(2)]
        container.consents.give(patient, account_id, ConsentType.PRESCRIPTION_REQUESTS,
                                consent_version, at)
        thread = container.messaging.start(patient, account_id, Category.GENERAL,
                                           "Parking at the clinic", "Is there parking nearby?",
                                           None, None, [], CLINIC, at).result["thread_id"]
        return {"account_id": str(account_id), "session_id": str(issued.session_id),
                "refresh_token": issued.refresh_token, "email": f"patient{n}@patients.test",
                "records": [str(r) for r in records], "thread_id": str(thread),
                "clinician_id": str(clinician), "password_login": n < LOGIN_PATIENTS}

    # The first patients sign in with their password: theirs is hashed with the production
    # settings, so those sign-ins pay the real cost (the others are hashed cheaply to seed fast).
    cheap, container.identity.hasher = container.identity.hasher, strong
    seeded.patients = [one(n) for n in range(min(LOGIN_PATIENTS, patients))]
    container.identity.hasher = cheap
    with ThreadPoolExecutor(4) as pool:
        seeded.patients += list(pool.map(one, range(len(seeded.patients), patients)))
    soon = (now + timedelta(days=120)).date()
    container.prescriptions.import_medications(
        admin, CLINIC, [(UUID(p["account_id"]), Medication(
            m, f"{m.title()} tablets", "One a day", "28 tablets", 100, soon, False, False))
            for p in seeded.patients for m in MEDICINES], now)
    return seeded


def _production_hasher() -> Any:
    from argon2 import PasswordHasher

    from api.settings import Settings

    defaults = Settings.model_fields
    return PasswordHasher(time_cost=defaults["password_hash_time_cost"].default,
                          memory_cost=defaults["password_hash_memory_kib"].default)


def _record(i: int) -> dict[str, Any]:
    return {"kind": "lab_result", "code": "hba1c", "title": "HbA1c (blood sugar over 3 months)",
            "content": {"observations": [{"name": "HbA1c", "value": 40 + i, "unit": "mmol/mol",
                                          "reference_low": 20, "reference_high": 41}]},
            "release_now": True}


class LagProbe(threading.Thread):
    """Writes as one patient a few times a second and times how long each write takes to reach
    the patient's view (the projection's tracking row passing the write's position)."""

    def __init__(self, base: str, token: str, url: str, clinicians: list[UUID],
                 thread_id: str) -> None:
        super().__init__(name="lag-probe", daemon=True)
        self.base, self.token, self.url = base, token, url
        self.clinicians, self.thread_id = clinicians, thread_id
        self.stop = threading.Event()
        self.lags: dict[str, list[float]] = {APPOINTMENT_VIEWS: [], THREAD_VIEWS: []}
        self.timeouts = 0
        self.errors: Counter[str] = Counter()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        slot = _first_slot()
        with httpx.Client(base_url=self.base, headers=headers, timeout=10) as client, \
                psycopg.connect(self.url, autocommit=True) as conn:
            n = 0
            while not self.stop.is_set():
                n += 1
                if n % 2:
                    clinician = self.clinicians[n % len(self.clinicians)]
                    starts = slot + timedelta(days=random.randrange(70),
                                              minutes=10 * random.randrange(72))
                    response = client.post("/v1/appointments/holds", json={
                        "clinician_id": str(clinician), "consultation_type_id": GP.type_id,
                        "starts_at": starts.isoformat()},
                        headers={"Idempotency-Key": f"probe-{n}-{uuid4().hex[:8]}"})
                    projection = APPOINTMENT_VIEWS
                else:
                    response = client.post(f"/v1/message-threads/{self.thread_id}/messages",
                                           json={"body": f"Probe message {n}"},
                                           headers={"Idempotency-Key": f"probe-message-{n:06d}"})
                    projection = THREAD_VIEWS
                acknowledged = time.perf_counter()
                position = response.headers.get("CareBridge-Position")
                if response.status_code >= 300 or not position:
                    self.errors[f"{response.status_code} {response.text[:160]}"] += 1
                else:
                    lag = self._until_applied(conn, projection, position, acknowledged)
                    if lag is None:
                        self.timeouts += 1
                    else:
                        self.lags[projection].append(lag)
                    if projection == APPOINTMENT_VIEWS and response.status_code == 201:
                        client.post(f"/v1/appointments/{response.json()['appointment_id']}/cancel",
                                    json={"reason_code": "cannot_attend"})
                self.stop.wait(PROBE_EVERY_S)

    @staticmethod
    def _until_applied(conn: psycopg.Connection[Any], projection: str, position: str,
                       acknowledged: float) -> float | None:
        application, _, number = position.partition(":")
        while time.perf_counter() - acknowledged < 5:
            row = conn.execute("SELECT position FROM carebridge.projection_tracking"
                               " WHERE projection = %s AND application = %s",
                               (projection, application), prepare=True).fetchone()
            if row is not None and row[0] >= int(number):
                return time.perf_counter() - acknowledged
            time.sleep(0.0005)
        return None


def _first_slot() -> datetime:
    from zoneinfo import ZoneInfo

    from domain.schedule_types import local_to_utc

    return local_to_utc((datetime.now(UTC) + timedelta(days=2)).date(), wall_time(8),
                        ZoneInfo(ZONE))


class Process:
    """A child process with its CPU time, stopped with SIGINT (then SIGKILL)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log.open("w")
        self.popen = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.ps = psutil.Process(self.popen.pid)

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
            return times.user + times.system + sum(
                c.cpu_times().user + c.cpu_times().system for c in self.ps.children(True))
        except psutil.NoSuchProcess:
            return 0.0

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self.log.close()


def cpu_per_request(api: Process, base: str, patient: dict[str, Any],
                    repeat: int = 200) -> dict[str, float]:
    """The API's CPU time per request of each read, one request at a time after the load (so
    nothing else is in flight): where the API's time goes, by request."""
    reads = {"/health/live": "/health/live", "/v1/me": "/v1/me",
             "/v1/me/appointments": "/v1/me/appointments", "/v1/me/records": "/v1/me/records",
             "/v1/records/{id}": f"/v1/records/{patient['records'][0]}",
             "/v1/me/message-threads": "/v1/me/message-threads",
             "/v1/message-threads/{id}": f"/v1/message-threads/{patient['thread_id']}",
             "/v1/me/prescription-requests": "/v1/me/prescription-requests",
             "/v1/me/medications": "/v1/me/medications",
             "/v1/availability": f"/v1/availability?consultation_type_id={GP.type_id}&limit=12"}
    costs: dict[str, float] = {}
    with httpx.Client(base_url=base, timeout=10,
                      headers={"Authorization": f"Bearer {patient['token']}"}) as client:
        for name, path in reads.items():
            client.get(path)  # warm
            before = api.cpu_seconds()
            for _ in range(repeat):
                client.get(path)
            costs[name] = round((api.cpu_seconds() - before) * 1000 / repeat, 2)
    return costs


def postgres_cpu_seconds(data_dir: Path) -> float:
    """CPU time of the embedded PostgreSQL's processes (the server and its backends)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] and "postgres" in proc.info["name"] and \
                    str(data_dir) in " ".join(proc.info["cmdline"] or []):
                times = proc.cpu_times()
                total += times.user + times.system
                total += sum(c.cpu_times().user + c.cpu_times().system
                             for c in proc.children(True))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def locust_figures(prefix: Path) -> dict[str, Any]:
    """Overall and per-request figures from locust's CSV statistics."""
    rows = list(csv.DictReader((prefix.parent / f"{prefix.name}_stats.csv").open()))
    failures = list(csv.DictReader((prefix.parent / f"{prefix.name}_failures.csv").open()))
    by_request: dict[str, Any] = {}
    overall: dict[str, Any] = {}
    for row in rows:
        figures = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                   "rps": round(float(row["Requests/s"]), 1),
                   "p50_ms": _ms(row["50%"]), "p95_ms": _ms(row["95%"]),
                   "p99_ms": _ms(row["99%"]), "max_ms": _ms(row["Max Response Time"])}
        if row["Name"] == "Aggregated":
            overall = figures
        else:
            by_request[f"{row['Type']} {row['Name']}"] = figures
    return {"overall": overall, "by_request": by_request,
            "failures": [{"request": f"{f['Method']} {f['Name']}", "error": f["Error"][:200],
                          "count": int(f["Occurrences"])} for f in failures]}


def _ms(value: str) -> float | None:
    return None if value in ("", "N/A") else round(float(value), 1)


def profile_summary(raw: Path, top: int = 25) -> dict[str, Any]:
    """Own time by function and by source file from py-spy's raw (collapsed stack) output."""
    by_function: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    ours: Counter[str] = Counter()  # inclusive time of CareBridge's own functions
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        samples = int(count)
        total += samples
        leaf = stack.split(";")[-1]
        by_function[leaf] += samples
        source = leaf.rsplit("(", 1)[-1].split(":")[0].rstrip(")")
        by_file[_short(source)] += samples
        for frame in set(stack.split(";")):
            where = _short(frame.rsplit("(", 1)[-1].split(":")[0].rstrip(")"))
            if where.split("/", 1)[0] in ("api", "commands", "projections", "domain"):
                ours[frame.split(" (", 1)[0] + f" ({where})"] += samples
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {"samples": total,
            "by_function_pct": {k: share(v) for k, v in by_function.most_common(top)},
            "by_file_pct": {k: share(v) for k, v in by_file.most_common(top)},
            "carebridge_inclusive_pct": {k: share(v) for k, v in ours.most_common(top)}}


def _short(path: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="requests per second to offer")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--clinicians", type=int, default=40)
    parser.add_argument("--users", type=int, default=0,
                        help="simulated phones (default: a tenth of the rate, at least 20)")
    parser.add_argument("--profile", action="store_true", help="sample the API with py-spy")
    parser.add_argument("--ceiling", action="store_true",
                        help="offer only the cheapest request (liveness) instead of the app's mix: "
                        "what the framework and this machine allow at all")
    parser.add_argument("--api-workers", type=int, default=1,
                        help="API processes (`carebridge api --workers`)")
    args = parser.parse_args()
    users = args.users or max(20, args.rate // 10)
    token_secret = secrets.token_urlsafe(48)
    with throwaway_container("load") as container:
        started = time.perf_counter()
        seeded = seed(container, args.patients, args.clinicians)
        print(f"seeded {len(seeded.clinicians)} clinicians and {len(seeded.patients)} patients "
              f"in {time.perf_counter() - started:.1f}s", flush=True)
        workdir = Path(tempfile.mkdtemp(prefix="carebridge-load-", dir=container.settings.data_dir))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = server_env(container, token_secret,
                         CAREBRIDGE_STATIC_SCHEDULE="bench.load:load_schedule",
                         CAREBRIDGE_BENCH_CLINICIANS=",".join(map(str, seeded.clinicians)))
        tokens = TokenService(token_secret, timedelta(minutes=15))
        now = datetime.now(UTC)
        for patient in seeded.patients:
            patient["token"] = tokens.issue(Actor(UUID(patient["account_id"]), Role.PATIENT),
                                            UUID(patient["session_id"]), now).token
        probe_patient = seeded.patients[-1]
        data = {"base": base, "patients": seeded.patients[:-1], "password": PASSWORD,
                "clinicians": [str(c) for c in seeded.clinicians], "type_id": GP.type_id,
                "first_slot": _first_slot().isoformat(), "medicines": MEDICINES,
                "clinic_id": CLINIC, "rate": args.rate, "users": users}
        (workdir / "data.json").write_text(json.dumps(data))
        api = Process("api", [str(BIN / "carebridge"), "api", "--host", "127.0.0.1", "--port",
                              str(port), "--workers", str(args.api_workers)], env,
                      workdir / "api.log")
        runners = Process("projections", [str(BIN / "carebridge"), "projections", "run"], env,
                          workdir / "projections.log")
        probe: LagProbe | None = None
        spies: list[subprocess.Popen[bytes]] = []
        try:
            try:
                # worker processes start one after another
                wait_until_ready(base, api.popen, seconds=60 * args.api_workers)
            except SystemExit:
                print((workdir / "api.log").read_text()[-3000:])
                raise
            probe = LagProbe(base, probe_patient["token"], container.database.url,
                             seeded.clinicians, probe_patient["thread_id"])
            cpu_before = {"api": api.cpu_seconds(), "projections": runners.cpu_seconds(),
                          "postgres": postgres_cpu_seconds(container.settings.data_dir)}
            prefix = workdir / "locust"
            locust = Process("locust", [
                str(BIN / "locust"), "-f", str(Path(__file__).with_name("load_locust.py")),
                "--headless", "--only-summary", "-u", str(users), "-r", str(users),
                "--run-time", f"{args.seconds}s", "--stop-timeout", "10", "--host", base,
                "--csv", str(prefix), "--loglevel", "WARNING",
                "Ceiling" if args.ceiling else "Phone"],
                env | {"CAREBRIDGE_LOAD_DATA": str(workdir / "data.json")}, workdir / "locust.log")
            probe.start()
            if args.profile:
                time.sleep(min(10, args.seconds / 4))
                spies = [subprocess.Popen(
                    [str(BIN / "py-spy"), "record", "--pid", str(process.popen.pid), "--format",
                     "raw", "--output", str(workdir / f"profile-{process.name}.txt"), "--duration",
                     str(max(5, args.seconds // 2)), "--rate", "200", "--nonblocking", "--gil",
                     "--subprocesses"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for process in (api, runners)]
            deadline = time.monotonic() + args.seconds + 120
            locust_cpu = 0.0
            while locust.popen.poll() is None and time.monotonic() < deadline:
                locust_cpu = max(locust_cpu, locust.cpu_seconds())
                time.sleep(0.5)
            locust.stop()
            probe.stop.set()
            probe.join(30)
            cpu = {"api": api.cpu_seconds(), "projections": runners.cpu_seconds(),
                   "postgres": postgres_cpu_seconds(container.settings.data_dir),
                   "locust": locust_cpu}
            for spy in spies:
                spy.wait(60)
            costs = cpu_per_request(api, base, probe_patient)
        finally:
            api.stop()
            runners.stop()
        figures = locust_figures(prefix)
        if not figures["overall"]:
            print((workdir / "locust.log").read_text()[-3000:])
            raise SystemExit("locust produced no statistics")
        lags = [lag for values in probe.lags.values() for lag in values]
        overall = figures["overall"]
        results: dict[str, Any] = {
            "offered_rate": args.rate, "users": users, "api_workers": args.api_workers,
            "mix": "ceiling (liveness only)" if args.ceiling else "app",
            "seconds": args.seconds,
            "patients": args.patients, "requests": overall["requests"],
            "requests_per_second": overall["rps"], "p50_ms": overall["p50_ms"],
            "p95_ms": overall["p95_ms"], "p99_ms": overall["p99_ms"],
            "failures": overall["failures"],
            "lag_samples": len(lags), "lag_timeouts": probe.timeouts,
            "lag_p50_ms": _lag(lags, 50), "lag_p99_ms": _lag(lags, 99),
            "lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
            "lag_by_view_p99_ms": {k: _lag(v, 99) for k, v in probe.lags.items()},
            "probe_errors": dict(probe.errors),
            "cpu_seconds": {k: round(v - cpu_before.get(k, 0.0), 1) for k, v in cpu.items()},
            "api_cpu_ms_per_request": costs,
            "met_rate": overall["rps"] >= 1000,
            "met_p99": (overall["p99_ms"] or 1e9) < 100,
            "met_lag": bool(lags) and (_lag(lags, 99) or 1e9) < 50,
            "by_request": figures["by_request"], "failure_kinds": figures["failures"],
        }
        for name in ("api", "projections"):
            if (workdir / f"profile-{name}.txt").exists():
                results[f"profile_{name}"] = profile_summary(workdir / f"profile-{name}.txt")
        results.update(server_facts(container.database.owner_url))
        _print_table(results)
        report("load", results)


def _lag(values: list[float], p: float) -> float | None:
    return round(percentile(values, p) * 1000, 1) if values else None


def _print_table(results: dict[str, Any]) -> None:
    print(f"{'request':<58} {'count':>7} {'rps':>7} {'p50':>6} {'p95':>6} {'p99':>6} {'fail':>5}")
    for name, r in sorted(results["by_request"].items()):
        print(f"{name:<58} {r['requests']:>7} {r['rps']:>7} {r['p50_ms']!s:>6} "
              f"{r['p95_ms']!s:>6} {r['p99_ms']!s:>6} {r['failures']:>5}")
    print("API CPU per request, one at a time (ms):")
    for name, ms in results["api_cpu_ms_per_request"].items():
        print(f"  {ms:>6}  {name}")
    for process in ("api", "projections"):
        profile = results.get(f"profile_{process}")
        if not profile:
            continue
        for title, key, top in (("own time by file", "by_file_pct", 12),
                                ("own time by function", "by_function_pct", 12),
                                ("CareBridge functions with what they call", "carebridge_inclusive_pct",
                                 20)):
            print(f"{process} profile (GIL held), {title} (%):")
            for name, pct in list(profile[key].items())[:top]:
                print(f"  {pct:>5}  {name}")


if __name__ == "__main__":
    main()
