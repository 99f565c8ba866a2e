"""Building blocks shared by every blueprint's part of the OpenAPI document.

Schemas are JSON Schema 2020-12 (what OpenAPI 3.1 uses). Helpers return plain
dicts so each blueprint module reads as the document it produces.
"""

from __future__ import annotations

from typing import Any

from hmacfs.models.status import Protocol, TaskType, UploadStatus, values

Json = dict[str, Any]

STRING: Json = {"type": "string"}
INTEGER: Json = {"type": "integer"}
NUMBER: Json = {"type": "number"}
BOOLEAN: Json = {"type": "boolean"}
DATE_TIME: Json = {"type": "string", "format": "date-time"}
UUID: Json = {"type": "string", "format": "uuid"}


def nullable(schema: Json) -> Json:
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: Json, required: tuple[str, ...] | None = None, *, extra: bool = False) -> Json:
    """An object schema; every property is required unless ``required`` names fewer."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": extra,
    }


def array(items: Json) -> Json:
    return {"type": "array", "items": items}


def json_body(schema: Json, description: str = "OK", headers: Json | None = None) -> Json:
    response: Json = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def empty(description: str, headers: Json | None = None) -> Json:
    response: Json = {"description": description}
    if headers:
        response["headers"] = headers
    return response


def header(description: str, schema: Json | None = None, *, required: bool = False) -> Json:
    return {"description": description, "schema": schema or STRING, "required": required}


def problem(description: str) -> Json:
    return json_body(ref("Problem"), description)


def errors(*statuses: int) -> Json:
    """The problem responses of ``statuses``, plus what any operation may answer: 400 (a
    NUL or other forbidden character in the path, query or headers, refused before any
    handler), 414 (a request line past gunicorn's limit), 429 (rate limits) and 503 (the
    database unavailable)."""
    answers = {str(status): problem(ERROR_MEANINGS[status]) for status in sorted({*statuses, 400, 429, 503})}
    # A request gunicorn cannot parse (a broken chunked body, a bad header) is answered
    # by gunicorn itself, before the app, with a small HTML page; so is a request line
    # longer than its limit_request_line (4094 bytes), as 414.
    answers["400"]["content"]["text/html"] = {"schema": STRING}
    answers["414"] = {"description": _TOO_LONG, "content": {"text/html": {"schema": STRING}}}
    return dict(sorted(answers.items()))


_TOO_LONG = "The request line (method, path and query) is longer than gunicorn's 4094-byte limit"


ERROR_MEANINGS = {
    400: "Bad input: the code names what (VALIDATION_FAILED, MISSING_HEADER, INVALID_HEADER, ...)",
    401: "No valid bearer token (UNAUTHORIZED, AUTHENTICATION_REQUIRED)",
    403: "Not allowed: bad signature, quota exceeded, feature disabled",
    404: "Not found, or owned by another account",
    405: "Method not allowed",
    409: "Conflict: a chunk already stored, an upload in another state",
    410: "The upload expired, was cancelled or failed",
    411: "Content-Length is required",
    412: "Precondition failed (tus: unsupported Tus-Resumable version)",
    413: "Larger than allowed (uploads.max_upload_size, the declared or signed size)",
    415: "Unsupported Content-Type",
    416: "The requested range is not satisfiable",
    423: "tus: another request is writing this upload; retry",
    429: "Too many requests; retry after Retry-After seconds",
    460: "tus: checksum mismatch",
    503: (
        "The database or the blob store is unavailable (DATABASE_UNAVAILABLE or STORAGE_UNAVAILABLE, "
        "with Retry-After); retry shortly"
    ),
    507: "Storage is full",
}

BEARER: list[Json] = [{"bearer": []}]
OPTIONAL_BEARER: list[Json] = [{"bearer": []}, {}]
PUBLIC: list[Json] = [{}]


def operation(
    tag: str,
    summary: str,
    responses: Json,
    parameters: list[Json] | None = None,
    *,
    security: list[Json] = BEARER,
    **extra: object,
) -> Json:
    """An operation of ``tag``'s API; bearer authentication unless ``security`` says otherwise."""
    return {
        "tags": [tag],
        "summary": summary,
        "security": security,
        "parameters": parameters or [],
        "responses": responses,
        **extra,
    }


def _param(where: str, name: str, description: str, schema: Json | None, required: bool) -> Json:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": schema or STRING,
    }


def path_param(name: str, description: str, schema: Json | None = None) -> Json:
    return _param("path", name, description, schema, True)


def query_param(name: str, description: str, schema: Json | None = None, *, required: bool = False) -> Json:
    return _param("query", name, description, schema, required)


def header_param(name: str, description: str, schema: Json | None = None, *, required: bool = False) -> Json:
    return _param("header", name, description, schema, required)


UPLOAD_STATUS: Json = {"type": "string", "enum": list(values(UploadStatus))}
PROTOCOL: Json = {"type": "string", "enum": list(values(Protocol))}
TASK_TYPE: Json = {"type": "string", "enum": list(values(TaskType))}

SCHEMAS: Json = {
    "Problem": obj(
        {
            "code": {"type": "string", "description": "Stable machine-readable code"},
            "message": {"type": "string"},
            "status": INTEGER,
            "details": {"type": "object"},
        }
    ),
    "File": obj(
        {
            "id": UUID,
            "name": STRING,
            "size": INTEGER,
            "contentType": STRING,
            "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "poolId": UUID,
            "bundleId": nullable(UUID),
            "createdAt": DATE_TIME,
            "expiredAt": nullable(DATE_TIME),
            "url": {"type": "string", "description": "Download path, /download/{file_id}"},
        }
    ),
}

SECURITY_SCHEMES: Json = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A JWT whose `sub` is the account id (`hmacfs token issue --account <uuid>`).",
    },
    "signature": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Signature",
        "description": "HMAC bound to an expiry, the file name and the size (docs/signatures.md).",
    },
    "slotSignature": {
        "type": "apiKey",
        "in": "query",
        "name": "v",
        "description": "XEP-0363 slot signature (v, v2, token or v3 query parameters; docs/signatures.md).",
    },
}
