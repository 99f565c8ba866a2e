"""In-process task fixtures: the real worker loop on the test's rolled-back connection."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from hmacfs.composition import build_services, task_handlers
from hmacfs.container import Services
from hmacfs.db import Database
from hmacfs.tasks.worker import Worker
from tests.conftest import make_settings


@pytest.fixture
def services(tmp_path: Path, engine: Engine, sessions: sessionmaker[Session]) -> Services:
    settings = make_settings(
        tmp_path / "storage",
        engine.url.render_as_string(hide_password=False),
        tasks={
            "checkpoint_interval": "0s",
            "migration_roots": [str(tmp_path / "alt")],
            "migration_grace": "0s",
            "decompress_max_entries": 50,
            "max_attempts": 2,
        },
    )
    built = build_services(settings, db=Database(engine=engine, sessions=sessions))
    built.store.ensure_layout()
    return built


def drain(services: Services, limit: int = 50) -> int:
    """Run the worker loop in this process until the queue is empty; returns the batches run."""
    worker = Worker(services, threading.Event(), task_handlers(services.settings))
    for count in range(limit):
        if not worker.run_once():
            return count
    raise AssertionError("queue never drained")
