"""Giving back the disk space of ranges of a file without changing its length.

Linux ``fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`` (ext4, xfs, btrfs,
tmpfs, ...) through ctypes: the standard library only has ``posix_fallocate``,
which reserves. A punched range reads as zeros and takes no blocks until it is
written again, when the file system allocates afresh (and may find no space:
ENOSPC, which every write path answers with 507).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
# The file system cannot punch holes (not: a failure): the space stays reserved.
_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


@cache
def _fallocate() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    function = libc.fallocate
    function.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64)
    function.restype = ctypes.c_int
    return function


def punch_holes(path: Path, ranges: Iterable[tuple[int, int]]) -> bool:
    """Free the blocks of each ``(offset, length)`` range of ``path``, keeping its length.

    Returns False when the file system cannot punch holes (nothing is freed), True
    otherwise. Raises FileNotFoundError when ``path`` is missing and OSError for any
    other failure.
    """
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset, length in ranges:
            if length <= 0:
                continue
            if _fallocate()(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
                code = ctypes.get_errno()
                if code in _UNSUPPORTED:
                    return False
                raise OSError(code, os.strerror(code), str(path))
    finally:
        os.close(fd)
    return True
