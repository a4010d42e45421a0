"""Hostile clients against a real `carebridge api` on 127.0.0.1, for `bench.fuzz`.

Each attack goes through a plain socket, so nothing in between tidies the bytes: oversized
JSON (with Content-Length and chunked), 100,000 levels of nesting, invalid UTF-8 in a JSON body,
a header and the path, an 8 MB header, an upload declaring 10 GB and a chunk past its declared
length, slowloris headers, a dribbled body and 500 idle connections. Each must get a clear problem
document (application/problem+json naming what to fix) or a clean connection close; the
server's memory (RSS, with psutil) is read before and after, and /health/live must still
answer at the end. Loopback only; bounded in time (about a minute).
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psutil

from api.auth import TokenService
from bench.booking_rush import CARE_BRIDGE
from bench.common import free_port, server_env, wait_until_ready
from commands.identity import NewAccount
from domain.access import Actor
from domain.identity import Role

PROBLEM_JSON = "application/problem+json"
SLOW_SECONDS = 20  # how long a slow client is given before we call it "still open"
IDLE_CONNECTIONS = 500


class Server:
    """`carebridge api` on a free loopback port, against the container's database."""

    def __init__(self, container: Any, token_secret: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = server_env(container, token_secret)
        self.log = (container.settings.data_dir / "hostile-api.log").open("w")
        self.process = subprocess.Popen([CARE_BRIDGE, "api", "--host", "127.0.0.1", "--port",
                                         str(self.port)], env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        wait_until_ready(self.base, self.process)
        self.ps = psutil.Process(self.process.pid)

    def rss_mb(self) -> float:
        return round(self.ps.memory_info().rss / 2**20, 1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self.log.close()

    def connect(self, timeout: float = 30) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)


def exchange(server: Server, head: bytes, body: bytes | Callable[[socket.socket], None] = b"",
             timeout: float = 60) -> dict[str, Any]:
    """Sends a raw request; returns the status, content type and problem detail, or how the
    connection ended."""
    with server.connect(timeout) as conn:
        try:
            conn.sendall(head)
            if callable(body):
                body(conn)
            elif body:
                conn.sendall(body)
        except (BrokenPipeError, ConnectionResetError) as error:
            # The server may answer and close before reading everything we send.
            answer = _read_answer(conn)
            return answer if answer.get("status") else {"closed": type(error).__name__}
        return _read_answer(conn)


def _read_answer(conn: socket.socket) -> dict[str, Any]:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        length = int(headers.get(b"content-length", b"0").strip() or 0)
        while len(rest) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            rest += chunk
    except (ConnectionResetError, TimeoutError, OSError) as error:
        return {"closed": type(error).__name__} if not data else _parsed(data, b"")
    if not data:
        return {"closed": "clean close, no answer"}
    return _parsed(head, rest)


def _parsed(head: bytes, body: bytes) -> dict[str, Any]:
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if len(lines[0].split()) > 1 else 0
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(b":", 1) for line in lines[1:] if b":" in line)}
    content_type = headers.get(b"content-type", b"").decode("latin-1").split(";")[0]
    answer: dict[str, Any] = {"status": status, "content_type": content_type}
    if b"location" in headers:
        answer["location"] = headers[b"location"].decode("latin-1")
    if content_type == PROBLEM_JSON:
        try:
            answer["detail"] = json.loads(body)["detail"]
        except (ValueError, KeyError):
            answer["detail"] = "(unreadable problem body)"
    return answer


