from __future__ import annotations

import socket
import struct
import time

import pytest

from hmacfs.network.tcp_info import TCP_INFO_LENGTH, parse_tcp_info, read_tcp_info


def _raw(**fields: int) -> bytes:
    raw = bytearray(TCP_INFO_LENGTH)
    u32 = {"rtt": 68, "rttvar": 72, "snd_cwnd": 80, "rcv_rtt": 92, "total_retrans": 100, "segs_in": 140,
           "segs_out": 136, "rcv_ooopack": 224}  # fmt: skip
    u64 = {"bytes_received": 128, "delivery_rate": 160}
    for name, value in fields.items():
        if name in u32:
            struct.pack_into("=I", raw, u32[name], value)
        else:
            struct.pack_into("=Q", raw, u64[name], value)
    return bytes(raw)


def test_fields_are_read_from_their_offsets() -> None:
    sample = parse_tcp_info(
        _raw(rtt=60000, rttvar=5000, snd_cwnd=10, rcv_rtt=61000, total_retrans=3, segs_in=900,
             segs_out=400, rcv_ooopack=7, bytes_received=1 << 33, delivery_rate=123456),
        at=5.0,
    )  # fmt: skip
    assert (sample.rtt_us, sample.rttvar_us, sample.cwnd, sample.rcv_rtt_us) == (60000, 5000, 10, 61000)
    assert (sample.total_retrans, sample.segs_in, sample.segs_out, sample.rcv_ooopack) == (3, 900, 400, 7)
    assert (sample.bytes_received, sample.delivery_rate, sample.at) == (1 << 33, 123456, 5.0)


def test_an_older_kernels_shorter_structure_reads_missing_fields_as_zero() -> None:
    sample = parse_tcp_info(_raw(rtt=1000, rcv_ooopack=9)[:104], at=0.0)
    assert sample.rtt_us == 1000
    assert sample.rcv_ooopack == 0 and sample.bytes_received == 0
    with pytest.raises(ValueError, match="too short"):
        parse_tcp_info(b"\0" * 4, at=0.0)


def test_a_real_loopback_connection_reports_the_bytes_it_received() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    try:
        client.sendall(b"x" * 200_000)
        got = 0
        while got < 200_000:
            got += len(accepted.recv(65536))
        sample = read_tcp_info(accepted, time.monotonic())
        assert sample is not None
        assert sample.bytes_received >= 200_000
        assert sample.segs_in > 0
    finally:
        for sock in (client, accepted, server):
            sock.close()


def test_a_socket_that_is_not_tcp_has_no_sample() -> None:
    left, right = socket.socketpair()
    with left, right:
        assert read_tcp_info(left, 0.0) is None
