"""Resumable uploads (tus 1.0) driven by a real tus client, tuspy, against the app served by
uvicorn on 127.0.0.1 in a thread: creation, chunks, resuming, checksums, type sniffing, size
limits, termination, idempotent creation, encryption at rest, malware refusals, expiry."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError

from api.controllers.uploads import UploadController
from commands.storage import EncryptedStorage
from commands.uploads import (
    CommandScanner,
    CompletedUpload,
    Uploads,
    own_uploads_only,
    uploads_from,
)
from domain.errors import CareBridgeError, Forbidden
from tests.api.support import PROBLEM_TYPES, auth, sign_in
from tests.conftest import ENCRYPTION_KEY, TOKEN_SECRET
from tests.integration.support import eventually

TUS = {"Tus-Resumable": "1.0.0"}
PDF_BYTES = b"%PDF-1.7\n" + bytes(range(256)) * 700 + b"\n%%EOF\n"  # about 180 kB
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + bytes(range(256)) * 100
CHUNK = 64 * 1024
MB = 1024 * 1024


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"upload_max_pdf_mb": 2, "upload_max_image_mb": 1}


class Claims:
    """The completion callback the documents context will be: records what it is given, and
    can be told to refuse (as a missing consent would)."""

    def __init__(self) -> None:
        self.received: list[CompletedUpload] = []
        self.refusal: CareBridgeError | None = None

    def __call__(self, upload: CompletedUpload) -> None:
        if self.refusal is not None:
            raise self.refusal
        self.received.append(upload)


@pytest.fixture
def uploads(container: Any) -> Uploads:
    """The container's uploads, checked only as the upload layer itself checks (the documents
    context's creation check and claim are tested with documents)."""
    wired = getattr(container, "uploads", None)
    if wired is None:
        wired = uploads_from(container.settings, container.identity.factory.datastore,
                             ENCRYPTION_KEY)
        container.uploads = wired
    wired.check_creation = own_uploads_only
    wired.on_complete = Claims()
    return wired


@pytest.fixture
def claims(uploads: Uploads) -> Claims:
    assert isinstance(uploads.on_complete, Claims)
    return uploads.on_complete


_APP: dict[str, Any] = {}


@pytest.fixture
def base_url(client: Any, container: Any, clock: Any, uploads: Uploads) -> Iterator[str]:
    """The app with the uploads endpoint, served by uvicorn on a free loopback port."""
    from api.app import create_app

    app = _APP.get("app")
    if app is None:
        app = _APP["app"] = create_app(container, TOKEN_SECRET, clock=clock)
        if not any(r.path == "/v1/uploads" for r in app.routes):
            app.register(UploadController)
    app.state.container, app.state.clock = container, clock
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning",
                                           http="h11", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        assert eventually(lambda: server.started or not thread.is_alive(), within=60)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()


def tus(base_url: str, person: dict[str, str]) -> TusClient:
    return TusClient(f"{base_url}/v1/uploads", headers=auth(person))


def metadata(filename: str = "referral.pdf", document_type: str = "referral_letter",
             **more: str) -> dict[str, str]:
    return {"filename": filename, "document_type": document_type, **more}


