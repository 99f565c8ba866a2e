"""OpenAPI for the background task API under ``/api/tasks`` (``hmacfs.web.tasks``)."""

from __future__ import annotations

from functools import partial

from hmacfs.web.api_spec.components import (
    BOOLEAN,
    DATE_TIME,
    INTEGER,
    NUMBER,
    STRING,
    TASK_TYPE,
    Json,
    array,
    errors,
    header,
    json_body,
    nullable,
    obj,
    operation,
    path_param,
    query_param,
    ref,
)

TAG = "Tasks"
_ID = path_param("task_id", "The task's id (taskId)")

TASK: Json = {
    "taskId": STRING,
    "name": nullable(STRING),
    "description": nullable(STRING),
    "type": TASK_TYPE,
    "customType": nullable(STRING),
    "status": STRING,
    "progress": NUMBER,
    "priority": INTEGER,
    "parameters": {"type": "object"},
    "results": {"type": "object"},
    "errorMessage": nullable(STRING),
    "attempts": INTEGER,
    "createdAt": DATE_TIME,
    "updatedAt": DATE_TIME,
    "lastActivity": DATE_TIME,
    "startedAt": nullable(DATE_TIME),
    "completedAt": nullable(DATE_TIME),
}

_READ_ONLY: Json = {"const": True, "description": "An upload (FileUpload): readable, not actionable here"}

SCHEMAS: Json = {
    "TaskRequest": obj(
        {
            "type": TASK_TYPE,
            "parameters": {"type": "object", "description": "The handler's parameters (see docs/tasks.md)"},
            "name": STRING,
            "description": STRING,
            "priority": {"type": "integer", "minimum": 0, "maximum": 100, "default": 0},
            "customType": STRING,
        },
        required=("type",),
        extra=True,
    ),
    # An upload listed as the seed's FileUpload type carries readOnly: true (no actions).
    "Task": obj({**TASK, "readOnly": _READ_ONLY}, required=tuple(TASK)),
}

_DETAILS = obj(
    {
        **TASK,
        "readOnly": _READ_ONLY,
        "processed": nullable(NUMBER),
        "total": nullable(NUMBER),
        "elapsedSeconds": NUMBER,
        "speed": nullable(NUMBER),
        "progressPerSecond": nullable(NUMBER),
        "etaSeconds": nullable(NUMBER),
        "leaseExpiresAt": nullable(DATE_TIME),
        "hasSecret": BOOLEAN,
    },
    required=(*TASK, "elapsedSeconds", "hasSecret"),
)
_STATS = obj(
    {
        "total": INTEGER,
        "byStatus": {"type": "object", "additionalProperties": INTEGER},
        "byType": {"type": "object", "additionalProperties": INTEGER},
    }
)


_op = partial(operation, TAG)


def _action(verb: str) -> Json:
    return {
        "post": _op(
            f"{verb.capitalize()} the task (a cooperative checkpoint)",
            {"200": json_body(ref("Task")), **errors(401, 404, 409)},
            [_ID],
        )
    }


OPERATIONS: Json = {
    "/api/tasks": {
        "post": _op(
            "Submit a background task",
            {"201": json_body(ref("Task"), "Submitted"), **errors(400, 401, 403)},
            requestBody={"required": True, "content": {"application/json": {"schema": ref("TaskRequest")}}},
        ),
        "get": _op(
            "The account's tasks, one page",
            {
                "200": json_body(
                    array(ref("Task")), headers={"X-Total": header("Matching tasks", INTEGER, required=True)}
                ),
                **errors(400, 401),
            },
            [
                query_param("type", "Only this type", TASK_TYPE),
                query_param("status", "Only this status"),
                query_param("sortBy", "createdAt, lastActivity, priority, progress, name, status or type"),
                query_param("sortDescending", "Descending order", {"type": "boolean", "default": True}),
                query_param("offset", "Skip this many", {"type": "integer", "minimum": 0}),
                query_param("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 100}),
            ],
        ),
    },
    "/api/tasks/stats": {"get": _op("Counts by status and type", {"200": json_body(_STATS), **errors(401)})},
    "/api/tasks/cleanup": {
        "delete": _op(
            "Delete the account's finished tasks",
            {"200": json_body(obj({"deleted": INTEGER})), **errors(401)},
        )
    },
    "/api/tasks/{task_id}": {
        "get": _op("One task", {"200": json_body(ref("Task")), **errors(401, 404)}, [_ID])
    },
    "/api/tasks/{task_id}/details": {
        "get": _op("One task with speed and ETA", {"200": json_body(_DETAILS), **errors(401, 404)}, [_ID])
    },
    **{f"/api/tasks/{{task_id}}/{verb}": _action(verb) for verb in ("pause", "resume", "cancel")},
}


def paths() -> Json:
    return OPERATIONS
