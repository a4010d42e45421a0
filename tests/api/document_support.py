"""Helpers for document tests: a completed upload as the uploads context hands it over, and a
storage that holds files in memory."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass(frozen=True)
class Upload:
    owner_id: UUID
    document_type: str = "id_document"
    filename: str = "passport.png"
    content_type: str = "image/png"
    data: bytes = PNG
    appointment_id: UUID | None = None
    replaces: UUID | None = None
    patient_id: UUID | None = None
    upload_id: UUID = field(default_factory=uuid.uuid4)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def storage_key(self) -> str:
        return f"uploads/{self.upload_id}"


class MemoryFiles:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    def get(self, key: str) -> bytes:
        return self.files[key]


def uploaded(container: Any, upload: Upload, at: datetime) -> dict[str, Any]:
    """What finishing an upload does: the file is stored, then claimed as a document."""
    files = container.documents.files
    if not isinstance(files, MemoryFiles):
        files = container.documents.files = MemoryFiles()
    files.files[upload.storage_key] = upload.data
    return dict(container.documents.claim(upload, at))