def encoded(values: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def create(base_url: str, person: dict[str, str], length: int, values: dict[str, str] | None = None,
           **headers: str) -> httpx.Response:
    return httpx.post(f"{base_url}/v1/uploads", headers=auth(person) | TUS | {
        "Upload-Length": str(length), "Upload-Metadata": encoded(values or metadata())} | headers)


def send(url: str, person: dict[str, str], offset: int, chunk: bytes,
         **headers: str) -> httpx.Response:
    return httpx.patch(url, content=chunk, headers=auth(person) | TUS | {
        "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"} | headers)


def where(url: str, person: dict[str, str]) -> httpx.Response:
    return httpx.head(url, headers=auth(person) | TUS)


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == PROBLEM_TYPES + code, body
    return body


def stored_files(container: Any) -> dict[str, bytes]:
    root = Path(container.settings.data_dir) / "files"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def upload_id(url: str) -> uuid.UUID:
    return uuid.UUID(url.rstrip("/").rsplit("/", 1)[1])


# ---- the whole journey -----------------------------------------------------------------------

def test_the_server_tells_a_tus_client_what_it_supports(base_url):
    response = httpx.options(f"{base_url}/v1/uploads")
    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation", "termination", "checksum", "expiration"}
    assert response.headers["tus-max-size"] == str(2 * MB)
    assert set(response.headers["tus-checksum-algorithm"].split(",")) == {"sha1", "sha256", "md5"}


def test_a_patient_uploads_a_pdf_in_chunks_and_it_is_stored_encrypted(base_url, sign_up, claims,
                                                                        container, uploads):
    ada = sign_up()
    uploader = tus(base_url, ada).uploader(file_stream=io.BytesIO(PDF_BYTES), chunk_size=CHUNK,
                                           metadata=metadata(), upload_checksum=True)
    uploader.upload()

    head = where(uploader.url, ada)
    assert head.status_code == 200
    assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(PDF_BYTES))
    assert head.headers["cache-control"] == "no-store"
    assert head.headers["upload-metadata"] == encoded(metadata())
    [done] = claims.received
    assert done.upload_id == upload_id(uploader.url)
    assert (done.owner_id, done.patient_id) == (uuid.UUID(ada["account_id"]),) * 2
    assert (done.filename, done.document_type) == ("referral.pdf", "referral_letter")
    assert (done.content_type, done.size) == ("application/pdf", len(PDF_BYTES))
    assert done.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    assert done.appointment_id is None and done.replaces is None
    # At rest: one sealed object, no part left, no plaintext anywhere; it opens back whole.
    files = stored_files(container)
    assert list(files) == [done.storage_key]
    assert PDF_BYTES[:64] not in files[done.storage_key]
    assert uploads.storage.get(done.storage_key) == PDF_BYTES


def test_an_interrupted_upload_resumes_where_the_server_says(base_url, sign_up, claims, container):
    ada = sign_up()
    first = tus(base_url, ada).uploader(file_stream=io.BytesIO(PDF_BYTES), chunk_size=CHUNK,
                                        metadata=metadata())
    first.upload(stop_at=2 * CHUNK)  # the phone lost its connection here
    assert int(where(first.url, ada).headers["upload-offset"]) == 2 * CHUNK
    assert not claims.received
    # What is stored meanwhile is sealed parts, never the plaintext.
    assert all(PDF_BYTES[:64] not in sealed for sealed in stored_files(container).values())

    again = tus(base_url, ada).uploader(file_stream=io.BytesIO(PDF_BYTES), chunk_size=CHUNK,
                                        url=first.url)
    assert again.offset == 2 * CHUNK  # asked the server (HEAD), not its own memory
    again.upload()
    [done] = claims.received
    assert done.sha256 == hashlib.sha256(PDF_BYTES).hexdigest()


def test_a_chunk_cut_off_mid_way_keeps_the_bytes_that_arrived(base_url, sign_up, claims):
    ada = sign_up()
    url = base_url + create(base_url, ada, len(PDF_BYTES)).headers["location"]
    half = 100_000
    host, port = base_url.removeprefix("http://").split(":")
    request = (f"PATCH {url.removeprefix(base_url)} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Authorization: {ada['Authorization']}\r\nTus-Resumable: 1.0.0\r\n"
               "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
               f"Content-Length: {len(PDF_BYTES)}\r\n\r\n").encode()
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(request + PDF_BYTES[:half])
    assert eventually(lambda: where(url, ada).headers.get("upload-offset") == str(half))

    assert send(url, ada, half, PDF_BYTES[half:]).status_code == 204
    assert claims.received[0].sha256 == hashlib.sha256(PDF_BYTES).hexdigest()


# ---- checksums and offsets -------------------------------------------------------------------

