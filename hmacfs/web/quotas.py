"""Quotas over HTTP (docs/quotas.md): ``GET /api/quota`` for the bearer's own account,
``PUT /api/admin/quotas/<account>`` for a token with the ``admin`` claim."""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, jsonify

from hmacfs.auth import current_account, require_admin
from hmacfs.errors import ValidationFailed
from hmacfs.uploads.quotas import quota_report, set_quota, usage_json
from hmacfs.web.context import db_session, services
from hmacfs.web.params import json_object

quotas_api = Blueprint("quotas", __name__, url_prefix="/api")

MAX_QUOTA = 2**63 - 1  # a BIGINT


@quotas_api.get("/quota")
def own_quota() -> Response:
    account = current_account()
    return jsonify(usage_json(account, quota_report(db_session(), services().settings, account)))


@quotas_api.put("/admin/quotas/<account>")
def put_quota(account: str) -> Response:
    """Set an account's quota: ``{"maxBytes": N}`` (0 = unlimited). 403 for a caller without
    the admin claim, whatever the account (no existence leak); 400 for a bad id or size."""
    require_admin()
    target = _account_id(account)
    max_bytes = json_object().get("maxBytes")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or not 0 <= max_bytes <= MAX_QUOTA:
        raise ValidationFailed(
            "maxBytes: a whole number of bytes, 0 = unlimited", details={"field": "maxBytes"}
        )
    session = db_session()
    set_quota(session, target, max_bytes)
    return jsonify(usage_json(target, quota_report(session, services().settings, target)))


def _account_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ValidationFailed("account: not a UUID", details={"field": "account"}) from None
