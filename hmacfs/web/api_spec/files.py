"""OpenAPI for whole-file uploads and downloads: XEP-0363 slots (``hmacfs.web.xep0363``),
the multipart POST (``hmacfs.web.multipart``) and ``/download/<id>`` (``hmacfs.web.downloads``)."""

from __future__ import annotations

from hmacfs.web.api_spec.components import (
    INTEGER,
    OPTIONAL_BEARER,
    STRING,
    Json,
    empty,
    errors,
    header,
    header_param,
    json_body,
    obj,
    path_param,
    query_param,
)

_BINARY = {"type": "string", "format": "binary"}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_SLOT = [
    path_param("slot", "The slot's directory (one or more segments, as the XMPP server issued it)"),
    path_param("filename", "The file's name"),
]
_SIGNATURES = [
    query_param("v", "HMAC of path and size (prosody mod_http_upload_external v1)"),
    query_param("v2", "HMAC of path, size and content type"),
    query_param("v3", "HMAC with an expiry"),
    query_param("token", "HMAC token variant"),
    query_param("expires", "Expiry of a v3 signature (epoch seconds)"),
]
_SLOT_SECURITY: list[Json] = [{"slotSignature": []}, {"bearer": []}]


def _download_headers() -> Json:
    return {
        "ETag": header("Strong validator", required=True),
        "Accept-Ranges": header("bytes, or none when range requests are off"),
        "Content-Disposition": header("attachment or inline, with the file's name"),
        "Last-Modified": header("When the file was stored"),
    }


def _download_responses(*extra: int) -> Json:
    body = {"*/*": {"schema": _BINARY}}
    return {
        "200": {"description": "The whole file", "headers": _download_headers(), "content": body},
        "206": {
            "description": "The requested range(s) (multipart/byteranges for several)",
            "headers": {**_download_headers(), "Content-Range": header("The range sent")},
            "content": body,
        },
        "302": empty(
            "The file's bytes at a presigned URL of the S3 store, which answers Range itself "
            '([storage.s3] download = "redirect")',
            {"Location": header("The presigned URL (valid for presign_expiry)", required=True)},
        ),
        "304": empty("Not modified (If-None-Match / If-Modified-Since)"),
        **errors(*extra, 404, 416),
    }


_CONDITIONAL = [
    header_param("Range", "bytes=<first>-<last>[, ...]"),
    header_param("If-Range", "ETag or date: the range only if unchanged"),
    header_param("If-None-Match", "ETag(s) the client holds"),
    header_param("If-Modified-Since", "HTTP date"),
]

SCHEMAS: Json = {
    "SlotStored": obj({"path": STRING, "size": INTEGER, "sha256": _SHA256}),
    "MultipartStored": obj({"filename": STRING, "size": INTEGER, "sha256": _SHA256, "url": STRING}),
}


def paths(base_path: str) -> Json:
    """The XEP-0363 operations under ``[xep0363] base_path``, the multipart POST and downloads."""
    slot = base_path.rstrip("/") + "/{slot}/{filename}"
    return {
        slot: {
            "put": {
                "tags": ["XEP-0363"],
                "summary": "Upload to a slot (Prosody external-upload contract)",
                "security": _SLOT_SECURITY,
                "parameters": [*_SLOT, *_SIGNATURES],
                "requestBody": {"required": True, "content": {"*/*": {"schema": _BINARY}}},
                "responses": {
                    "201": json_body({"$ref": "#/components/schemas/SlotStored"}, "Stored"),
                    **errors(400, 403, 404, 409, 411, 413, 507),
                },
            },
            "get": {
                "tags": ["XEP-0363"],
                "summary": "Download a slot's file (signature needed only with require_signature_for_get)",
                "security": [{}, *_SLOT_SECURITY],
                "parameters": [*_SLOT, *_SIGNATURES, *_CONDITIONAL],
                "responses": _download_responses(400, 403),
            },
            "head": {
                "tags": ["XEP-0363"],
                "summary": "A slot file's headers",
                "security": [{}, *_SLOT_SECURITY],
                "parameters": [*_SLOT, *_SIGNATURES, *_CONDITIONAL],
                "responses": _download_responses(400, 403),
            },
            "options": {
                "tags": ["XEP-0363"],
                "summary": "CORS preflight for browser XMPP clients",
                "security": [{}],
                "parameters": [*_SLOT, header_param("Origin", "The page's origin")],
                "responses": {
                    "204": empty("Allowed", {"Allow": header("GET, HEAD, PUT, OPTIONS", required=True)}),
                    "403": json_body(
                        {"$ref": "#/components/schemas/Problem"}, "Origin not allowed (CORS_ORIGIN_DENIED)"
                    ),
                    "404": json_body({"$ref": "#/components/schemas/Problem"}, "Not a slot path"),
                },
            },
        },
        "/upload": {
            "post": {
                "tags": ["Multipart"],
                "summary": "Upload one file as the multipart field `file` (bound X-Signature or a JWT)",
                "security": [{"signature": []}, {"bearer": []}],
                "parameters": [
                    header_param("X-Filename", "The signed file name (with X-Signature)"),
                    header_param("X-Total-Size", "The signed size (with X-Signature)"),
                    header_param("X-Signature-Expires", "The signature's expiry (epoch seconds)"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": _BINARY},
                                "required": ["file"],
                            }
                        }
                    },
                },
                "responses": {
                    "201": json_body({"$ref": "#/components/schemas/MultipartStored"}, "Stored"),
                    **errors(400, 401, 403, 411, 413, 507),
                },
            }
        },
        "/download/{file_id}": {
            method: {
                "tags": ["Downloads"],
                "summary": "A stored file, with Range and conditional requests (public pools need no token)",
                "security": OPTIONAL_BEARER,
                "parameters": [path_param("file_id", "The file's id"), *_CONDITIONAL],
                "responses": _download_responses(400, 401, 403),
            }
            for method in ("get", "head")
        },
    }
