"""Range parsing, conditional requests and Content-Disposition."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hmacfs.downloads.http import (
    ByteRange,
    RangeNotSatisfiable,
    content_disposition,
    last_modified,
    not_modified,
    parse_range,
    range_applies,
)

MODIFIED = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", [ByteRange(0, 9)]),
        ("bytes=90-", [ByteRange(90, 99)]),
        ("bytes=-10", [ByteRange(90, 99)]),
        ("bytes=-500", [ByteRange(0, 99)]),
        ("bytes=95-500", [ByteRange(95, 99)]),
        ("bytes=0-0, 10-19 ,-1", [ByteRange(0, 0), ByteRange(10, 19), ByteRange(99, 99)]),
        ("bytes=0-9,200-300", [ByteRange(0, 9)]),
        ("items=0-9", None),
        ("bytes=9-0", None),
        ("bytes=abc", None),
        ("bytes=-", None),
        ("bytes=" + ",".join(["0-1"] * 17), None),
    ],
)
def test_parse_range(header: str | None, expected: list[ByteRange] | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=200-300", "bytes=-0"])
def test_unsatisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, 100)
    assert caught.value.headers["Content-Range"] == "bytes */100"


def test_empty_file_ranges_are_unsatisfiable() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-5", 0)


def test_conditionals() -> None:
    tag = '"abc"'
    date = last_modified(MODIFIED)
    assert date == "Fri, 02 Jan 2026 03:04:05 GMT"
    assert not_modified('"x", "abc"', None, tag, MODIFIED)
    assert not_modified("*", None, tag, MODIFIED)
    assert not_modified('W/"abc"', None, tag, MODIFIED)
    assert not not_modified('"x"', date, tag, MODIFIED)  # If-None-Match wins
    assert not_modified(None, date, tag, MODIFIED)
    assert not not_modified(None, "Thu, 01 Jan 2026 00:00:00 GMT", tag, MODIFIED)
    assert not not_modified(None, "garbage", tag, MODIFIED)
    assert range_applies(None, tag, MODIFIED)
    assert range_applies(tag, tag, MODIFIED)
    assert not range_applies('"other"', tag, MODIFIED)
    assert range_applies(date, tag, MODIFIED)
    assert not range_applies("Thu, 01 Jan 2026 00:00:00 GMT", tag, MODIFIED)


def test_content_disposition() -> None:
    assert content_disposition("a.jpg", "image/jpeg") == 'inline; filename="a.jpg"'
    assert content_disposition("a.txt", "text/plain; charset=utf-8").startswith("inline;")
    assert content_disposition("a.html", "text/html").startswith("attachment;")
    assert content_disposition("a.svg", "application/octet-stream").startswith("attachment;")
    assert (
        content_disposition('é "x".pdf', "application/pdf")
        == "attachment; filename=\"_ _x_.pdf\"; filename*=UTF-8''%C3%A9%20%22x%22.pdf"
    )
