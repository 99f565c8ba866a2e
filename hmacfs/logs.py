"""Log output for every hmacfs process: text or JSON lines (``[logging] format``), with the
request id of the HTTP request being served.

The request id lives in a context variable (one per greenlet under gevent), set
by ``hmacfs.web.request_ids`` for the length of a request, so this module needs
no web framework and the worker and CLI log the same way. JSON lines come from
python-json-logger: one object per line with ``ts``, ``level``, ``logger``,
``message``, ``process``, ``request_id`` (absent outside a request) and any
``extra=`` fields, and ``exc_info`` with the traceback.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

from hmacfs.config import LoggingSettings

REQUEST_ID: ContextVar[str | None] = ContextVar("hmacfs_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s%(request_tag)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request id on each record: ``request_id`` (or None) and ``request_tag``
    (`` [id]`` for text lines, empty outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = REQUEST_ID.get()
        record.request_id = request_id
        record.request_tag = f" [{request_id}]" if request_id else ""
        return True


def json_formatter() -> logging.Formatter:
    """The JSON-lines formatter: fixed field names, a request id only where there is one."""
    return _JsonLines(
        "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
        rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        reserved_attrs=[*_RESERVED, "request_tag"],
    )


class _JsonLines(JsonFormatter):
    def add_fields(
        self, log_data: dict[str, object], record: logging.LogRecord, message: dict[str, object]
    ) -> None:
        super().add_fields(log_data, record, message)
        if log_data.get("request_id") is None:
            log_data.pop("request_id", None)


# python-json-logger's default reserved attributes: the LogRecord's own fields.
_RESERVED = [
    "args", "asctime", "created", "exc_info", "exc_text", "filename", "funcName", "levelname",
    "levelno", "lineno", "module", "msecs", "message", "msg", "name", "pathname", "process",
    "processName", "relativeCreated", "stack_info", "taskName", "thread", "threadName",
]  # fmt: skip


def log_handler(settings: LoggingSettings) -> logging.Handler:
    """A stderr handler in the configured format, carrying request ids."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(json_formatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(settings: LoggingSettings) -> None:
    """Send every log record of this process to stderr in the configured format and level."""
    root = logging.getLogger()
    root.handlers[:] = [log_handler(settings)]
    root.setLevel(settings.level)
