"""Slow clients for load tests: COUNT loopback connections that each send their request
head at one byte per INTERVAL seconds (spread over the interval) and never finish it; a
connection the server closes is replaced at once, so COUNT stay open until DURATION is over.

Run as ``python -m tests.slow_clients PORT COUNT DURATION [INTERVAL]``. Prints
``connected N`` once the first COUNT are open, then at the end one JSON line: how many
connections were opened, how many the server dropped, and how long the dropped ones
had lived. Bounded in count (at most COUNT open) and time (DURATION seconds).
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

_TICKS = 20
HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096  # never ends in time


class _Slow:
    def __init__(self, port: int, now: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.opened, self.sent = now, 0

    def send_one(self) -> bool:
        """Send the next byte; False when the server has closed the connection."""
        try:
            self.sock.send(HEAD[self.sent : self.sent + 1])
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.sent = min(self.sent + 1, len(HEAD) - 1)
        return True


def run(port: int, count: int, duration: float, interval: float) -> dict[str, object]:
    poller = select.epoll()
    live: dict[int, _Slow] = {}
    lifetimes: list[float] = []
    opened = failed = 0
    started = time.monotonic()

    def open_one() -> None:
        nonlocal opened, failed
        try:
            slow = _Slow(port, time.monotonic())
        except OSError:
            failed += 1
            return
        opened += 1
        live[slow.sock.fileno()] = slow
        poller.register(slow.sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)

    def drop(fd: int) -> None:
        slow = live.pop(fd)
        poller.unregister(fd)
        lifetimes.append(time.monotonic() - slow.opened)
        slow.sock.close()

    while len(live) < count and time.monotonic() - started < duration:
        open_one()
    print(f"connected {len(live)}", flush=True)
    next_tick, phase = time.monotonic(), 0
    while time.monotonic() - started < duration:
        timeout = max(0.0, next_tick - time.monotonic())
        for fd, _events in poller.poll(timeout):
            if fd in live:
                drop(fd)  # readable: the server closed it (or answered, which it must not)
        if time.monotonic() >= next_tick:
            # A share of the sockets each tick, so each sends one byte per interval.
            for fd in list(live)[phase::_TICKS]:
                if not live[fd].send_one():
                    drop(fd)
            next_tick += interval / _TICKS
            phase = (phase + 1) % _TICKS
        while len(live) < count and time.monotonic() - started < duration:
            open_one()
    still_open = len(live)
    for fd in list(live):
        live.pop(fd).sock.close()
    lifetimes.sort()
    return {
        "opened": opened,
        "connect_failures": failed,
        "dropped": len(lifetimes),
        "still_open": still_open,
        "lifetime_max": lifetimes[-1] if lifetimes else None,
        "lifetime_median": lifetimes[len(lifetimes) // 2] if lifetimes else None,
    }


if __name__ == "__main__":
    port, count, duration = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    interval = float(sys.argv[4]) if len(sys.argv) > 4 else 1.0
    print(json.dumps(run(port, count, duration, interval)), flush=True)
