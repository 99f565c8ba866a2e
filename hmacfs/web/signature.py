"""``X-Signature`` on ``POST /upload`` and ``POST /upload/chunked`` (``docs/signatures.md``).

By default the signature is bound to an expiry (``X-Signature-Expires``), the
file name (``X-Filename``) and its size (``X-Total-Size``); hmac-file-server's
static HMAC of the path is accepted only under ``security.allow_static_signature``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from flask import request

from hmacfs.auth import bearer_token, current_account
from hmacfs.errors import Unauthorized
from hmacfs.upload_signing import SignedUpload, parse_expires, verify_bound, verify_static
from hmacfs.web.context import services
from hmacfs.web.params import header_int, header_text
from hmacfs.xep0363.signing import BadSignature


@dataclass(frozen=True)
class UploadGrant:
    """Who may upload: an account (bearer token), or anyone holding a signature.
    ``signed`` is the file a bound signature allows (None: any file)."""

    account: uuid.UUID | None
    signed: SignedUpload | None = None


def upload_grant() -> UploadGrant:
    """The bearer token's account, or the file a valid X-Signature allows.

    Raises Unauthorized (401 SIGNATURE_REQUIRED) when neither is sent, and
    BadSignature (403) for a signature that is wrong, expired, or static while
    the static form is not allowed (SIGNATURE_NOT_BOUND).
    """
    if bearer_token() is not None:
        return UploadGrant(current_account())
    signature = request.headers.get("X-Signature")
    if signature is None:
        raise Unauthorized("an X-Signature or a bearer token is required", code="SIGNATURE_REQUIRED")
    svc = services()
    security = svc.settings.security
    secrets = (security.secret, *security.previous_secrets)
    expires = request.headers.get("X-Signature-Expires")
    if expires is None:
        if not security.allow_static_signature:
            raise BadSignature(
                "X-Signature must be bound to X-Signature-Expires, X-Filename and X-Total-Size",
                code="SIGNATURE_NOT_BOUND",
            )
        verify_static(secrets, request.path, signature)
        return UploadGrant(None)
    upload = SignedUpload(
        method=request.method,
        path=request.path,
        expires=parse_expires(expires),
        file_name=header_text("X-Filename"),
        size=header_int("X-Total-Size"),
    )
    verify_bound(secrets, upload, signature, now=svc.clock.now().timestamp())
    return UploadGrant(None, upload)


def signed_or_account() -> uuid.UUID | None:
    """The bearer token's account, or None for a request with a valid X-Signature
    (see ``upload_grant``); the caller uses the X-Filename and X-Total-Size it checked."""
    return upload_grant().account
