"""``X-Signature`` of the multipart and chunked APIs: the messages signed and their check.

Pure functions, no I/O (documented in ``docs/signatures.md``).

- **Bound form** (the default): the hex HMAC-SHA256, under the shared secret,
  of the UTF-8 bytes of ``"hmacfs-upload-1\\n" METHOD "\\n" path "\\n" expires
  "\\n" file_name "\\n" size``, where ``expires`` is a decimal Unix time, the
  file name and size are those sent in ``X-Filename`` and ``X-Total-Size``.
  A leaked value uploads only that name and size, and only until it expires.
- **Static form** (hmac-file-server's, only under
  ``security.allow_static_signature``): the HMAC of the request path alone, a
  permanent credential for anyone who sees it once.

Both compare in constant time against the current and every previous secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from hmacfs.xep0363.signing import BadSignature, matches, sign

SCHEME = "hmacfs-upload-1"


@dataclass(frozen=True)
class SignedUpload:
    """What a bound signature covers: one request, one file, one deadline (Unix seconds)."""

    method: str
    path: str
    expires: int
    file_name: str
    size: int


def bound_message(upload: SignedUpload) -> bytes:
    """The exact bytes an issuer signs for ``upload``."""
    fields = (
        SCHEME,
        upload.method.upper(),
        upload.path,
        str(upload.expires),
        upload.file_name,
        str(upload.size),
    )
    return "\n".join(fields).encode("utf-8")


def sign_upload(secret: str, upload: SignedUpload) -> dict[str, str]:
    """The headers a client sends with ``upload`` (what ``hmacfs sign-upload`` prints)."""
    return {
        "X-Signature": sign(secret, bound_message(upload)),
        "X-Signature-Expires": str(upload.expires),
        "X-Filename": upload.file_name,
        "X-Total-Size": str(upload.size),
    }


def parse_expires(raw: str) -> int:
    """``X-Signature-Expires`` as Unix seconds; BadSignature (403) unless a decimal integer."""
    text = raw.strip()
    if not text.isdigit() or not text.isascii() or len(text) > 12:
        raise BadSignature("X-Signature-Expires must be a Unix time in seconds", code="BAD_SIGNATURE_EXPIRES")
    return int(text)


def verify_bound(secrets: tuple[str, ...], upload: SignedUpload, signature: str, *, now: float) -> None:
    """Check a bound signature. Raises BadSignature: SIGNATURE_EXPIRED once ``now`` is past
    ``expires``, BAD_SIGNATURE when it was not made for this method, path, name and size."""
    if upload.expires < now:
        raise BadSignature("signature expired", code="SIGNATURE_EXPIRED")
    if not matches(secrets, bound_message(upload), signature):
        raise BadSignature("X-Signature does not match this request, file name and size")


def verify_static(secrets: tuple[str, ...], path: str, signature: str) -> None:
    """Check hmac-file-server's static signature (HMAC of ``path``); raises BadSignature."""
    if not matches(secrets, path.encode("utf-8"), signature):
        raise BadSignature("X-Signature does not match this path")
