"""Tamper evidence: a signed hash chain over each application's event log, and its verification.

Each stored event's content digest is SHA-256 of its originator id (16 bytes), version (8
bytes, big-endian), topic (4-byte length, UTF-8) and state (the ciphertext as stored). The
chain of an application starts from a genesis hash naming the application and extends, event
by event in notification order, as h_n = SHA-256(h_{n-1} || notification_id (8 bytes) ||
digest_n). The sealer appends a checkpoint every N events and at the end of each round: the
chain hash, signed with Ed25519, plus the positions and digests it covers. Verification
recomputes every chain from position 0 from the rows as they are now; where a checkpoint's
hash differs, the checkpoint's own (signed, chained) digests name the event that was altered,
removed, inserted or moved. Nothing here reads or keeps payloads in clear.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from psycopg import sql

from commands.eventstore import EVENTSTORE_SCHEMA, events_table

CHECKPOINTS = "carebridge.audit_checkpoints"
KEY_INFO = b"carebridge-audit-checkpoints"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DIGEST = 32
# The content digest's input, assembled by PostgreSQL next to the row (the server builds it
# while Python hashes the previous batch); `content_digest` below is the same in Python.
CONTENT = sql.SQL("uuid_send(originator_id) || int8send(originator_version::bigint)"
                  " || int4send(octet_length(topic)) || convert_to(topic, 'UTF8') || state")
FETCH_ROWS = 20_000


def content_digest(originator_id: bytes, version: int, topic: str, state: bytes) -> bytes:
    encoded = topic.encode()
    return hashlib.sha256(originator_id + version.to_bytes(8, "big")
                          + len(encoded).to_bytes(4, "big") + encoded + state).digest()


def genesis(application: str) -> bytes:
    return hashlib.sha256(b"carebridge audit chain v1\x00" + application.encode()).digest()


def extend(chain: bytes, position: int, digest: bytes) -> bytes:
    return hashlib.sha256(chain + position.to_bytes(8, "big", signed=True) + digest).digest()


# ---- keys and signatures -------------------------------------------------------------------


def signing_key(configured: str | None, encryption_key: str) -> Ed25519PrivateKey:
    """The checkpoint signing key: the configured base64 Ed25519 seed (32 bytes), or one derived
    from the encryption key (HKDF-SHA256) when none is configured."""
    if configured:
        seed = base64.b64decode(configured, validate=True)
        if len(seed) != 32:
            raise ValueError("the audit signing key must decode to 32 bytes")
    else:
        seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=KEY_INFO).derive(base64.b64decode(encryption_key))
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes_raw()).decode()


def public_key_from(text: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(key.public_bytes_raw()).hexdigest()[:16]


def _micros(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


def checkpoint_message(application: str, previous_position: int, position: int,
                       event_count: int, chain_hash: bytes, signed_at: datetime) -> bytes:
    name = application.encode()
    return (b"carebridge audit checkpoint v1\x00" + len(name).to_bytes(4, "big") + name
            + previous_position.to_bytes(8, "big", signed=True) + position.to_bytes(8, "big", signed=True)
            + event_count.to_bytes(8, "big") + chain_hash
            + _micros(signed_at).to_bytes(8, "big", signed=True))


class ChainBroken(Exception):
    """The sealer will not extend a chain whose latest checkpoint it cannot trust."""


@dataclass(frozen=True)
class Checkpoint:
    position: int
    previous_position: int
    event_count: int
    chain_hash: bytes
    signed_at: datetime
    key_id: str
    signature: bytes

    COLUMNS: ClassVar[str] = ("position, previous_position, event_count, chain_hash, signed_at,"
                              " key_id, signature")

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Checkpoint:
        return cls(row[0], row[1], row[2], bytes(row[3]), row[4], row[5], bytes(row[6]))

    def signed_by(self, application: str, key: Ed25519PublicKey) -> bool:
        message = checkpoint_message(application, self.previous_position, self.position,
                                     self.event_count, self.chain_hash, self.signed_at)
        try:
            key.verify(self.signature, message)
        except InvalidSignature:
            return False
        return True


# ---- sealing -------------------------------------------------------------------------------


def _select_events(application: str, bounded: bool) -> sql.Composed:
    return sql.SQL("SELECT notification_id, {content} FROM {table} WHERE notification_id > %s"
                   " ORDER BY notification_id{limit}").format(
        content=CONTENT, table=sql.Identifier(EVENTSTORE_SCHEMA, events_table(application)),
        limit=sql.SQL(" LIMIT %s") if bounded else sql.SQL(""))


def seal_next(cur: psycopg.Cursor[Any], application: str, key: Ed25519PrivateKey,
              limit: int, now: datetime) -> tuple[int, int]:
    """Extends `application`'s chain over its next `limit` events and appends one signed
    checkpoint for them. Returns (events sealed, position reached). The caller serialises
    sealers of one application (the tracking row lock) and commits."""
    last = cur.execute(f"SELECT {Checkpoint.COLUMNS} FROM {CHECKPOINTS} WHERE application = %s"
                       " ORDER BY position DESC LIMIT 1", (application,)).fetchone()
    previous, chain = 0, genesis(application)
    if last is not None:
        checkpoint = Checkpoint.from_row(last)
        if not checkpoint.signed_by(application, key.public_key()):
            raise ChainBroken(f"the latest checkpoint of {application} (at {checkpoint.position})"
                              " is not signed by this key; run `carebridge audit verify`")
        previous, chain = checkpoint.position, checkpoint.chain_hash
    rows = cur.execute(_select_events(application, True), (previous, limit), binary=True).fetchall()
    if not rows:
        return 0, previous
    positions, digests = [], bytearray()
    sha = hashlib.sha256
    for position, content in rows:
        digest = sha(content).digest()
        chain = sha(chain + position.to_bytes(8, "big", signed=True) + digest).digest()
        positions.append(position)
        digests += digest
    signed_at = now.astimezone(UTC)
    message = checkpoint_message(application, previous, positions[-1], len(rows), chain, signed_at)
    cur.execute(
        f"INSERT INTO {CHECKPOINTS} (application, position, previous_position, event_count,"
        " chain_hash, signed_at, key_id, signature, positions, digests)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (application, positions[-1], previous, len(rows), chain, signed_at,
         key_id(key.public_key()), key.sign(message), positions, bytes(digests)))
    return len(rows), positions[-1]


# ---- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """Something verification caught, by where it is: the application and notification id."""

    application: str
    position: int
    kind: str  # altered, removed, inserted, reordered, checkpoint
    detail: str

    def __str__(self) -> str:
        return f"{self.kind.upper():<10} {self.application}:{self.position}  {self.detail}"


@dataclass
class ChainReport:
    application: str
    events: int = 0
    checkpoints: int = 0
    sealed_to: int = 0
    head: str = ""  # the chain hash at `sealed_to`, hex: keep it elsewhere to detect truncation
    unsealed: int = 0
    findings: list[Finding] = field(default_factory=list)


def applications_in(conn: psycopg.Connection[Any]) -> list[str]:
    """Every application with an events table or a checkpoint."""
    tables = conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE '%%\\_events'",
        (EVENTSTORE_SCHEMA,)).fetchall()
    sealed = conn.execute(f"SELECT DISTINCT application FROM {CHECKPOINTS}").fetchall()
    return sorted({t[0].removesuffix("_events") for t in tables} | {s[0] for s in sealed})


def verify(conn: psycopg.Connection[Any], key: Ed25519PublicKey,
           applications: Iterable[str] | None = None) -> list[ChainReport]:
    """Recomputes every chain from position 0 and checks every checkpoint, in one snapshot."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        names = list(applications) if applications is not None else applications_in(conn)
        return [_verify_one(conn, key, name) for name in names]


