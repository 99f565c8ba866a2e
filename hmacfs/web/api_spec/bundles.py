"""OpenAPI for the bundles API under ``/api/bundles`` (``hmacfs.web.bundles``)."""

from __future__ import annotations

from functools import partial

from hmacfs.web.api_spec.components import (
    DATE_TIME,
    INTEGER,
    STRING,
    UUID,
    Json,
    array,
    empty,
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

TAG = "Bundles"
_ID = path_param("bundle_id", "The bundle's id", UUID)
BUNDLE: Json = {
    "id": UUID,
    "name": STRING,
    "description": nullable(STRING),
    "fileCount": INTEGER,
    "totalSize": INTEGER,
    "createdAt": DATE_TIME,
    "updatedAt": DATE_TIME,
}
_FILE = obj(
    {
        "id": UUID,
        "name": STRING,
        "contentType": STRING,
        "size": INTEGER,
        "sha256": STRING,
        "createdAt": DATE_TIME,
    }
)

SCHEMAS: Json = {
    "Bundle": obj(BUNDLE),
    "BundleRequest": obj({"name": STRING, "description": STRING}, required=("name",)),
}


_op = partial(operation, TAG)


OPERATIONS: Json = {
    "/api/bundles": {
        "post": _op(
            "Create an empty bundle (files join through the Drive API's bundleId)",
            {"201": json_body(ref("Bundle"), "Created"), **errors(400, 401)},
            requestBody={"required": True, "content": {"application/json": {"schema": ref("BundleRequest")}}},
        ),
        "get": _op(
            "The account's bundles, one page",
            {
                "200": json_body(
                    array(ref("Bundle")), headers={"X-Total": header("All bundles", INTEGER, required=True)}
                ),
                **errors(400, 401),
            },
            [
                query_param("offset", "Skip this many", {"type": "integer", "minimum": 0}),
                query_param("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 100}),
            ],
        ),
    },
    "/api/bundles/{bundle_id}": {
        "get": _op(
            "A bundle with its files",
            {"200": json_body(obj({**BUNDLE, "files": array(_FILE)})), **errors(401, 404)},
            [_ID],
        ),
        "delete": _op(
            "Delete the bundle; its files stay", {"204": empty("Deleted"), **errors(401, 404)}, [_ID]
        ),
    },
}


def paths() -> Json:
    return OPERATIONS
