"""The cooperative kernel sendfile of a download body, on a real socket and file."""

from __future__ import annotations

import os
from pathlib import Path

import gevent
import gevent.socket
import pytest

from hmacfs.downloads import body
from hmacfs.downloads.body import Segment

MiB = 1024 * 1024


def test_a_range_is_sent_whole_in_bounded_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = os.urandom(5 * MiB + 123)
    blob = tmp_path / "blob"
    blob.write_bytes(data)
    counts: list[int] = []
    real_sendfile = os.sendfile

    def recording(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        counts.append(count)
        return real_sendfile(out_fd, in_fd, offset, count)

    monkeypatch.setattr(body.os, "sendfile", recording)
    sender, receiver = gevent.socket.socketpair()
    segment = Segment(b"", 100, len(data) - 200)
    received = bytearray()

    def read() -> None:
        while len(received) < segment.length:
            chunk = receiver.recv(MiB)
            if not chunk:
                return
            received.extend(chunk)

    reader = gevent.spawn(read)
    with sender, receiver, blob.open("rb") as handle:
        body._cooperative_sendfile(sender, handle.fileno(), segment, timeout=10)
        reader.join(timeout=10)
    assert bytes(received) == data[100:-100]
    assert len(counts) > 2 and max(counts) <= 2 * MiB  # as nginx's sendfile_max_chunk
