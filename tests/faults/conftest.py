"""Fault tests reuse the end-to-end server fixtures (a real gunicorn+gevent server)."""

from __future__ import annotations

from tests.e2e.conftest import e2e_backend, live_server, start_server

__all__ = ["e2e_backend", "live_server", "start_server"]
