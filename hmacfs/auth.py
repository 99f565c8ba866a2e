"""JWT bearer authentication of requests (the codec itself is in ``hmacfs.tokens``).

The token's ``sub`` is the account UUID.
"""

from __future__ import annotations

import uuid

from flask import current_app, g, request

from hmacfs.errors import Forbidden
from hmacfs.tokens import TokenCodec, challenge

__all__ = ["TokenCodec", "bearer_token", "current_account", "optional_account", "require_admin"]


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_account() -> uuid.UUID:
    """The authenticated account of this request; raises Unauthorized (401)."""
    cached: uuid.UUID | None = g.get("account_id")
    if cached is not None:
        return cached
    token = bearer_token()
    if token is None:
        raise challenge("authentication required")
    codec: TokenCodec = current_app.extensions["hmacfs"].tokens
    account = codec.account(token)
    g.account_id = account
    return account


def optional_account() -> uuid.UUID | None:
    """The account when a bearer token is present (and valid), else None."""
    return current_account() if bearer_token() is not None else None


def require_admin() -> uuid.UUID:
    """The authenticated account if its token holds the ``admin`` claim: 401 without a
    valid token, 403 ADMIN_REQUIRED with one that lacks it."""
    token = bearer_token()
    if token is None:
        raise challenge("authentication required")
    codec: TokenCodec = current_app.extensions["hmacfs"].tokens
    grant = codec.grant(token)
    if not grant.admin:
        raise Forbidden("this needs an administrator's token", code="ADMIN_REQUIRED")
    return grant.account
