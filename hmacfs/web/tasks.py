"""The background task API under ``/api/tasks`` (JWT; every task is visible to its owner only).

The account's uploads appear here too, as the seed's ``FileUpload`` type, read-only:
listed, shown, counted; pause, resume and cancel answer 409 ``FILE_UPLOAD_READ_ONLY``
(uploads move through their own protocol's API).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from hmacfs.auth import current_account
from hmacfs.errors import ValidationFailed
from hmacfs.models import Task, UploadTask
from hmacfs.tasks import file_uploads, queries, service
from hmacfs.web import file_upload_forms
from hmacfs.web.context import db_session, services
from hmacfs.web.params import json_object, query_flag, query_int

tasks_api = Blueprint("tasks", __name__, url_prefix="/api/tasks")

_ACTIONS = {"pause": service.pause_task, "resume": service.resume_task, "cancel": service.cancel_task}


@tasks_api.post("")
def create() -> tuple[Response, int]:
    body = json_object()
    optional_text = {key: body.get(key) for key in ("name", "description")}
    if any(value is not None and not isinstance(value, str) for value in optional_text.values()):
        raise ValidationFailed("name: name and description must be strings", details={"field": "name"})
    task = service.submit_task(
        db_session(),
        services(),
        current_account(),
        str(body.get("type", "")),
        body.get("parameters", {}),
        name=optional_text["name"],
        description=optional_text["description"],
        priority=body.get("priority", 0),
    )
    return jsonify(queries.serialize(task)), 201


@tasks_api.get("")
def index() -> Response:
    tasks, total = queries.list_tasks(
        db_session(),
        current_account(),
        type=request.args.get("type"),
        status=request.args.get("status"),
        sort_by=request.args.get("sortBy", "lastActivity"),
        descending=query_flag("sortDescending", True),
        offset=query_int("offset", 0),
        limit=query_int("limit", 50),
    )
    response = jsonify([_json(task) for task in tasks])
    response.headers["X-Total"] = str(total)
    return response


@tasks_api.get("/stats")
def stats() -> Response:
    return jsonify(queries.task_stats(db_session(), current_account()))


@tasks_api.delete("/cleanup")
def cleanup() -> Response:
    deleted = queries.delete_finished(db_session(), services(), current_account(), None)
    return jsonify({"deleted": deleted})


@tasks_api.get("/<task_id>")
def show(task_id: str) -> Response:
    return jsonify(_json(_find(task_id)))


@tasks_api.get("/<task_id>/details")
def show_details(task_id: str) -> Response:
    found, now = _find(task_id), services().clock.now()
    if isinstance(found, UploadTask):
        return jsonify(file_upload_forms.details(found, now))
    return jsonify(queries.details(found, now))


@tasks_api.post("/<task_id>/<any(pause, resume, cancel):action>")
def act(task_id: str, action: str) -> Response:
    upload = file_uploads.find_upload(db_session(), current_account(), task_id)
    if upload is not None:
        raise file_uploads.read_only(upload, action)
    task = _ACTIONS[action](db_session(), services(), current_account(), task_id)
    return jsonify(queries.serialize(task))


def _find(task_id: str) -> Task | UploadTask:
    """The account's task, else its upload (as FileUpload); 404 TASK_NOT_FOUND for neither."""
    session, account = db_session(), current_account()
    upload = file_uploads.find_upload(session, account, task_id)
    return upload if upload is not None else service.get_task(session, account, task_id)


def _json(found: Task | UploadTask) -> dict[str, Any]:
    return file_upload_forms.serialize(found) if isinstance(found, UploadTask) else queries.serialize(found)
