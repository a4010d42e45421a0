"""Helpers for document tests: a completed upload as the uploads context hands it over, and a
storage that holds files in memory."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def served(container: Any, clock: Any) -> Iterator[str]:
    """The whole API served by uvicorn on a free loopback port (a tus client needs a real HTTP
    server); yields its base URL."""
    import socket
    import threading
    import time

    import uvicorn

    from api.app import create_app
    from tests.conftest import TOKEN_SECRET

    app = create_app(container, TOKEN_SECRET, clock=clock)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", http="h11",
                                           ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        listener.close()
