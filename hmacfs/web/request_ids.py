"""Request ids: taken from ``X-Request-ID`` (nginx sets it, ``proxy_set_header X-Request-ID
$request_id``) or made here, put on every log line of the request (``hmacfs.logs``) and
echoed in the response's ``X-Request-ID``.

A client-chosen id is kept only when it looks like one (1-128 of letters, digits and
``-_.:``), so a log line can never be forged through it; anything else is replaced.
"""

from __future__ import annotations

import random
import re
from contextvars import Token

from flask import Flask, Response, g, request

from hmacfs.logs import REQUEST_ID

HEADER = "X-Request-ID"
_ENVIRON_KEY = "HTTP_X_REQUEST_ID"  # HEADER as WSGI names it: no header parsing per request
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_from(header: str | None) -> str:
    """The id to use for a request whose ``X-Request-ID`` was ``header``."""
    if header is not None and _ACCEPTABLE.fullmatch(header):
        return header
    return _new_id()


def _new_id() -> str:
    """32 random hex digits, like ``uuid4().hex`` but without a read of the OS's random
    source per request (about 2 µs): the ``random`` module's generator, which Python
    reseeds in every forked worker. An id only needs to be unique, not secret, and
    unlike a counter it tells a client nothing about the server's traffic."""
    return f"{random.getrandbits(128):032x}"


def configure_request_ids(app: Flask) -> None:
    """Register first, so that every later hook and handler logs with the id."""

    @app.before_request
    def _take() -> None:
        request_id = request_id_from(request.environ.get(_ENVIRON_KEY))
        g.request_id = request_id
        g.request_id_token = REQUEST_ID.set(request_id)

    @app.after_request
    def _echo(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is not None:
            response.headers[HEADER] = request_id
        return response

    @app.teardown_request
    def _forget(_exc: BaseException | None) -> None:
        token: Token[str | None] | None = g.pop("request_id_token", None)
        if token is not None:
            REQUEST_ID.reset(token)