def _verify_one(conn: psycopg.Connection[Any], key: Ed25519PublicKey, application: str) -> ChainReport:
    report = ChainReport(application)
    trusted = _trusted_checkpoints(conn, key, application, report)
    report.checkpoints = len(trusted)
    if trusted:
        report.sealed_to, report.head = trusted[-1].position, trusted[-1].chain_hash.hex()
    exists = conn.execute("SELECT to_regclass(%s)", (
        f"{EVENTSTORE_SCHEMA}.{events_table(application)}",)).fetchone()
    if not exists or exists[0] is None:
        if trusted:
            report.findings.append(Finding(application, 0, "removed",
                                           "the whole events table is missing"))
        return report
    chain, anchor = genesis(application), 0
    segment: list[tuple[int, bytes]] = []  # (position, digest) since the last checkpoint
    index = 0
    for position, digest in _events(conn, application):
        while index < len(trusted) and trusted[index].position < position:
            chain = _close(conn, report, trusted[index], anchor, chain, segment)
            anchor, segment, index = trusted[index].position, [], index + 1
        report.events += 1
        if index == len(trusted):
            report.unsealed += 1
            continue
        chain = extend(chain, position, digest)
        segment.append((position, digest))
    while index < len(trusted):
        chain = _close(conn, report, trusted[index], anchor, chain, segment)
        anchor, segment, index = trusted[index].position, [], index + 1
    return report


def _events(conn: psycopg.Connection[Any], application: str) -> Iterator[tuple[int, bytes]]:
    """(notification id, content digest) of every event in order, streamed in large batches."""
    sha = hashlib.sha256
    with conn.cursor(name=f"audit_verify_{application}", binary=True) as cur:
        # From the lowest id there can be: a row slipped in below the first event is a finding.
        cur.execute(_select_events(application, False), (-(2**63),))
        while rows := cur.fetchmany(FETCH_ROWS):
            for position, content in rows:
                yield position, sha(content).digest()


