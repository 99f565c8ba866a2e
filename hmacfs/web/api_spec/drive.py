"""OpenAPI for the Drive upload-task API (``hmacfs.web.drive``), mounted under both prefixes."""

from __future__ import annotations

from functools import partial

from hmacfs.web.api_spec.components import (
    BOOLEAN,
    DATE_TIME,
    INTEGER,
    NUMBER,
    STRING,
    UPLOAD_STATUS,
    UUID,
    Json,
    array,
    empty,
    errors,
    header,
    header_param,
    json_body,
    nullable,
    obj,
    operation,
    path_param,
    query_param,
    ref,
)
from hmacfs.web.drive import PREFIXES

TAG = "Drive upload tasks"
TASK_ID = path_param("task_id", "The upload task's id (taskId)")

PROGRESS: Json = {
    "taskId": STRING,
    "fileName": STRING,
    "fileSize": nullable(INTEGER),
    "chunksUploaded": INTEGER,
    "chunksTotal": nullable(INTEGER),
    "progress": NUMBER,
    "status": UPLOAD_STATUS,
    "lastActivity": DATE_TIME,
    "bytesUploaded": INTEGER,
}
TASK: Json = {
    "taskId": STRING,
    "fileName": STRING,
    "fileSize": nullable(INTEGER),
    "contentType": STRING,
    "chunkSize": INTEGER,
    "chunksCount": nullable(INTEGER),
    "chunksUploaded": INTEGER,
    "bytesUploaded": INTEGER,
    "progress": NUMBER,
    "status": UPLOAD_STATUS,
    "poolId": UUID,
    "bundleId": nullable(UUID),
    "hash": nullable(STRING),
    "encryptRequested": BOOLEAN,
    "fileId": nullable(UUID),
    "errorMessage": nullable(STRING),
    "expiredAt": nullable(DATE_TIME),
    "lastActivity": DATE_TIME,
    "createdAt": DATE_TIME,
    "updatedAt": DATE_TIME,
}

SCHEMAS: Json = {
    "DriveCreate": obj(
        {
            "fileName": STRING,
            "fileSize": {"type": "integer", "minimum": 1},
            "contentType": STRING,
            "hash": {
                "type": "string",
                "pattern": "^[0-9a-fA-F]{64}$",
                "description": "SHA-256 of the whole file",
            },
            "chunkSize": {"type": "integer", "description": "Omit to get the server's recommendation"},
            "poolId": UUID,
            "bundleId": UUID,
            "expiredAt": DATE_TIME,
            "encryptPassword": {
                "type": "string",
                "description": "Encrypt the stored file (never stored in clear)",
            },
        },
        required=("fileName", "fileSize", "contentType", "hash"),
    ),
    "DriveCreated": {
        "oneOf": [
            obj({"fileExists": {"const": True}, "file": ref("File")}),
            obj(
                {
                    "fileExists": {"const": False},
                    "taskId": STRING,
                    "chunkSize": {
                        **INTEGER,
                        "description": "the client's chunkSize, else the recommendation",
                    },
                    "chunksCount": INTEGER,
                    "recommendedChunkSize": {**INTEGER, "description": "docs/adaptive.md"},
                }
            ),
        ]
    },
    "UploadProgress": obj(PROGRESS),
    "UploadTask": obj(TASK),
}

_CHUNK_ACCEPTED = obj({**PROGRESS, "chunkIndex": INTEGER})
_RESUME = obj({**TASK, "uploadedChunks": array(INTEGER), "missingChunks": array(INTEGER)})
_DETAILS = obj(
    {
        **TASK,
        "uploadSpeed": {"type": "number", "description": "Bytes per second over the latest chunks"},
        "estimatedTimeRemaining": nullable(NUMBER),
        "pool": nullable(obj({"id": UUID, "name": STRING, "public": BOOLEAN})),
        "bundle": nullable(obj({"id": UUID, "name": STRING})),
    }
)
_STATS = obj(
    {
        "totalTasks": INTEGER,
        "inProgressTasks": INTEGER,
        "completedTasks": INTEGER,
        "failedTasks": INTEGER,
        "expiredTasks": INTEGER,
        "totalUploadedBytes": INTEGER,
        "averageProgress": NUMBER,
        "recentActivity": array(ref("UploadTask")),
    }
)
_TOTAL = {"X-Total": header("Total number of tasks matching the filter", INTEGER, required=True)}


