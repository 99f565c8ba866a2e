"""Half-open intervals of bytes, [low, high), each with a tag (a lock's kind, a piece)."""

from __future__ import annotations

from typing import TypeVar

Tag = TypeVar("Tag")


def subtract(intervals: list[tuple[int, int, Tag]], start: int, end: int) -> list[tuple[int, int, Tag]]:
    """``intervals`` without the bytes [start, end), in their order: one across it is split
    in two, one within it dropped, each piece keeping its tag."""
    kept = []
    for low, high, tag in intervals:
        if high <= start or low >= end:
            kept.append((low, high, tag))
            continue
        if low < start:
            kept.append((low, start, tag))
        if end < high:
            kept.append((end, high, tag))
    return kept
