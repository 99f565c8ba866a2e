from __future__ import annotations

import io

import pytest

from hmacfs.tasks.crypto import (
    HEADER_SIZE,
    CorruptCiphertext,
    WrongPassword,
    ciphertext_size,
    decrypt_stream,
    encrypt_stream,
)

SEGMENT = 1024


def _encrypt(data: bytes, password: str = "pw") -> bytes:
    return b"".join(encrypt_stream(io.BytesIO(data), password, segment_size=SEGMENT))


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 7])
def test_round_trip_for_every_boundary(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    sealed = _encrypt(data)
    assert len(sealed) == ciphertext_size(size, SEGMENT)
    assert b"".join(decrypt_stream(io.BytesIO(sealed), "pw")) == data


def test_decrypt_yields_segment_by_segment() -> None:
    sealed = _encrypt(b"x" * (5 * SEGMENT))
    blocks = list(decrypt_stream(io.BytesIO(sealed), "pw"))
    assert [len(b) for b in blocks] == [SEGMENT] * 5


def test_wrong_password_fails_before_any_plaintext() -> None:
    stream = decrypt_stream(io.BytesIO(_encrypt(b"secret data")), "nope")
    with pytest.raises(WrongPassword):
        next(stream)


def test_truncation_at_a_segment_boundary_is_detected() -> None:
    sealed = _encrypt(b"y" * (3 * SEGMENT))
    cut = sealed[: HEADER_SIZE + 2 * (SEGMENT + 16)]
    with pytest.raises(CorruptCiphertext):
        b"".join(decrypt_stream(io.BytesIO(cut), "pw"))


def test_reordered_segments_are_detected() -> None:
    sealed = _encrypt(b"a" * SEGMENT + b"b" * SEGMENT + b"c" * 10)
    body = sealed[HEADER_SIZE:]
    one, two = body[: SEGMENT + 16], body[SEGMENT + 16 : 2 * (SEGMENT + 16)]
    swapped = sealed[:HEADER_SIZE] + two + one + body[2 * (SEGMENT + 16) :]
    with pytest.raises(WrongPassword):  # segment 0 no longer opens
        b"".join(decrypt_stream(io.BytesIO(swapped), "pw"))


def test_flipped_bit_is_detected() -> None:
    sealed = bytearray(_encrypt(b"z" * (2 * SEGMENT)))
    sealed[-5] ^= 1
    with pytest.raises(CorruptCiphertext):
        b"".join(decrypt_stream(io.BytesIO(bytes(sealed)), "pw"))


def test_not_an_encrypted_file() -> None:
    with pytest.raises(CorruptCiphertext):
        next(decrypt_stream(io.BytesIO(b"plain text that is long enough to hold a header....."), "pw"))


def test_same_plaintext_encrypts_differently() -> None:
    assert _encrypt(b"same") != _encrypt(b"same")
