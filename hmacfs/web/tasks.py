"""The background task API under ``/api/tasks`` (JWT; every task is visible to its owner only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from hmacfs.auth import current_account
from hmacfs.errors import ValidationFailed
from hmacfs.maintenance import register_step
from hmacfs.tasks import queries, service
from hmacfs.web.context import db_session, services

tasks_api = Blueprint("tasks", __name__, url_prefix="/api/tasks")
register_step("tasks.finished", queries.cleanup_step)

_ACTIONS = {"pause": service.pause_task, "resume": service.resume_task, "cancel": service.cancel_task}


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("body: a JSON object is required", details={"field": "body"})
    return body


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: an integer", details={"field": name}) from None


@tasks_api.post("")
def create() -> tuple[Response, int]:
    body = _body()
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
        descending=request.args.get("sortDescending", "true").lower() not in ("false", "0", "no"),
        offset=_int_arg("offset", 0),
        limit=_int_arg("limit", 50),
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
