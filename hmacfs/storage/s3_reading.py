"""Reading helpers of the S3 store: an opened blob, bodies read up to a size, two block
streams compared."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType

from hmacfs.storage.copying import Reader


class S3OpenBlob:
    """A blob object opened for range reads: each ``read_range`` is one ranged GET."""

    def __init__(self, get_range: Callable[[str, int, int], Iterator[bytes]], key: str, size: int) -> None:
        self._get_range, self._key, self._size = get_range, key, size

    @property
    def size(self) -> int:
        return self._size

    def read_range(self, start: int, length: int) -> Iterator[bytes]:
        return self._get_range(self._key, start, min(length, self._size - start))

    def close(self) -> None:
        """Nothing held between reads (each read's connection goes back to the pool)."""

    def __enter__(self) -> S3OpenBlob:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def read_up_to(read: Reader, size: int) -> bytearray:
    """Up to ``size`` bytes of ``read``: fewer only at its end."""
    data = bytearray()
    while len(data) < size:
        block = read(size - len(data))
        if not block:
            break
        data += block
    return data


class Blocks:
    """Blocks of bytes read in any sizes, compared as one stream."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks, self._pending = blocks, b""

    def take(self, size: int) -> bytes:
        while len(self._pending) < size:
            block = next(self._blocks, b"")
            if not block:
                break
            self._pending += block
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def equals(self, other: Blocks, length: int, step: int = 256 * 1024) -> bool:
        for position in range(0, length, step):
            size = min(step, length - position)
            if self.take(size) != other.take(size):
                return False
        return True
