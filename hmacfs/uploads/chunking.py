"""Pure chunk arithmetic and validation shared by every resumable protocol."""

from __future__ import annotations

from collections.abc import Iterable

from hmacfs.errors import BadRequest, PayloadTooLarge, ValidationFailed
from hmacfs.names import UNSAFE_NAME_CHARACTER

# Names only: no directory part, no control or bidirectional characters, no dot-only names.
_BAD_NAME = UNSAFE_NAME_CHARACTER
MAX_NAME_LENGTH = 255


def chunk_count(size: int, chunk_size: int) -> int:
    """Number of chunks of ``chunk_size`` bytes needed for ``size`` bytes (the last may be short)."""
    return -(-size // chunk_size)


def chunk_bounds(index: int, size: int, chunk_size: int) -> tuple[int, int]:
    """(offset, length) of chunk ``index``; raises ValidationFailed when it lies beyond ``size``."""
    check_index(index, chunk_count(size, chunk_size))
    offset = index * chunk_size
    return offset, min(chunk_size, size - offset)


def check_index(index: int, count: int) -> None:
    if not 0 <= index < count:
        raise ValidationFailed(
            f"chunk index {index} is outside 0..{count - 1}",
            code="CHUNK_OUT_OF_RANGE",
            details={"field": "chunkIndex", "chunksCount": count},
        )


def check_chunk_length(declared: int | None, expected: int) -> None:
    """A chunk body must be exactly as long as its slot (the last chunk may be short)."""
    if declared is not None and declared != expected:
        raise ValidationFailed(
            f"chunk must be {expected} bytes, Content-Length says {declared}",
            code="CHUNK_SIZE_MISMATCH",
            details={"expected": expected, "declared": declared},
        )


def check_file_size(size: int, limit: int, *, allow_empty: bool = False) -> None:
    if size < 0 or (size == 0 and not allow_empty):
        raise ValidationFailed(
            "file size must be positive", code="INVALID_FILE_SIZE", details={"field": "fileSize"}
        )
    if size > limit:
        raise PayloadTooLarge(
            f"file size {size} exceeds the limit of {limit} bytes",
            code="FILE_TOO_LARGE",
            details={"field": "fileSize", "limit": limit},
        )


def choose_chunk_size(requested: int | None, default: int, minimum: int, maximum: int) -> int:
    """The requested chunk size when within bounds, the default when absent."""
    if requested is None:
        return default
    if not minimum <= requested <= maximum:
        raise ValidationFailed(
            f"chunk size must lie within {minimum}..{maximum} bytes",
            code="INVALID_CHUNK_SIZE",
            details={"field": "chunkSize", "min": minimum, "max": maximum},
        )
    return requested


def check_file_name(name: str | None, field: str = "fileName") -> str:
    """A bare file name: never a path, never empty, at most 255 characters."""
    cleaned = (name or "").strip()
    if not cleaned or cleaned in {".", ".."} or _BAD_NAME.search(cleaned) or len(cleaned) > MAX_NAME_LENGTH:
        raise BadRequest(
            f"{field} must be a plain file name (no path, 1..{MAX_NAME_LENGTH} characters)",
            code="INVALID_FILE_NAME",
            details={"field": field},
        )
    return cleaned


def progress_percent(received: int, size: int | None) -> float:
    """Percentage 0..100 with two decimals; 100 only once every byte is received
    (rounding never shows 100 while a byte is missing). An empty file counts 0."""
    if not size:
        return 0.0
    if received >= size:
        return 100.0
    return min(99.99, round(max(0.0, received * 100.0 / size), 2))


def missing_chunks(count: int, uploaded: Iterable[int]) -> list[int]:
    present = set(uploaded)
    return [index for index in range(count) if index not in present]


def content_type_allowed(content_type: str, allowed: list[str] | None) -> bool:
    """Whether ``content_type`` matches one of ``allowed`` (exact or ``type/*``); None allows all."""
    if not allowed:
        return True
    base = content_type.split(";", 1)[0].strip().lower()
    for raw in allowed:
        pattern = raw.strip().lower()
        if pattern in {base, "*/*"}:
            return True
        if pattern.endswith("/*") and base.startswith(pattern[:-1]):
            return True
    return False


def should_publish(
    progress: float, last: float | None, elapsed: float | None, min_step: float, min_interval: float
) -> bool:
    """Throttle for ``upload.progress``: the first, every ``min_step`` %, or after ``min_interval`` s."""
    if last is None or elapsed is None or progress >= 100.0:
        return True
    return progress - last >= min_step or (elapsed >= min_interval and progress > last)
