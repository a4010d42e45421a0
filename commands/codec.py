"""How events are written at rest: msgspec JSON, typed by each event class, then AES-GCM.

Each event class's fields (from its annotations) define a msgspec struct, so an event decodes
straight into UUIDs, datetimes and dates with no tagging and no per-value Python hooks; this is
what makes a projection rebuild fast. Snapshots hold a whole aggregate's state as a free-form
dict, so they keep eventsourcing's tagged JSON, which round-trips every type in it.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.cryptography import AESCipher
from eventsourcing.domain import CanSnapshotAggregate
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

_IN_COLUMNS = ("originator_id", "originator_version")
_encoder = msgspec.json.Encoder()


class CareCipher(AESCipher):
    """eventsourcing's AES-GCM format (nonce, tag, ciphertext), with the key schedule built
    once rather than for every event."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._aead = AESGCM(self.key)

    def encrypt(self, plaintext: bytes) -> bytes:
        nonce = self.random_bytes(12)
        sealed = self._aead.encrypt(nonce, plaintext, None)
        return nonce + sealed[-16:] + sealed[:-16]

    def decrypt(self, ciphertext: bytes) -> bytes:
        if len(ciphertext) < 28:
            raise ValueError("Damaged cipher text: too short")
        try:
            return self._aead.decrypt(ciphertext[:12], ciphertext[28:] + ciphertext[12:28], None)
        except InvalidTag as error:
            raise ValueError("Invalid cipher tag") from error


@cache
def payload_struct(event_class: type) -> type[msgspec.Struct] | None:
    """The msgspec struct of an event class's stored fields, or None for snapshots."""
    if issubclass(event_class, CanSnapshotAggregate):
        return None
    hints = typing.get_type_hints(event_class)
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = [
        (name, hint) for name, hint in hints.items()
        if name not in _IN_COLUMNS and not name.startswith("_") and name != "TOPIC"
        and typing.get_origin(hint) is not typing.ClassVar
    ]
    fields.append(("class_version", int, 1))
    return msgspec.defstruct(f"{event_class.__name__}Payload", fields,
                             forbid_unknown_fields=False)


class CareMapper(Mapper[Any]):
    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        struct = payload_struct(domain_event.__class__)
        if struct is None:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        data = _encoder.encode(state)
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(originator_id=originator_id, originator_version=originator_version,
                           topic=get_topic(type(domain_event)), state=data)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.decode(stored_event.topic, stored_event.originator_id,
                           stored_event.originator_version, stored_event.state)

    def decode(self, topic: str, originator_id: Any, originator_version: int, data: bytes) -> Any:
        """Decodes one stored event from its columns (projections call this per row)."""
        cls = resolve_topic(topic)
        struct = payload_struct(cls)
        if struct is None:
            return super().to_domain_event(StoredEvent(originator_id, originator_version,
                                                       topic, data))
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            state = msgspec.structs.asdict(msgspec.json.decode(data, type=struct))
            from_version = state.pop("class_version")
            if from_version < getattr(cls, "class_version", 1):
                state = _upcast(cls, data, from_version, cls.class_version, struct)
        except Exception as error:
            raise MapperDeserialisationError(
                f"Failed to decode stored event {topic} v{originator_version}: {error}"
            ) from error
        state["originator_id"] = originator_id
        state["originator_version"] = originator_version
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event


def _upcast(cls: Any, data: bytes, from_version: int, to_version: int,
            struct: type[msgspec.Struct]) -> dict[str, Any]:
    """Old payloads pass through the class's `upcast_vN_vN+1` functions, then are typed."""
    raw = msgspec.json.decode(data)
    raw.pop("class_version", None)
    for version in range(from_version, to_version):
        getattr(cls, f"upcast_v{version}_v{version + 1}")(raw)
    state = msgspec.structs.asdict(msgspec.json.decode(_encoder.encode(raw), type=struct))
    state.pop("class_version")
    return state
