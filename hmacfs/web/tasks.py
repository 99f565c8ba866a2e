"""The background task API under ``/api/tasks`` (JWT; every task is visible to its owner only)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from hmacfs.auth import current_account
from hmacfs.errors import ValidationFailed
from hmacfs.tasks import queries, service
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
    response = jsonify([queries.serialize(task) for task in tasks])
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
    return jsonify(queries.serialize(service.get_task(db_session(), current_account(), task_id)))


@tasks_api.get("/<task_id>/details")
def show_details(task_id: str) -> Response:
    task = service.get_task(db_session(), current_account(), task_id)
    return jsonify(queries.details(task, services().clock.now()))


@tasks_api.post("/<task_id>/<any(pause, resume, cancel):action>")
def act(task_id: str, action: str) -> Response:
    task = _ACTIONS[action](db_session(), services(), current_account(), task_id)
    return jsonify(queries.serialize(task))
