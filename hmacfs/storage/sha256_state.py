"""A SHA-256 whose state can be saved and continued elsewhere (another process or node).

``hashlib`` objects cannot export their state, so an upload's running hash
could not outlive the process that started it. OpenSSL's low-level
``SHA256_Init/Update/Final`` keep the whole state in a caller-owned
``SHA256_CTX`` of 112 bytes (eight 32-bit words of hash, the bit count, one
64-byte pending block and two counters): saved as bytes, it continues
anywhere with the same OpenSSL build family. These are the same assembly
routines (SHA-NI where the CPU has it) that ``hashlib`` uses, called through
ctypes, which releases the GIL during the call, so the hashing runs in
threads in parallel.

``available()`` is False when libcrypto cannot be loaded; callers then fall
back to hashing the whole file at the end.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

STATE_SIZE = 112  # sizeof(SHA256_CTX) in OpenSSL 1.x and 3.x


def _loaded_libcrypto() -> str | None:
    """The libcrypto ``hashlib`` already loaded into this process (Linux), found without
    ``ctypes.util.find_library``, which runs ``ldconfig`` (~14 ms at every start-up)."""
    import _hashlib  # noqa: F401  (loads libcrypto)

    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rsplit(" ", 1)[-1].strip()
                if "/libcrypto.so" in path:
                    return path
    except OSError:
        pass
    return None


@functools.cache
def _lib() -> Any | None:
    """libcrypto with the three SHA-256 functions typed; None when it cannot be loaded.
    Loaded on first use."""
    name = _loaded_libcrypto() or ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        functions = (lib.SHA256_Init, lib.SHA256_Update, lib.SHA256_Final)
    except (OSError, AttributeError):
        return None
    for function in functions:
        function.restype = ctypes.c_int
    lib.SHA256_Init.argtypes = (ctypes.c_void_p,)
    lib.SHA256_Update.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
    lib.SHA256_Final.argtypes = (ctypes.c_void_p, ctypes.c_void_p)
    return lib


def available() -> bool:
    return _lib() is not None


class ResumableSha256:
    """SHA-256 fed with ``update``; ``state()`` saves it, ``ResumableSha256(state)`` continues."""

    def __init__(self, state: bytes | None = None) -> None:
        lib = _lib()
        if lib is None:
            raise RuntimeError("libcrypto is not available")
        self._lib: Any = lib
        self._ctx = ctypes.create_string_buffer(STATE_SIZE)
        if state is None:
            self._lib.SHA256_Init(self._ctx)
        elif len(state) != STATE_SIZE:
            raise ValueError(f"a SHA-256 state is {STATE_SIZE} bytes, not {len(state)}")
        else:
            ctypes.memmove(self._ctx, state, STATE_SIZE)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed ``data``; a writable buffer (bytearray or a view of one) is not copied."""
        view = memoryview(data)
        if not view.nbytes:
            return
        if view.readonly:
            self._lib.SHA256_Update(self._ctx, bytes(view), view.nbytes)
            return
        block = (ctypes.c_char * view.nbytes).from_buffer(view)
        self._lib.SHA256_Update(self._ctx, ctypes.addressof(block), view.nbytes)

    def state(self) -> bytes:
        return self._ctx.raw

    def hexdigest(self) -> str:
        """The digest of everything fed so far (this object can still be continued)."""
        copy = ctypes.create_string_buffer(self._ctx.raw, STATE_SIZE)
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, copy)
        return out.raw.hex()
