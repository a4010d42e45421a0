"""`carebridge serve` on a fresh directory, driven like a newcomer would, then stopped."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

CARE_BRIDGE = str(Path(sys.executable).parent / "carebridge")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_ready(base: str, server: subprocess.Popen[str], attempts: int = 240) -> None:
    for _ in range(attempts):
        assert server.poll() is None, "carebridge serve exited early"
        try:
            if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError("carebridge serve did not become ready")


def postgres_processes(data_dir: Path) -> list[Any]:
    found = []
    for process in psutil.process_iter(attrs=["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(data_dir) in " ".join(
                process.info["cmdline"] or []):
            found.append(process)
    return found


def read_code(mail_log: Path, account_id: str, attempts: int = 200) -> str:
    """The sign-in code the outbox dispatcher wrote to the mail log (bounded wait)."""
    for _ in range(attempts):
        if mail_log.exists():
            for line in reversed(mail_log.read_text().splitlines()):
                message = json.loads(line)
                if message["account_id"] == account_id and message["kind"] == "sign_in_code":
                    return str(message["code"])
        time.sleep(0.05)
    raise AssertionError("no sign-in code reached the mail log")


def refused_socket_code(url: str) -> int:
    import asyncio

    import websockets

    async def close_code() -> int:
        async with websockets.connect(url, open_timeout=10) as socket:
            try:
                await asyncio.wait_for(socket.recv(), timeout=10)
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None
                return closed.rcvd.code
        raise AssertionError("the socket stayed open without a ticket")

    return asyncio.run(close_code())


def test_serve_register_consent_audit_and_stop_cleanly(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CAREBRIDGE_PASSWORD_HASH_MEMORY_KIB": "1024",
           "CAREBRIDGE_PASSWORD_HASH_TIME_COST": "1"}
    env.pop("DATABASE_URL", None)
    env.pop("CAREBRIDGE_DATABASE_URL", None)
    server = subprocess.Popen([CARE_BRIDGE, "serve", "--port", str(port), "--demo"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_ready(base, server)
        assert postgres_processes(tmp_path / "var"), "the embedded PostgreSQL should be running"
        email, password = "newcomer@patients.test", "a long enough passphrase"
        registered = httpx.post(f"{base}/v1/auth/register", json={
            "email": email, "password": password, "given_name": "New", "family_name": "Comer",
            "date_of_birth": "1970-01-01"})
        assert registered.status_code == 201, registered.text
        # A new device: the code comes by email, which locally is the mail log.
        login = httpx.post(f"{base}/v1/auth/login", json={"email": email, "password": password,
                                                          "device_id": "e2e"}).json()
        assert login["second_factor_required"] is True
        challenge = login["challenge_token"]
        sent = httpx.post(f"{base}/v1/auth/second-factor/code",
                          json={"challenge_token": challenge})
        assert sent.status_code == 202, sent.text
        code = read_code(tmp_path / "var" / "mail.log", registered.json()["account_id"])
        done = httpx.post(f"{base}/v1/auth/second-factor",
                          json={"challenge_token": challenge, "code": code})
        assert done.status_code == 200, done.text
        auth = {"Authorization": f"Bearer {done.json()['access_token']}"}
        given = httpx.post(f"{base}/v1/me/consents", headers=auth,
                           json={"consent_type": "telemedicine", "text_version": "2026-11"})
        assert given.status_code == 201, given.text
        withdrawn = httpx.post(f"{base}/v1/me/consents/telemedicine/withdraw", headers=auth,
                               json={"reason": "I prefer to come in"})
        assert withdrawn.status_code == 200, withdrawn.text
        history = httpx.get(f"{base}/v1/me/consents/history", headers={
            **auth, "CareBridge-Wait-For": withdrawn.headers["CareBridge-Position"]})
        assert [entry["action"] for entry in history.json()] == ["withdrawn", "given"]
        demo = httpx.post(f"{base}/v1/auth/login", json={"email": "ada@patients.demo",
                                                         "password": "demo-clinic-2026"})
        assert demo.status_code == 200 and demo.json()["second_factor_required"] is True

        # The clinician console and the signaling WebSocket are served by `serve` itself: a
        # socket without a valid ticket is accepted and closed with 4401.
        console = httpx.get(f"{base}/console")
        assert console.status_code == 200 and "Content-Security-Policy" in console.headers
        assert refused_socket_code(f"ws://127.0.0.1:{port}/v1/consultations/"
                                   f"{uuid.uuid4()}/signal?ticket=forged") == 4401

        trail = subprocess.run(
            [CARE_BRIDGE, "audit", "trail", "--aggregate", given.json()["consent_id"]],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True)
        account_id = registered.json()["account_id"]
        assert "consents.Consent.Given.v1" in trail.stdout
        assert "consents.Consent.Withdrawn.v1" in trail.stdout
        assert f"patient:{account_id}" in trail.stdout
    finally:
        server.send_signal(signal.SIGINT)
        output, _ = server.communicate(timeout=60)
    assert server.returncode == 0, output
    assert "CareBridge stopped." in output
    assert "interactive docs at" in output
    assert postgres_processes(tmp_path / "var") == []
    assert (tmp_path / "var" / "postgres" / "PG_VERSION").exists()
