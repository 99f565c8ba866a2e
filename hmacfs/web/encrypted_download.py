"""Downloads of files a FileEncrypt task encrypted.

The password comes in ``X-File-Password``; the plaintext is decrypted on the
fly, one segment at a time (constant memory). The first segment is opened
before any header is sent, so a wrong password is still a clean 403. Ranges
are not offered on encrypted files: the answer is always the whole file.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import BinaryIO

from flask import Request, Response

from hmacfs.errors import Forbidden, NotFound
from hmacfs.storage import BlobStore
from hmacfs.storage.offloading import offload_store_io
from hmacfs.storage.streams import open_blob_file
from hmacfs.tasks.crypto import CryptoError, WrongPassword, decrypt_stream

PASSWORD_HEADER = "X-File-Password"  # noqa: S105 - a header name, not a password


class PasswordRequired(Forbidden):
    code = "PASSWORD_REQUIRED"


class WrongFilePassword(Forbidden):
    code = "WRONG_PASSWORD"


def encrypted_response(
    store: BlobStore,
    storage_key: str,
    request: Request,
    *,
    size: int,
    content_type: str,
    headers: dict[str, str],
) -> Response:
    """200 with the decrypted body (``size`` plaintext bytes); 403 without or with a wrong password."""
    password = request.headers.get(PASSWORD_HEADER)
    if not password:
        raise PasswordRequired(f"this file is encrypted: send its password in {PASSWORD_HEADER}")
    try:
        handle = open_blob_file(store, storage_key)
    except FileNotFoundError:  # collected after the lookup: gone, not a crash
        raise NotFound("no such file") from None
    body = _opened(store, _decrypted(handle, password))
    headers = {**headers, "Accept-Ranges": "none"}
    response = Response(
        [] if request.method == "HEAD" else body, status=200, headers=headers,
        content_type=content_type, direct_passthrough=True,
    )  # fmt: skip
    response.content_length = size
    return response


def _decrypted(handle: BinaryIO, password: str) -> Iterator[bytes]:
    """The plaintext of ``handle``, which is closed when the stream ends or is dropped."""
    with handle:
        yield from decrypt_stream(handle, password)


def _opened(store: BlobStore, stream: Iterator[bytes]) -> Iterator[bytes]:
    """Open the first segment now so errors surface early (scrypt runs off the gevent
    loop with a local store; an object store's reads must stay on the loop's thread)."""
    try:
        first = offload_store_io(store, next, stream, b"")
    except WrongPassword:
        raise WrongFilePassword("wrong password for this file") from None
    except CryptoError:
        raise NotFound("no such file") from None
    return chain([first], stream)
