"""What can go wrong for a client, each class with its own exit code.

Exit codes (``hmacfs upload`` / ``hmacfs download``): 0 success, 1 unexpected,
2 usage (click), and

===  =============  ===========================================================
 3   auth           401/403: no token, a bad or expired one, or another account's
 4   not found      404/410: no such file or upload (downloads; uploads start over)
 5   rejected       another 4xx: too large, bad name, content type not allowed
 6   conflict       409 that retrying cannot resolve
 7   locked         423 still answered after every retry
 8   rate limited   429 still answered after every retry
 9   server error   5xx still answered after every retry
10   network        no connection, or stalled, after every retry
11   integrity      checksum or SHA-256 mismatch (460, CHECKSUM_MISMATCH, HASH_MISMATCH)
12   local file     the file cannot be read or written
===  =============  ===========================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


class ClientError(Exception):
    """A failure reported to the user: ``message`` says what and what to do."""

    exit_code = 1
    label = "error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class AuthError(ClientError):
    exit_code, label = 3, "not authorised"


class NotFoundError(ClientError):
    exit_code, label = 4, "not found"


class RejectedError(ClientError):
    exit_code, label = 5, "rejected"


class ConflictError(ClientError):
    exit_code, label = 6, "conflict"


class LockedError(ClientError):
    exit_code, label = 7, "locked"


class RateLimitedError(ClientError):
    exit_code, label = 8, "rate limited"


class ServerError(ClientError):
    exit_code, label = 9, "server error"


class NetworkError(ClientError):
    exit_code, label = 10, "network"


class IntegrityError(ClientError):
    exit_code, label = 11, "integrity"


class LocalFileError(ClientError):
    exit_code, label = 12, "local file"


EXIT_CODES = {
    cls.exit_code: cls.label
    for cls in (
        AuthError, NotFoundError, RejectedError, ConflictError, LockedError, RateLimitedError,
        ServerError, NetworkError, IntegrityError, LocalFileError,
    )
}  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """An HTTP answer the client has read whole (API answers are small)."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    extra: dict[str, object] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> dict[str, object]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {"items": value}

    @property
    def code(self) -> str | None:
        code = self.json().get("code")
        return code if isinstance(code, str) else None

    def describe(self) -> str:
        found = self.json()
        message = found.get("message") or self.body[:200].decode("utf-8", "replace").strip()
        code = f" {self.code}" if self.code else ""
        return f"HTTP {self.status}{code}: {message}" if message else f"HTTP {self.status}{code}"


RETRYABLE_CONFLICTS = frozenset({"CHUNK_BUSY", "UPLOAD_BUSY"})


def is_retryable(answer: Answer) -> bool:
    """Worth sending again after a pause: 423, 429, any 5xx, and the server's 'busy' 409s."""
    if answer.status in (408, 423, 429) or answer.status >= 500:
        return True
    return answer.status == 409 and answer.code in RETRYABLE_CONFLICTS


def error_for(answer: Answer, what: str) -> ClientError:
    """The ClientError for an answer the client cannot get past (after any retries)."""
    message = f"{what}: {answer.describe()}"
    kind: type[ClientError]
    if answer.status in (401, 403) and answer.code != "QUOTA_EXCEEDED":
        kind = AuthError
    elif answer.status in (404, 410):
        kind = NotFoundError
    elif answer.status == 409:
        kind = ConflictError
    elif answer.status == 423:
        kind = LockedError
    elif answer.status == 429:
        kind = RateLimitedError
    elif answer.status >= 500:
        kind = ServerError
    elif answer.status == 460 or answer.code in ("CHECKSUM_MISMATCH", "HASH_MISMATCH"):
        kind = IntegrityError
    else:
        kind = RejectedError
    return kind(message, status=answer.status, code=answer.code)
