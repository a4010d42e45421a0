"""Request body validation that reports every bad field at once, in plain words.

msgspec (which Litestar uses) stops at the first error. When it refuses a body, we check each
field of the declared struct on its own and report them all.

Before any of that, a body or address that cannot be read at all is refused as bad input, not
left to fail deeper down as a server error: JSON that is not UTF-8 or is nested deeper than the
decoder goes, and text holding the NUL character, which PostgreSQL cannot store.
"""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

import msgspec
from litestar import Request
from litestar.exceptions import ClientException
from litestar.types import Empty

from domain.errors import FieldError

MAX_BODY_BYTES = 1_000_000  # any request body but an upload's chunks
_EXPECTED = re.compile(r"Expected `([^`]+)`, got `([^`]+)`")
_KIND_WORDS = {
    "str": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "array": "a list",
    "object": "an object",
    "date": "a date as YYYY-MM-DD",
    "datetime": "a date and time with its offset, e.g. 2026-03-29T09:30:00+01:00",
    "uuid": "an identifier",
}


def plain_message(message: str) -> str:
    """Turns a msgspec message into words a person can act on."""
    if message.startswith("Invalid enum value"):
        return "choose one of the allowed values listed in the API schema"
    if message.startswith("Invalid RFC3339 encoded datetime"):
        return f"must be {_KIND_WORDS['datetime']}"
    if message.startswith("Invalid RFC3339 encoded date"):
        return "must be a date as YYYY-MM-DD"
    if message.startswith("Invalid UUID"):
        return "must be an identifier (a UUID)"
    match = _EXPECTED.search(message)
    if match:
        wanted = match.group(1).split(" ")[0].split("|")[0].strip()
        return f"must be {_KIND_WORDS.get(wanted, wanted)}"
    if "length" in message:
        return message.split(" - ", maxsplit=1)[0].replace("Expected `str` of length", "must be").replace(
            "`", "") + " characters"
    return message.replace("`", "").split(" - ")[0]


def field_errors(struct_type: type[msgspec.Struct], raw: bytes) -> list[FieldError]:
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return [FieldError("body", "The body is not valid JSON.")]
    if not isinstance(document, dict):
        return [FieldError("body", "Send a JSON object.")]
    errors: list[FieldError] = []
    fields = msgspec.structs.fields(struct_type)
    known = {f.encode_name for f in fields}
    for f in fields:
        if f.encode_name not in document:
            if f.required:
                errors.append(FieldError(f.encode_name, "is required"))
            continue
        try:
            msgspec.json.decode(msgspec.json.encode(document[f.encode_name]), type=f.type)
        except msgspec.ValidationError as error:
            message = str(error)
            location = re.search(r"at `\$([^`]*)`", message)
            name = f.encode_name + (location.group(1) if location else "")
            errors.append(FieldError(name, plain_message(message)))
    for name in document:
        if name not in known:
            errors.append(FieldError(name, "is not a field of this request; remove it"))
    return errors


def body_field_errors(request: Request[Any, Any, Any]) -> list[FieldError] | None:
    """All field errors of the request body, if the route declares a struct body."""
    handler = request.scope.get("route_handler")
    raw = request._connection_state.body  # the body Litestar already read
    if handler is None or raw is Empty or not raw:
        return None
    parameter = handler.parsed_fn_signature.parameters.get("data")
    if parameter is None:
        return None
    struct_type = _struct_of(parameter.annotation)
    if struct_type is None:
        return None
    return field_errors(struct_type, raw) or None


def _struct_of(annotation: Any) -> type[msgspec.Struct] | None:
    if isinstance(annotation, type) and issubclass(annotation, msgspec.Struct):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _struct_of(arg)
            if found is not None:
                return found
    return None


class CareRequest(Request[Any, Any, Any]):
    """Litestar's request, refusing bodies its JSON decoder would turn into a server error."""

    async def json(self) -> Any:
        try:
            document = await super().json()
        except UnicodeDecodeError:
            raise ClientException("The body is not valid UTF-8: send JSON encoded as UTF-8.") \
                from None
        except RecursionError:
            raise ClientException("The JSON is nested too deeply to read: send a flatter "
                                  "document, as the API schema describes.") from None
        raw = self._connection_state.body
        if isinstance(raw, bytes) and b"\\u0000" in raw:  # JSON can only carry NUL escaped
            where = _nul_at(document, "body")
            if where is not None:
                raise ClientException(f"{where} holds the NUL character (\\u0000); remove it.")
        return document


def refuse_nul_in_address(request: Request[Any, Any, Any]) -> None:
    """A before-request hook: a path or query with NUL (%00) is bad input, not a 500."""
    if "\x00" in request.scope["path"] or b"%00" in request.scope["query_string"]:
        raise ClientException("The address holds the NUL character (%00); remove it.")


def _nul_at(value: Any, where: str) -> str | None:
    """Where in a decoded JSON document a string (or key) holds NUL, if anywhere."""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_at(key, where) or _nul_at(item, f"{where}.{key}")
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{where}[{index}]")
            if found:
                return found
    return None
