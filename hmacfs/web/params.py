"""Request parameters parsed the same way by every API: bad input is a 400 naming the field."""

from __future__ import annotations

from typing import Any

from flask import request

from hmacfs.errors import BadRequest, ValidationFailed

_FALSE = frozenset({"false", "0", "no"})


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
