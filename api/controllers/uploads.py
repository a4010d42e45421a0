"""Resumable uploads at /v1/uploads: the tus 1.0 protocol (core, creation, termination,
checksum and expiration), so that existing tus clients (Flutter, tuspy, tus-js-client) work
with nothing but the bearer token added to their headers.

Every answer carries `Tus-Resumable: 1.0.0`, errors included (they are problem documents);
the work itself is commands/uploads.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from uuid import UUID

import anyio.to_thread
from litestar import Controller, Request, Response, delete, head, patch, post, route
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import HttpMethod
from litestar.exceptions import HTTPException, InternalServerException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from api.container import Container
from api.dependencies import idempotency_key, signed_in
from api.problems import (
    PROBLEM_JSON,
    Problem,
    handle_domain_error,
    handle_http,
    handle_unexpected,
    handle_validation,
    problem_response,
)
from commands.uploads import (
    CHECKSUM_ALGORITHMS,
    Appending,
    ChecksumMismatch,
    MalwareFound,
    OffsetMismatch,
    ScannerUnavailable,
    TooLarge,
    UnsupportedType,
    Upload,
    UploadExpired,
    Uploads,
)
from domain.access import Actor
from domain.errors import CareBridgeError

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = "creation,termination,checksum,expiration"
OFFSET_OCTET_STREAM = "application/offset+octet-stream"


class UnsupportedVersion(CareBridgeError):
    code = "tus-version-unsupported"
    title = "This version of the tus protocol is not supported"


class NotAChunk(CareBridgeError):
    code = "offset-octet-stream-required"
    title = "Send the chunk as application/offset+octet-stream"


# The statuses tus prescribes, for the refusals the shared mapping (api/problems.py) does not
# know; every other error is answered as everywhere else.
_STATUS: tuple[tuple[type[CareBridgeError], int], ...] = (
    (UnsupportedVersion, 412),
    (NotAChunk, 415),
    (UnsupportedType, 415),
    (TooLarge, 413),
    (ChecksumMismatch, 460),
    (MalwareFound, 422),
    (UploadExpired, 410),
    (ScannerUnavailable, 503),
)


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(Problem, description=description, media_type=PROBLEM_JSON,
                        generate_examples=False)


# What tus adds to the answers every operation documents (api/problems.py SHARED_PROBLEMS).
TUS_PROBLEMS: dict[int, ResponseSpec] = {
    410: _problem("The upload has expired: start a new one."),
    412: _problem(f"Send 'Tus-Resumable: {TUS_VERSION}' with every request."),
    415: _problem("This type of file is not accepted, or a chunk was not sent as "
                  f"{OFFSET_OCTET_STREAM}."),
    460: _problem("The chunk's Upload-Checksum does not match its bytes: send it again."),
    503: _problem("The malware scanner cannot be reached; try again later (Retry-After)."),
}


def _tus(response: Response[Any], **extra: str) -> Response[Any]:
    response.headers["Tus-Resumable"] = TUS_VERSION
    response.headers.update(extra)
    return response


def _refused(request: Request[Any, Any, Any], exc: CareBridgeError) -> Response[Problem]:
    status = next((s for kind, s in _STATUS if isinstance(exc, kind)), None)
    if status is None:
        response = handle_domain_error(request, exc)
    else:
        headers = {"Retry-After": str(exc.extensions["retry_after"])} \
            if "retry_after" in exc.extensions else None
        response = problem_response(request, status, exc.code, exc.title, exc.detail,
                                    extensions=dict(exc.extensions), headers=headers)
    if isinstance(exc, UnsupportedVersion):
        response.headers["Tus-Version"] = TUS_VERSION
    if isinstance(exc, OffsetMismatch | ChecksumMismatch) and "offset" in exc.extensions:
        response.headers["Upload-Offset"] = str(exc.extensions["offset"])
    return _tus(response)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    CareBridgeError: _refused,
    ValidationException: lambda request, exc: _tus(handle_validation(request, exc)),
    HTTPException: lambda request, exc: _tus(handle_http(request, exc)),
    Exception: lambda request, exc: _tus(handle_unexpected(request, exc)),
}


def require_tus_version(request: Request[Any, Any, Any]) -> None:
    if request.headers.get("tus-resumable") != TUS_VERSION:
        raise UnsupportedVersion(f"Send 'Tus-Resumable: {TUS_VERSION}' (the version this server "
                                 "speaks) with every request.")


def _expires(upload: Upload) -> dict[str, str]:
    if upload.status != "receiving":
        return {}
    return {"Upload-Expires": format_datetime(upload.expires_at.astimezone(UTC), usegmt=True)}


def _uploads(container: Container) -> Uploads:
    uploads: Uploads = container.uploads
    return uploads


class UploadController(Controller):
    """The tus endpoint: create an upload, ask where it stands, send chunks, cancel it."""

    path = "/v1/uploads"
    tags = ["uploads"]
    dependencies = signed_in()
    exception_handlers = EXCEPTION_HANDLERS

    @route("/", http_method=HttpMethod.OPTIONS, status_code=204, sync_to_thread=False,
           summary="What this tus server supports (no sign-in needed)")
    def capabilities(self, container: NamedDependency[Container]) -> Response[None]:
        largest = _uploads(container).limits.largest
        return _tus(Response(None, status_code=204), **{
            "Tus-Version": TUS_VERSION, "Tus-Extension": TUS_EXTENSIONS,
            "Tus-Max-Size": str(largest),
            "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS)})

    @post("/", status_code=201, sync_to_thread=True, before_request=require_tus_version,
          responses=TUS_PROBLEMS,
          summary="Start an upload (Upload-Length; Upload-Metadata with filename and "
          "document_type, optionally appointment_id, replaces, patient_id)")
    def create(self, request: Request[Any, Any, State], actor: NamedDependency[Actor],
               container: NamedDependency[Container],
               now: NamedDependency[datetime]) -> Response[None]:
        length = request.headers.get("upload-length")
        metadata = request.headers.get("upload-metadata")
        key = idempotency_key(request, actor.ref, "uploads.create",
                              {"length": length, "metadata": metadata})
        upload, _ = _uploads(container).create(actor, length, metadata, key, now)
        return _tus(Response(None, status_code=201), Location=upload.location,
                    **_expires(upload))

    @head("/{upload_id:uuid}", sync_to_thread=True, before_request=require_tus_version,
          responses=TUS_PROBLEMS,
          summary="Where an upload stands (Upload-Offset); finishes one whose bytes all came")
    def where(self, upload_id: FromPath[UUID], actor: NamedDependency[Actor],
              container: NamedDependency[Container],
              now: NamedDependency[datetime]) -> Response[None]:
        upload = _uploads(container).status(actor, upload_id, now)
        headers = {"Upload-Offset": str(upload.offset), "Upload-Length": str(upload.length),
                   "Cache-Control": "no-store", **_expires(upload)}
        if upload.metadata:
            headers["Upload-Metadata"] = upload.metadata
        return _tus(Response(None, status_code=200), **headers)

    @patch("/{upload_id:uuid}", status_code=204, request_max_body_size=None,
           responses=TUS_PROBLEMS,
           before_request=require_tus_version,
           summary="Send the next chunk from Upload-Offset (application/offset+octet-stream)")
    async def append(self, request: Request[Any, Any, State], upload_id: FromPath[UUID],
                     actor: NamedDependency[Actor], container: NamedDependency[Container],
                     now: NamedDependency[datetime]) -> Response[None]:
        uploads = _uploads(container)
        appending: Appending = await anyio.to_thread.run_sync(
            uploads.begin_append, actor, upload_id, request.headers.get("upload-offset"),
            request.headers.get("upload-checksum"), now)
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != OFFSET_OCTET_STREAM:
            raise NotAChunk(f"Send the chunk's bytes with 'Content-Type: {OFFSET_OCTET_STREAM}'.")
        try:
            async for piece in request.stream():
                if appending.feed(piece):
                    await anyio.to_thread.run_sync(appending.flush, now)
        except InternalServerException:  # the client went away mid-chunk
            await anyio.to_thread.run_sync(appending.interrupted, now)
            raise
        except Exception:
            await anyio.to_thread.run_sync(appending.discard)
            raise
        upload = await anyio.to_thread.run_sync(appending.finish, now)
        return _tus(Response(None, status_code=204), **{"Upload-Offset": str(upload.offset)},
                    **_expires(upload))

    @delete("/{upload_id:uuid}", status_code=204, sync_to_thread=True, responses=TUS_PROBLEMS,
            before_request=require_tus_version,
            summary="Cancel an upload and delete what it stored")
    def terminate(self, upload_id: FromPath[UUID], actor: NamedDependency[Actor],
                  container: NamedDependency[Container],
                  now: NamedDependency[datetime]) -> Response[None]:
        _uploads(container).terminate(actor, upload_id, now)
        return _tus(Response(None, status_code=204))
