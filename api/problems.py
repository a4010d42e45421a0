"""RFC 9457 problem details: the one way every error leaves the API.

Each problem names its type (a stable URI per error code), a title, the HTTP status, a detail
written for the person using the app, the request id, and, for bad input, every field that
needs fixing. Unhandled errors become a generic 500 with the request id only: no stack trace,
no internal message.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.validation import body_field_errors
from domain.errors import (
    CareBridgeError,
    Conflict,
    FieldError,
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthenticated,
)

log = logging.getLogger("carebridge.api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://carebridge.example/problems/"

_STATUS_BY_KIND: tuple[tuple[type[CareBridgeError], int], ...] = (
    (InvalidInput, 422),
    (NotFound, 404),
    (Conflict, 409),
    (Unauthenticated, 401),
    (Forbidden, 403),
    (TooManyRequests, 429),
)

_HTTP_TITLES = {
    400: ("bad-request", "The request could not be read"),
    401: ("unauthenticated", "Please sign in"),
    403: ("forbidden", "You do not have access to this"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "This method is not allowed here"),
    409: ("conflict", "This conflicts with the current state"),
    413: ("too-large", "The request is too large"),
    415: ("unsupported-media-type", "Send JSON"),
    429: ("too-many-requests", "Too many requests"),
}


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, str]] | None = None
    extensions: dict[str, Any] | None = None


def problem_response(request: Request[Any, Any, Any], status: int, code: str, title: str,
                     detail: str, errors: list[FieldError] | None = None,
                     extensions: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None) -> Response[Problem]:
    # Requests that match no route never pass the middleware that assigns the id.
    state = request.scope.setdefault("state", {})
    request_id = state.setdefault("request_id", uuid.uuid4().hex)
    headers = {**(headers or {}), "X-Request-ID": request_id}
    problem = Problem(
        type=TYPE_BASE + code,
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        request_id=request_id,
        errors=[{"field": e.field, "message": e.message} for e in errors] if errors else None,
        extensions=extensions or None,
    )
    return Response(problem, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def handle_domain_error(request: Request[Any, Any, Any], exc: CareBridgeError) -> Response[Problem]:
    status = next((s for kind, s in _STATUS_BY_KIND if isinstance(exc, kind)), 400)
    headers = {"WWW-Authenticate": 'Bearer realm="carebridge"'} if status == 401 else None
    if isinstance(exc, TooManyRequests) and "retry_after" in exc.extensions:
        headers = {"Retry-After": str(exc.extensions["retry_after"])}
    errors = exc.errors if isinstance(exc, InvalidInput) else None
    return problem_response(request, status, exc.code, exc.title, exc.detail, errors,
                            dict(exc.extensions), headers)


def handle_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Problem]:
    """msgspec stops at the first bad field; re-check the body so every field is reported."""
    errors = body_field_errors(request)
    if errors is None:
        extra = exc.extra if isinstance(exc.extra, list) else []
        errors = [
            FieldError(str(item.get("key") or item.get("source") or "request"),
                       _plain(str(item.get("message", "is not valid"))))
            for item in extra
            if isinstance(item, dict)
        ] or [FieldError("request", "The request could not be read as JSON.")]
    return problem_response(request, 400, "invalid-request", "Some details need correcting",
                            "; ".join(f"{e.field}: {e.message}" for e in errors), errors)


def handle_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Problem]:
    status = exc.status_code
    code, title = _HTTP_TITLES.get(status, ("error", "The request could not be completed"))
    detail = {
        401: "Sign in and send the access token as 'Authorization: Bearer <token>'.",
        403: "You do not have access to this.",
        404: "There is nothing at this address. Check the path against /schema.",
        405: "This address does not accept this method. Check /schema for what it accepts.",
        429: "Too many requests in a short time. Wait a minute and try again.",
    }.get(status, exc.detail if status < 500 else "The server could not complete the request.")
    if isinstance(exc, NotAuthorizedException | PermissionDeniedException) and exc.detail:
        detail = exc.detail
    headers = {k: v for k, v in (exc.headers or {}).items()}
    return problem_response(request, status, code, title, str(detail), headers=headers or None)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    log.error("unhandled error", extra={"error_type": type(exc).__name__,
                                        "path_template": _route(request)}, exc_info=exc)
    return problem_response(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "internal-error", "Something went wrong on our side",
        "The request could not be completed. Nothing was changed unless a later read shows "
        "otherwise; it is safe to retry with the same Idempotency-Key. Quote the request id "
        "if you contact support.",
    )


def _route(request: Request[Any, Any, Any]) -> str:
    return str(request.scope.get("path_template") or "?")


def _plain(message: str) -> str:
    return message.replace("`", "")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    CareBridgeError: handle_domain_error,
    ValidationException: handle_validation,
    HTTPException: handle_http,
    Exception: handle_unexpected,
}
