"""Deterministic stream identifiers, so that a natural key maps to exactly one aggregate."""

from __future__ import annotations

from uuid import UUID, uuid5

CAREBRIDGE_NAMESPACE = UUID("5b7a0e2c-8f35-4c1e-9a55-3f1d0c6a2b11")


def stream_id(kind: str, *parts: object) -> UUID:
    """The id of the aggregate of `kind` named by `parts` (e.g. a patient's consent of a type)."""
    return uuid5(CAREBRIDGE_NAMESPACE, "/".join([kind, *map(str, parts)]))
