"""Passkeys: one WebAuthn credential of one account, its public key and its signature counter.

These event types are the storage format and are versioned with care. The public key is the
credential's COSE key, base64url-encoded; it is not a secret, but it is still only ever stored
in (encrypted) events and never logged. Cryptographic checks happen in the command layer; the
domain decides what a verified assertion means for the credential (its counter, cloning).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import event

from domain.aggregate import CareAggregate, topic
from domain.errors import Conflict, Rejections
from domain.ids import stream_id

MAX_LABEL_LENGTH = 60
# Control, unassigned and private-use characters, and the bidirectional overrides that can make
# a name display as something else. Joiners stay allowed: emoji need them.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def passkey_id(credential_id: str) -> UUID:
    """The stream of a credential, from its base64url id: one credential, one stream."""
    return stream_id("passkey", credential_id)


def clean_label(label: str, errors: Rejections, field: str = "label") -> str:
    """The name a person gives a passkey ("Grace's iPhone"), trimmed; shown back to them only."""
    cleaned = " ".join(label.split())
    if not cleaned:
        errors.add(field, "Give this passkey a name you will recognise, such as \"My phone\".")
    elif len(cleaned) > MAX_LABEL_LENGTH:
        errors.add(field, f"Use at most {MAX_LABEL_LENGTH} characters.")
    elif any(unicodedata.category(c) in _REFUSED_CATEGORIES or c in _BIDI_CONTROLS
             for c in cleaned):
        errors.add(field, "Use letters, digits, spaces and punctuation only.")
    return cleaned


def counter_went_backwards(known: int, presented: int) -> bool:
    """WebAuthn §7.2 step 21: when either counter is non-zero, a counter that does not grow
    means two authenticators hold the same private key (a clone). Authenticators that never
    count (most synced passkeys) send zero every time, which is fine."""
    return (known != 0 or presented != 0) and presented <= known


class PasskeyNotUsable(Conflict):
    code = "passkey-not-usable"
    title = "This passkey cannot be used"


class Passkey(CareAggregate):
    """A passkey registered to an account. Removed and clone-suspected passkeys stay in the
    history but never sign anyone in again."""

    TOPIC = topic("identity", "Passkey")

    @event("Created", topic=topic("identity", "Passkey.Registered"))
    def __init__(self, account_id: UUID, credential_id: str, public_key: str, sign_count: int,
                 transports: list[str], aaguid: str, label: str, backed_up: bool, by: str,
                 at: datetime) -> None:
        self.account_id = account_id
        self.credential_id = credential_id
        self.public_key = public_key
        self.sign_count = sign_count
        self.transports = list(transports)
        self.aaguid = aaguid
        self.label = label
        self.backed_up = backed_up
        self.registered_at = at
        self.last_used_at: datetime | None = None
        self.removed_at: datetime | None = None
        self.clone_suspected_at: datetime | None = None

    @classmethod
    def register(cls, account_id: UUID, credential_id: str, public_key: str, sign_count: int,
                 transports: list[str], aaguid: str, label: str, backed_up: bool, by: str,
                 at: datetime) -> Passkey:
        return cls._create(cls.Created, id=passkey_id(credential_id), account_id=account_id,
                           credential_id=credential_id, public_key=public_key,
                           sign_count=sign_count, transports=list(transports), aaguid=aaguid,
                           label=label, backed_up=backed_up, by=by, at=at)

    @property
    def is_usable(self) -> bool:
        return self.removed_at is None and self.clone_suspected_at is None

    def accept_assertion(self, sign_count: int, backed_up: bool, by: str, at: datetime) -> bool:
        """Takes a cryptographically verified assertion. Returns False, recording the
        suspicion, when its counter shows a cloned authenticator; the caller refuses it."""
        if not self.is_usable:
            raise PasskeyNotUsable("This passkey was removed or blocked. Sign in another way.")
        if counter_went_backwards(self.sign_count, sign_count):
            self._clone_suspected(known_sign_count=self.sign_count,
                                  presented_sign_count=sign_count, by=by, at=at)
            return False
        self._used(sign_count=sign_count, backed_up=backed_up, by=by, at=at)
        return True

    @event("Used", topic=topic("identity", "Passkey.Used"))
    def _used(self, sign_count: int, backed_up: bool, by: str, at: datetime) -> None:
        self.sign_count = sign_count
        self.backed_up = backed_up
        self.last_used_at = at

    @event("CloneSuspected", topic=topic("identity", "Passkey.CloneSuspected"))
    def _clone_suspected(self, known_sign_count: int, presented_sign_count: int, by: str,
                         at: datetime) -> None:
        self.clone_suspected_at = at

    def rename(self, label: str, by: str, at: datetime) -> None:
        if self.removed_at is not None:
            raise PasskeyNotUsable("This passkey was removed.")
        if label != self.label:
            self._renamed(label=label, by=by, at=at)

    @event("Renamed", topic=topic("identity", "Passkey.Renamed"))
    def _renamed(self, label: str, by: str, at: datetime) -> None:
        self.label = label

    def remove(self, by: str, at: datetime) -> bool:
        """Removes the passkey; removing it again records nothing."""
        if self.removed_at is not None:
            return False
        self._removed(label=self.label, by=by, at=at)
        return True

    @event("Removed", topic=topic("identity", "Passkey.Removed"))
    def _removed(self, label: str, by: str, at: datetime) -> None:
        self.removed_at = at
