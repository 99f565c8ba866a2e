"""``GET /api/pools`` (JWT): the storage pools an upload may name as ``poolId`` (Drive
create, tus metadata, multipart), with what each accepts (docs/resumable.md)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from hmacfs.auth import current_account
from hmacfs.uploads import engine
from hmacfs.web.context import db_session, services

pools_api = Blueprint("pools", __name__, url_prefix="/api/pools")


@pools_api.get("")
def index() -> Response:
    current_account()  # signed-in callers only: pool names are not for the public
    return jsonify(engine.describe_pools(db_session(), services().settings.uploads))
