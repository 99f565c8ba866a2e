"""OpenAPI for the quota API (``hmacfs.web.quotas``, docs/quotas.md)."""

from __future__ import annotations

from hmacfs.web.api_spec.components import (
    BEARER,
    INTEGER,
    UUID,
    Json,
    errors,
    json_body,
    nullable,
    obj,
    path_param,
    ref,
)

TAG = "Quotas"

SCHEMAS: Json = {
    "QuotaUsage": obj(
        {
            "accountId": UUID,
            "limit": {**INTEGER, "minimum": 0, "description": "bytes the account may hold; 0 = unlimited"},
            "used": {
                **INTEGER,
                "description": "bytes in files plus bytes received by uploads that reserve nothing",
            },
            "reserved": {**INTEGER, "description": "declared bytes of reserved unfinished uploads"},
            "available": {**nullable(INTEGER), "description": "limit - used - reserved; null when unlimited"},
        },
        required=("accountId", "limit", "used", "reserved", "available"),
    ),
    "QuotaRequest": obj({"maxBytes": {**INTEGER, "minimum": 0}}, required=("maxBytes",)),
}

OPERATIONS: Json = {
    "/api/quota": {
        "get": {
            "tags": [TAG],
            "summary": "The bearer's own quota and usage",
            "security": BEARER,
            "responses": {"200": json_body(ref("QuotaUsage")), **errors(401)},
        }
    },
    "/api/admin/quotas/{account}": {
        "put": {
            "tags": [TAG],
            "summary": "Set an account's quota (a token with the admin claim; 403 for any other)",
            "security": BEARER,
            "parameters": [path_param("account", "The account's id", UUID)],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("QuotaRequest")}},
            },
            "responses": {"200": json_body(ref("QuotaUsage")), **errors(400, 401, 403, 413)},
        }
    },
}


def paths() -> Json:
    return OPERATIONS
