"""Request parameters parsed the same way by every API: bad input is a 400 naming the field."""

from __future__ import annotations

from typing import Any

from flask import request

from hmacfs.errors import BadRequest, ValidationFailed

_FALSE = frozenset({"false", "0", "no"})
# The largest value a BIGINT column (and a signed 64-bit integer) holds.
MAX_BIGINT = 2**63 - 1


def json_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object (400 INVALID_JSON, field ``body``)."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", code="INVALID_JSON", details={"field": "body"})
    return body


def query_int(name: str, default: int) -> int:
    """Query parameter ``name`` as an integer, ``default`` when absent (400 naming it otherwise)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: must be an integer", details={"field": name}) from None


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
