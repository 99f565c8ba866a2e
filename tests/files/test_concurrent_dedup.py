"""Many uploads of the same new content finishing at once (PostgreSQL, real connections)."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session

from hmacfs.config import DeduplicationSettings
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.models import Blob, File
from hmacfs.storage import LocalBlobStore

UPLOADERS = 16
CONTENTS = 20


def test_simultaneous_first_uploads_of_one_content_share_one_blob(
    backend: str, engine: Engine, tmp_path: Path
) -> None:
    """Every uploader passes the dedup upsert's conflict check at the same moment; all
    must end up referencing one blob (a second unique constraint made some fail)."""
    if backend != "postgresql":
        pytest.skip("concurrent writers need PostgreSQL")
    store = LocalBlobStore(tmp_path / "store", fsync=False)
    failures: list[BaseException] = []
    for _ in range(CONTENTS):
        content = os.urandom(64)
        start = threading.Barrier(UPLOADERS)

        def upload(content: bytes = content, start: threading.Barrier = start) -> None:
            part = uuid.uuid4().hex
            written = store.receive(part, io.BytesIO(content).read, len(content))
            new = NewFile(name="same.bin", content_type="application/octet-stream", pool_id=DEFAULT_POOL_ID)
            try:
                with Session(engine) as session:
                    session.connection()
                    start.wait()
                    create_file_from_part(
                        session, store, DeduplicationSettings(), part=part, sha256=written.sha256,
                        size=len(content), new=new,
                    )  # fmt: skip
                    session.commit()
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=upload) for _ in range(UPLOADERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        with Session(engine) as session:
            sha256 = hashlib.sha256(content).hexdigest()
            blob = session.scalars(select(Blob).where(Blob.sha256 == sha256)).one()
            files = session.scalar(select(func.count()).select_from(File).where(File.blob_id == blob.id))
            assert blob.ref_count == files == UPLOADERS
            assert store.blob_path(blob.storage_key).read_bytes() == content
            session.execute(delete(File).where(File.blob_id == blob.id))  # the engine is shared
            session.execute(delete(Blob).where(Blob.id == blob.id))
            session.commit()
