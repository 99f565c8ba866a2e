"""HTTP semantics of downloads, as pure functions: byte ranges, conditional
requests and Content-Disposition (RFC 9110, RFC 7233, RFC 6266)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote

from hmacfs.errors import HmacfsError
from hmacfs.names import without_bidi_controls

MAX_RANGES = 16
INLINE_PREFIXES = ("image/", "video/", "audio/")
INLINE_TYPES = ("text/plain",)
_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeNotSatisfiable(HmacfsError):
    status = 416
    code = "RANGE_NOT_SATISFIABLE"


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def parse_range(header: str | None, size: int) -> list[ByteRange] | None:
    """The ranges a ``Range`` header asks for; None means "send the whole file"
    (no header, another unit, or a malformed header, which RFC 9110 says to ignore).

    Raises RangeNotSatisfiable (416, ``Content-Range: bytes */size``) when no
    range overlaps the file.
    """
    if not header:
        return None
    unit, _, specs = header.partition("=")
    if unit.strip().lower() != "bytes" or not specs.strip():
        return None
    parsed = [_parse_spec(spec, size) for spec in specs.split(",")]
    if any(item is False for item in parsed) or len(parsed) > MAX_RANGES:
        return None
    ranges = [item for item in parsed if isinstance(item, ByteRange)]
    if not ranges:
        raise RangeNotSatisfiable(
            "range not satisfiable", headers={"Content-Range": f"bytes */{size}"}, details={"size": size}
        )
    return ranges


def _parse_spec(spec: str, size: int) -> ByteRange | bool | None:
    """A satisfiable range, None when it lies beyond the file, False when malformed."""
    match = _RANGE_SPEC.match(spec)
    if not match or match.groups() == ("", ""):
        return False
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        length = int(last)
        return ByteRange(max(size - length, 0), size - 1) if length and size else None
    start = int(first)
    if last != "" and int(last) < start:
        return False
    if start >= size:
        return None
    end = size - 1 if last == "" else int(last)
    return ByteRange(start, min(end, size - 1))


def etag(sha256: str) -> str:
    return f'"{sha256}"'


def _etag_matches(header: str, current: str) -> bool:
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or current in tags


def _http_date(value: str) -> datetime | None:
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, tag: str, modified: datetime
) -> bool:
    """True when the client's copy is current (answer 304). If-None-Match wins
    over If-Modified-Since when both are sent."""
    if if_none_match:
        return _etag_matches(if_none_match, tag)
    since = _http_date(if_modified_since) if if_modified_since else None
    return since is not None and modified.replace(microsecond=0) <= since


def range_applies(if_range: str | None, tag: str, modified: datetime) -> bool:
    """If-Range: honour the Range only when the validator still matches."""
    if not if_range:
        return True
    if if_range.strip().startswith(('"', "W/")):
        return if_range.strip() == tag
    since = _http_date(if_range)
    return since is not None and modified.replace(microsecond=0) <= since


def last_modified(modified: datetime) -> str:
    return format_datetime(modified, usegmt=True)


def is_inline(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind.startswith(INLINE_PREFIXES) or kind in INLINE_TYPES


def content_disposition(filename: str, content_type: str) -> str:
    """``inline`` for media and plain text, ``attachment`` otherwise; non-ASCII
    names get RFC 6266 ``filename*`` with an ASCII fallback. Bidirectional
    controls are dropped, so no stored name can disguise its extension."""
    kind = "inline" if is_inline(content_type) else "attachment"
    filename = without_bidi_controls(filename)
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in filename)
    value = f'{kind}; filename="{fallback}"'
    if fallback != filename:
        value += f"; filename*=UTF-8''{quote(filename, safe='')}"
    return value


def security_headers() -> dict[str, str]:
    """Never let a browser run or sniff what users uploaded."""
    return {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
