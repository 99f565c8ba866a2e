"""Pure chunk arithmetic, validation and the progress throttle."""

from __future__ import annotations

import pytest

from hmacfs.errors import BadRequest, PayloadTooLarge, ValidationFailed
from hmacfs.uploads.chunking import (
    check_chunk_length,
    check_file_name,
    check_file_size,
    choose_chunk_size,
    chunk_bounds,
    chunk_count,
    content_type_allowed,
    missing_chunks,
    progress_percent,
    should_publish,
)


@pytest.mark.parametrize(("size", "chunk", "count"), [(0, 5, 0), (1, 5, 1), (5, 5, 1), (6, 5, 2), (10, 5, 2)])
def test_chunk_count(size: int, chunk: int, count: int) -> None:
    assert chunk_count(size, chunk) == count


def test_chunk_bounds_and_last_short_chunk() -> None:
    assert chunk_bounds(0, 12, 5) == (0, 5)
    assert chunk_bounds(2, 12, 5) == (10, 2)
    with pytest.raises(ValidationFailed) as error:
        chunk_bounds(3, 12, 5)
    assert error.value.code == "CHUNK_OUT_OF_RANGE"
    with pytest.raises(ValidationFailed):
        chunk_bounds(-1, 12, 5)


def test_chunk_length_and_sizes() -> None:
    check_chunk_length(None, 5)
    check_chunk_length(5, 5)
    with pytest.raises(ValidationFailed):
        check_chunk_length(4, 5)
    with pytest.raises(ValidationFailed):
        check_file_size(0, 10)
    check_file_size(0, 10, allow_empty=True)
    with pytest.raises(PayloadTooLarge):
        check_file_size(11, 10)
    assert choose_chunk_size(None, 5, 1, 9) == 5
    assert choose_chunk_size(9, 5, 1, 9) == 9
    with pytest.raises(ValidationFailed):
        choose_chunk_size(10, 5, 1, 9)


@pytest.mark.parametrize("name", ["", " ", ".", "..", "a/b", "..\\x", "a\x00b", "x" * 256])
def test_file_names_are_never_paths(name: str) -> None:
    with pytest.raises(BadRequest):
        check_file_name(name)


def test_file_name_kept() -> None:
    assert check_file_name(" report 1.pdf ") == "report 1.pdf"


def test_progress_and_missing() -> None:
    assert progress_percent(0, None) == 0.0
    assert progress_percent(50, 200) == 25.0
    assert progress_percent(300, 200) == 100.0
    assert missing_chunks(4, [0, 2]) == [1, 3]


def test_content_types() -> None:
    assert content_type_allowed("image/png", None)
    assert content_type_allowed("image/png; q=1", ["image/*"])
    assert content_type_allowed("text/plain", ["text/plain"])
    assert not content_type_allowed("text/plain", ["image/*"])


def test_progress_throttle() -> None:
    assert should_publish(1.0, None, None, 5.0, 1.0)
    assert not should_publish(4.0, 1.0, 0.2, 5.0, 1.0)
    assert should_publish(6.0, 1.0, 0.2, 5.0, 1.0)
    assert should_publish(2.0, 1.0, 1.5, 5.0, 1.0)
    assert not should_publish(1.0, 1.0, 9.0, 5.0, 1.0)
    assert should_publish(100.0, 99.0, 0.0, 5.0, 1.0)
