"""Resumable uploads (tus 1.0): creating an upload, receiving its chunks, checking and storing
the whole file, and handing it to whoever claims it (the documents context).

State lives in `carebridge.uploads`; bytes only in file storage, sealed (commands/storage.py):
each chunk as it streams in becomes encrypted parts of at most PART_BYTES, committed with the
new offset in one UPDATE only when the chunk arrived whole and its checksum (if sent) matched.
The type is decided from the first bytes (never the file name), and a file of a type we do
not take is refused as soon as they arrive. On the last chunk the parts are assembled in
memory, sniffed again, hashed, scanned for malware, stored as one object, and offered to
`on_complete`. Every step after the last byte is safe to repeat: a HEAD or a retried final
PATCH re-runs whatever did not finish (a scanner that was down, a claim refused for want of
consent).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.postgres import PostgresDatastore
from psycopg.types.json import Jsonb

from commands.idempotency import IdempotencyKey, IdempotencyKeyReused
from commands.storage import ObjectMissing, Storage, storage_from
from domain.access import Action, Actor, PatientResource, authorise, authorise_ever
from domain.errors import CareBridgeError, Conflict, FieldError, InvalidInput, NotFound

log = logging.getLogger("carebridge.uploads")

UPLOADS = "carebridge.uploads"
DOCUMENT_TYPES = ("id_document", "referral_letter", "insurance_card", "test_result", "photo",
                  "other")
PDF, JPEG, PNG, HEIC = "application/pdf", "image/jpeg", "image/png", "image/heic"
HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"})
SNIFF_BYTES = 12  # enough for every signature below (HEIC's brand ends at byte 12)
PART_BYTES = 4 * 1024 * 1024
CHECKSUM_ALGORITHMS = ("sha1", "sha256", "md5")
MB = 1024 * 1024
MAX_FILENAME = 255


def sniff(head: bytes) -> str | None:
    """The content type the first bytes show, or None for anything we do not take."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] in HEIC_BRANDS:
        return HEIC  # an ISO BMFF file whose major brand is HEIF/HEVC
    return None


# ---- refusals ---------------------------------------------------------------------------------

class UnsupportedType(CareBridgeError):
    code = "unsupported-type"
    title = "This kind of file cannot be uploaded"


class TooLarge(CareBridgeError):
    code = "too-large"
    title = "This file is too large"


class ChecksumMismatch(CareBridgeError):
    code = "checksum-mismatch"
    title = "The chunk did not arrive intact"


class ChecksumAlgorithmUnsupported(CareBridgeError):
    code = "checksum-algorithm-unsupported"
    title = "This checksum algorithm is not supported"


class OffsetMismatch(Conflict):
    code = "offset-mismatch"
    title = "The upload is at another offset"


class MalwareFound(CareBridgeError):
    code = "malware-found"
    title = "The file was refused by the malware check"


class UploadExpired(CareBridgeError):
    code = "upload-expired"
    title = "This upload has expired"


class ScannerUnavailable(CareBridgeError):
    code = "scanner-unavailable"
    title = "The file could not be checked yet"


def _plain_size(limit: int) -> str:
    return f"{limit // MB} MB" if limit % MB == 0 else f"{limit} bytes"


# ---- malware scanning -------------------------------------------------------------------------

@dataclass(frozen=True)
class ScanResult:
    clean: bool
    detail: str = ""


class Scanner(Protocol):
    def scan(self, data: bytes) -> ScanResult: ...


class NoScanner:
    """The default: every file passes (configure `upload_scanner_command` in production)."""

    def scan(self, data: bytes) -> ScanResult:
        return ScanResult(True, "not scanned")


