"""Streaming file encryption: AES-256-GCM over fixed-size segments (a STREAM construction).

Layout of an encrypted file::

    header  = MAGIC(8) | log2_n(1) | r(1) | p(1) | segment_size(4, BE) | salt(16) | nonce_prefix(8)
    segment = AES-256-GCM(key, nonce_prefix | counter(4, BE), plaintext, aad) -> ciphertext | tag(16)
    aad     = header | counter(8, BE) | last(1)

The key comes from scrypt(password, salt). Every segment has its own nonce;
the last-segment flag is bound into the AAD, so truncating the file, dropping,
reordering or appending segments all fail authentication. Memory use is one
segment whatever the file size. An empty plaintext is one empty last segment.

Entry points for other modules:

* :func:`encrypt_stream` / :func:`decrypt_stream` take a path or a binary file
  and yield bytes; ``decrypt_stream`` is what a download route uses to serve an
  encrypted file on the fly (with the password from ``X-File-Password``).
  It raises :class:`WrongPassword` before yielding anything when the password
  does not open the first segment, and :class:`CorruptCiphertext` when a later
  segment fails (the response has then started: abort the connection).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"HMACFSE1"
ALGORITHM = "AES-256-GCM-STREAM"
TAG_SIZE = 16
SALT_SIZE = 16
PREFIX_SIZE = 8
_HEADER = struct.Struct(">8sBBBI16s8s")
HEADER_SIZE = _HEADER.size
DEFAULT_SEGMENT_SIZE = 64 * 1024
# scrypt N=2^14, r=8, p=1 (the scrypt paper's and cryptography's "interactive" setting: 16 MiB,
# ~50 ms): every download of an encrypted file derives the key once, and a worker slot must
# stay under 100 MB. The parameters travel in each file's header, so raising them later
# keeps old files readable.
DEFAULT_LOG_N = 14
MAX_SEGMENT_SIZE = 16 * 1024 * 1024


class CryptoError(Exception):
    """The ciphertext cannot be decrypted."""


class WrongPassword(CryptoError):
    """The password does not open the file (or its first segment was tampered with)."""


class CorruptCiphertext(CryptoError):
    """The file is not an hmacfs encrypted file, or a segment fails authentication."""


@dataclass(frozen=True)
class Header:
    log_n: int
    r: int
    p: int
    segment_size: int
    salt: bytes
    nonce_prefix: bytes

    def pack(self) -> bytes:
        return _HEADER.pack(
            MAGIC, self.log_n, self.r, self.p, self.segment_size, self.salt, self.nonce_prefix
        )

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        if len(data) != HEADER_SIZE:
            raise CorruptCiphertext("not an hmacfs encrypted file (short header)")
        magic, log_n, r, p, segment_size, salt, prefix = _HEADER.unpack(data)
        if magic != MAGIC:
            raise CorruptCiphertext("not an hmacfs encrypted file")
        if not (
            10 <= log_n <= 22 and 1 <= r <= 32 and 1 <= p <= 16 and 1 <= segment_size <= MAX_SEGMENT_SIZE
        ):
            raise CorruptCiphertext("unsupported encryption parameters")
        return cls(log_n, r, p, segment_size, salt, prefix)

    @classmethod
    def new(cls, segment_size: int = DEFAULT_SEGMENT_SIZE, log_n: int = DEFAULT_LOG_N) -> Header:
        return cls(log_n, 8, 1, segment_size, os.urandom(SALT_SIZE), os.urandom(PREFIX_SIZE))

    def describe(self) -> dict[str, object]:
        """What ``files.encryption`` records (no key material; the salt is public)."""
        return {
            "algorithm": ALGORITHM,
            "kdf": "scrypt",
            "n": 1 << self.log_n,
            "r": self.r,
            "p": self.p,
            "segmentSize": self.segment_size,
            "salt": self.salt.hex(),
        }


def derive_key(password: str, header: Header) -> bytes:
    kdf = Scrypt(salt=header.salt, length=32, n=1 << header.log_n, r=header.r, p=header.p)
    return kdf.derive(password.encode())


class SegmentCipher:
    """Seals or opens segment ``counter`` of one file."""

    def __init__(self, password: str, header: Header) -> None:
        self.header = header
        self._packed = header.pack()
        self._aead = AESGCM(derive_key(password, header))

    def _nonce_aad(self, counter: int, last: bool) -> tuple[bytes, bytes]:
        if counter >= 1 << 32:
            raise CryptoError("file too large for this segment size")
        nonce = self.header.nonce_prefix + struct.pack(">I", counter)
        return nonce, self._packed + struct.pack(">QB", counter, 1 if last else 0)

    def seal(self, counter: int, plaintext: bytes, last: bool) -> bytes:
        nonce, aad = self._nonce_aad(counter, last)
        return self._aead.encrypt(nonce, plaintext, aad)

    def open(self, counter: int, ciphertext: bytes, last: bool) -> bytes:
        nonce, aad = self._nonce_aad(counter, last)
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            if counter == 0:
                raise WrongPassword("wrong password (or the file is corrupted)") from None
            raise CorruptCiphertext(f"segment {counter} fails authentication") from None


def segment_count(plaintext_size: int, segment_size: int) -> int:
    return max(1, -(-plaintext_size // segment_size))


def ciphertext_size(plaintext_size: int, segment_size: int) -> int:
    """Bytes of the encrypted file for ``plaintext_size`` bytes of plaintext."""
    return HEADER_SIZE + plaintext_size + segment_count(plaintext_size, segment_size) * TAG_SIZE


def _open(source: str | os.PathLike[str] | BinaryIO) -> tuple[BinaryIO, bool]:
    if isinstance(source, (str, os.PathLike)):
        return Path(source).open("rb"), True
    return source, False


def _read_exactly(handle: BinaryIO, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        data = handle.read(remaining)
        if not data:
            break
        chunks.append(data)
        remaining -= len(data)
    return b"".join(chunks)


def _framed(handle: BinaryIO, size: int) -> Iterator[tuple[bytes, bool]]:
    """Blocks of ``size`` bytes, each with a flag telling whether it is the last.

    The next block is read before the current one is handed out, because the
    last-segment flag is part of each segment's authenticated data. The last
    block may be short (or empty, for an empty file).
    """
    current = _read_exactly(handle, size)
    while True:
        following = _read_exactly(handle, size) if len(current) == size else b""
        last = not following
        yield current, last
        if last:
            return
        current = following


def encrypt_segments(handle: BinaryIO, cipher: SegmentCipher, start: int = 0) -> Iterator[bytes]:
    """Sealed segments of ``handle`` from segment ``start`` (the handle is positioned there)."""
    for counter, (block, last) in enumerate(_framed(handle, cipher.header.segment_size), start):
        yield cipher.seal(counter, block, last)


def encrypt_stream(
    source: str | os.PathLike[str] | BinaryIO, password: str, segment_size: int = DEFAULT_SEGMENT_SIZE
) -> Iterator[bytes]:
    """Yield the encrypted form of ``source``: the header, then each sealed segment."""
    header = Header.new(segment_size)
    cipher = SegmentCipher(password, header)
    handle, owned = _open(source)
    try:
        yield header.pack()
        yield from encrypt_segments(handle, cipher)
    finally:
        if owned:
            handle.close()


def read_header(handle: BinaryIO) -> Header:
    return Header.unpack(_read_exactly(handle, HEADER_SIZE))


def decrypt_stream(source: str | os.PathLike[str] | BinaryIO, password: str) -> Iterator[bytes]:
    """Yield the plaintext of an encrypted file, one segment at a time.

    Raises WrongPassword (before the first yield) or CorruptCiphertext. The
    caller should call ``next()`` once before sending headers, so a wrong
    password can still become a 4xx response.
    """
    handle, owned = _open(source)
    try:
        header = read_header(handle)
        cipher = SegmentCipher(password, header)
        yield from decrypt_segments(handle, cipher)
    finally:
        if owned:
            handle.close()


def decrypt_segments(handle: BinaryIO, cipher: SegmentCipher, start: int = 0) -> Iterator[bytes]:
    """Opened segments from segment ``start`` (the handle is positioned at it)."""
    for counter, (block, last) in enumerate(_framed(handle, cipher.header.segment_size + TAG_SIZE), start):
        if len(block) < TAG_SIZE:
            raise CorruptCiphertext("truncated file")
        yield cipher.open(counter, block, last)
