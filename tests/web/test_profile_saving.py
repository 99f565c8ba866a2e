"""Body measurements of one process are saved together while a save is in flight."""

from __future__ import annotations

import threading
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

from hmacfs.web import adaptive


def _held(key: str) -> Any:
    return SimpleNamespace(client=SimpleNamespace(key=key))


def test_bodies_arriving_during_a_save_are_folded_in_one_transaction_in_key_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batches: list[list[str]] = []
    release = threading.Event()

    def slow_save(bodies: list[Any], *, in_request: bool) -> None:
        batches.append([body.client.key for body in bodies])
        if len(batches) == 1:
            release.wait(5)

    monkeypatch.setattr(adaptive, "_save", slow_save)
    state: Any = SimpleNamespace(waiting=deque(), saving=threading.Lock())
    first = threading.Thread(target=adaptive._save_together, args=(state, _held("b")))
    first.start()
    deadline = time.monotonic() + 5
    while not batches and time.monotonic() < deadline:
        time.sleep(0.01)
    for key in ("z", "a", "m"):
        adaptive._save_together(state, _held(key))  # returns at once: the saver takes them
    assert batches == [["b"]]
    release.set()
    first.join(5)
    assert batches == [["b"], ["a", "m", "z"]]
    adaptive._save_together(state, _held("c"))  # nobody saving: saved at once, alone
    assert batches[-1] == ["c"] and not state.waiting
