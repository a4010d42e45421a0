"""File storage and the upload service below HTTP: sealing at rest, the local and S3 backends
(S3 against moto's server on 127.0.0.1, never AWS), content sniffing, the malware scanner
command, and an upload assembled from many parts on S3."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from commands import uploads as uploads_module
from commands.storage import (
    EncryptedStorage,
    LocalStorage,
    ObjectDamaged,
    ObjectMissing,
    S3Storage,
    checked_key,
)
from commands.uploads import (
    HEIC_BRANDS,
    CommandScanner,
    CompletedUpload,
    NoScanner,
    ScannerUnavailable,
    Uploads,
    sniff,
    uploads_from,
)
from domain.access import Actor
from domain.identity import Role
from tests.conftest import ENCRYPTION_KEY

KEY = secrets.token_bytes(32)
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
BUCKET = "carebridge-files"


# ---- sealing ---------------------------------------------------------------------------------

def test_an_object_is_stored_sealed_and_opens_back(tmp_path: Path):
    disk = LocalStorage(tmp_path)
    files = EncryptedStorage(disk, KEY)
    files.put("files/a", b"Ada's referral letter")
    sealed = disk.get("files/a")
    assert b"referral" not in sealed
    assert files.get("files/a") == b"Ada's referral letter"
    files.put("files/b", b"Ada's referral letter")
    assert disk.get("files/b")[1:13] != sealed[1:13], "every object has a nonce of its own"
    assert files.exists("files/a") and not files.exists("files/c")
    files.delete("files/a")
    with pytest.raises(ObjectMissing):
        files.get("files/a")


def test_a_sealed_object_opens_only_under_its_own_key_and_unaltered(tmp_path: Path):
    disk = LocalStorage(tmp_path)
    files = EncryptedStorage(disk, KEY)
    files.put("files/a", b"test result")
    disk.put("files/moved", disk.get("files/a"))
    with pytest.raises(ObjectDamaged):
        files.get("files/moved")  # the object key is authenticated data
    altered = bytearray(disk.get("files/a"))
    altered[-1] ^= 1
    disk.put("files/altered", bytes(altered))
    with pytest.raises(ObjectDamaged):
        EncryptedStorage(disk, KEY).open("files/altered", bytes(altered))
    with pytest.raises(ObjectDamaged):
        EncryptedStorage(disk, secrets.token_bytes(32)).get("files/a")


def test_object_keys_never_leave_the_storage_root(tmp_path: Path):
    disk = LocalStorage(tmp_path / "root")
    for key in ("../outside", "/etc/passwd", "files/../../x", "files//a", "", "a b"):
        with pytest.raises(ValueError):
            disk.put(key, b"x")
    assert checked_key("parts/0f1e/abc.1") == "parts/0f1e/abc.1"


# ---- S3 against moto ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> S3Storage:
    storage = S3Storage(BUCKET, s3_endpoint, "eu-west-2", "testing", "testing",
                        prefix=f"{uuid4().hex}/")
    with contextlib.suppress(storage.client.exceptions.BucketAlreadyOwnedByYou):
        storage.client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={
            "LocationConstraint": "eu-west-2"})
    return storage


def test_the_s3_backend_stores_reads_and_deletes(bucket: S3Storage):
    bucket.put("files/a", b"bytes")
    assert bucket.exists("files/a") and bucket.get("files/a") == b"bytes"
    bucket.delete("files/a")
    assert not bucket.exists("files/a")
    with pytest.raises(ObjectMissing):
        bucket.get("files/a")


def test_what_the_bucket_holds_is_sealed(bucket: S3Storage):
    files = EncryptedStorage(bucket, KEY)
    files.put("files/photo", b"\xff\xd8\xff a photo of an insurance card")
    raw = bucket.client.get_object(Bucket=BUCKET, Key=bucket.prefix + "files/photo")["Body"].read()
    assert b"insurance card" not in raw
    assert files.get("files/photo").endswith(b"insurance card")


def test_an_upload_on_s3_is_assembled_from_its_sealed_parts(container: Any, bucket: S3Storage,
                                                            monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(uploads_module, "PART_BYTES", 50_000)  # several parts per chunk
    uploads = uploads_from(container.settings, container.identity.factory.datastore,
                           ENCRYPTION_KEY)
    uploads.storage = EncryptedStorage.from_base64_key(bucket, ENCRYPTION_KEY)
    claimed: list[CompletedUpload] = []
    uploads.on_complete = claimed.append
    patient = Actor(uuid4(), Role.PATIENT)
    data = b"%PDF-1.4\n" + secrets.token_bytes(180_000)
    metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in (
        ("filename", "results.pdf"), ("document_type", "test_result")))
    upload, made = uploads.create(patient, str(len(data)), metadata, None, NOW)
    assert made and upload.status == "receiving"

    for start in range(0, len(data), 70_000):  # chunks of 70 kB in pieces of 8 kB
        appending = uploads.begin_append(patient, upload.upload_id, str(start), None, NOW)
        chunk = data[start:start + 70_000]
        for piece in range(0, len(chunk), 8192):
            if appending.feed(chunk[piece:piece + 8192]):
                appending.flush(NOW)
        upload = appending.finish(NOW)

    assert upload.status == "claimed" and upload.offset == len(data)
    [done] = claimed
    assert (done.content_type, done.sha256) == ("application/pdf",
                                                hashlib.sha256(data).hexdigest())
    listed = bucket.client.list_objects_v2(Bucket=BUCKET, Prefix=bucket.prefix)["Contents"]
    assert [o["Key"] for o in listed] == [bucket.prefix + done.storage_key]  # parts are gone
    assert uploads.storage.get(done.storage_key) == data


# ---- sniffing and scanning ---------------------------------------------------------------------

@pytest.mark.parametrize(("head", "expected"), [
    (b"%PDF-1.7\n%\xe2\xe3", "application/pdf"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
    *[(b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00", "image/heic") for brand in HEIC_BRANDS],
    (b"\x00\x00\x00\x18ftypisom\x00\x00", None),  # an MP4 video
    (b"\x00\x00\x00\x18ftypavif\x00\x00", None),
    (b"GIF89a\x01\x00\x01\x00", None),
    (b"PK\x03\x04 a zip file", None),
    (b"Dear doctor,", None),
    (b"%PD", None),
])
def test_the_type_is_read_from_the_first_bytes(head: bytes, expected: str | None):
    assert sniff(head) == expected


def test_the_scanner_command_reads_the_file_on_standard_input():
    script = ("import sys; infected = b'EICAR' in sys.stdin.buffer.read();"
              " print('stdin: Eicar-Signature FOUND' if infected else 'stdin: OK');"
              " sys.exit(1 if infected else 0)")
    scanner = CommandScanner([sys.executable, "-c", script])
    assert scanner.scan(b"%PDF- clean").clean
    verdict = scanner.scan(b"%PDF- EICAR")
    assert not verdict.clean and "FOUND" in verdict.detail
    assert NoScanner().scan(b"anything").clean


@pytest.mark.parametrize("argv", [
    [sys.executable, "-c", "import sys; sys.exit(2)"],  # clamdscan: an error, not a verdict
    ["/nonexistent/clamdscan", "-"],
])
def test_a_scanner_that_cannot_check_says_so(argv: list[str]):
    with pytest.raises(ScannerUnavailable):
        CommandScanner(argv).scan(b"%PDF-")


def test_the_settings_choose_the_backend_limits_and_scanner(container: Any, tmp_path: Path):
    uploads = uploads_from(container.settings.model_copy(update={
        "upload_scanner_command": [sys.executable, "-c", "pass"], "upload_max_pdf_mb": 30,
        "upload_dir": tmp_path / "elsewhere"}), container.identity.factory.datastore,
        ENCRYPTION_KEY)
    assert isinstance(uploads, Uploads) and isinstance(uploads.scanner, CommandScanner)
    assert uploads.limits.largest == 30 * 1024 * 1024
    assert isinstance(uploads.storage, EncryptedStorage)
    uploads.storage.put("files/x", b"sealed")
    assert (tmp_path / "elsewhere" / "files" / "x").is_file()