def test_a_chunk_whose_checksum_does_not_match_is_discarded(base_url, sign_up, claims, container):
    ada = sign_up()
    url = base_url + create(base_url, ada, len(PDF_BYTES)).headers["location"]
    wrong = base64.b64encode(hashlib.sha256(b"something else").digest()).decode()
    refused = send(url, ada, 0, PDF_BYTES[:CHUNK], **{"Upload-Checksum": f"sha256 {wrong}"})
    problem(refused, 460, "checksum-mismatch")
    assert where(url, ada).headers["upload-offset"] == "0"
    assert stored_files(container) == {}  # the chunk's parts were deleted

    for algorithm, offset, end in (("sha256", 0, CHUNK), ("md5", CHUNK, len(PDF_BYTES))):
        digest = base64.b64encode(hashlib.new(algorithm, PDF_BYTES[offset:end]).digest()).decode()
        accepted = send(url, ada, offset, PDF_BYTES[offset:end],
                        **{"Upload-Checksum": f"{algorithm} {digest}"})
        assert accepted.status_code == 204, accepted.text
        assert accepted.headers["upload-offset"] == str(end)
    assert len(claims.received) == 1

    unknown = send(base_url + create(base_url, ada, 10).headers["location"], ada, 0, b"x",
                   **{"Upload-Checksum": "crc32 AAAA"})
    problem(unknown, 400, "checksum-algorithm-unsupported")


def test_a_chunk_at_the_wrong_offset_is_refused_with_the_servers_offset(base_url, sign_up):
    ada = sign_up()
    url = base_url + create(base_url, ada, len(PDF_BYTES)).headers["location"]
    assert send(url, ada, 0, PDF_BYTES[:CHUNK]).status_code == 204
    stale = send(url, ada, 0, PDF_BYTES[:CHUNK])
    problem(stale, 409, "offset-mismatch")
    assert stale.headers["upload-offset"] == str(CHUNK)
    not_a_chunk = httpx.patch(url, content=b"x", headers=auth(ada) | TUS | {
        "Upload-Offset": str(CHUNK), "Content-Type": "application/json"})
    problem(not_a_chunk, 415, "offset-octet-stream-required")
    past_the_end = send(url, ada, CHUNK, PDF_BYTES[CHUNK:] + b"more than declared")
    problem(past_the_end, 413, "too-large")
    assert where(url, ada).headers["upload-offset"] == str(CHUNK)


# ---- what is taken -----------------------------------------------------------------------------

def test_the_type_comes_from_the_content_not_the_file_name(base_url, sign_up, claims):
    ada = sign_up()
    uploader = tus(base_url, ada).uploader(file_stream=io.BytesIO(PNG_BYTES),
                                           metadata=metadata("scan.pdf", "photo"))
    uploader.upload()
    [done] = claims.received
    assert (done.filename, done.content_type) == ("scan.pdf", "image/png")


def test_a_file_we_do_not_take_is_refused_as_soon_as_its_first_chunk_lands(
        base_url, sign_up, claims, container):
    ada = sign_up()
    text = b"Dear doctor, my knee hurts.\n" * 4000
    uploader = tus(base_url, ada).uploader(file_stream=io.BytesIO(text), chunk_size=CHUNK,
                                           metadata=metadata("letter.pdf"))
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 415
    assert uploader.offset == 0  # refused on the first chunk, before any other was sent
    assert "PDF, JPEG, PNG or HEIC" in refused.value.response_content.decode()
    assert where(uploader.url, ada).status_code == 415  # and it stays refused
    problem(send(uploader.url, ada, 0, text[:CHUNK]), 415, "unsupported-type")
    assert stored_files(container) == {} and not claims.received


def test_a_file_over_every_limit_is_refused_at_creation_naming_the_limit(base_url, sign_up):
    ada = sign_up()
    uploader = tus(base_url, ada).uploader(file_stream=io.BytesIO(b"%PDF-" + bytes(2 * MB)),
                                           metadata=metadata())
    with pytest.raises(TusCommunicationError) as refused:
        uploader.upload()
    assert refused.value.status_code == 413
    assert "2 MB" in refused.value.response_content.decode()


def test_a_photo_over_the_photo_limit_is_refused_at_its_first_bytes(base_url, sign_up, container):
    ada = sign_up()
    photo = PNG_BYTES + bytes(MB)  # a PDF this size would be taken; a photo is not
    url = base_url + create(base_url, ada, len(photo), metadata("knee.png", "photo")).headers[
        "location"]
    body = problem(send(url, ada, 0, photo[:CHUNK]), 413, "too-large")
    assert "the largest PNG we take is 1 MB" in body["detail"]
    assert stored_files(container) == {}
    assert where(url, ada).status_code == 413  # it stays refused, for the same reason
    again = problem(send(url, ada, 0, photo[:CHUNK]), 413, "too-large")
    assert again["detail"] == body["detail"]


