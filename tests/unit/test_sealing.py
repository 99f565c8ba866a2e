from __future__ import annotations

import pytest

from hmacfs.sealing import Sealer, UnsealError


def test_round_trip_and_binding() -> None:
    sealer = Sealer("server-secret")
    sealed = sealer.seal("hunter2", context="task-1")
    assert b"hunter2" not in sealed
    assert sealer.unseal(sealed, context="task-1") == "hunter2"
    with pytest.raises(UnsealError):
        sealer.unseal(sealed, context="task-2")
    with pytest.raises(UnsealError):
        Sealer("other-secret").unseal(sealed, context="task-1")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(UnsealError):
        sealer.unseal(tampered, context="task-1")


def test_nonces_differ() -> None:
    sealer = Sealer("s")
    assert sealer.seal("x") != sealer.seal("x")