def _trusted_checkpoints(conn: psycopg.Connection[Any], key: Ed25519PublicKey, application: str,
                         report: ChainReport) -> list[Checkpoint]:
    """The checkpoints whose signature is good; the others, and gaps between them, are findings."""
    ours = key_id(key)
    trusted: list[Checkpoint] = []
    untrusted: set[int] = set()
    for row in conn.execute(f"SELECT {Checkpoint.COLUMNS} FROM {CHECKPOINTS}"
                            " WHERE application = %s ORDER BY position", (application,)).fetchall():
        checkpoint = Checkpoint.from_row(row)
        if checkpoint.key_id != ours:
            untrusted.add(checkpoint.position)
            report.findings.append(Finding(application, checkpoint.position, "checkpoint",
                                           f"signed by an unknown key {checkpoint.key_id}"))
            continue
        if not checkpoint.signed_by(application, key):
            untrusted.add(checkpoint.position)
            report.findings.append(Finding(application, checkpoint.position, "checkpoint",
                                           "the signature does not match: a forged or altered "
                                           "checkpoint"))
            continue
        expected = trusted[-1].position if trusted else 0
        if checkpoint.previous_position != expected and checkpoint.previous_position not in untrusted:
            report.findings.append(Finding(
                application, checkpoint.position, "checkpoint",
                f"follows a checkpoint at {checkpoint.previous_position}, but the one before it "
                f"is at {expected}: a checkpoint was removed"))
        trusted.append(checkpoint)
    return trusted


def _close(conn: psycopg.Connection[Any], report: ChainReport, checkpoint: Checkpoint,
           anchor: int, chain: bytes, segment: list[tuple[int, bytes]]) -> bytes:
    """Compares the recomputed chain with a trusted checkpoint; on a difference, names the events
    from the checkpoint's sealed digests. Returns the chain to go on from (the checkpoint's)."""
    if chain != checkpoint.chain_hash:
        report.findings.extend(_pinpoint(conn, report.application, checkpoint, anchor, segment))
    return checkpoint.chain_hash


def _pinpoint(conn: psycopg.Connection[Any], application: str, checkpoint: Checkpoint, anchor: int,
              actual: Sequence[tuple[int, bytes]]) -> list[Finding]:
    row = conn.execute(f"SELECT positions, digests FROM {CHECKPOINTS}"
                       " WHERE application = %s AND position = %s",
                       (application, checkpoint.position)).fetchone()
    positions, blob = (list(row[0]), bytes(row[1])) if row else ([], b"")
    digests = [blob[i:i + DIGEST] for i in range(0, len(blob), DIGEST)]
    start = _chain_before(conn, application, checkpoint)
    if (checkpoint.previous_position != anchor or start is None or len(positions) != len(digests)
            or _chain_over(start, zip(positions, digests, strict=True)) != checkpoint.chain_hash):
        return [Finding(application, checkpoint.position, "altered",
                        f"events after {anchor} up to {checkpoint.position} differ from the sealed "
                        "chain (the checkpoint's sealed digests cannot name which)")]
    return _differences(application, dict(zip(positions, digests, strict=True)), dict(actual))


def _chain_before(conn: psycopg.Connection[Any], application: str,
                  checkpoint: Checkpoint) -> bytes | None:
    if checkpoint.previous_position == 0:
        return genesis(application)
    row = conn.execute(f"SELECT chain_hash FROM {CHECKPOINTS} WHERE application = %s"
                       " AND position = %s", (application, checkpoint.previous_position)).fetchone()
    return bytes(row[0]) if row else None


def _chain_over(chain: bytes, leaves: Iterable[tuple[int, bytes]]) -> bytes:
    for position, digest in leaves:
        chain = extend(chain, position, digest)
    return chain


def _differences(application: str, sealed: dict[int, bytes],
                 actual: dict[int, bytes]) -> list[Finding]:
    """Names each event that differs from what was sealed; an event whose content was sealed at
    another position was moved there (reordered)."""
    changed = {p for p in sealed.keys() | actual.keys() if sealed.get(p) != actual.get(p)}
    sealed_at = {sealed[p]: p for p in changed if p in sealed}
    findings = []
    for position in sorted(changed):
        now, then = actual.get(position), sealed.get(position)
        origin = sealed_at.get(now) if now is not None else None
        if origin is not None and origin != position:
            findings.append(Finding(application, position, "reordered",
                                    f"holds the event sealed at position {origin}"))
        elif now is None:
            findings.append(Finding(application, position, "removed",
                                    "the sealed event is no longer there"))
        elif then is None:
            findings.append(Finding(application, position, "inserted",
                                    "an event that was never sealed appeared here"))
        else:
            findings.append(Finding(application, position, "altered",
                                    "its content differs from the sealed event"))
    return findings
