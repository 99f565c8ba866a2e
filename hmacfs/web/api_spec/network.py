"""OpenAPI for the client's network profile (``hmacfs.web.adaptive``, docs/adaptive.md)."""

from __future__ import annotations

from hmacfs.web.api_spec.components import (
    INTEGER,
    STRING,
    Json,
    errors,
    header_param,
    json_body,
    nullable,
    obj,
    query_param,
    ref,
)

TAG = "Network"
_NUMBER: Json = {"type": "number"}

SCHEMAS: Json = {
    "NetworkProfile": obj(
        {
            "chunkSize": {**INTEGER, "description": "bytes per chunk (tus: per PATCH) to use now"},
            "bufferSize": {**INTEGER, "description": "read size the server starts this client's bodies with"},
            "networkClass": {**STRING, "enum": ["ethernet", "wifi", "lte", "cellular", "vpn", "unknown"]},
            "clientId": {
                **STRING,
                "description": "Hmacfs-Client-Id, else a hash of User-Agent and address prefix",
            },
            "arm": {**STRING, "enum": ["fixed", "adaptive"]},
            "source": {**STRING, "enum": ["measured", "hint", "measured+hint", "none"]},
            "estimate": obj(
                {
                    "throughputBytesPerSecond": nullable(_NUMBER),
                    "rttMs": nullable(_NUMBER),
                    "loss": _NUMBER,
                    "reliability": _NUMBER,
                    "bodies": _NUMBER,
                },
                required=("throughputBytesPerSecond", "rttMs", "loss", "reliability", "bodies"),
            ),
        },
        required=("chunkSize", "bufferSize", "networkClass", "clientId", "arm", "source", "estimate"),
    ),
}

OPERATIONS: Json = {
    "/api/network/profile": {
        "get": {
            "tags": [TAG],
            "summary": "The chunk and buffer size recommended to this client now, and why",
            "parameters": [
                query_param("fileSize", "The file size, bytes (refines unmeasured links)", INTEGER),
                header_param("Hmacfs-Network", "The client's network: type=lte; downlink=8.5; rtt=60"),
                header_param("Hmacfs-Client-Id", "The client's own stable id (1-64 of A-Za-z0-9._~-)"),
            ],
            "responses": {"200": json_body(ref("NetworkProfile")), **errors(400)},
        }
    },
}


def paths() -> Json:
    return OPERATIONS
