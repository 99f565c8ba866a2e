"""Worker signals (hmacfs.tasks.signals), in child processes of their own: a signal
landing while the main thread waits on its event sets the event instead of
deadlocking the handler, and a slot forked with the signals held gets a signal
sent before it installed its relay."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap

from tests.live import REPO

ROUNDS = 300

# Waits on its event in short slices, as Worker.run_forever does, and prints a line
# each time a SIGTERM has set it. Event.set() inside a handler deadlocked here within
# a few dozen rounds: the handler landed just after a wait took the event's lock back.
WAITER = f"""
import signal, sys, threading
from hmacfs.tasks.signals import relay_signals
stop = threading.Event()
relay_signals({{signal.SIGTERM: stop}})
print("ready", flush=True)
for round in range({ROUNDS}):
    while not stop.wait(0.0002):
        pass
    stop.clear()
    print(round, flush=True)
"""

# Forks with the signals held, as the supervisor does (the child runs inside the
# block and never leaves it, as multiprocessing's forked Process does); the child
# signals itself before its relay exists, then reports whether the relay delivered it.
FORKER = """
import os, signal, threading
from hmacfs.tasks.signals import held_for_fork, relay_signals
with held_for_fork():
    pid = os.fork()
    if pid == 0:
        os.kill(os.getpid(), signal.SIGTERM)
        stop = threading.Event()
        relay_signals({signal.SIGTERM: stop})
        os._exit(0 if stop.wait(10) else 3)
_, status = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(status), flush=True)
"""


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _line(process: subprocess.Popen[str], timeout: float = 10) -> str:
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    assert readable, "the child stopped answering: its signal handler is stuck"
    return process.stdout.readline().strip()


def test_a_signal_during_the_wait_sets_the_event_every_time() -> None:
    process = _python(WAITER)
    try:
        assert _line(process) == "ready"
        for round in range(ROUNDS):
            process.send_signal(signal.SIGTERM)
            assert _line(process) == str(round)
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()


def test_a_signal_before_the_forked_child_relays_it_is_held_not_lost() -> None:
    process = _python(FORKER)
    try:
        assert _line(process) == "0"  # not -15 (killed by the default action), not 3 (lost)
    finally:
        process.kill()
        process.wait()
