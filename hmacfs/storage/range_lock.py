"""Byte-range locks on a part file, shared by every process and greenlet on the machine.

Open-file-description locks (Linux ``F_OFD_SETLK``): they belong to the open
file, not to the process as classic POSIX locks do, so two greenlets of one
worker, each with its own ``PartLock``, exclude each other, while the ranges
one ``PartLock`` holds never conflict with each other (a writer's chunk lock
can grow into the whole-file lock of the completion it triggers). The kernel
drops them when the descriptor closes, including when the process dies, so a
crashed writer never leaves a range locked. NFS supports them through its
lock manager.

Waiting polls with ``sleep`` (gevent's in a worker) instead of blocking a
thread: a waiter costs nothing while it waits, and its wait is bounded.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

# struct flock on Linux: short l_type, short l_whence, off_t l_start, off_t l_len, pid_t l_pid.
_FLOCK = struct.Struct("@hhqqi4x")
_SET_LOCK = getattr(fcntl, "F_OFD_SETLK", 37)  # 37 on every Linux architecture
_BUSY = (errno.EAGAIN, errno.EACCES)


def retry_lock(try_lock: Callable[[], bool], timeout: float, sleep: Callable[[float], None]) -> bool:
    """Call ``try_lock`` until it returns True (then True) or ``timeout`` seconds have
    passed (then False), sleeping between attempts from 2 ms, doubling up to 50 ms: a
    short wait is answered quickly, a long one costs few attempts. Every RangeLock's
    ``wait_lock`` waits this way."""
    deadline = time.monotonic() + timeout
    pause = 0.002
    while not try_lock():
        if time.monotonic() >= deadline:
            return False
        sleep(pause)
        pause = min(pause * 2, 0.05)
    return True


class PartLock:
    """Locks on byte ranges of one part file, through a descriptor of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR)

    def try_lock(self, offset: int, length: int, *, exclusive: bool = True) -> bool:
        """Lock [offset, offset + length) now (a length of 0 means to the end of the file);
        False when another descriptor holds a conflicting lock."""
        kind = fcntl.F_WRLCK if exclusive else fcntl.F_RDLCK
        try:
            fcntl.fcntl(self._open_fd(), _SET_LOCK, _FLOCK.pack(kind, os.SEEK_SET, offset, length, 0))
        except OSError as exc:
            if exc.errno in _BUSY:
                return False
            raise
        return True

    def wait_lock(
        self,
        offset: int,
        length: int,
        *,
        timeout: float,
        sleep: Callable[[float], None] = time.sleep,
        exclusive: bool = True,
    ) -> bool:
        """``try_lock`` until it succeeds or ``timeout`` seconds have passed (then False)."""
        return retry_lock(lambda: self.try_lock(offset, length, exclusive=exclusive), timeout, sleep)

    def unlock(self, offset: int, length: int) -> None:
        """Release [offset, offset + length) (a length of 0 means to the end of the file)."""
        fcntl.fcntl(self._open_fd(), _SET_LOCK, _FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, offset, length, 0))

    def close(self) -> None:
        """Release every range (closing the descriptor does that)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open_fd(self) -> int:
        if self._fd is None:
            raise ValueError("the lock was closed")
        return self._fd
