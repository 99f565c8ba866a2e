"""X-Request-ID: passed through from nginx (or made here), echoed, and on the request's log lines."""

from __future__ import annotations

import io
import json
import logging
import re

from flask import Flask

from hmacfs.config import LoggingSettings
from hmacfs.logs import REQUEST_ID, log_handler
from hmacfs.web.request_ids import request_id_from


def test_a_plausible_id_is_kept_anything_else_replaced() -> None:
    assert request_id_from("0f3a9c7e5b2d4e6f8a1b3c5d7e9f0a1b") == "0f3a9c7e5b2d4e6f8a1b3c5d7e9f0a1b"
    assert request_id_from("lb-1:req.42_x") == "lb-1:req.42_x"
    for bad in (None, "", "a b", "x" * 129, "evil\nline", "é"):
        assert re.fullmatch(r"[0-9a-f]{32}", request_id_from(bad))


def test_the_id_is_echoed_or_made(app: Flask) -> None:
    client = app.test_client()
    assert (
        client.get("/health", headers={"X-Request-ID": "from-nginx-1"}).headers["X-Request-ID"]
        == "from-nginx-1"
    )
    made = client.get("/health").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/health").headers["X-Request-ID"] != made
    error = client.get("/api/tasks", headers={"X-Request-ID": "denied-2"})  # no token: 401
    assert error.status_code == 401 and error.headers["X-Request-ID"] == "denied-2"
    replaced = client.get("/health", headers={"X-Request-ID": "no spaces please"}).headers["X-Request-ID"]
    assert replaced != "no spaces please"
    assert REQUEST_ID.get() is None  # nothing leaks past the request


def test_log_lines_of_a_request_carry_its_id(app: Flask) -> None:
    logger = logging.getLogger("hmacfs.test.request")

    @app.get("/_test/log")
    def _log() -> str:
        logger.warning("handling")
        return "ok"

    handler = log_handler(LoggingSettings(format="json"))  # type: ignore[arg-type]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    logger.addHandler(handler)
    try:
        app.test_client().get("/_test/log", headers={"X-Request-ID": "trace-77"})
    finally:
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert (entry["message"], entry["request_id"]) == ("handling", "trace-77")