def test_metadata_is_checked_field_by_field_all_at_once(base_url, sign_up):
    ada = sign_up()
    response = create(base_url, ada, 100, {"document_type": "passport",
                                           "appointment_id": "tomorrow"})
    body = problem(response, 422, "invalid-input")
    fields = {e["field"]: e["message"] for e in body["errors"]}
    assert set(fields) == {"filename", "document_type", "appointment_id"}
    assert "'passport'" in fields["document_type"] and "id_document" in fields["document_type"]
    missing = httpx.post(f"{base_url}/v1/uploads", headers=auth(ada) | TUS)
    assert {e["field"] for e in problem(missing, 422, "invalid-input")["errors"]} == {
        "Upload-Length", "filename", "document_type"}


# ---- who, and how often -----------------------------------------------------------------------

def test_only_the_uploader_can_see_continue_or_cancel_an_upload(base_url, sign_up, staff_member):
    ada, bob = sign_up(), sign_up(given_name="Bob")
    url = base_url + create(base_url, ada, len(PDF_BYTES)).headers["location"]
    hidden = where(url, bob)  # HEAD: the status and headers, no body
    assert hidden.status_code == 404 and hidden.headers["tus-resumable"] == "1.0.0"
    problem(send(url, bob, 0, PDF_BYTES[:CHUNK]), 404, "not-found")
    problem(httpx.delete(url, headers=auth(bob) | TUS), 404, "not-found")
    assert where(url, ada).status_code == 200
    anonymous = httpx.head(url, headers=TUS)
    assert anonymous.status_code == 401 and anonymous.headers["tus-resumable"] == "1.0.0"
    problem(create(base_url, staff_member("reception"), 100), 403, "forbidden")
    # Uploading for someone else needs the documents context's check (a proxy's scope).
    problem(create(base_url, bob, 100, metadata(patient_id=ada["account_id"])), 403, "forbidden")