_op = partial(operation, TAG)


OPERATIONS: Json = {
    "/create": {
        "post": _op(
            "Create an upload task, or learn the file already exists (dedup by hash)",
            {"200": json_body(ref("DriveCreated")), **errors(400, 401, 403, 404, 413, 507)},
            requestBody={"required": True, "content": {"application/json": {"schema": ref("DriveCreate")}}},
        )
    },
    "/chunk/{task_id}/{index}": {
        "post": _op(
            "Store chunk `index` (0-based); chunks may arrive in any order and in parallel",
            {"200": json_body(_CHUNK_ACCEPTED), **errors(400, 401, 404, 409, 410, 411, 413, 507)},
            parameters=[
                TASK_ID,
                path_param("index", "Chunk index, 0-based", {"type": "integer", "minimum": 0}),
                header_param("Content-Digest", "RFC 9530 digest of the chunk (sha-256)"),
                header_param("X-Chunk-SHA256", "Hex SHA-256 of the chunk"),
            ],
            requestBody={
                "required": True,
                "description": "The chunk: a raw body, or a multipart/form-data field `chunk`",
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"chunk": {"type": "string", "format": "binary"}},
                        }
                    },
                },
            },
        )
    },
    "/complete/{task_id}": {
        "post": _op(
            "Verify every chunk and the SHA-256 and make the file (idempotent)",
            {"200": json_body(ref("File")), **errors(400, 401, 403, 404, 409, 410, 507)},
            parameters=[TASK_ID],
        )
    },
    "/tasks": {
        "get": _op(
            "The account's upload tasks, one page",
            {"200": json_body(array(ref("UploadTask")), headers=_TOTAL), **errors(400, 401)},
            parameters=[
                query_param("status", "Only tasks with this status", UPLOAD_STATUS),
                query_param("sortBy", "Sort column", {"type": "string", "default": "lastActivity"}),
                query_param("sortDescending", "Newest first", {"type": "boolean", "default": True}),
                query_param("offset", "Skip this many", {"type": "integer", "minimum": 0, "default": 0}),
                query_param(
                    "limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 100, "default": 50}
                ),
            ],
        )
    },
    "/tasks/recent": {
        "get": _op(
            "The most recently active upload tasks",
            {"200": json_body(array(ref("UploadTask"))), **errors(400, 401)},
            parameters=[
                query_param(
                    "limit", "How many", {"type": "integer", "minimum": 1, "maximum": 100, "default": 10}
                )
            ],
        )
    },
    "/progress/{task_id}": {
        "get": _op(
            "Progress of one upload",
            {"200": json_body(ref("UploadProgress")), **errors(401, 404)},
            parameters=[TASK_ID],
        )
    },
    "/resume/{task_id}": {
        "get": _op(
            "What a resuming client needs: the task with its stored and missing chunks",
            {"200": json_body(_RESUME), **errors(401, 404)},
            parameters=[TASK_ID],
        )
    },
    "/task/{task_id}": {
        "delete": _op(
            "Cancel an upload and discard its bytes",
            {"204": empty("Cancelled"), **errors(401, 404, 409, 410)},
            parameters=[TASK_ID],
        )
    },
    "/tasks/{task_id}/details": {
        "get": _op(
            "The task with its speed, ETA, pool and bundle",
            {"200": json_body(_DETAILS), **errors(401, 404)},
            parameters=[TASK_ID],
        )
    },
    "/stats": {"get": _op("The account's upload statistics", {"200": json_body(_STATS), **errors(401)})},
    "/tasks/cleanup": {
        "delete": _op(
            "Delete the account's finished upload tasks",
            {"200": json_body(obj({"removed": INTEGER})), **errors(401)},
        )
    },
}


def paths() -> Json:
    """The operations under each prefix the blueprint is mounted at."""
    found: Json = {}
    for prefix in PREFIXES.values():
        for path, item in OPERATIONS.items():
            found[prefix + path] = item
    return found
