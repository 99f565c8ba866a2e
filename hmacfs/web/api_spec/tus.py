"""OpenAPI for tus 1.0 at ``/files/`` (``hmacfs.web.tus``): headers and status codes."""

from __future__ import annotations

from functools import partial

from hmacfs.web.api_spec.components import (
    INTEGER,
    OPTIONAL_BEARER,
    Json,
    empty,
    errors,
    header,
    header_param,
    operation,
    path_param,
)

TAG = "tus 1.0"
_RESUMABLE = header_param(
    "Tus-Resumable", "Protocol version", {"type": "string", "const": "1.0.0"}, required=True
)
_ID = path_param("upload_id", "The upload's id (the last segment of Location)")
_CHUNK_ADVICE = header("Bytes per PATCH the server recommends to this client now (docs/adaptive.md)", INTEGER)
_OFFSET = header("Bytes stored so far", INTEGER, required=True)
_FILE = {
    "Hmacfs-File-Id": header("Once complete: the stored file's id", {"type": "string", "format": "uuid"}),
    "Hmacfs-File-Url": header("Once complete: the stored file's download URL (/download/<id>)"),
}
_EXPIRES = header("When an unfinished upload expires (RFC 7231 date)")
_ANSWER_RESUMABLE = header("Protocol version: 1.0.0", required=True)
_BODY = {"content": {"application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
_TUS_ERRORS = (400, 401, 403, 404, 409, 410, 412, 413, 415, 423, 460, 507)


_op = partial(operation, TAG, security=OPTIONAL_BEARER)


OPERATIONS: Json = {
    "/files/": {
        "options": {
            "tags": [TAG],
            "summary": "Server capabilities (no Tus-Resumable needed)",
            "security": [{}],
            "responses": {
                "204": empty(
                    "Capabilities",
                    {
                        "Tus-Version": header("Supported versions", required=True),
                        "Tus-Extension": header(
                            "Supported extensions (creation, checksum, termination, concatenation, ...)",
                            required=True,
                        ),
                        "Tus-Max-Size": header("uploads.max_upload_size", INTEGER, required=True),
                        "Tus-Checksum-Algorithm": header("sha1, sha256, md5, ...", required=True),
                    },
                ),
                **errors(403),
            },
        },
        "post": _op(
            "Create an upload (anonymous only into pools that allow it)",
            {
                "201": empty(
                    "Created",
                    {
                        "Location": header("The upload's URL", required=True),
                        "Upload-Offset": _OFFSET,
                        "Upload-Expires": _EXPIRES,
                        "Tus-Resumable": _ANSWER_RESUMABLE,
                        "Hmacfs-Chunk-Size": _CHUNK_ADVICE,
                        **_FILE,
                    },
                ),
                **errors(*_TUS_ERRORS),
            },
            [
                _RESUMABLE,
                header_param("Upload-Length", "Total size in bytes", {"type": "integer", "minimum": 0}),
                header_param(
                    "Upload-Defer-Length",
                    "1: the size comes with a later PATCH",
                    {"type": "string", "enum": ["1"]},
                ),
                header_param(
                    "Upload-Metadata", "Comma-separated `key base64value` pairs (filename, filetype, poolId)"
                ),
                header_param("Upload-Concat", "`partial`, or `final;<url> <url> ...`"),
                header_param("Upload-Checksum", "`<algorithm> <base64 digest>` of this request's body"),
            ],
            requestBody={"required": False, **_BODY},
        ),
    },
    "/files/{upload_id}": {
        "options": {
            "tags": [TAG],
            "summary": "Server capabilities",
            "security": [{}],
            "parameters": [_ID],
            "responses": {"204": empty("Capabilities"), **errors(403)},
        },
        "head": _op(
            "The upload's offset, length, metadata and concatenation",
            {
                "200": empty(
                    "The upload's state",
                    {
                        "Upload-Offset": _OFFSET,
                        "Upload-Length": header("Total size, unless deferred", INTEGER),
                        "Upload-Defer-Length": header("1 while the size is deferred"),
                        "Upload-Metadata": header("As sent at creation"),
                        "Upload-Concat": header("partial, or final;<urls>"),
                        "Upload-Expires": _EXPIRES,
                        "Tus-Resumable": _ANSWER_RESUMABLE,
                        "Hmacfs-Chunk-Size": _CHUNK_ADVICE,
                        **_FILE,
                    },
                ),
                "404": empty("No such upload"),
                "410": empty("Expired, cancelled or failed"),
                "412": empty("Unsupported Tus-Resumable"),
                "503": empty("Database unavailable"),
            },
            [_RESUMABLE, _ID],
        ),
        "patch": _op(
            "Append bytes at Upload-Offset",
            {
                "204": empty(
                    "Stored",
                    {
                        "Upload-Offset": _OFFSET,
                        "Upload-Expires": _EXPIRES,
                        "Tus-Resumable": _ANSWER_RESUMABLE,
                        **_FILE,
                    },
                ),
                **errors(*_TUS_ERRORS, 411),
            },
            [
                _RESUMABLE,
                _ID,
                header_param(
                    "Upload-Offset",
                    "Where this body starts",
                    {"type": "integer", "minimum": 0},
                    required=True,
                ),
                header_param(
                    "Upload-Length", "Total size, when it was deferred", {"type": "integer", "minimum": 0}
                ),
                header_param("Upload-Checksum", "`<algorithm> <base64 digest>` of this body"),
            ],
            requestBody={"required": True, **_BODY},
        ),
        "delete": _op(
            "Terminate the upload",
            {"204": empty("Terminated"), **errors(400, 401, 404, 410, 412, 423)},
            [_RESUMABLE, _ID],
        ),
        "post": _op(
            "X-HTTP-Method-Override: PATCH, HEAD or DELETE through POST",
            {
                "200": empty("HEAD's answer"),
                "204": empty("PATCH's or DELETE's answer"),
                **errors(*_TUS_ERRORS, 411),
            },
            [
                _RESUMABLE,
                _ID,
                header_param(
                    "X-HTTP-Method-Override",
                    "The method meant",
                    {"type": "string", "enum": ["PATCH", "HEAD", "DELETE"]},
                    required=True,
                ),
            ],
        ),
    },
}


def paths() -> Json:
    return OPERATIONS
