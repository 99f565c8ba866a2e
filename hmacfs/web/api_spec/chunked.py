"""OpenAPI for the chunked session API of the network-resilience seed (``hmacfs.web.chunked``)."""

from __future__ import annotations

from hmacfs.web.api_spec.components import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    OPTIONAL_BEARER,
    STRING,
    Json,
    array,
    errors,
    header_param,
    json_body,
    obj,
    query_param,
)

TAG = "Chunked sessions"
ALIASES = {"/upload/chunked": "/chunked-upload", "/upload/status": "/upload-status"}
_SIGNED_OR_BEARER: list[Json] = [{"signature": []}, {"bearer": []}]
_SESSION = header_param("X-Upload-Session-ID", "The session id from the opening call (or `?session_id=`)")
_SESSION_QUERY = query_param("session_id", "The session id, when the header is not sent")

SCHEMAS: Json = {
    "ChunkedSession": obj(
        {
            "session_id": STRING,
            "chunk_size": INTEGER,
            "total_chunks": INTEGER,
            "recommended_chunk_size": INTEGER,
        }
    ),
    "ChunkedChunk": obj(
        {
            "success": BOOLEAN,
            "chunk": INTEGER,
            "uploaded_bytes": INTEGER,
            "total_size": INTEGER,
            "progress": {"type": "number", "minimum": 0, "maximum": 1, "description": "Fraction 0..1"},
            "completed": BOOLEAN,
        }
    ),
    "ChunkedStatus": obj(
        {
            "session_id": STRING,
            "filename": STRING,
            "total_size": INTEGER,
            "uploaded_bytes": INTEGER,
            "progress": NUMBER,
            "completed": BOOLEAN,
            "chunks": INTEGER,
            "missing_chunks": array(INTEGER),
        }
    ),
}

_DIGESTS = [
    header_param("Content-Digest", "RFC 9530 digest of the chunk (sha-256)"),
    header_param("X-Chunk-SHA256", "Hex SHA-256 of the chunk"),
]

OPERATIONS: Json = {
    "/upload/chunked": {
        "post": {
            "tags": [TAG],
            "summary": "Open a session (bound X-Signature over name and size, or a JWT)",
            "security": _SIGNED_OR_BEARER,
            "parameters": [
                header_param("X-Filename", "The file's name", required=True),
                header_param(
                    "X-Total-Size",
                    "The file's size in bytes",
                    {"type": "integer", "minimum": 1},
                    required=True,
                ),
                header_param(
                    "X-Chunk-Size",
                    "Wanted chunk size; omit for the recommendation",
                    {"type": "integer", "minimum": 0},
                ),
                header_param("X-Signature-Expires", "Expiry the signature is bound to (epoch seconds)"),
            ],
            "responses": {
                "201": json_body({"$ref": "#/components/schemas/ChunkedSession"}, "Opened"),
                **errors(400, 401, 403, 413, 507),
            },
        },
        "put": {
            "tags": [TAG],
            "summary": "Store one chunk; the last missing chunk completes the upload",
            "security": OPTIONAL_BEARER,
            "parameters": [
                _SESSION,
                _SESSION_QUERY,
                header_param(
                    "X-Chunk-Number", "Chunk index, 0-based", {"type": "integer", "minimum": 0}, required=True
                ),
                *_DIGESTS,
            ],
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "responses": {
                "200": json_body({"$ref": "#/components/schemas/ChunkedChunk"}),
                **errors(400, 401, 404, 409, 410, 411, 413, 507),
            },
        },
    },
    "/upload/status": {
        "get": {
            "tags": [TAG],
            "summary": "A session's progress and missing chunks",
            "security": OPTIONAL_BEARER,
            "parameters": [_SESSION, _SESSION_QUERY],
            "responses": {
                "200": json_body({"$ref": "#/components/schemas/ChunkedStatus"}),
                **errors(400, 401, 404),
            },
        }
    },
}


def paths() -> Json:
    """The operations, and the same under the seed's alias paths."""
    found = dict(OPERATIONS)
    for path, alias in ALIASES.items():
        found[alias] = OPERATIONS[path]
    return found
