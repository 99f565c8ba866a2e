from __future__ import annotations

import io
import uuid
from datetime import timedelta

from flask import Flask
from sqlalchemy.orm import Session

from hmacfs.composition import cleanup_steps
from hmacfs.container import Services
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.maintenance import CLEANUP_LOCK, run_cleanup
from hmacfs.models import Blob, File


def _expired_file(session: Session, services: Services) -> File:
    data = uuid.uuid4().bytes
    part = uuid.uuid4().hex
    written = services.store.receive(part, io.BytesIO(data).read, len(data))
    file = create_file_from_part(
        session,
        services.store,
        services.settings.deduplication,
        part=part,
        sha256=written.sha256,
        size=len(data),
        new=NewFile(
            name="x",
            content_type="application/octet-stream",
            pool_id=DEFAULT_POOL_ID,
            expired_at=services.clock.now() - timedelta(seconds=1),
        ),
    )
    session.commit()
    return file


def test_cleanup_deletes_expired_files_and_their_bytes(app: Flask) -> None:
    services: Services = app.extensions["hmacfs"]
    with services.db.sessions() as session:
        file = _expired_file(session, services)
        blob = session.get(Blob, file.blob_id)
        assert blob is not None
        path = services.store.blob_path(blob.storage_key)
    assert path.exists()
    result = run_cleanup(services, cleanup_steps())
    assert result is not None and result["files.expired"] == 1 and result["blobs.orphaned"] == 1
    assert not path.exists()
    with services.db.sessions() as session:
        assert session.get(File, file.id) is None


def test_cleanup_skips_while_another_process_holds_the_lock(app: Flask) -> None:
    services: Services = app.extensions["hmacfs"]
    with services.locker.hold(CLEANUP_LOCK):
        assert run_cleanup(services, cleanup_steps()) is None
    assert run_cleanup(services, cleanup_steps()) is not None
