"""A `carebridge worker` process killed (SIGKILL) while it is delivering a batch of texts, then
started again: every due notification reaches the SMS provider, and the provider, which drops
a repeated message id as real providers do, accepts each exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from commands.outbox import Message
from tests.conftest import ENCRYPTION_KEY, TOKEN_SECRET
from tests.integration.delivery_support import SmsProvider, put

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
BATCH = 8


def start_worker(database, gateway: str, workdir: Path, name: str) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items()
           if key not in ("BROKER_URL", "CAREBRIDGE_BROKER_URL", "DATABASE_URL")}
    env.update({"PYTHONPATH": str(ROOT), "CAREBRIDGE_DATABASE_URL": database.url,
                "CAREBRIDGE_ENCRYPTION_KEY": ENCRYPTION_KEY,
                "CAREBRIDGE_TOKEN_SECRET": TOKEN_SECRET,
                "CAREBRIDGE_DATA_DIR": str(workdir), "CAREBRIDGE_SMS_GATEWAY_URL": gateway,
                "CAREBRIDGE_WORKER_THREADS": "4",
                "CAREBRIDGE_NOTIFICATION_QUEUE_LEASE_SECONDS": "2"})
    with (workdir / f"{name}.log").open("wb") as log:  # the worker keeps its own copy
        return subprocess.Popen([sys.executable, "-m", "api.cli", "worker"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def undelivered(database) -> int:
    with psycopg.connect(database.url) as conn:
        row = conn.execute("SELECT count(*) FROM carebridge.outbox"
                           " WHERE delivered_at IS NULL").fetchone()
    assert row is not None
    return int(row[0])


def test_a_worker_killed_mid_delivery_delivers_everything_exactly_once_after_restart(
        database, tmp_path):
    provider = SmsProvider()
    messages = [Message("sign_in_code", "sms", uuid.uuid4(), f"+44 7700 9001{n:02d}",
                        {"code": f"{n:06d}", "minutes": "10"}) for n in range(BATCH)]
    for message in messages:
        put(database.url, message)
    provider.hold()  # the provider accepts each text and then keeps the worker waiting

    with provider.serving() as gateway:
        first = start_worker(database, gateway, tmp_path, "first")
        try:
            assert provider.arrived.wait(120), (tmp_path / "first.log").read_text()
        finally:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(30)
        in_flight = set(provider.accepted)  # accepted, but the worker never heard so
        provider.release()

        second = start_worker(database, gateway, tmp_path, "second")
        try:
            deadline = time.monotonic() + 120
            while undelivered(database) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(30)

    assert undelivered(database) == 0, (tmp_path / "second.log").read_text()
    assert in_flight, "the kill came before any text reached the provider"
    assert set(provider.accepted) == {str(m.message_id) for m in messages}  # none missing
    assert all(count == 1 for count in provider.accepted.values())
    # What was in flight at the kill was sent again once, and dropped by the provider.
    assert sorted(provider.duplicates) == sorted(in_flight)