def request_head(method: str, path: str | bytes, headers: Mapping[str, str | bytes]) -> bytes:
    target = path if isinstance(path, bytes) else path.encode()
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [k.encode() + b": " + (v if isinstance(v, bytes) else v.encode())
              for k, v in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def patient_token(container: Any, token_secret: str) -> str:
    now = datetime.now(UTC)
    outcome = container.identity.register_patient(NewAccount(
        f"hostile.{uuid.uuid4().hex[:8]}@patients.test", "a long enough passphrase 2026", "Eve",
        "Hostile", date(1980, 1, 1)), at=now)
    account = container.identity.account(uuid.UUID(outcome.result["account_id"]))
    session = container.sessions.start(account, "hostile", "hostile", now)
    return TokenService(token_secret, timedelta(minutes=10)).issue(
        Actor(account.id, Role.PATIENT), session.session_id, now).token


def _json_post(path: str, body: bytes, **extra: str | bytes) -> bytes:
    return request_head("POST", path, {"Content-Type": "application/json",
                                       "Content-Length": str(len(body)), **extra})


def _oversized(server: Server) -> dict[str, Any]:
    body = b'{"email": "' + b"a" * 20_000_000 + b'", "password": "x"}'
    return exchange(server, _json_post("/v1/auth/login", body), body)


def _oversized_chunked(server: Server) -> dict[str, Any]:
    def send(conn: socket.socket) -> None:
        chunk = b"a" * 1_000_000
        for _ in range(20):
            conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    head = request_head("POST", "/v1/auth/login", {"Content-Type": "application/json",
                                                   "Transfer-Encoding": "chunked"})
    return exchange(server, head, send)


def _slow(server: Server, head: bytes, dribble: bytes, count: int = 20) -> dict[str, Any]:
    """`count` clients each send `head` then `dribble` a byte a second; how many the server
    cut off within SLOW_SECONDS."""
    def one(_: int) -> float | None:
        started = time.monotonic()
        with server.connect(timeout=SLOW_SECONDS + 5) as conn:
            try:
                conn.sendall(head)
                for byte in dribble:
                    if time.monotonic() - started > SLOW_SECONDS:
                        return None
                    conn.sendall(bytes([byte]))
                    time.sleep(1)
                    conn.setblocking(False)
                    try:
                        if conn.recv(65536) == b"":
                            return time.monotonic() - started
                    except BlockingIOError:
                        pass
                    finally:
                        conn.setblocking(True)
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
        return None

    with ThreadPoolExecutor(count) as pool:
        cut = list(pool.map(one, range(count)))
    closed = [c for c in cut if c is not None]
    return {"clients": count, "cut_off_by_server": len(closed),
            "still_open_after_s": SLOW_SECONDS if len(closed) < count else None,
            "slowest_cut_s": round(max(closed), 1) if closed else None}


def _idle(server: Server) -> dict[str, Any]:
    sockets = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            sockets.append(server.connect(timeout=5))
        time.sleep(2)
        rss = server.rss_mb()
        health = exchange(server, request_head("GET", "/health/live", {}), timeout=10)
        return {"connections": len(sockets), "rss_mb_while_open": rss,
                "health_while_open": health.get("status")}
    finally:
        for held in sockets:
            held.close()


def attack(container: Any, token_secret: str) -> dict[str, Any]:
    """Runs every attack against a fresh `carebridge api`; the answers and memory figures."""
    token = patient_token(container, token_secret)
    bearer = {"Authorization": f"Bearer {token}"}
    server = Server(container, token_secret)
    try:
        results: dict[str, Any] = {"rss_mb_before": server.rss_mb()}
        deep = b"[" * 100_000 + b"]" * 100_000
        bad_utf8 = b'{"email": "\xff\xfe@example.com", "password": "x"}'
        metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                            for k, v in (("filename", "scan.pdf"), ("document_type", "other")))
        tus = {"Tus-Resumable": "1.0.0", **bearer}
        for path, setup in (  # an upload needs a clinic to check it, and the consent to that
                ("/v1/me/profile/preferred-clinic", b'{"clinic_id": "riverside"}'),
                ("/v1/me/consents",
                 b'{"consent_type": "document_review", "text_version": "2026-11"}')):
            exchange(server, request_head("PUT" if "profile" in path else "POST", path, {
                **bearer, "Content-Type": "application/json",
                "Content-Length": str(len(setup))}), setup)
        attacks: dict[str, Callable[[], dict[str, Any]]] = {
            "oversized_json_20mb": lambda: _oversized(server),
            "oversized_chunked_20mb": lambda: _oversized_chunked(server),
            "deep_json_100k_levels": lambda: exchange(
                server, _json_post("/v1/auth/login", deep), deep),
            "invalid_utf8_json": lambda: exchange(
                server, _json_post("/v1/auth/login", bad_utf8), bad_utf8),
            "invalid_utf8_header": lambda: exchange(
                server, request_head("GET", "/v1/me", {"Authorization": b"Bearer \xff\xfe\xfd"})),
            "invalid_utf8_path": lambda: exchange(
                server, request_head("GET", b"/v1/clinics/\xff\xfe", bearer)),
            "header_of_8mb": lambda: exchange(server, request_head(
                "GET", "/health/live", {"X-Padding": b"a" * 8_000_000})),
            "upload_declaring_10gb": lambda: exchange(server, request_head("POST", "/v1/uploads", {
                **tus, "Upload-Length": str(10 * 2**30), "Upload-Metadata": metadata,
                "Content-Length": "0"})),
            "upload_chunk_past_length": lambda: _chunk_past_length(server, tus, metadata),
        }
        for name, run in attacks.items():
            results[name] = run()
            results[name]["rss_mb_after"] = server.rss_mb()
        results["slowloris_headers"] = _slow(
            server, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"a" * 60)
        results["dribbled_body"] = _slow(server, request_head("POST", "/v1/auth/login", {
            "Content-Type": "application/json", "Content-Length": "100"}), b" " * 60)
        results["idle_connections"] = _idle(server)
        results["rss_mb_after"] = server.rss_mb()
        results["health_after"] = exchange(
            server, request_head("GET", "/health/live", {}), timeout=10).get("status")
        return results
    finally:
        server.stop()


def _chunk_past_length(server: Server, tus: dict[str, str], metadata: str) -> dict[str, Any]:
    """An upload of 1,000 bytes, then a 5 MB chunk for it."""
    for _ in range(20):  # the consent given just before reaches the views in a moment
        created = exchange(server, request_head("POST", "/v1/uploads", {
            **tus, "Upload-Length": "1000", "Upload-Metadata": metadata, "Content-Length": "0"}))
        if created.get("status") != 403:
            break
        time.sleep(0.25)
    if created.get("status") != 201 or not created.get("location"):
        return {"create": created}
    location = created["location"]
    path = "/" + location.split("/", 3)[3] if "://" in location else location
    body = b"%PDF-" + b"a" * 5_000_000
    return exchange(server, request_head("PATCH", path, {
        **tus, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(len(body))}), body)
