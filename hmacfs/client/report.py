"""Progress and events: a tqdm line per file for people, JSON lines for scripts.

Uploaders call ``start``/``advance``/``finish`` per file and ``event`` for
anything worth telling (retry, network change, stall, resume). Both reporters
are thread-safe: Drive chunks advance from several threads.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from typing import IO, Any, Protocol


class Reporter(Protocol):
    def start(self, file: str, total: int, done: int) -> None: ...

    def advance(self, file: str, delta: int) -> None: ...

    def event(self, kind: str, file: str, **fields: Any) -> None: ...

    def finish(self, file: str, **fields: Any) -> None: ...


class Rate:
    """Bytes per second over the last ``window`` seconds (and the ETA it gives)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, done: int, now: float) -> None:
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()

    def rate(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return max(0.0, (d1 - d0) / (t1 - t0)) if t1 > t0 else 0.0

    def eta(self, remaining: int) -> float | None:
        rate = self.rate()
        return round(remaining / rate, 1) if rate > 0 else None


class JsonReporter:
    """One JSON object per line on ``out``: events as they happen, ``progress`` at most
    every ``interval`` seconds per file (and at start and finish, on a setback, and at
    the first progress after another event of the file)."""

    def __init__(self, out: IO[str] | None = None, interval: float = 0.5) -> None:
        self._out = out or sys.stdout
        self._interval = interval
        self._lock = threading.Lock()
        self._files: dict[str, dict[str, Any]] = {}

    def _emit(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._out.flush()

    def start(self, file: str, total: int, done: int) -> None:
        with self._lock:
            rate = Rate()
            rate.update(done, time.monotonic())
            self._files[file] = {"total": total, "done": done, "rate": rate, "last": 0.0}
            self._emit({"event": "start", "file": file, "total": total, "bytes": done})

    def advance(self, file: str, delta: int) -> None:
        with self._lock:
            entry = self._files.get(file)
            if entry is None:
                return
            entry["done"] += delta
            now = time.monotonic()
            entry["rate"].update(entry["done"], now)
            # A setback (bytes taken back after a failed request) is news at once, and
            # so is the first progress after any other event of the file (a retry).
            if delta < 0 or now - entry["last"] >= self._interval:
                entry["last"] = now
                self._progress(file, entry)

    def _progress(self, file: str, entry: dict[str, Any]) -> None:
        rate: Rate = entry["rate"]
        self._emit({
            "event": "progress", "file": file, "bytes": entry["done"], "total": entry["total"],
            "rate": round(rate.rate()), "eta": rate.eta(entry["total"] - entry["done"]),
        })  # fmt: skip

    def event(self, kind: str, file: str, **fields: Any) -> None:
        with self._lock:
            self._emit({"event": kind, "file": file, **fields})
            if file in self._files:
                self._files[file]["last"] = 0.0

    def finish(self, file: str, **fields: Any) -> None:
        with self._lock:
            entry = self._files.pop(file, None)
            if entry is not None:
                self._progress(file, entry)
            self._emit({"event": "done" if "error" not in fields else "failed", "file": file, **fields})


class BarReporter:
    """A tqdm bar per file on stderr (name, bytes, rate, ETA); events above the bars."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self._out = out or sys.stderr
        self._lock = threading.Lock()
        self._bars: dict[str, Any] = {}

    def start(self, file: str, total: int, done: int) -> None:
        from tqdm import tqdm

        with self._lock:
            self._bars[file] = tqdm(
                total=total, initial=done, desc=file, unit="B", unit_scale=True, unit_divisor=1024,
                file=self._out, dynamic_ncols=True, leave=True, smoothing=0.1,
            )  # fmt: skip

    def advance(self, file: str, delta: int) -> None:
        with self._lock:
            bar = self._bars.get(file)
            if bar is not None:
                bar.update(delta)

    def event(self, kind: str, file: str, **fields: Any) -> None:
        from tqdm import tqdm

        detail = ", ".join(f"{key}={value}" for key, value in fields.items())
        with self._lock:
            tqdm.write(
                f"hmacfs: {file + ': ' if file else ''}{kind.replace('_', ' ')} ({detail})", file=self._out
            )

    def finish(self, file: str, **fields: Any) -> None:
        from tqdm import tqdm

        with self._lock:
            bar = self._bars.pop(file, None)
            if bar is not None:
                bar.close()
            if "error" in fields:
                tqdm.write(f"hmacfs: {file}: failed: {fields['error']}", file=self._out)
