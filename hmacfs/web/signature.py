"""``X-Signature``: hmac-file-server's request signature, the hex HMAC-SHA256 of the
request path under the shared secret (or a previous one, during rotation)."""

from __future__ import annotations

import uuid

from flask import request

from hmacfs.auth import bearer_token, current_account
from hmacfs.errors import Unauthorized
from hmacfs.web.context import services
from hmacfs.xep0363.signing import BadSignature, matches


def signed_or_account() -> uuid.UUID | None:
    """The bearer token's account, or None for a request with a valid X-Signature.

    Raises Unauthorized (401) when neither is sent and BadSignature (403) for a
    signature that does not match; compared in constant time.
    """
    if bearer_token() is not None:
        return current_account()
    signature = request.headers.get("X-Signature")
    if signature is None:
        raise Unauthorized("an X-Signature or a bearer token is required", code="SIGNATURE_REQUIRED")
    security = services().settings.security
    if not matches((security.secret, *security.previous_secrets), request.path.encode("utf-8"), signature):
        raise BadSignature("X-Signature does not match this path")
    return None
