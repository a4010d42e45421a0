"""Deadlines uvicorn does not keep: for a request's head and for its body.

uvicorn closes a keep-alive connection that stays idle between requests, but it waits forever
for a client that sends its headers a byte at a time (slowloris), that opens a connection and
says nothing, or that dribbles a body. Each such client holds a socket and a task for as long
as it likes. This protocol gives every request HEAD_SECONDS to finish its headers (counted from
the connection or from the first byte of the request) and its body a time that grows with its
declared size, then answers 408 with a problem document and closes the connection. A head
larger than MAX_HEAD_BYTES (httptools would buffer any size) is answered 431. What the
HTTP parser itself cannot read (bytes that are not HTTP, such as raw non-ASCII in the path) is
answered 400 as a problem document too, not uvicorn's plain text.

Used by `carebridge api` (api/cli.py `_run_api`: `uvicorn.run(..., http=GuardedHttpTools)`).
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_SECONDS = 10.0
MAX_HEAD_BYTES = 64 * 1024  # request line and headers; httptools itself buffers without limit
BODY_BASE_SECONDS = 10.0
BODY_MIN_BYTES_PER_SECOND = 16 * 1024  # a slow mobile link still sends far more
CHUNKED_BODY_SECONDS = 120.0  # no declared length: one fixed allowance


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline for each request's head and body."""

    _deadline: asyncio.TimerHandle | None = None
    _head_bytes: int | None = 0  # bytes of the request head so far; None once it is complete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(HEAD_SECONDS, "headers")

    def data_received(self, data: bytes) -> None:
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)  # completing the head here sets _head_bytes to None
        # Still no end of the head after this much: the parser holds at most one more read.
        if self._head_bytes is not None and self._head_bytes > MAX_HEAD_BYTES \
                and not self.transport.is_closing():
            self._disarm()
            self._answer(431, b"Request Header Fields Too Large", "headers-too-large",
                         "The request's headers are too large",
                         f"Send at most {MAX_HEAD_BYTES:,} bytes of request line and headers.")
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(HEAD_SECONDS, "headers")

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        length = next((value for name, value in self.headers if name == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > 0:
            self._arm(BODY_BASE_SECONDS + int(length) / BODY_MIN_BYTES_PER_SECOND, "body")
        elif any(name == b"transfer-encoding" for name, _ in self.headers):
            self._arm(CHUNKED_BODY_SECONDS, "body")
        else:
            self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._head_bytes = 0  # the next request's head starts here
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float, part: str) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._too_slow, part)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self, part: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or self.cycle.response_complete or not self.cycle.response_started:
            # Nothing has been answered on this request yet: say why it ends.
            self._answer(408, b"Request Timeout", "request-timeout",
                         "The request took too long to arrive",
                         f"The request's {part} did not arrive in time. Send it again, "
                         "without pauses.")
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        self._answer(400, b"Bad Request", "bad-request", "The request could not be read",
                     f"{msg} Check the request line and headers: they must be HTTP/1.1 with an "
                     "ASCII, percent-encoded path.")
        self.transport.close()

    def _answer(self, status: int, reason: bytes, code: str, title: str, detail: str) -> None:
        problem = json.dumps({"type": f"https://carebridge.example/problems/{code}",
                              "title": title, "status": status, "detail": detail}).encode()
        self.transport.write(
            b"HTTP/1.1 " + str(status).encode() + b" " + reason + b"\r\n"
            b"content-type: application/problem+json\r\n"
            b"content-length: " + str(len(problem)).encode() + b"\r\nconnection: close\r\n\r\n"
            + problem)
