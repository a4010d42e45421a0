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
from litestar.openapi.spec import (
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Reference,
    Schema,
)
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from api.validation import MAX_BODY_BYTES, body_field_errors
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
FHIR_JSON = "application/fhir+json"  # the FHIR API answers errors as OperationOutcome
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
        413: f"The request body is larger than this address accepts (at most {MAX_BODY_BYTES:,} "
             "bytes). Send less; send files through /v1/uploads, in chunks.",
        429: "Too many requests in a short time. Wait a minute and try again.",
    }.get(status, exc.detail if status < 500 else "The server could not complete the request.")
    if isinstance(exc, NotAuthorizedException | PermissionDeniedException) and exc.detail:
        detail = exc.detail
    headers = {k: v for k, v in (exc.headers or {}).items()}
    return problem_response(request, status, code, title, str(detail), headers=headers or None)


def handle_out_of_range(request: Request[Any, Any, Any], exc: OverflowError) -> Response[Problem]:
    """A date at the edge of the calendar (0001-01-01T00:00+01:00 is in year 0 in UTC) or a
    number too large to compute with: only a request brings those, so it is bad input."""
    log.warning("value out of range", extra={"path_template": _route(request)})
    return problem_response(request, 400, "out-of-range", "A value is out of range",
                            "A date, time or number in the request is outside the range we "
                            "handle: a date must stay within the years 1 to 9999 once "
                            "converted to UTC.")


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
    OverflowError: handle_out_of_range,
    Exception: handle_unexpected,
}


# ---- the OpenAPI document: every operation's error answers ----------------------------------

# The answers any operation may give besides its own (Litestar documents only its validation
# error, and in the wrong shape). Operations add their own through `responses=` on the route.
SHARED_PROBLEMS: dict[int, str] = {
    400: "The request could not be read: a malformed body, parameter or header. `errors` names "
         "each field to fix.",
    401: "Sign in: the access token is missing, not valid or expired, or the session has ended.",
    403: "Signed in, but this is not yours to see or do, or not available at your clinic yet.",
    404: "Nothing at this address, or nothing you may know exists.",
    409: "This conflicts with the current state (someone changed it, or it was already done "
         "differently); `detail` says what to do next.",
    413: "The request body is larger than this API accepts.",
    422: "Some details need correcting: `errors` names every field and what to change.",
    429: "Too many requests in a short time; `Retry-After`, when sent, says when to try again.",
    500: "Something went wrong on our side; quote `request_id` to support. Safe to retry with "
         "the same Idempotency-Key.",
}
PROBLEM_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["type", "title", "status", "detail"],
    description="An RFC 9457 problem document.",
    properties={
        "type": Schema(type=OpenAPIType.STRING, description="A stable URI per kind of error."),
        "title": Schema(type=OpenAPIType.STRING),
        "status": Schema(type=OpenAPIType.INTEGER),
        "detail": Schema(type=OpenAPIType.STRING, description="What to do, in plain words."),
        "instance": Schema(type=OpenAPIType.STRING),
        "request_id": Schema(type=OpenAPIType.STRING),
        "errors": Schema(type=OpenAPIType.ARRAY, items=Schema(
            type=OpenAPIType.OBJECT, required=["field", "message"],
            properties={"field": Schema(type=OpenAPIType.STRING),
                        "message": Schema(type=OpenAPIType.STRING)})),
        "extensions": Schema(type=OpenAPIType.OBJECT, additional_properties=Schema()),
    },
)
OPERATION_OUTCOME_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["resourceType", "issue"],
    description="A FHIR R4 OperationOutcome: the FHIR API's errors.",
    properties={"resourceType": Schema(const="OperationOutcome"),
                "issue": Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.OBJECT))},
)


def document_problems(openapi: OpenAPI, fhir_prefix: str = "/fhir") -> None:
    """Gives every operation of the document the shared problem answers (FHIR operations an
    OperationOutcome instead), replacing the 400 Litestar documents for validation errors,
    which the API never sends in that shape. Answers a route documents itself are kept; a 204
    is documented without content (Litestar gives some a JSON body they never have)."""
    openapi.components.schemas["Problem"] = PROBLEM_SCHEMA
    openapi.components.schemas["OperationOutcome"] = OPERATION_OUTCOME_SCHEMA
    problem = Reference(ref="#/components/schemas/Problem")
    outcome = Reference(ref="#/components/schemas/OperationOutcome")
    for path, item in (openapi.paths or {}).items():
        media_type, schema = (FHIR_JSON, outcome) if path.startswith(fhir_prefix) else \
            (PROBLEM_JSON, problem)
        for operation in _operations(item):
            responses = operation.responses if operation.responses is not None else {}
            no_content = responses.get("204")
            if isinstance(no_content, OpenAPIResponse):
                no_content.content = None
            for status, description in SHARED_PROBLEMS.items():
                existing = responses.get(str(status))
                if isinstance(existing, OpenAPIResponse) and _documents(existing, media_type):
                    continue
                responses[str(status)] = OpenAPIResponse(
                    description=description,
                    content={media_type: OpenAPIMediaType(schema=schema)})
            operation.responses = responses



def _operations(item: Any) -> list[Operation]:
    methods = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
    return [op for op in (getattr(item, method, None) for method in methods) if op is not None]


def _documents(response: OpenAPIResponse, media_type: str) -> bool:
    return bool(response.content) and media_type in (response.content or {})
