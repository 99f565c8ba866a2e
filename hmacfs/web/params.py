"""Request parameters parsed the same way by every API: bad input is a 400 naming the field."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request

from hmacfs.errors import BadRequest, PayloadTooLarge, ValidationFailed
from hmacfs.names import MAX_MEDIA_TYPE_LENGTH, is_media_type

_FALSE = frozenset({"false", "0", "no"})
# The largest value a BIGINT column (and a signed 64-bit integer) holds.
MAX_BIGINT = 2**63 - 1
# No API body comes near these; they bound memory and the parser's recursion.
MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32


def json_object(max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON body, which must be an object.

    400 INVALID_JSON (field ``body``) when it is not JSON or not an object, when a
    string holds a NUL (no database text or JSONB column can store one) or when it
    nests deeper than MAX_JSON_DEPTH; 413 past ``max_bytes``.
    """
    try:
        body = json.loads(_json_bytes(max_bytes))
    except (ValueError, RecursionError):  # RecursionError: nesting past the parser's stack
        raise _bad_json("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _bad_json("the body must be a JSON object")
    _check_json(body, 0)
    return body


def _json_bytes(max_bytes: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge("JSON body too large", details={"maxSize": max_bytes})
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge("JSON body too large", details={"maxSize": max_bytes})
    return data


def _check_json(value: Any, depth: int) -> None:
    if depth > MAX_JSON_DEPTH:
        raise _bad_json(f"the body nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\0" in value:
            raise _bad_json("a string holds a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_json(key, depth)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def _bad_json(message: str) -> BadRequest:
    return BadRequest(message, code="INVALID_JSON", details={"field": "body"})


def query_int(name: str, default: int) -> int:
    """Query parameter ``name`` as an integer that fits a signed 64-bit column,
    ``default`` when absent (400 VALIDATION_FAILED naming it otherwise)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: must be an integer", details={"field": name}) from None
    if not -MAX_BIGINT - 1 <= value <= MAX_BIGINT:
        raise ValidationFailed(f"{name}: out of range", details={"field": name})
    return value


def query_flag(name: str, default: bool) -> bool:
    """Query parameter ``name`` as a boolean: "false", "0" and "no" are false."""
    raw = request.args.get(name)
    return default if raw is None else raw.lower() not in _FALSE


def header_text(name: str) -> str:
    """Header ``name`` as text: its bytes decoded as UTF-8 (WSGI hands them over as
    latin-1). 400 MISSING_HEADER when absent or blank, INVALID_HEADER when not UTF-8
    or holding a control character."""
    raw = request.headers.get(name, "").strip()
    if not raw:
        raise BadRequest(f"{name} header is required", code="MISSING_HEADER", details={"field": name})
    try:
        text = raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise BadRequest(f"{name} must be UTF-8", code="INVALID_HEADER", details={"field": name}) from None
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in text):
        raise BadRequest(f"{name} holds a control character", code="INVALID_HEADER", details={"field": name})
    return text


def header_int(name: str) -> int:
    """Header ``name`` as a non-negative decimal integer that fits a 64-bit column
    (400 MISSING_HEADER or INVALID_HEADER naming it)."""
    raw = request.headers.get(name, "").strip()
    if not raw:
        raise BadRequest(f"{name} header is required", code="MISSING_HEADER", details={"field": name})
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_BIGINT:
        raise BadRequest(
            f"{name} must be a non-negative integer", code="INVALID_HEADER", details={"field": name}
        )
    return int(raw)


def media_type(value: str, field: str) -> str:
    """``value`` as a Content-Type to store: RFC 9110 syntax, at most 255 characters
    (the column); 400 INVALID_CONTENT_TYPE naming ``field`` otherwise."""
    if not is_media_type(value):
        raise BadRequest(
            f"{field}: must be a media type such as text/plain, at most {MAX_MEDIA_TYPE_LENGTH} characters",
            code="INVALID_CONTENT_TYPE",
            details={"field": field},
        )
    return value


def register_input_guards(app: Flask) -> None:
    """Refuse a NUL in a path segment, a query parameter or a header before any
    handler runs (400 INVALID_CHARACTER naming it): every id and name ends in a
    database text column, where PostgreSQL cannot store one."""

    @app.before_request
    def _refuse_nul() -> None:
        if _may_hold_nul(request.environ):
            _refuse_named_nul()


def _may_hold_nul(environ: dict[str, object]) -> bool:
    """False when no path segment, query parameter or header can hold a NUL: every one
    of them is decoded from a string of the environ, the query's from ``%00``. Parsing
    the query and every header for each request cost about 5 % of a cached slot GET."""
    query = environ.get("QUERY_STRING")
    if isinstance(query, str) and "%00" in query:
        return True
    return any(isinstance(value, str) and "\0" in value for value in environ.values())


def _refuse_named_nul() -> None:
    """Raise 400 INVALID_CHARACTER naming the first field that holds a NUL."""
    for source, values in (
        ("path", (request.view_args or {}).items()),
        ("query", request.args.items(multi=True)),
        ("header", request.headers.items()),
    ):
        for name, value in values:
            if isinstance(value, str) and "\0" in value:
                raise BadRequest(
                    f"{source} parameter {name} holds a NUL character",
                    code="INVALID_CHARACTER",
                    details={"field": name},
                )
