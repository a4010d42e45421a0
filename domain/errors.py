"""The one error hierarchy: every refusal the domain or a command handler can give, in plain words.

The API maps each kind to an HTTP status and an RFC 9457 problem document; the message is
written for the person using the app, so it never contains internal content or identifiers
of other people.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldError:
    """One field that needs fixing, named as the client sent it."""

    field: str
    message: str


class CareBridgeError(Exception):
    """Base of every expected refusal. `code` is stable and becomes the problem type slug."""

    code = "error"
    title = "The request could not be completed"

    def __init__(self, detail: str, **extensions: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = extensions


class InvalidInput(CareBridgeError):
    """One or more fields are wrong; every error is reported at once."""

    code = "invalid-input"
    title = "Some details need correcting"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        self.errors = errors
        summary = detail or "; ".join(f"{e.field}: {e.message}" for e in errors)
        super().__init__(summary)


class NotFound(CareBridgeError):
    code = "not-found"
    title = "Not found"


class Conflict(CareBridgeError):
    """The request contradicts the current state; the detail says what to do instead."""

    code = "conflict"
    title = "This conflicts with the current state"


class ConcurrentChange(Conflict):
    code = "concurrent-change"
    title = "Someone else changed this at the same time"


class Unauthenticated(CareBridgeError):
    code = "unauthenticated"
    title = "Please sign in"


class Forbidden(CareBridgeError):
    code = "forbidden"
    title = "You do not have access to this"


class TooManyRequests(CareBridgeError):
    """Asked too often; `retry_after` (seconds) says when to try again."""

    code = "too-many-requests"
    title = "Too many requests"


@dataclass
class Rejections:
    """Collects field errors so that a caller sees all of them, not just the first."""

    errors: list[FieldError] = field(default_factory=list)

    def add(self, field_name: str, message: str) -> None:
        self.errors.append(FieldError(field_name, message))

    def raise_if_any(self) -> None:
        if self.errors:
            raise InvalidInput(self.errors)
