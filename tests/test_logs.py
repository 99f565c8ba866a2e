"""Log lines in text and JSON (python-json-logger), with the request id where there is one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from hmacfs.config import LoggingSettings
from hmacfs.logs import REQUEST_ID, log_handler


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    found = logging.getLogger("hmacfs.test.logs")
    found.propagate = False
    found.setLevel(logging.INFO)
    yield found
    found.handlers.clear()


def _capture(logger: logging.Logger, format: str) -> io.StringIO:
    handler = log_handler(LoggingSettings(format=format))  # type: ignore[arg-type]
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    logger.handlers[:] = [handler]
    return stream


def test_json_lines_carry_the_request_id_only_inside_a_request(logger: logging.Logger) -> None:
    stream = _capture(logger, "json")
    logger.info("outside %d", 1)
    token = REQUEST_ID.set("abc-123")
    try:
        logger.warning("inside", extra={"upload": "t1"})
    finally:
        REQUEST_ID.reset(token)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "outside 1" and first["level"] == "INFO" and "request_id" not in first
    assert first["logger"] == "hmacfs.test.logs" and {"ts", "process"} <= set(first)
    assert second["request_id"] == "abc-123" and second["upload"] == "t1" and second["level"] == "WARNING"
    assert "request_tag" not in second


def test_json_lines_keep_the_traceback(logger: logging.Logger) -> None:
    stream = _capture(logger, "json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger.exception("failed")
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "failed" and "RuntimeError: boom" in entry["exc_info"]


def test_text_lines_tag_the_request(logger: logging.Logger) -> None:
    stream = _capture(logger, "text")
    logger.info("plain")
    token = REQUEST_ID.set("r-9")
    try:
        logger.info("tagged")
    finally:
        REQUEST_ID.reset(token)
    plain, tagged = stream.getvalue().splitlines()
    assert plain.endswith("hmacfs.test.logs: plain") and "[" not in plain
    assert tagged.endswith("hmacfs.test.logs [r-9]: tagged")
