"""Sealing secrets (task passwords) with a key derived from the server secret.

A sealed value is ``version byte || 12-byte nonce || AES-256-GCM ciphertext``;
the key comes from ``security.secret`` through HKDF, so the database never
holds the secret in clear and a leaked database alone does not reveal it.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = b"\x01"
_INFO = b"hmacfs sealing v1"


class UnsealError(Exception):
    """The sealed value was tampered with or sealed under another server secret."""


class Sealer:
    def __init__(self, server_secret: str) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(server_secret.encode())
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str = "") -> bytes:
        """Encrypt ``plaintext``; ``context`` (e.g. the task id) binds it to one row."""
        nonce = os.urandom(12)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def unseal(self, sealed: bytes, context: str = "") -> str:
        if not sealed.startswith(_VERSION) or len(sealed) < 29:
            raise UnsealError("not a sealed value")
        try:
            return self._aead.decrypt(sealed[1:13], sealed[13:], context.encode()).decode()
        except InvalidTag:
            raise UnsealError("sealed value does not verify") from None
