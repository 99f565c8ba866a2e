"""The body meter and the adaptive read size, with a fake source and clock, and the
meter's TCP_INFO sampling on a real loopback socket."""

from __future__ import annotations

import os
import socket
import threading

from hmacfs.network.estimate import BodyMeasurement, Outcome
from hmacfs.web.measured_body import AdaptiveBody, BodyPlan, MeasuredBody

KIB = 1024
PLAN = BodyPlan(
    expected=4 * 1024 * KIB, initial=64 * KIB, minimum=32 * KIB, maximum=1024 * KIB, sample_kernel=True
)


class Source:
    """Gives ``step`` bytes per read, ``seconds`` apart on the shared clock, then fails."""

    def __init__(
        self, clock: list[float], step: int, seconds: float, total: int, failure: Outcome | None
    ) -> None:
        self.clock, self.step, self.seconds, self.left, self.failure_then = (
            clock,
            step,
            seconds,
            total,
            failure,
        )
        self.failure: Outcome | None = None

    def readinto(self, view: memoryview) -> int:
        got = min(len(view), self.step, self.left)
        if not got:
            self.failure = self.failure_then
            return 0
        self.clock[0] += self.seconds
        self.left -= got
        return got

    def wait_readable(self) -> bool:
        return self.left > 0


def _drain(body: MeasuredBody, size: int = 64 * KIB) -> None:
    view = memoryview(bytearray(size))
    while body.readinto(view):
        pass


def test_a_fast_body_grows_its_read_size_and_is_complete() -> None:
    clock = [0.0]
    body = AdaptiveBody(
        Source(clock, 256 * KIB, 0.001, PLAN.expected or 0, None), None, PLAN, lambda: clock[0]
    )
    assert body.block_size() == 64 * KIB  # nothing measured yet: the profile's size
    view = memoryview(bytearray(1024 * KIB))
    sizes = []
    while body.readinto(view[: body.block_size()]):
        sizes.append(body.size)
    assert sizes[-1] == 1024 * KIB and body.changes >= 1
    measured = body.measurement()
    assert (
        measured is not None and measured.outcome is Outcome.COMPLETE and measured.received == PLAN.expected
    )


def test_a_trickling_body_reads_small_and_a_silent_one_times_out() -> None:
    clock = [0.0]
    body = AdaptiveBody(Source(clock, 1000, 0.5, 200_000, Outcome.TIMED_OUT), None, PLAN, lambda: clock[0])
    _drain(body, 1000)
    assert body.block_size() == 32 * KIB
    measured = body.measurement()
    assert measured is not None and measured.outcome is Outcome.TIMED_OUT
    assert measured.received == 200_000 and measured.seconds > 90


def test_a_reset_body_is_short_and_an_unread_one_has_no_measurement() -> None:
    clock = [0.0]
    body = MeasuredBody(Source(clock, 1000, 0.01, 5000, None), None, PLAN, lambda: clock[0])
    assert body.measurement() is None
    _drain(body)
    measured = body.measurement()
    assert measured is not None and measured.outcome is Outcome.SHORT and not hasattr(body, "block_size")


class SocketSource:
    """Reads a real TCP socket (what gunicorn gives the request) until EOF."""

    failure: Outcome | None = None

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def readinto(self, view: memoryview) -> int:
        return self.sock.recv_into(view)

    def wait_readable(self) -> bool:
        return True


def _measure_over_loopback(size: int, *, sample_kernel: bool) -> BodyMeasurement | None:
    """Send ``size`` bytes over a loopback connection and meter the receiving side."""
    listener = socket.create_server(("127.0.0.1", 0))
    with listener, socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()
        with server:
            sender = threading.Thread(
                target=lambda: (client.sendall(os.urandom(size)), client.shutdown(socket.SHUT_WR))
            )
            sender.start()
            plan = BodyPlan(expected=size, initial=1024 * KIB, minimum=32 * KIB, maximum=1024 * KIB,
                            sample_kernel=sample_kernel)  # fmt: skip
            body = MeasuredBody(SocketSource(server), server, plan)
            _drain(body, 256 * KIB)
            sender.join(10)
            return body.measurement()


def test_tcp_info_is_sampled_at_the_start_every_4_mib_and_at_the_end() -> None:
    """A 10 MiB body on a real socket: samples at its first read, at 4 and 8 MiB, and at its
    end; the kernel's byte count grows between them. Behind a proxy (no kernel sampling),
    none."""
    measured = _measure_over_loopback(10 * 1024 * KIB + 5, sample_kernel=True)
    assert measured is not None and measured.outcome is Outcome.COMPLETE
    assert len(measured.samples) == 4
    received = [sample.bytes_received for sample in measured.samples]
    assert received == sorted(received) and received[-1] >= 10 * 1024 * KIB
    assert received[1] >= 4 * 1024 * KIB and received[2] >= 8 * 1024 * KIB
    unsampled = _measure_over_loopback(1024 * KIB, sample_kernel=False)
    assert unsampled is not None and unsampled.samples == ()
