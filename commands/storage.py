"""File storage for uploads and documents: the local filesystem or an S3-compatible bucket,
always behind `EncryptedStorage`, so that what a disk or a bucket holds is ciphertext.

Each object is sealed with AES-256-GCM under a key derived (HKDF-SHA256, info
"carebridge-files") from the configured encryption key, with a random nonce per object and the
object's key as authenticated data: an object copied to another key does not decrypt.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any, Protocol
from uuid import uuid4

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

HKDF_INFO = b"carebridge-files"
FORMAT = b"\x01"  # the sealed layout: format byte, 12-byte nonce, ciphertext and tag
NONCE_BYTES = 12
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class ObjectMissing(LookupError):
    """No object is stored under this key."""


class ObjectDamaged(Exception):
    """The stored object does not decrypt under its key: altered, moved or of another key."""


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


def checked_key(key: str) -> str:
    """Object keys are our own identifiers ("parts/<upload id>/<n>"): never a client's file
    name, never a path that could leave the storage root."""
    if len(key) > 400 or not _KEY.match(key) or ".." in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class LocalStorage:
    """Objects as files under a root directory (written atomically: a reader never sees half
    an object)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{uuid4().hex}.tmp")
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectMissing(key) from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Storage:
    """Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...) through boto3."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, region: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 prefix: str = "") -> None:
        import boto3
        from botocore.config import Config

        self.bucket, self.prefix = bucket, prefix
        self.client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 5, "mode": "standard"},
                          s3={"addressing_style": "path"}))

    def _key(self, key: str) -> str:
        return self.prefix + checked_key(key)

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectMissing(key) from None
            raise
        body: bytes = answer["Body"].read()
        return body

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise
        return True


def file_key(encryption_key: bytes) -> bytes:
    """The files' own AES-256 key, derived from the configured key (never used directly, so
    files and event payloads never share a key)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=HKDF_INFO).derive(encryption_key)


class EncryptedStorage:
    """Seals every object before it reaches the storage underneath, opens it on the way back."""

    def __init__(self, inner: Storage, encryption_key: bytes) -> None:
        self.inner = inner
        self._aead = AESGCM(file_key(encryption_key))

    @classmethod
    def from_base64_key(cls, inner: Storage, encryption_key: str) -> EncryptedStorage:
        return cls(inner, base64.b64decode(encryption_key, validate=True))

    def seal(self, key: str, data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return FORMAT + nonce + self._aead.encrypt(nonce, data, key.encode())

    def open(self, key: str, sealed: bytes) -> bytes:
        if sealed[:1] != FORMAT or len(sealed) < 1 + NONCE_BYTES + 16:
            raise ObjectDamaged(key)
        nonce, ciphertext = sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, key.encode())
        except InvalidTag:
            raise ObjectDamaged(key) from None

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, self.seal(key, data))

    def get(self, key: str) -> bytes:
        return self.open(key, self.inner.get(key))

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)


def storage_from(settings: Any, encryption_key: str) -> EncryptedStorage:
    """The configured backend (`upload_storage`), sealed with the configured key."""
    inner: Storage
    if settings.upload_storage == "s3":
        if not settings.upload_s3_bucket:
            raise ValueError("upload_storage=s3 needs CAREBRIDGE_UPLOAD_S3_BUCKET")
        secret = settings.upload_s3_secret_access_key
        inner = S3Storage(settings.upload_s3_bucket, settings.upload_s3_endpoint_url,
                          settings.upload_s3_region, settings.upload_s3_access_key_id,
                          secret.get_secret_value() if secret else None)
    else:
        inner = LocalStorage(settings.upload_dir or Path(settings.data_dir) / "files")
    return EncryptedStorage.from_base64_key(inner, encryption_key)
