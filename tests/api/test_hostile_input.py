"""Bodies and addresses a hostile (or broken) client sends: each is refused as bad input with a
problem document that names what to fix, never a server error. (bench/hostile.py sends the same
and worse through a real socket: slow clients, idle connections, huge uploads.)"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from api.validation import MAX_BODY_BYTES
from tests.api.support import auth

JSON = {"content-type": "application/json"}


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["type"].startswith("https://carebridge.example/")
    return body


def test_a_body_over_the_limit_is_refused_naming_the_limit(client: Any) -> None:
    body = b'{"email": "' + b"a" * (MAX_BODY_BYTES + 1) + b'", "password": "x"}'
    refused = problem(client.post("/v1/auth/login", content=body, headers=JSON), 413)
    assert "1,000,000 bytes" in refused["detail"] and "/v1/uploads" in refused["detail"]


@pytest.mark.parametrize("nested", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
], ids=["arrays", "objects"])
def test_json_nested_deeper_than_the_decoder_goes_is_bad_input(client: Any,
                                                                nested: bytes) -> None:
    refused = problem(client.post("/v1/auth/login", content=nested, headers=JSON), 400)
    assert "nested too deeply" in refused["detail"]


def test_a_body_that_is_not_utf8_is_bad_input(client: Any) -> None:
    body = b'{"email": "\xff\xfe@example.com", "password": "a long enough passphrase"}'
    refused = problem(client.post("/v1/auth/login", content=body, headers=JSON), 400)
    assert "UTF-8" in refused["detail"]


def test_text_with_the_nul_character_is_bad_input_naming_the_field(client: Any) -> None:
    refused = problem(client.post("/v1/auth/register", json={
        "email": "ada\u0000@example.com", "password": "a long enough passphrase",
        "given_name": "Ada", "family_name": "Lovelace", "date_of_birth": "1958-12-10"}), 400)
    assert refused["detail"].startswith("body.email holds the NUL character")


def test_nul_in_a_list_of_a_body_is_named_by_its_place(client: Any, sign_up: Any) -> None:
    patient = sign_up()
    refused = problem(client.post("/v1/prescription-requests", headers=auth(patient), json={
        "clinic_id": "riverside", "fulfilment": "collection",
        "items": [{"medication_id": "ok", "dosage_confirmed": True},
                  {"medication_id": "x\u0000", "dosage_confirmed": True}]}), 400)
    assert "body.items[1].medication_id" in refused["detail"]


@pytest.mark.parametrize("address", ["/v1/clinics/river%00side", "/v1/pharmacies?q=high%00street"])
def test_nul_in_an_address_is_bad_input(client: Any, sign_up: Any, address: str) -> None:
    refused = problem(client.get(address, headers=auth(sign_up())), 400)
    assert "NUL" in refused["detail"]


def test_an_escaped_backslash_before_u0000_is_ordinary_text(client: Any) -> None:
    """Only a decoded NUL is refused: the six characters \\u0000 are fine in a password."""
    response = client.post("/v1/auth/login", json={"email": "nobody@example.com",
                                                   "password": "\\u0000 is six characters"})
    problem(response, 401)


def test_invalid_utf8_in_a_header_is_an_invalid_token(client: Any) -> None:
    response = client.get("/v1/me", headers={"authorization": b"Bearer \xff\xfe\xfd"})
    problem(response, 401)


def test_an_upload_declaring_more_than_the_largest_file_is_refused_at_once(
        client: Any, sign_up: Any) -> None:
    import base64

    metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}"
                        for k, v in (("filename", "scan.pdf"), ("document_type", "other")))
    response = client.post("/v1/uploads", headers=auth(sign_up()) | {
        "Tus-Resumable": "1.0.0", "Upload-Length": str(10 * 2**30), "Upload-Metadata": metadata})
    refused = problem(response, 413)
    assert "the largest file we take" in refused["detail"]


# ---- the server's own deadlines and limits (api/server_limits.py), without a socket ---------


class Wire:
    """A transport that keeps what the server writes, in place of a socket."""

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        self.written = b""
        self.closed = asyncio.Event()

    def write(self, data: bytes) -> None:
        assert not self.closed.is_set(), "written after the connection was closed"
        self.written += data

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed.is_set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def set_write_buffer_limits(self, *args: Any, **kwargs: Any) -> None: ...


async def _read_until_gone(scope: Any, receive: Any, send: Any) -> None:
    """An app that waits for the whole body, as every handler with a body does."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _connected(loop: asyncio.AbstractEventLoop) -> tuple[Any, Wire]:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from api.server_limits import GuardedHttpTools

    protocol = GuardedHttpTools(Config(_read_until_gone, log_config=None, lifespan="off"),
                                ServerState(), {}, _loop=loop)
    wire = Wire(protocol)
    protocol.connection_made(wire)  # type: ignore[arg-type]
    return protocol, wire


def _answer_of(wire: Wire) -> tuple[int, dict[str, Any]]:
    head, _, body = wire.written.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head
    return int(head.split()[1]), json.loads(body)


def test_a_head_larger_than_the_limit_is_refused_without_buffering_it() -> None:
    from api.server_limits import MAX_HEAD_BYTES

    async def scenario() -> Wire:
        protocol, wire = _connected(asyncio.get_running_loop())
        protocol.data_received(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Padding: ")
        while not wire.is_closing():
            protocol.data_received(b"a" * 16_384)
        return wire

    wire = asyncio.run(scenario())
    status, problem = _answer_of(wire)
    assert status == 431 and f"{MAX_HEAD_BYTES:,} bytes" in problem["detail"]


@pytest.mark.parametrize("part,sent", [
    ("headers", b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: a"),
    ("body", b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"),
])
def test_a_request_that_stops_arriving_is_answered_408_and_closed(
        monkeypatch: pytest.MonkeyPatch, part: str, sent: bytes) -> None:
    import api.server_limits as limits

    # The deadlines shrink so the test does not wait; what is checked is the answer, not when.
    monkeypatch.setattr(limits, "HEAD_SECONDS", 0.05)
    monkeypatch.setattr(limits, "BODY_BASE_SECONDS", 0.05)

    async def scenario() -> Wire:
        protocol, wire = _connected(asyncio.get_running_loop())
        protocol.data_received(sent)
        await asyncio.wait_for(wire.closed.wait(), 30)
        await asyncio.gather(*protocol.tasks)  # the app hears the client is gone, and ends
        return wire

    status, problem = _answer_of(asyncio.run(scenario()))
    assert status == 408 and f"request's {part} did not arrive" in problem["detail"]


def test_bytes_the_http_parser_cannot_read_get_a_problem_document() -> None:
    async def scenario() -> Wire:
        protocol, wire = _connected(asyncio.get_running_loop())
        protocol.data_received(b"GET /v1/clinics/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n")
        return wire

    status, problem = _answer_of(asyncio.run(scenario()))
    assert status == 400 and "percent-encoded path" in problem["detail"]
