"""The kernel's view of one TCP connection (Linux ``TCP_INFO``), decoded without I/O.

For an upload the server is the receiver, so the fields that describe the
client's direction are the receiver's: ``rcv_rtt`` (the kernel's estimate of
the round trip from the data it receives), ``bytes_received``, ``segs_in``
and ``rcv_ooopack`` (segments that arrived out of order: the client lost one
before them and resent it). ``rtt``/``rttvar`` come from the ACKs of what we
send (the response, the ``100 Continue``) and ``total_retrans`` counts our
own resends; both still describe the path.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

# struct tcp_info (include/uapi/linux/tcp.h), field offsets in bytes.
_U8_HEAD = struct.Struct("=8B")
_OFFSETS_U32 = {
    "retrans": 36,
    "rtt": 68,
    "rttvar": 72,
    "snd_cwnd": 80,
    "rcv_rtt": 92,
    "total_retrans": 100,
    "segs_out": 136,
    "segs_in": 140,
    "rcv_ooopack": 224,
}
_OFFSETS_U64 = {"bytes_received": 128, "delivery_rate": 160}
TCP_INFO_LENGTH = 232  # what we ask the kernel for; older kernels return less


@dataclass(frozen=True)
class TcpSample:
    """One reading of ``TCP_INFO`` at monotonic time ``at`` (seconds).

    Times in microseconds as the kernel gives them; 0 where the kernel
    returned too short a structure (an older kernel) or has no estimate yet.
    """

    at: float
    rtt_us: int = 0
    rttvar_us: int = 0
    rcv_rtt_us: int = 0
    cwnd: int = 0
    total_retrans: int = 0
    segs_in: int = 0
    segs_out: int = 0
    rcv_ooopack: int = 0
    bytes_received: int = 0
    delivery_rate: int = 0  # bytes/s of what we send


def parse_tcp_info(raw: bytes, at: float) -> TcpSample:
    """Decode ``raw`` (the bytes of ``getsockopt(TCP_INFO)``) taken at time ``at``.

    Fields beyond the end of ``raw`` read as 0. Raises ValueError when ``raw``
    is shorter than the fixed head of the structure (8 bytes).
    """
    if len(raw) < _U8_HEAD.size:
        raise ValueError(f"tcp_info too short: {len(raw)} bytes")
    values: dict[str, int] = {}
    for name, offset in _OFFSETS_U32.items():
        values[name] = struct.unpack_from("=I", raw, offset)[0] if len(raw) >= offset + 4 else 0
    for name, offset in _OFFSETS_U64.items():
        values[name] = struct.unpack_from("=Q", raw, offset)[0] if len(raw) >= offset + 8 else 0
    return TcpSample(
        at=at,
        rtt_us=values["rtt"],
        rttvar_us=values["rttvar"],
        rcv_rtt_us=values["rcv_rtt"],
        cwnd=values["snd_cwnd"],
        total_retrans=values["total_retrans"],
        segs_in=values["segs_in"],
        segs_out=values["segs_out"],
        rcv_ooopack=values["rcv_ooopack"],
        bytes_received=values["bytes_received"],
        delivery_rate=values["delivery_rate"],
    )


def read_tcp_info(sock: socket.socket, at: float) -> TcpSample | None:
    """``TCP_INFO`` of ``sock`` now, or None where the platform or socket has none
    (not TCP, not Linux, already closed)."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, option, TCP_INFO_LENGTH)
    except OSError:
        return None
    try:
        return parse_tcp_info(raw, at)
    except ValueError:
        return None
