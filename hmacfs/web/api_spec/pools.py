"""OpenAPI for ``GET /api/pools`` (``hmacfs.web.pools``)."""

from __future__ import annotations

from hmacfs.web.api_spec.components import (
    BEARER,
    BOOLEAN,
    INTEGER,
    STRING,
    UUID,
    Json,
    array,
    errors,
    json_body,
    nullable,
    obj,
    ref,
)

SCHEMAS: Json = {
    "Pool": obj(
        {
            "id": UUID,
            "name": STRING,
            "default": {**BOOLEAN, "description": "where uploads without a poolId go"},
            "maxFileSize": {
                **INTEGER,
                "description": "bytes: the pool's limit within uploads.max_upload_size",
            },
            "allowedContentTypes": nullable(array(STRING)),
            "fileTtlSeconds": nullable(INTEGER),
            "public": BOOLEAN,
            "allowAnonymous": {**BOOLEAN, "description": "tus uploads without a token are accepted"},
        }
    ),
}

OPERATIONS: Json = {
    "/api/pools": {
        "get": {
            "tags": ["Pools"],
            "summary": "The storage pools an upload may name as poolId, with what each accepts",
            "security": BEARER,
            "parameters": [],
            "responses": {"200": json_body(array(ref("Pool"))), **errors(401)},
        },
    },
}


def paths() -> Json:
    return OPERATIONS