class CommandScanner:
    """Runs a scanner command with the file on standard input, as `clamdscan -` does:
    exit 0 clean, 1 infected, anything else (or no answer in time) means it could not check."""

    def __init__(self, argv: Sequence[str], timeout_seconds: float = 60.0) -> None:
        if not argv:
            raise ValueError("the scanner command is empty")
        self.argv, self.timeout_seconds = list(argv), timeout_seconds

    def scan(self, data: bytes) -> ScanResult:
        try:
            # The command comes from configuration, never from a request.
            done = subprocess.run(self.argv, input=data, capture_output=True,  # noqa: S603
                                  timeout=self.timeout_seconds, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            log.error("malware scanner did not run: %s", type(error).__name__)
            raise ScannerUnavailable("Your file could not be checked just now. Try again in a "
                                     "few minutes; what you sent is kept.", retry_after=60) from None
        detail = done.stdout.decode(errors="replace").strip()[-200:]
        if done.returncode == 0:
            return ScanResult(True, detail)
        if done.returncode == 1:
            return ScanResult(False, detail)
        log.error("malware scanner failed with exit status %s", done.returncode)
        raise ScannerUnavailable("Your file could not be checked just now. Try again in a few "
                                 "minutes; what you sent is kept.", retry_after=60)


# ---- what an upload is ------------------------------------------------------------------------

@dataclass(frozen=True)
class UploadLimits:
    max_bytes: dict[str, int]  # by sniffed content type
    expiry: timedelta  # after the last activity, an unfinished upload is abandoned

    @property
    def largest(self) -> int:
        return max(self.max_bytes.values())


@dataclass(frozen=True)
class UploadRequest:
    """A creation request, read and checked (every field at once)."""

    length: int
    metadata: str  # as sent: HEAD echoes it
    filename: str
    document_type: str
    patient_id: UUID | None
    appointment_id: UUID | None
    replaces: UUID | None


@dataclass(frozen=True)
class CompletedUpload:
    """What `on_complete` receives: a whole, checked, stored file."""

    upload_id: UUID
    owner_id: UUID
    patient_id: UUID
    filename: str
    document_type: str
    content_type: str
    size: int
    sha256: str
    storage_key: str
    appointment_id: UUID | None
    replaces: UUID | None
    at: datetime


@dataclass(frozen=True)
class Upload:
    """One row of carebridge.uploads."""

    upload_id: UUID
    owner_id: UUID
    patient_id: UUID
    fingerprint: str
    length: int
    offset: int
    metadata: str
    filename: str
    document_type: str
    appointment_id: UUID | None
    replaces: UUID | None
    status: str  # receiving | complete | claimed | rejected | terminated
    rejection: str | None
    content_type: str | None
    sha256: str | None
    storage_key: str | None
    parts: list[dict[str, Any]]
    expires_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Upload:
        return cls(row["upload_id"], row["owner_id"], row["patient_id"], row["fingerprint"],
                   row["length"], row["upload_offset"], row["metadata"], row["filename"],
                   row["document_type"], row["appointment_id"], row["replaces"], row["status"],
                   row["rejection"], row["content_type"], row["sha256"], row["storage_key"],
                   list(row["parts"]), row["expires_at"])

    @property
    def location(self) -> str:
        return f"/v1/uploads/{self.upload_id}"

    @property
    def received_all(self) -> bool:
        return self.offset == self.length


def parse_metadata(header: str) -> tuple[dict[str, str], list[FieldError]]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (a key alone has no value)."""
    values: dict[str, str] = {}
    errors: list[FieldError] = []
    for pair in filter(None, (p.strip() for p in header.split(","))):
        key, _, encoded = pair.partition(" ")
        try:
            values[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            errors.append(FieldError("Upload-Metadata", f"the value of '{key[:40]}' is not "
                                     "base64 of UTF-8 text"))
    return values, errors


def read_request(length: str | None, metadata: str | None) -> UploadRequest:
    """Reads Upload-Length and Upload-Metadata; refuses every wrong field at once."""
    errors: list[FieldError] = []
    size = 0
    if length is None:
        errors.append(FieldError("Upload-Length", "is required (the file's size in bytes)"))
    elif not (length.isascii() and length.isdigit()) or int(length) == 0:
        errors.append(FieldError("Upload-Length", "must be the file's size in bytes, above 0"))
    else:
        size = int(length)
    values, metadata_errors = parse_metadata(metadata or "")
    errors += metadata_errors
    filename = values.get("filename", "").strip()
    if not filename:
        errors.append(FieldError("filename", "is required in Upload-Metadata"))
    elif len(filename) > MAX_FILENAME or any(ord(c) < 32 or ord(c) == 127 for c in filename):
        errors.append(FieldError("filename", f"must be at most {MAX_FILENAME} characters, "
                                 "without control characters"))
    document_type = values.get("document_type", "")
    if document_type not in DOCUMENT_TYPES:
        named = f"'{document_type[:40]}' is not a document type we take" if document_type \
            else "is required in Upload-Metadata"
        errors.append(FieldError("document_type", f"{named}; use one of "
                                 + ", ".join(DOCUMENT_TYPES)))
    ids: dict[str, UUID | None] = {}
    for name in ("patient_id", "appointment_id", "replaces"):
        raw = values.get(name)
        try:
            ids[name] = UUID(raw) if raw else None
        except ValueError:
            ids[name] = None
            errors.append(FieldError(name, "must be an id (a UUID)"))
    if errors:
        raise InvalidInput(errors)
    return UploadRequest(size, metadata or "", filename, document_type, ids["patient_id"],
                         ids["appointment_id"], ids["replaces"])


def read_checksum(header: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum: `<algorithm> <base64 digest>`."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() not in CHECKSUM_ALGORITHMS:
        raise ChecksumAlgorithmUnsupported(
            f"Send Upload-Checksum with one of {', '.join(CHECKSUM_ALGORITHMS)}.")
    try:
        return algorithm.lower(), base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise InvalidInput([FieldError("Upload-Checksum", "the digest must be base64")]) from None


def own_uploads_only(actor: Actor, patient_id: UUID, appointment_id: UUID | None,
                     replaces: UUID | None, at: datetime) -> object:
    """The creation check until the documents context wires its own (which also knows proxies,
    appointments and consent): patients upload for themselves."""
    authorise(actor, Action.DOCUMENTS_UPLOAD, PatientResource(patient_id))
    return None


# Before an upload is created: may this actor upload for this patient, to this appointment,
# replacing this document? Raises a domain error to refuse; what it returns is ignored.
CreationCheck = Callable[[Actor, UUID, UUID | None, UUID | None, datetime], object]
# A complete, checked, stored file: the claimer records it (a document) or raises a domain error,
# which is the answer to the request that completed it; a HEAD or a retried last chunk runs it
# again. What it returns is ignored.
Completion = Callable[[CompletedUpload], object]

_REJECTIONS: dict[str, tuple[type[CareBridgeError], str]] = {
    MalwareFound.code: (MalwareFound, "Our malware check refused this file, and it was deleted. "
                        "Check your device, then upload a clean copy."),
    UnsupportedType.code: (UnsupportedType, "This file is not a PDF, JPEG, PNG or HEIC image. "
                           "Upload a photo or a PDF of the document instead."),
    TooLarge.code: (TooLarge, "This file is larger than we take for its type."),
}


def rejection_error(upload: Upload, limits: UploadLimits) -> CareBridgeError:
    """The refusal a refused upload keeps answering with (HEAD, PATCH)."""
    if upload.rejection == TooLarge.code and upload.content_type in limits.max_bytes:
        return _too_large_for_type(upload, limits.max_bytes[upload.content_type])
    kind, detail = _REJECTIONS.get(upload.rejection or "", (Conflict, "This upload was "
                                                             "refused. Start a new one."))
    return kind(detail)


def _too_large_for_type(upload: Upload, limit: int) -> TooLarge:
    kind = (upload.content_type or "").split("/")[-1].upper()
    return TooLarge(f"This file is {_plain_size(upload.length)}; the largest {kind} we take is "
                    f"{_plain_size(limit)}.", limit=limit, content_type=upload.content_type)


# ---- the service ------------------------------------------------------------------------------

class Uploads:
    """The tus resource: its state in PostgreSQL, its bytes in (encrypted) storage."""

    def __init__(self, datastore: PostgresDatastore, storage: Storage, limits: UploadLimits,
                 scanner: Scanner | None = None) -> None:
        self.datastore, self.storage, self.limits = datastore, storage, limits
        self.scanner: Scanner = scanner or NoScanner()
        self.check_creation: CreationCheck = own_uploads_only
        self.on_complete: Completion | None = None

    # ---- creation --------------------------------------------------------------------------

    def create(self, actor: Actor, length: str | None, metadata: str | None,
               key: IdempotencyKey | None, now: datetime) -> tuple[Upload, bool]:
        """A new upload, or (same Idempotency-Key, same request) the one made before. Returns
        it and whether it was made now."""
        authorise_ever(actor, Action.DOCUMENTS_UPLOAD)
        wanted = read_request(length, metadata)
        if wanted.length > self.limits.largest:
            raise TooLarge(f"This file is {_plain_size(wanted.length)}; the largest file we take "
                           f"is {_plain_size(self.limits.largest)}.",
                           limit=self.limits.largest)
        fingerprint = hashlib.sha256(f"{wanted.length}\0{wanted.metadata}".encode()).hexdigest()
        if key is not None and (earlier := self._by_key(actor, key, fingerprint)) is not None:
            return earlier, False
        patient_id = wanted.patient_id or actor.account_id
        self.check_creation(actor, patient_id, wanted.appointment_id, wanted.replaces, now)
        upload_id = uuid4()
        with self.datastore.get_connection() as conn:
            inserted = conn.execute(
                f"INSERT INTO {UPLOADS} (upload_id, owner_id, patient_id, idempotency_key,"
                " fingerprint, length, metadata, filename, document_type, appointment_id,"
                " replaces, status, created_at, updated_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'receiving', %s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (upload_id, actor.account_id, patient_id, key.key if key else None, fingerprint,
                 wanted.length, wanted.metadata, wanted.filename, wanted.document_type,
                 wanted.appointment_id, wanted.replaces, now, now, now + self.limits.expiry),
            ).rowcount
        if not inserted and key is not None:  # the same key, created at the same moment
            earlier = self._by_key(actor, key, fingerprint)
            assert earlier is not None
            return earlier, False
        log.info("upload %s created by %s", upload_id, actor.ref)
        return self._load(upload_id), True

    def _by_key(self, actor: Actor, key: IdempotencyKey, fingerprint: str) -> Upload | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT * FROM {UPLOADS} WHERE owner_id = %s AND"
                               " idempotency_key = %s", (actor.account_id, key.key)).fetchone()
        if row is None:
            return None
        if row["fingerprint"] != fingerprint:
            raise IdempotencyKeyReused("This Idempotency-Key was already used for a different "
                                       "upload. Use a new key for a new upload.")
        return Upload.from_row(row)

    # ---- reading ---------------------------------------------------------------------------

    def _load(self, upload_id: UUID) -> Upload:
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT * FROM {UPLOADS} WHERE upload_id = %s",
                               (upload_id,)).fetchone()
        if row is None:
            raise NotFound("There is no such upload.")
        return Upload.from_row(row)

    def _owned(self, actor: Actor, upload_id: UUID) -> Upload:
        """The caller's own upload; anyone else's is not found (its existence is not told)."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(f"SELECT * FROM {UPLOADS} WHERE upload_id = %s AND owner_id = %s",
                               (upload_id, actor.account_id)).fetchone()
        if row is None or row["status"] == "terminated":
            raise NotFound("There is no such upload. Start a new one.")
        upload = Upload.from_row(row)
        if upload.status == "rejected":
            raise rejection_error(upload, self.limits)
        return upload

    def status(self, actor: Actor, upload_id: UUID, now: datetime) -> Upload:
        """Where the upload stands (HEAD). An upload whose last byte arrived but whose check
        or claim did not finish is finished now."""
        upload = self._owned(actor, upload_id)
        if upload.status == "receiving" and not upload.received_all:
            if upload.expires_at <= now:
                raise UploadExpired("This upload was left unfinished for too long and has "
                                    "expired. Start the upload again.")
            return upload
        return self.finish(upload, now)

    # ---- appending -------------------------------------------------------------------------

    def begin_append(self, actor: Actor, upload_id: UUID, offset: str | None,
                     checksum: str | None, now: datetime) -> Appending:
        """Checks a PATCH before its body is read: whose, whether alive, at which offset."""
        upload = self._owned(actor, upload_id)
        if offset is None or not (offset.isascii() and offset.isdigit()):
            raise InvalidInput([FieldError("Upload-Offset", "is required: the offset this "
                                           "chunk starts at (ask with HEAD)")])
        at = int(offset)
        expected = read_checksum(checksum)
        if upload.status in ("complete", "claimed"):
            if at > upload.length:
                raise self._offset_mismatch(upload)
            return Appending(self, upload, at, expected, replay=True)
        if upload.expires_at <= now:
            raise UploadExpired("This upload was left unfinished for too long and has expired. "
                                "Start the upload again.")
        if at != upload.offset:
            raise self._offset_mismatch(upload)
        head = b""
        if upload.content_type is None and upload.offset > 0:
            head = b"".join(self.storage.get(p["key"]) for p in _ordered(upload.parts))
        return Appending(self, upload, at, expected, head=head[:SNIFF_BYTES])

    @staticmethod
    def _offset_mismatch(upload: Upload) -> OffsetMismatch:
        return OffsetMismatch(f"This upload is at byte {upload.offset}, not where this chunk "
                              "starts. Ask where it stands (HEAD) and continue from there.",
                              offset=upload.offset)

    def commit(self, upload: Upload, received: int, parts: list[dict[str, Any]],
               content_type: str | None, now: datetime) -> Upload:
        """Records a chunk's parts and the new offset, if nothing else moved it meanwhile."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                f"UPDATE {UPLOADS} SET upload_offset = upload_offset + %s,"
                " parts = parts || %s, content_type = coalesce(content_type, %s),"
                " updated_at = %s, expires_at = %s"
                " WHERE upload_id = %s AND upload_offset = %s AND status = 'receiving'"
                " RETURNING *",
                (received, Jsonb(parts), content_type, now, now + self.limits.expiry,
                 upload.upload_id, upload.offset)).fetchone()
        if row is None:
            self.delete_objects(parts)
            raise self._offset_mismatch(self._load(upload.upload_id))
        return Upload.from_row(row)

    def reject(self, upload: Upload, rejection: str, content_type: str | None,
               now: datetime) -> None:
        """Refuses the upload for good and deletes what it stored."""
        with self.datastore.get_connection() as conn:
            conn.execute(
                f"UPDATE {UPLOADS} SET status = 'rejected', rejection = %s,"
                " content_type = coalesce(content_type, %s), parts = '[]', updated_at = %s,"
                " expires_at = %s WHERE upload_id = %s AND status = 'receiving'",
                (rejection, content_type, now, now + self.limits.expiry, upload.upload_id))
        self.delete_objects(upload.parts)
        log.info("upload %s rejected: %s", upload.upload_id, rejection)

    def delete_objects(self, parts: list[dict[str, Any]]) -> None:
        for part in parts:
            try:
                self.storage.delete(part["key"])
            except Exception:  # an orphan costs space, not safety: it is sealed
                log.warning("could not delete part of an upload", exc_info=True)

    # ---- completion ------------------------------------------------------------------------

    def finish(self, upload: Upload, now: datetime) -> Upload:
        """Completes an upload whose bytes have all arrived (assemble, check, store), then
        offers it to `on_complete`. Repeating it is harmless."""
        if upload.status == "receiving" and upload.received_all:
            upload = self._assemble(upload, now)
        if upload.status == "complete" and self.on_complete is not None:
            self.on_complete(self.completed(upload, now))
            with self.datastore.get_connection() as conn:
                conn.execute(f"UPDATE {UPLOADS} SET status = 'claimed', updated_at = %s,"
                             " expires_at = %s WHERE upload_id = %s AND status = 'complete'",
                             (now, now + self.limits.expiry, upload.upload_id))
            log.info("upload %s claimed", upload.upload_id)
            upload = self._load(upload.upload_id)
        return upload

    def _assemble(self, upload: Upload, now: datetime) -> Upload:
        try:
            data = b"".join(self.storage.get(p["key"]) for p in _ordered(upload.parts))
        except ObjectMissing:
            # A concurrent completion got there first and removed the parts.
            current = self._load(upload.upload_id)
            if current.status == "receiving":
                raise
            return current
        if len(data) != upload.length:
            raise RuntimeError(f"upload {upload.upload_id}: parts add up to {len(data)} bytes, "
                               f"not {upload.length}")
        content_type = sniff(data[:SNIFF_BYTES])
        if content_type is None:
            self.reject(upload, UnsupportedType.code, None, now)
            raise rejection_error(self._load(upload.upload_id), self.limits)
        verdict = self.scanner.scan(data)
        if not verdict.clean:
            self.reject(upload, MalwareFound.code, content_type, now)
            raise rejection_error(self._load(upload.upload_id), self.limits)
        storage_key = f"files/{upload.upload_id}"
        self.storage.put(storage_key, data)
        digest = hashlib.sha256(data).hexdigest()
        with self.datastore.get_connection() as conn:
            conn.execute(
                f"UPDATE {UPLOADS} SET status = 'complete', content_type = %s, sha256 = %s,"
                " storage_key = %s, parts = '[]', completed_at = %s, updated_at = %s,"
                " expires_at = %s WHERE upload_id = %s AND status = 'receiving'",
                (content_type, digest, storage_key, now, now, now + self.limits.expiry,
                 upload.upload_id))
        self.delete_objects(upload.parts)
        log.info("upload %s complete (%s bytes)", upload.upload_id, upload.length)
        return self._load(upload.upload_id)

    @staticmethod
    def completed(upload: Upload, now: datetime) -> CompletedUpload:
        assert upload.content_type and upload.sha256 and upload.storage_key
        return CompletedUpload(upload.upload_id, upload.owner_id, upload.patient_id,
                               upload.filename, upload.document_type, upload.content_type,
                               upload.length, upload.sha256, upload.storage_key,
                               upload.appointment_id, upload.replaces, now)

    # ---- termination and expiry ------------------------------------------------------------

    def terminate(self, actor: Actor, upload_id: UUID, now: datetime) -> None:
        """DELETE: stops the upload and deletes what it stored. Once claimed, the file is a
        document and is the documents context's to keep or delete."""
        try:
            upload = self._owned(actor, upload_id)
        except (MalwareFound, UnsupportedType, TooLarge):
            upload = self._load(upload_id)  # refused: nothing stored, the row may go
        if upload.status == "claimed":
            raise Conflict("This upload is complete and is now one of your documents; it can "
                           "no longer be cancelled.")
        with self.datastore.get_connection() as conn:
            conn.execute(f"UPDATE {UPLOADS} SET status = 'terminated', parts = '[]',"
                         " storage_key = NULL, updated_at = %s WHERE upload_id = %s",
                         (now, upload_id))
        self.delete_objects(upload.parts)
        if upload.storage_key is not None:
            self.delete_objects([{"key": upload.storage_key}])
        log.info("upload %s terminated by %s", upload_id, actor.ref)

    def purge_expired(self, now: datetime) -> int:
        """Deletes uploads past their expiry with whatever they still store: abandoned ones,
        complete ones nobody claimed, and the records of refused, cancelled and claimed ones
        (a claimed file belongs to its document and stays)."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(f"SELECT * FROM {UPLOADS} WHERE expires_at <= %s"
                                " ORDER BY expires_at LIMIT 1000", (now,)).fetchall()
        purged = 0
        for row in rows:
            upload = Upload.from_row(row)
            with self.datastore.get_connection() as conn:
                deleted = conn.execute(f"DELETE FROM {UPLOADS} WHERE upload_id = %s AND"
                                       " expires_at <= %s AND status = %s",
                                       (upload.upload_id, now, upload.status)).rowcount
            if not deleted:
                continue
            purged += 1
            self.delete_objects(upload.parts)
            if upload.status == "complete" and upload.storage_key is not None:
                self.delete_objects([{"key": upload.storage_key}])
        if purged:
            log.info("purged %s expired uploads", purged)
        return purged


def _ordered(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(parts, key=lambda p: int(p["offset"]))


class Appending:
    """One PATCH: its body arrives through `feed` (on the event loop: memory only) and `flush`
    (in a thread: sealing parts, deciding the type), then `finish` or `interrupted`."""

    def __init__(self, uploads: Uploads, upload: Upload, at: int,
                 checksum: tuple[str, bytes] | None, head: bytes = b"",
                 replay: bool = False) -> None:
        self.uploads, self.upload, self.at, self.checksum = uploads, upload, at, checksum
        self.replay = replay  # the upload has every byte: a retried last chunk must match them
        self.hasher = hashlib.new(checksum[0], usedforsecurity=False) if checksum else None
        self.head, self.content_type = head, upload.content_type
        self.received = 0
        self.buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.refusal: CareBridgeError | None = None

    def feed(self, piece: bytes) -> bool:
        """Takes the next bytes; True when `flush` has work to do."""
        if self.at + self.received + len(piece) > self.upload.length:
            raise TooLarge("This chunk goes past the upload's declared length "
                           f"({self.upload.length} bytes).")
        self.received += len(piece)
        if self.refusal is not None:
            return False  # refused: read to the end, so the client gets a clean answer
        if self.hasher is not None:
            self.hasher.update(piece)
        self.buffer += piece
        if self.replay:
            return False
        if self.content_type is None and len(self.head) < SNIFF_BYTES:
            self.head += piece[:SNIFF_BYTES - len(self.head)]
        return len(self.buffer) >= PART_BYTES or self._type_due()

    def _type_due(self) -> bool:
        return self.content_type is None and (
            len(self.head) >= SNIFF_BYTES or self.at + self.received == self.upload.length)

    def flush(self, now: datetime) -> None:
        if self.refusal is not None or self.replay:
            return
        if self._type_due():
            self._decide_type(now)
            if self.refusal is not None:
                return
        while len(self.buffer) >= PART_BYTES:
            self._write_part(bytes(self.buffer[:PART_BYTES]))
            del self.buffer[:PART_BYTES]

    def _decide_type(self, now: datetime) -> None:
        content_type = sniff(self.head)
        if content_type is None:
            self.refusal = UnsupportedType(_REJECTIONS[UnsupportedType.code][1])
            self.uploads.reject(self.upload, UnsupportedType.code, None, now)
        elif self.upload.length > (limit := self.uploads.limits.max_bytes[content_type]):
            self.refusal = _too_large_for_type(
                dataclasses.replace(self.upload, content_type=content_type), limit)
            self.uploads.reject(self.upload, TooLarge.code, content_type, now)
        else:
            self.content_type = content_type
            return
        self.buffer.clear()
        self.discard()

    def _write_part(self, data: bytes) -> None:
        key = f"parts/{self.upload.upload_id}/{uuid4().hex}"
        offset = self.at + sum(p["size"] for p in self.parts)
        self.uploads.storage.put(key, data)
        self.parts.append({"key": key, "offset": offset, "size": len(data)})

    def finish(self, now: datetime) -> Upload:
        """The body arrived whole: check it, commit it, and finish the upload if it was the
        last chunk."""
        if self.refusal is not None:
            raise self.refusal
        if self.checksum is not None and self.hasher is not None \
                and self.hasher.digest() != self.checksum[1]:
            self.discard()
            raise ChecksumMismatch("The chunk's checksum does not match what arrived, so it was "
                                   f"not kept. Send it again from byte {self.upload.offset}.",
                                   offset=self.upload.offset)
        if self.replay:
            return self._replayed(now)
        if self._type_due():
            self._decide_type(now)
            if self.refusal is not None:
                raise self.refusal
        if self.buffer:
            self._write_part(bytes(self.buffer))
            self.buffer.clear()
        upload = self.upload
        if self.received:
            upload = self.uploads.commit(upload, self.received, self.parts, self.content_type,
                                         now)
        if upload.received_all:
            upload = self.uploads.finish(upload, now)
        return upload

    def _replayed(self, now: datetime) -> Upload:
        """A retried last chunk of a complete upload: if it is the same bytes, finish again
        (the claim may have been refused before); anything else is at the wrong offset."""
        upload = self.upload
        if self.at + self.received != upload.length or upload.storage_key is None:
            raise Uploads._offset_mismatch(upload)
        if self.received:
            stored = self.uploads.storage.get(upload.storage_key)
            if stored[self.at:] != bytes(self.buffer):
                raise Uploads._offset_mismatch(upload)
        return self.uploads.finish(upload, now)

    def interrupted(self, now: datetime) -> None:
        """The client went away mid-chunk: keep what arrived, unless a checksum was promised
        (then nothing of the chunk can be trusted)."""
        if self.refusal is not None or self.replay or self.checksum is not None \
                or not self.received:
            self.discard()
            return
        try:
            if self._type_due():
                self._decide_type(now)
                if self.refusal is not None:
                    return
            if self.buffer:
                self._write_part(bytes(self.buffer))
                self.buffer.clear()
            self.uploads.commit(self.upload, self.received, self.parts, self.content_type, now)
        except Exception:  # the request failed already; the client resumes from HEAD
            log.info("upload %s: the interrupted chunk was not kept", self.upload.upload_id)
            self.discard()

    def discard(self) -> None:
        self.uploads.delete_objects(self.parts)
        self.parts = []



def uploads_from(settings: Any, datastore: PostgresDatastore, encryption_key: str) -> Uploads:
    """Uploads as the settings describe them: storage, size limits, expiry, scanner."""
    images = settings.upload_max_image_mb * MB
    limits = UploadLimits({PDF: settings.upload_max_pdf_mb * MB, JPEG: images, PNG: images,
                           HEIC: images}, timedelta(hours=settings.upload_expiry_hours))
    scanner: Scanner = NoScanner()
    if settings.upload_scanner_command:
        scanner = CommandScanner(settings.upload_scanner_command,
                                 settings.upload_scanner_timeout_seconds)
    return Uploads(datastore, storage_from(settings, encryption_key), limits, scanner)