def test_a_retried_creation_with_the_same_key_returns_the_same_upload(base_url, sign_up):
    ada = sign_up()
    key = {"Idempotency-Key": f"upload-{uuid.uuid4()}"}
    first = create(base_url, ada, len(PDF_BYTES), **key)
    again = create(base_url, ada, len(PDF_BYTES), **key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.headers["location"] == again.headers["location"]
    other = create(base_url, ada, len(PDF_BYTES), metadata("other.pdf"), **key)
    problem(other, 409, "idempotency-key-reused")
    assert create(base_url, ada, len(PDF_BYTES)).headers["location"] != first.headers["location"]


def test_every_request_names_the_protocol_version(base_url, sign_up):
    ada = sign_up()
    refused = httpx.post(f"{base_url}/v1/uploads", headers=auth(ada) | {
        "Tus-Resumable": "0.2.2", "Upload-Length": "10", "Upload-Metadata": encoded(metadata())})
    problem(refused, 412, "tus-version-unsupported")
    assert refused.headers["tus-version"] == "1.0.0"
    created = create(base_url, ada, 10)
    assert created.status_code == 201 and created.headers["tus-resumable"] == "1.0.0"
    assert "upload-expires" in created.headers


# ---- ending ----------------------------------------------------------------------------------

def test_a_cancelled_upload_is_gone_with_everything_it_stored(base_url, sign_up, container):
    ada = sign_up()
    uploader = tus(base_url, ada).uploader(file_stream=io.BytesIO(PDF_BYTES), chunk_size=CHUNK,
                                           metadata=metadata())
    uploader.upload(stop_at=CHUNK)
    assert stored_files(container)
    cancelled = httpx.delete(uploader.url, headers=auth(ada) | TUS)
    assert cancelled.status_code == 204 and cancelled.headers["tus-resumable"] == "1.0.0"
    assert stored_files(container) == {}
    assert where(uploader.url, ada).status_code == 404


def test_a_claim_refused_at_completion_is_answered_and_can_be_retried(base_url, sign_up, claims,
                                                                       container):
    ada = sign_up()
    claims.refusal = Forbidden("Consent to the review of your documents is needed first.")
    url = base_url + create(base_url, ada, len(PDF_BYTES)).headers["location"]
    assert send(url, ada, 0, PDF_BYTES[:CHUNK]).status_code == 204
    last = PDF_BYTES[CHUNK:]
    problem(send(url, ada, CHUNK, last), 403, "forbidden")
    assert where(url, ada).status_code == 403  # complete, not yet claimed: HEAD tries again
    assert not claims.received

    claims.refusal = None  # the patient gave consent; the app retries the same last chunk
    retried = send(url, ada, CHUNK, last)
    assert retried.status_code == 204 and retried.headers["upload-offset"] == str(len(PDF_BYTES))
    assert len(claims.received) == 1
    assert where(url, ada).status_code == 200
    problem(send(url, ada, CHUNK, b"x" * len(last)), 409, "offset-mismatch")  # not the same bytes
    problem(httpx.delete(url, headers=auth(ada) | TUS), 409, "conflict")  # a document now
    assert len(claims.received) == 1 and len(stored_files(container)) == 1


def test_an_infected_file_is_deleted_and_the_upload_refused(base_url, sign_up, claims, uploads,
                                                            container):
    uploads.scanner = CommandScanner([sys.executable, "-c", (
        "import sys; infected = b'EICAR' in sys.stdin.buffer.read();"
        " print('stream: Eicar-Test-Signature FOUND' if infected else 'stream: OK');"
        " sys.exit(1 if infected else 0)")])
    ada = sign_up()
    infected = PDF_BYTES + b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!"
    url = base_url + create(base_url, ada, len(infected)).headers["location"]
    problem(send(url, ada, 0, infected), 422, "malware-found")
    assert where(url, ada).status_code == 422
    problem(send(url, ada, 0, infected), 422, "malware-found")
    assert stored_files(container) == {} and not claims.received

    clean = tus(base_url, ada).uploader(file_stream=io.BytesIO(PDF_BYTES), metadata=metadata())
    clean.upload()
    assert len(claims.received) == 1


def test_a_scanner_that_cannot_answer_leaves_the_upload_to_finish_later(base_url, sign_up, claims,
                                                                       uploads):
    uploads.scanner = CommandScanner([sys.executable, "-c", "import sys; sys.exit(2)"])
    ada = sign_up()
    url = base_url + create(base_url, ada, len(PDF_BYTES)).headers["location"]
    unavailable = send(url, ada, 0, PDF_BYTES)
    problem(unavailable, 503, "scanner-unavailable")
    assert unavailable.headers["retry-after"] == "60"
    uploads.scanner = CommandScanner([sys.executable, "-c", "import sys; sys.exit(0)"])
    assert where(url, ada).status_code == 200
    assert len(claims.received) == 1


def test_an_abandoned_upload_expires_and_is_purged(base_url, client, sign_up, clock, container,
                                                   uploads):
    ada = sign_up()
    uploader = tus(base_url, ada).uploader(file_stream=io.BytesIO(PDF_BYTES), chunk_size=CHUNK,
                                           metadata=metadata())
    uploader.upload(stop_at=CHUNK)
    clock.now += timedelta(hours=23)
    assert uploads.purge_expired(clock.now) == 0
    assert stored_files(container)
    clock.now += timedelta(hours=1, minutes=1)
    ada = {**ada, **sign_in(client, ada["email"])}  # a day later, a new session
    problem(send(uploader.url, ada, CHUNK, PDF_BYTES[CHUNK:2 * CHUNK]), 410, "upload-expired")
    assert uploads.purge_expired(clock.now) == 1
    assert stored_files(container) == {}
    assert where(uploader.url, ada).status_code == 404


def test_files_are_sealed_with_a_key_of_their_own(container, uploads):
    assert isinstance(uploads.storage, EncryptedStorage)
    uploads.storage.put("files/example", b"plain words")
    sealed = stored_files(container)["files/example"]
    assert b"plain words" not in sealed
    assert uploads.storage.get("files/example") == b"plain words"
