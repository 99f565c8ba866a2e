from __future__ import annotations

from datetime import timedelta

import pytest

from hmacfs.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10MB", 10 * 1024**2),
        ("512KB", 512 * 1024),
        ("1GB", 1024**3),
        ("1.5GiB", int(1.5 * 1024**3)),
        ("5 mb", 5 * 1024**2),
        ("100", 100),
        ("100B", 100),
        (4096, 4096),
    ],
)
def test_parse_size(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "ten", "10XB", "-5MB", -1, True, 1.5, "MB"])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("48h", 172800),
        ("4800s", 4800),
        ("5m", 300),
        ("500ms", 0.5),
        ("1h30m", 5400),
        ("7d", 604800),
        (30, 30),
        ("90", 90),
    ],
)
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["", "soon", "5x", "h", "1h 30", -1, False])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_formats_round_trip() -> None:
    for seconds in (0.25, 30, 90, 3600, 172800):
        assert parse_duration(format_duration(timedelta(seconds=seconds))).total_seconds() == seconds
