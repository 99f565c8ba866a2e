"""OpenAPI for health, metrics, the web page, these docs and the ``/ws`` event socket
(``hmacfs.web.health``, ``hmacfs.web.metrics``, ``hmacfs.web.page``, ``hmacfs.web.api_docs``,
``hmacfs.web.ws``)."""

from __future__ import annotations

from hmacfs.web.api_spec.components import (
    BOOLEAN,
    DATE_TIME,
    INTEGER,
    PUBLIC,
    STRING,
    Json,
    array,
    empty,
    errors,
    json_body,
    obj,
    path_param,
    query_param,
    ref,
)

_PROBE = {"type": "object", "properties": {"ok": BOOLEAN}, "required": ["ok"]}
_COUNTS = {"type": "object", "additionalProperties": INTEGER}

SCHEMAS: Json = {
    "Readiness": obj(
        {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "database": _PROBE,
            "storage": _PROBE,
            "uploads": _COUNTS,
            "tasks": _COUNTS,
            "pools": {"type": "object", "additionalProperties": _PROBE},
            "failed": array(STRING),
        },
        required=("status", "database", "storage"),
    ),
    "Event": obj(
        {
            "id": {"type": "integer", "description": "Monotonic; reconnect with since=<last id>"},
            "type": {
                "type": "string",
                "description": "upload.progress, upload.completed, upload.failed, task.created, "
                "task.progress, "
                "task.paused, task.resumed, task.completed, task.failed, task.cancelled, network.changed",
            },
            "ts": DATE_TIME,
            "data": {"type": "object"},
        }
    ),
    "WsClientMessage": {
        "description": "What a client sends on /ws",
        "oneOf": [
            obj({"type": {"const": "auth"}, "token": STRING}),
            obj({"type": {"const": "ping"}}),
            obj(
                {"type": {"const": "subscribe"}, "types": array(STRING), "taskIds": array(STRING)},
                required=("type",),
            ),
            obj({"type": {"const": "resume"}, "since": {"type": "integer", "minimum": 0}}),
        ],
    },
    "WsServerMessage": {
        "description": "What the server sends on /ws: events, and control messages",
        "oneOf": [
            ref("Event"),
            obj({"type": {"const": "pong"}}),
            obj({"type": {"const": "resync"}}, extra=False),
            obj({"type": {"const": "error"}, "message": STRING}),
        ],
    },
}

# [metrics] access_token and allowed_networks guard these (hmacfs.web.monitoring).
_GUARDED = {
    "401": json_body(ref("Problem"), "MONITORING_TOKEN_REQUIRED"),
    "403": json_body(ref("Problem"), "MONITORING_FORBIDDEN"),
}
_TEXT = {"text/plain": {"schema": STRING}}
_HTML = {"text/html": {"schema": STRING}}

OPERATIONS: Json = {
    "/health": {
        "get": {
            "tags": ["Service"],
            "summary": "Liveness",
            "security": PUBLIC,
            "responses": {"200": json_body(obj({"status": {"const": "ok"}}))},
        }
    },
    "/health/uploads": {
        "get": {
            "tags": ["Service"],
            "summary": "Readiness: database, storage and every pool's storage",
            "security": PUBLIC,
            "responses": {
                "200": json_body(ref("Readiness")),
                **_GUARDED,
                "503": json_body(ref("Readiness"), "Something failed; `failed` names it"),
            },
        }
    },
    "/metrics": {
        "get": {
            "tags": ["Service"],
            "summary": "Prometheus metrics of every worker (when [metrics] enabled)",
            "security": PUBLIC,
            "responses": {"200": {"description": "Prometheus text format", "content": _TEXT}, **_GUARDED},
        }
    },
    "/openapi.json": {
        "get": {
            "tags": ["Service"],
            "summary": "This document",
            "security": PUBLIC,
            "responses": {"200": json_body({"type": "object"})},
        }
    },
    "/docs": {
        "get": {
            "tags": ["Service"],
            "summary": "This document rendered (no CDN, strict CSP)",
            "security": PUBLIC,
            "responses": {"200": {"description": "HTML", "content": _HTML}},
        }
    },
    "/": {
        "get": {
            "tags": ["Service"],
            "summary": "The upload page",
            "security": PUBLIC,
            "responses": {"200": {"description": "HTML", "content": _HTML}},
        }
    },
    "/static/{name}": {
        "get": {
            "tags": ["Service"],
            "summary": "An asset of the page or the docs",
            "security": PUBLIC,
            "parameters": [path_param("name", "The asset's path")],
            "responses": {
                "200": {"description": "The asset", "content": {"*/*": {"schema": STRING}}},
                **errors(404),
            },
        }
    },
    "/ws": {
        "get": {
            "tags": ["Events"],
            "summary": "Live events over WebSocket",
            "description": (
                "Authenticate with `Authorization: Bearer`, `?token=`, or a first message "
                '`{"type":"auth","token":"..."}` within 5 s (else close 4401). `?since=<id>` '
                "replays what was missed; `resync` means some are gone. Client messages are "
                "`WsClientMessage`, server messages `WsServerMessage` (components). Close codes: "
                "4400 bad request, 4401 unauthorized or token expired, 1001 server shutting down."
            ),
            "security": [{"bearer": []}, {}],
            "parameters": [
                query_param("token", "A JWT, for clients that cannot set headers"),
                query_param("since", "Replay events after this id", {"type": "integer", "minimum": 0}),
            ],
            "x-websocket": {
                "client": ref("WsClientMessage"),
                "server": ref("WsServerMessage"),
            },
            "responses": {
                "101": empty("Switching protocols"),
                "400": {"description": "Not a WebSocket handshake"},
                "403": json_body(ref("Problem"), "Foreign origin (CORS_ORIGIN_DENIED)"),
            },
        }
    },
}


def paths() -> Json:
    return OPERATIONS
