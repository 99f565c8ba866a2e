"""The bundles API under ``/api/bundles`` (JWT; an account sees only its own bundles).

``POST`` creates (``{"name", "description"?}`` -> 201), ``GET`` lists (``offset``,
``limit``; ``X-Total``), ``GET /<id>`` shows with its files, ``DELETE /<id>``
removes the bundle and leaves its files (204). Files join a bundle through the
Drive API's ``bundleId`` and the tasks' ``targetBundleId``.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from hmacfs.auth import current_account
from hmacfs.files import bundles
from hmacfs.web.context import db_session
from hmacfs.web.params import json_object, query_int

bundles_api = Blueprint("bundles", __name__, url_prefix="/api/bundles")


@bundles_api.post("")
def create() -> tuple[Response, int]:
    body = json_object()
    bundle = bundles.create_bundle(db_session(), current_account(), body.get("name"), body.get("description"))
    return jsonify(bundles.serialize(bundles.BundleSummary(bundle, 0, 0))), 201


@bundles_api.get("")
def index() -> Response:
    page, total = bundles.list_bundles(
        db_session(), current_account(), offset=query_int("offset", 0), limit=query_int("limit", 50)
    )
    response = jsonify([bundles.serialize(summary) for summary in page])
    response.headers["X-Total"] = str(total)
    return response


@bundles_api.get("/<bundle_id>")
def show(bundle_id: str) -> Response:
    session = db_session()
    files, summary = bundles.bundle_files(session, bundles.get_bundle(session, current_account(), bundle_id))
    return jsonify(bundles.serialize(summary) | {"files": [bundles.serialize_file(f) for f in files]})


@bundles_api.delete("/<bundle_id>")
def remove(bundle_id: str) -> tuple[str, int]:
    bundles.delete_bundle(db_session(), current_account(), bundle_id)
    return "", 204
