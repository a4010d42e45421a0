"""Shared by the benchmarks: a throwaway embedded PostgreSQL, timed threads and the JSON report.

Nothing here touches the network: the embedded server listens on a unix socket only.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api.container import Container, migrate
from api.database import local_secrets, start_embedded
from api.seed import publish_default_consent_texts
from api.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
Op = Callable[[], None]
MakeOp = Callable[[int, ExitStack], Op]  # (thread index, the thread's cleanups) -> one operation


@contextmanager
def throwaway_container(name: str) -> Iterator[Container]:
    """A migrated container on a fresh embedded PostgreSQL in a temporary directory.

    The default consent texts are published. The server stops and the directory is removed
    when the process exits.
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"carebridge-bench-{name}-"))
    # Registered before the server's own exit hook, so it runs after the server has stopped.
    atexit.register(shutil.rmtree, workdir, True)
    database = start_embedded(workdir)
    key = local_secrets(workdir)["encryption_key"]
    settings = Settings(data_dir=workdir, password_hash_memory_kib=1024, password_hash_time_cost=1)
    migrate(settings, database, key)
    container = Container(settings, database, key)
    try:
        publish_default_consent_texts(container)
        yield container
    finally:
        container.close()


def server_facts(url: str) -> dict[str, Any]:
    """What the figures depend on: versions, durability settings and the machine."""
    with psycopg.connect(url, autocommit=True) as conn:
        shown = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # type: ignore[index]
                 for name in ("server_version", "synchronous_commit", "fsync", "wal_sync_method")}
    if shown["synchronous_commit"] != "on" or shown["fsync"] != "on":
        raise RuntimeError(f"commits are not durable on this server: {shown}")
    return {**shown, "cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg_1m": round(os.getloadavg()[0], 2)}


@dataclass(frozen=True)
class Rate:
    ops: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


def run_threads(threads: int, seconds: float, max_ops: int, make_op: MakeOp) -> Rate:
    """Runs `make_op`'s operation from `threads` threads until `seconds` pass or `max_ops` are done.

    Each thread sets up (outside the timing), all start together, and the rate counts the
    operations completed between the start and the last thread's finish.
    """
    tickets = itertools.count()
    clock = {"start": 0.0}
    barrier = threading.Barrier(threads, action=lambda: clock.update(start=time.monotonic()))
    done = [0] * threads
    finished = [0.0] * threads
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            with ExitStack() as stack:
                op = make_op(index, stack)
                barrier.wait(timeout=60)
                deadline = clock["start"] + seconds
                while time.monotonic() < deadline and next(tickets) < max_ops:
                    op()
                    done[index] += 1
                finished[index] = time.monotonic()
        except BaseException as error:
            barrier.abort()
            errors.append(error)

    workers = [threading.Thread(target=work, args=(i,), name=f"bench-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=seconds + 120)
        if worker.is_alive():
            raise TimeoutError(f"{worker.name} did not finish")
    if errors:
        raise errors[0]
    return Rate(sum(done), max(finished) - clock["start"])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def server_env(container: Container, token_secret: str, **settings: str) -> dict[str, str]:
    """The environment of a `carebridge` process run against the container's database, with the
    same secrets, no per-client rate limit (every simulated client is 127.0.0.1), warnings-only
    logs, and `settings` (CAREBRIDGE_... variables) on top."""
    return {**os.environ, "DATABASE_URL": container.database.url,
            "CAREBRIDGE_DATA_DIR": str(container.settings.data_dir),
            "CAREBRIDGE_ENCRYPTION_KEY": container.encryption_key,
            "CAREBRIDGE_TOKEN_SECRET": token_secret,
            "CAREBRIDGE_RATE_LIMIT_PER_MINUTE": "10000000",
            "CAREBRIDGE_LOG_LEVEL": "WARNING", **settings}


def wait_until_ready(base: str, server: subprocess.Popen[bytes], seconds: float = 60) -> None:
    """Waits until the API at `base` says it is ready; gives up if its process ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("carebridge api exited early")
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise SystemExit("carebridge api did not become ready")


def report(name: str, figures: dict[str, Any]) -> Path:
    """Writes the figures to bench/results/NAME-<UTC timestamp>.json and prints them as the
    last line of output."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    line = json.dumps({"bench": name, "utc": stamp, **figures})
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    path.write_text(line + "\n")
    print(f"written to {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    print(line, flush=True)
    return path
