"""The client's way to the server: per-thread connections, the watchdog, retries, reporting.

``call`` makes one attempt and turns every failure worth retrying into
``Transient``; ``retrying`` repeats an operation (which may first re-read the
server's state) with backoff until it succeeds, fails for good, or the retry
budget is spent.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hmacfs.client.backoff import Backoff, parse_retry_after
from hmacfs.client.errors import Answer, ClientError, NetworkError, error_for, is_retryable
from hmacfs.client.network import HEADER, default_interface, network_hint, network_type
from hmacfs.client.report import Reporter
from hmacfs.client.transport import Aborted, Connection
from hmacfs.client.watch import Watchdog

T = TypeVar("T")


class Transient(Exception):
    """An attempt that may succeed when made again (after ``retry_after`` if set)."""

    def __init__(
        self, reason: str, answer: Answer | None = None, *, retry_after: float | None = None,
        immediate: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(reason)
        self.reason, self.answer, self.retry_after, self.immediate = reason, answer, retry_after, immediate


@dataclass(frozen=True)
class LinkOptions:
    server: str
    token: str | None = None
    backoff: Backoff = field(default_factory=Backoff)
    stall_timeout: float = 15.0  # seconds without a byte moving before a request is cut
    timeout: float = 300.0  # socket timeout: a completion may hash a large file first
    network: str = "auto"  # Hmacfs-Network type: "auto" (from the default route), "none", or a type


class Link:
    """Everything one command shares: options, the watchdog, the reporter."""

    def __init__(self, options: LinkOptions, watchdog: Watchdog, reporter: Reporter) -> None:
        self.options, self.watchdog, self.reporter = options, watchdog, reporter
        self._local = threading.local()
        self._all: list[Connection] = []
        self._lock = threading.Lock()
        self.sleep: Callable[[float], None] = time.sleep
        self._hint: tuple[int, str | None] | None = None  # (watchdog's change count, header value)

    @property
    def auth(self) -> dict[str, str]:
        """Authorization and Hmacfs-Network: what every request carries."""
        found = {"Authorization": f"Bearer {self.options.token}"} if self.options.token else {}
        hint = self.network_hint()
        if hint:
            found[HEADER] = hint
        return found

    def network_hint(self) -> str | None:
        """The Hmacfs-Network value; with ``network="auto"`` re-guessed after each change
        the watchdog saw (not per request: netifaces reads the routing table)."""
        choice = self.options.network
        if choice != "auto":
            return network_hint(None if choice == "none" else choice)
        changes = self.watchdog.network_changes
        if self._hint is None or self._hint[0] != changes:
            self._hint = (changes, network_hint(network_type(default_interface())))
        return self._hint[1]

    def connection(self) -> Connection:
        """This thread's connection, watched by the watchdog."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = Connection(self.options.server, self.options.timeout)
            self._local.conn = conn
            self.watchdog.watch(conn)
            with self._lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                self.watchdog.forget(conn)
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def call(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: memoryview | bytes | None = None,
        *,
        stall: bool = True,
        on_sent: Callable[[int], None] | None = None,
    ) -> Answer:
        """One attempt. Returns the answer unless it is worth retrying (423, 429, 5xx, busy
        409) or the connection failed: then raises Transient. ``stall`` arms the stall
        limit (off for calls the server may legitimately think about, like completion)."""
        limit = self.options.stall_timeout if stall else None
        try:
            answer = self.connection().request(
                method, path, {**self.auth, **(headers or {})}, body, stall=limit, on_sent=on_sent
            )
        except Aborted as exc:
            raise Transient(exc.reason, immediate=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Transient(f"connection failed: {exc or type(exc).__name__}") from exc
        return _not_transient(answer)

    def fetch(self, path: str, headers: dict[str, str], write: Callable[[bytes], None]) -> Answer:
        """One GET whose 200/206 body goes to ``write``; failures as in ``call``."""
        try:
            answer = self.connection().request_into(
                path, {**self.auth, **headers}, write, stall=self.options.stall_timeout
            )
        except Aborted as exc:
            raise Transient(exc.reason, immediate=True) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Transient(f"connection failed: {exc or type(exc).__name__}") from exc
        return _not_transient(answer)

    def retrying(self, operation: Callable[[], T], what: str, file: str = "") -> T:
        """Run ``operation`` until it returns; each Transient waits (full jitter, at least
        Retry-After; none after a watchdog abort) and counts against the retry budget."""
        backoff = self.options.backoff
        attempt = 0
        while True:
            try:
                return operation()
            except Transient as exc:
                if attempt >= backoff.retries:
                    raise _final_error(exc, what, attempt) from exc
                delay = 0.0 if exc.immediate else backoff.delay(attempt, exc.retry_after)
                self.reporter.event(
                    "retry", file, what=what, reason=exc.reason, attempt=attempt + 1, delay=round(delay, 3)
                )
                self.sleep(delay)
                attempt += 1


def _final_error(exc: Transient, what: str, attempts: int) -> ClientError:
    if exc.answer is not None:
        error = error_for(exc.answer, what)
        error.message += f" (after {attempts} retries)"
        return error
    return NetworkError(f"{what}: {exc.reason} (after {attempts} retries)")


def expect(answer: Answer, what: str, *statuses: int) -> Answer:
    """``answer`` when its status is one of ``statuses``; otherwise its ClientError."""
    if answer.status in statuses:
        return answer
    raise error_for(answer, what)


def _not_transient(answer: Answer) -> Answer:
    """``answer``, unless it is worth retrying: then Transient (with its Retry-After)."""
    if is_retryable(answer):
        retry_after = parse_retry_after(answer.header("Retry-After"))
        raise Transient(answer.describe(), answer, retry_after=retry_after)
    return answer
