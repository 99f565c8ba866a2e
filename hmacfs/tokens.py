"""Account tokens (JWT): HS256 with a shared secret or RS256 with a public key.

Free of Flask, so worker processes and the CLI can use it without the web stack.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from hmacfs.config import ConfigError, SecuritySettings
from hmacfs.errors import Unauthorized


@dataclass(frozen=True)
class TokenCodec:
    """Verifies (and, when it holds a signing key, issues) account tokens."""

    algorithm: str
    verify_key: str
    signing_key: str
    leeway: timedelta
    # Tokens verified before, with their expiry (seconds since the epoch). A token is a
    # bearer's key for many requests (a tus upload sends it with each of its PATCHes),
    # and decoding and verifying it cost each request ~0.1 ms (HS256; RS256 far more).
    # What verification found cannot change but the expiry, which is checked on each use.
    _verified: dict[str, tuple[Grant, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def from_settings(cls, security: SecuritySettings) -> TokenCodec:
        if security.jwt_public_key:
            return cls(
                "RS256",
                _pem(security.jwt_public_key, "security.jwt_public_key"),
                _pem(security.jwt_private_key, "security.jwt_private_key")
                if security.jwt_private_key
                else "",
                security.jwt_leeway,
            )
        return cls("HS256", security.jwt_secret, security.jwt_secret, security.jwt_leeway)

    def issue(self, account: uuid.UUID, ttl: timedelta, **claims: Any) -> str:
        if not self.signing_key:
            raise ValueError("no signing key: set security.jwt_private_key to issue RS256 tokens")
        now = datetime.now(UTC)
        payload = {"sub": str(account), "iat": now, "exp": now + ttl, **claims}
        return jwt.encode(payload, self.signing_key, algorithm=self.algorithm)

    def account(self, token: str) -> uuid.UUID:
        """Return the account of a valid token; raise Unauthorized otherwise."""
        return self.grant(token).account

    def grant(self, token: str) -> Grant:
        """The account of a valid token and whether it holds the ``admin`` claim (``true``);
        raise Unauthorized otherwise."""
        known = self._verified.get(token)
        if known is not None and known[1] > time.time() - self.leeway.total_seconds():
            return known[0]
        grant, expires = self._verify(token)
        if len(self._verified) >= _REMEMBERED_TOKENS:
            self._verified.clear()
        self._verified[token] = (grant, expires)
        return grant

    def _verify(self, token: str) -> tuple[Grant, float]:
        try:
            claims = jwt.decode(
                token,
                self.verify_key,
                algorithms=[self.algorithm],
                leeway=self.leeway,
                options={"require": ["sub", "exp"]},
            )
            grant = Grant(uuid.UUID(str(claims["sub"])), claims.get("admin") is True)
            return grant, float(claims["exp"])
        except jwt.ExpiredSignatureError:
            raise challenge("token expired", "invalid_token") from None
        except (jwt.InvalidTokenError, ValueError):
            raise challenge("invalid token", "invalid_token") from None


_REMEMBERED_TOKENS = 4096  # a worker forgets them all at once past this (bounded memory)


@dataclass(frozen=True)
class Grant:
    """What a verified token grants: its account, and administration (``admin`` claim)."""

    account: uuid.UUID
    admin: bool = False


def _pem(value: str, key: str) -> str:
    if value.lstrip().startswith("-----BEGIN"):
        return value
    path = Path(value)
    if not path.is_file():
        raise ConfigError([f"{key}: no PEM key and no such file: {value}"])
    return path.read_text()


def challenge(message: str, error: str | None = None) -> Unauthorized:
    """401 with the RFC 6750 ``WWW-Authenticate: Bearer`` challenge."""
    header = 'Bearer realm="hmacfs"'
    if error:
        header += f', error="{error}", error_description="{message}"'
    return Unauthorized(message, headers={"WWW-Authenticate": header})
