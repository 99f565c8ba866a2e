"""The Drive upload-task API (drive seed), served under ``/api/files/upload`` and ``/drive/files/upload``.

Every call needs a JWT; another account's task answers 404.
"""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Flask, Response, jsonify

from hmacfs.auth import current_account
from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.errors import Conflict, NotFound
from hmacfs.models.status import Protocol
from hmacfs.uploads import engine
from hmacfs.web.adaptive import plan_create
from hmacfs.web.bodies import write_request_chunk
from hmacfs.web.context import chunk_request, db_session, services
from hmacfs.web.drive_forms import (
    file_json,
    parse_create,
    parse_filter,
    progress_json,
    recent_limit,
    task_json,
)
from hmacfs.web.params import json_object

PREFIXES = {"drive_api": "/api/files/upload", "drive_gateway": "/drive/files/upload"}

drive = Blueprint("drive", __name__)


def register_drive(app: Flask) -> None:
    """Mount the same routes under the API prefix and the seed's gateway prefix."""
    for name, prefix in PREFIXES.items():
        app.register_blueprint(drive, name=name, url_prefix=prefix)


@drive.before_request
def _enabled() -> None:
    if not services().settings.uploads.resumable_uploads_enabled:
        raise NotFound("resumable uploads are disabled", code="FEATURE_DISABLED")


@drive.post("/create")
def create() -> Response:
    account = current_account()
    session = db_session()
    new = parse_create(json_object(), account, DEFAULT_POOL_ID)
    if new.bundle_id is not None:
        engine.check_bundle(session, new.bundle_id, account)
    assert new.sha256 is not None
    existing = engine.find_duplicate(session, new.sha256.lower(), account, services().clock.now())
    if existing is not None:
        return jsonify({"fileExists": True, "file": file_json(existing)})
    plan = plan_create(account, new.chunk_size, new.file_size)
    new = replace(new, task_id=plan.task_id, chunk_size=plan.chunk_size, client_profile_key=plan.profile_key)
    task = engine.create(session, services(), new)
    return jsonify(
        {
            "fileExists": False,
            "taskId": task.task_id,
            "chunkSize": task.chunk_size,
            "chunksCount": task.chunks_count,
            "recommendedChunkSize": plan.recommendation.chunk_size,
        }
    )


@drive.post("/chunk/<task_id>/<int:index>")
@chunk_request
def chunk(task_id: str, index: int) -> Response:
    account = current_account()  # before any database work
    task = engine.find(db_session(), task_id, account, Protocol.DRIVE)
    result = write_request_chunk(task, index)
    if not result.stored:
        raise Conflict("chunk already uploaded", code="CHUNK_EXISTS", details={"chunkIndex": index})
    return jsonify({"taskId": task_id, "chunkIndex": index, **progress_json(result.task)})


@drive.post("/complete/<task_id>")
def complete(task_id: str) -> Response:
    session = db_session()
    task = engine.find(session, task_id, current_account(), Protocol.DRIVE)
    return jsonify(file_json(engine.complete(session, services(), task)))


@drive.get("/tasks")
def tasks() -> Response:
    tasks, total = engine.list_uploads(db_session(), current_account(), engine.check_filter(parse_filter()))
    response = jsonify([task_json(task) for task in tasks])
    response.headers["X-Total"] = str(total)
    return response


@drive.get("/tasks/recent")
def recent() -> Response:
    return jsonify(
        [task_json(task) for task in engine.recent_uploads(db_session(), current_account(), recent_limit())]
    )


@drive.get("/progress/<task_id>")
def progress(task_id: str) -> Response:
    return jsonify(progress_json(engine.find(db_session(), task_id, current_account(), Protocol.DRIVE)))


@drive.get("/resume/<task_id>")
def resume(task_id: str) -> Response:
    state = engine.status(db_session(), task_id, current_account(), Protocol.DRIVE)
    uploaded, missing = state.uploaded_chunks, state.missing_chunks
    return jsonify({**task_json(state.task), "uploadedChunks": uploaded, "missingChunks": missing})


@drive.delete("/task/<task_id>")
def cancel(task_id: str) -> tuple[str, int]:
    session = db_session()
    engine.cancel(session, services(), engine.find(session, task_id, current_account(), Protocol.DRIVE))
    return "", 204


@drive.get("/tasks/<task_id>/details")
def details(task_id: str) -> Response:
    session = db_session()
    task = engine.find(session, task_id, current_account(), Protocol.DRIVE)
    found = engine.details(session, task)
    pool, bundle = found.pool, found.bundle
    return jsonify(
        {
            **task_json(task),
            "uploadSpeed": round(found.speed, 1),
            "estimatedTimeRemaining": found.eta,
            "pool": None if pool is None else {"id": str(pool.id), "name": pool.name, "public": pool.public},
            "bundle": None if bundle is None else {"id": str(bundle.id), "name": bundle.name},
        }
    )


@drive.get("/stats")
def stats() -> Response:
    found = engine.upload_stats(db_session(), current_account())
    recent = found.pop("recentActivity")
    assert isinstance(recent, list)
    return jsonify({**found, "recentActivity": [task_json(task) for task in recent]})


@drive.delete("/tasks/cleanup")
def cleanup() -> Response:
    removed = engine.cleanup_finished(db_session(), services().store, current_account())
    return jsonify({"removed": removed})
