"""Signals that set events, safely, in worker processes.

A Python signal handler runs in the main thread between two bytecodes, so an
``Event.set()`` inside it deadlocks when the signal lands while the main thread
holds that event's lock: inside ``stop.wait(poll)``, just after the wait timed
out and took the lock back. That hung a slot on SIGTERM, forever, about one
stop in ten. Here the handler only writes the signal's number to a pipe, and a
daemon thread reads it and sets the event outside any handler.

A forked slot must not run its parent's handlers (they would set the parent's
events, which the slot does not wait on, and the signal would be lost), so the
supervisor forks with the signals held (:func:`held_for_fork`) and the slot
releases them once its own relay is installed; a signal that came in between is
delivered then.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Every signal a slot relays: the stop signals and the supervisor's drain request.
SLOT_SIGNALS = (*STOP_SIGNALS, signal.SIGUSR1)


def relay_signals(events: Mapping[signal.Signals, threading.Event]) -> None:
    """From now on each signal in ``events`` sets its event; releases those signals if held."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def _handler(signum: int, _frame: FrameType | None) -> None:
        with suppress(BlockingIOError):  # a pipe full of unread signals: the relay is behind, not gone
            os.write(write_fd, bytes([signum]))

    def _relay() -> None:
        while received := os.read(read_fd, 64):
            for signum in received:
                events[signal.Signals(signum)].set()

    threading.Thread(target=_relay, name="signal-relay", daemon=True).start()
    for signum in events:
        signal.signal(signum, _handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, set(events))


@contextmanager
def held_for_fork() -> Iterator[None]:
    """Hold the slots' signals in this thread while it forks; the child inherits them held."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(SLOT_SIGNALS))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
