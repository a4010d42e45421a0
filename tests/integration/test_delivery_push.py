"""Push delivery against providers on loopback: the FCM HTTP v1 request, the APNs request over
HTTP/2 with its ES256 provider token, no medical detail on the lock screen, and a device the
provider no longer knows removed (the next attempt goes by another channel)."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import h2.config
import h2.connection
import h2.events
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from commands.outbox import Message, OutboxDispatcher
from commands.push import ApnsSender, FcmSender, PushDevices, PushSender
from tests.integration.delivery_support import NOW, Patient, Recorder, preferring, put, row

pytestmark = pytest.mark.integration
Answer = Callable[[dict[str, Any]], tuple[int, bytes]]


@contextmanager
def fcm_server(answer: Answer) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = {"path": self.path, "headers": dict(self.headers),
                       "body": json.loads(self.rfile.read(int(self.headers["Content-Length"])))}
            received.append(request)
            status, body = answer(request)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def _serve_h2(sock: socket.socket, answer: Answer, received: list[dict[str, Any]]) -> None:
    """One HTTP/2 connection (prior knowledge, as to a plain-http endpoint)."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False,
                                                                header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams: dict[int, dict[str, Any]] = {}
    with sock:
        while data := sock.recv(65535):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams[event.stream_id] = {"headers": dict(event.headers), "body": b""}
                elif isinstance(event, h2.events.DataReceived):
                    streams[event.stream_id]["body"] += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length,
                                                   event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    request = streams.pop(event.stream_id)
                    request["body"] = json.loads(request["body"])
                    received.append(request)
                    status, body = answer(request)
                    conn.send_headers(event.stream_id, [(":status", str(status)),
                                                        ("content-length", str(len(body)))])
                    conn.send_data(event.stream_id, body, end_stream=True)
            sock.sendall(conn.data_to_send())


@contextmanager
def apns_server(answer: Answer) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve_h2, args=(sock, answer, received),
                             daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def signing_key(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return pem, key.public_key()


def prescription_ready() -> Message:
    return Message("prescription_ready", "email", uuid.uuid4(),
                   "ada@patients.test", {})


def test_an_fcm_push_is_an_http_v1_request_with_a_generic_line_and_an_opaque_link(
        database, tmp_path):
    with fcm_server(lambda request: (200, b'{"name": "projects/carebridge-test/messages/1"}')
                    ) as (endpoint, received):
        devices = PushDevices(database.url)
        message = prescription_ready()
        devices.register(message.account_id, "pixel-7", "fcm", "fcm-token-1234", NOW)
        push = PushSender(devices, {"fcm": FcmSender(endpoint, "carebridge-test",
                                                     "fcm-access-token")},
                          tmp_path / "push.log")
        delivery = OutboxDispatcher(database.url, {"email": Recorder(), "push": push},
                                    preferences=Patient(preferring("push")).preferences_of)
        put(database.url, message)

        assert delivery.deliver_due() == 1

    (request,) = received
    assert request["path"] == "/v1/projects/carebridge-test/messages:send"
    assert request["headers"]["Authorization"] == "Bearer fcm-access-token"
    assert request["body"] == {"message": {
        "token": "fcm-token-1234",
        "notification": {"title": "Ready to collect",
                         "body": "CareBridge: what you asked for is ready to collect at the "
                                 "clinic."},
        "data": {"link": "carebridge://requests", "message_id": str(message.message_id)}}}


def test_an_apns_push_goes_over_http2_with_a_signed_provider_token(database, tmp_path,
                                                                  signing_key):
    pem, public_key = signing_key
    with apns_server(lambda request: (200, b"")) as (endpoint, received):
        devices = PushDevices(database.url)
        message = Message("record_available", "email", uuid.uuid4(),
                          "ada@patients.test", {"link": "carebridge://records/r-1"})
        devices.register(message.account_id, "iphone", "apns", "apns-token-abcd", NOW)
        apns = ApnsSender(endpoint, "org.carebridge.app", pem, "KEY1234567", "TEAM123456")
        push = PushSender(devices, {"apns": apns}, tmp_path / "push.log")
        delivery = OutboxDispatcher(database.url, {"email": Recorder(), "push": push},
                                    preferences=Patient(preferring("push")).preferences_of)
        put(database.url, message)

        assert delivery.deliver_due() == 1
        apns.close()

    (request,) = received
    headers = request["headers"]
    assert headers[":method"] == "POST" and headers[":path"] == "/3/device/apns-token-abcd"
    assert headers["apns-topic"] == "org.carebridge.app"
    assert headers["apns-push-type"] == "alert"
    assert headers["apns-id"] == str(message.message_id)
    scheme, token = headers["authorization"].split(" ")
    assert scheme == "bearer"
    assert jwt.get_unverified_header(token)["kid"] == "KEY1234567"
    assert jwt.decode(token, public_key, algorithms=["ES256"])["iss"] == "TEAM123456"
    assert request["body"] == {
        "aps": {"alert": {"title": "Something new is in your record",
                          "body": "CareBridge: something new has been added to your record. "
                                  "Open the app."}},
        "link": "carebridge://records/r-1", "message_id": str(message.message_id)}


@pytest.mark.parametrize("platform", ["fcm", "apns"])
def test_a_device_the_provider_no_longer_knows_is_removed_and_email_takes_over(
        database, tmp_path, signing_key, platform):
    unregistered = (404, b'{"error": {"status": "NOT_FOUND", "details": [{"errorCode": '
                         b'"UNREGISTERED"}]}}') if platform == "fcm" else \
        (410, b'{"reason": "Unregistered"}')
    server = fcm_server if platform == "fcm" else apns_server
    with server(lambda request: unregistered) as (endpoint, received):
        provider = FcmSender(endpoint, "p", "t") if platform == "fcm" else \
            ApnsSender(endpoint, "org.carebridge.app", signing_key[0], "K", "T")
        devices = PushDevices(database.url)
        message = prescription_ready()
        devices.register(message.account_id, "old-phone", platform, "stale-token-1", NOW)
        email = Recorder()
        delivery = OutboxDispatcher(
            database.url, {"email": email,
                           "push": PushSender(devices, {platform: provider}, tmp_path / "p")},
            preferences=Patient(preferring("push", "email")).preferences_of,
            contacts=Patient().contacts_of)
        put(database.url, message)

        assert delivery.deliver(message.message_id) == "retry"
        assert devices.devices(message.account_id) == []
        assert row(database.url, message.message_id)["last_error"] == "NoPushDevice"

        with psycopg.connect(database.owner_url, autocommit=True) as conn:
            conn.execute("UPDATE carebridge.outbox SET next_attempt_at = now() - interval '1s'")
        assert delivery.deliver(message.message_id) == "delivered"
        if isinstance(provider, ApnsSender):
            provider.close()

    assert len(received) == 1
    (sent,) = email.sent
    assert sent.channel == "email" and sent.recipient == "ada@patients.test"
