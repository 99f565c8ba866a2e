"""Chunks that survive a client's network switch: a silent writer is taken over at once.

A phone that switches networks mid-chunk leaves its old request open: no FIN
or RST ever arrives, and that request keeps the chunk's range lock (chunked
and Drive APIs) or the upload's writer lock (tus) until ``timeouts.body_idle``.
The client's retry comes over the new network within a second or two. So:

- a writer's body read wakes every ``handoff.writer_poll`` while no byte comes;
  once silent it records so (``upload_writers``, its own clock) and checks at
  each wake whether a takeover was requested; if so it raises WriterPreempted
  before writing another byte, and its request ends, releasing its locks. Its
  unrecorded bytes are discarded (the new writer rewrites the whole range);
- a new request for a busy chunk (or a tus PATCH at the acknowledged offset)
  asks the silent writer to stand down (``take_over``) and gets the lock as
  soon as it has. "Silent" means no byte for ``handoff.writer_silence``, or for
  one ``writer_poll`` when the retry comes from another address or network
  class (``chunk_retry_on_switch``: the switch is the evidence). A live writer,
  even a slow one, is never preempted by a duplicate: its bytes keep coming.

Requests reach the engine only after their adapter has checked the caller may
write the upload (its owner's token, or the capability an anonymous upload's
id is), so every takeover is the owner's. The database carries the signal, so
the stale request may be in another worker process or on another node.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError

from hmacfs.container import Services
from hmacfs.errors import Conflict
from hmacfs.uploads import writers
from hmacfs.uploads.writers import Seat

log = logging.getLogger(__name__)

OFFSET_SLOT = -1  # the seat of an upload's offset writer (tus), which writes one range at a time


class WriterPreempted(Conflict):
    """This request went silent mid-body and the client's retry took its chunk over."""

    code = "WRITER_PREEMPTED"


@dataclass(frozen=True)
class ClientLink:
    """Where a request comes from: its client address and network class."""

    address: str | None
    network: str = "unknown"

    def pair(self) -> tuple[str | None, str]:
        return self.address, self.network


class BodyWatch:
    """A request body's watch for a takeover. The adapter makes one per request and hands it
    to the body reader (which calls ``silent`` and ``heard``) and to the engine (which
    keeps it ``seated`` while the request writes under its lock)."""

    def __init__(self, services: Services, client: ClientLink) -> None:
        handoff = services.settings.handoff
        self.client = client
        # How often a silent read wakes to check; None: reads wait for bytes as before.
        self.poll: float | None = handoff.writer_poll.total_seconds() if handoff.seamless_switching else None
        self._services = services
        self._token = secrets.token_hex(16)
        self._seat: Seat | None = None
        self._reported = False  # this writer has a row (removed when it finishes)
        self._silent = False  # ... and its last report was a silence

    @contextmanager
    def seated(self, upload_id: uuid.UUID, slot: int) -> Iterator[None]:
        """The request writes ``slot`` of ``upload_id`` for the ``with`` block."""
        self._seat = Seat(upload_id, slot, self._token)
        self._reported = self._silent = False
        try:
            yield
        finally:
            seat, self._seat = self._seat, None
            if self._reported:
                self._quietly(writers.forget, self._services.db.sessions, seat)

    def silent(self, seconds: float) -> None:
        """The body has had no byte for ``seconds``. Raises WriterPreempted when the
        client's retry has taken this writer's place."""
        if self._seat is None or self.poll is None:
            return
        preempted = self._quietly(
            writers.report_silence, self._services.db.sessions, self._seat,
            silent_ms=int(seconds * 1000), client=self.client.pair(), now=self._now(),
        )  # fmt: skip
        self._reported = self._silent = True
        if preempted:
            self._preempted()

    def heard(self) -> None:
        """Bytes arrived: before they are written, make sure no retry took over meanwhile."""
        if self._seat is None or not self._silent:
            return
        self._silent = False  # one report per silence: a live writer's reads cost nothing
        if self._quietly(writers.report_heard, self._services.db.sessions, self._seat, self._now()):
            self._preempted()

    def _preempted(self) -> None:
        log.info("upload writer preempted by the client's retry (silent, seat %s)", self._seat)
        raise WriterPreempted("the client's retry took this chunk over", code=WriterPreempted.code)

    def _now(self) -> datetime:
        return self._services.clock.now()

    @staticmethod
    def _quietly(call: Callable[..., bool | None], *args: object, **kwargs: object) -> bool:
        """The database being unreachable must not fail a writer: it then just waits, as
        it did before takeovers existed."""
        try:
            return bool(call(*args, **kwargs))
        except SQLAlchemyError:
            log.warning("upload handoff bookkeeping failed; the writer keeps waiting", exc_info=True)
            return False


def take_over(
    services: Services,
    upload_id: uuid.UUID,
    slot: int,
    client: ClientLink,
    acquire: Callable[[], bool],
    *,
    protocol: str,
    patient: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Get the lock ``acquire`` tries (True once held), asking the writer of ``slot`` to
    stand down once it has been silent long enough. Waits at most ``writer_silence``
    plus two polls and a second, and only while that writer is silent, unless
    ``patient`` (a writer that stalled a moment ago has not said so yet). Even when not
    patient it allows three polls for that: a client that noticed its network switch
    retries within a fraction of a second, before its old request's silence shows. False
    when the writer is live: it keeps its lock."""
    handoff = services.settings.handoff
    if not handoff.seamless_switching:
        return False
    poll = handoff.writer_poll.total_seconds()
    started = time.monotonic()
    deadline = started + handoff.writer_silence.total_seconds() + 2 * poll + 1.0
    writer: writers.Writer | None = None
    next_claim = 0.0
    while time.monotonic() < deadline:
        if acquire():
            if writer is not None and writer.preempted:
                _taken_over(services, protocol, writer, client)
            return True
        if time.monotonic() >= next_claim and (writer is None or not writer.preempted):
            writer = _claim(services, upload_id, slot, client)
            next_claim = time.monotonic() + poll
            live = writer is None or writer.silent_ms == 0
            if live and not patient and time.monotonic() - started > 3 * poll:
                return False  # streaming: a duplicate never preempts a live writer
        sleep(0.01 if writer is not None and writer.preempted else min(poll, 0.05))
    return False


def _claim(services: Services, upload_id: uuid.UUID, slot: int, client: ClientLink) -> writers.Writer | None:
    handoff = services.settings.handoff
    switched = int(handoff.writer_poll.total_seconds() * 1000) if handoff.chunk_retry_on_switch else None
    try:
        return writers.claim(
            services.db.sessions, upload_id, slot, claimant=secrets.token_hex(16), client=client.pair(),
            silent_ms=int(handoff.writer_silence.total_seconds() * 1000), switched_ms=switched,
        )  # fmt: skip
    except SQLAlchemyError:
        log.warning("could not ask a silent upload writer to stand down", exc_info=True)
        return None


def _taken_over(services: Services, protocol: str, old: writers.Writer, client: ClientLink) -> None:
    log.info(
        "upload chunk taken over from a writer silent for %d ms (%s %s -> %s %s)",
        old.silent_ms, old.client_address, old.network_class, client.address, client.network,
    )  # fmt: skip
    if services.metrics is not None:
        services.metrics.upload_takeovers_total.labels(protocol).inc()


@contextmanager
def holding(
    services: Services,
    upload_id: uuid.UUID,
    slot: int,
    hold: Callable[[], AbstractContextManager[object]],
    watch: BodyWatch | None,
    *,
    protocol: str,
    busy: type[Exception],
) -> Iterator[None]:
    """Hold the lock ``hold()`` enters (a context manager raising ``busy`` when taken) for the
    ``with`` block, taking it over from a silent writer when ``watch`` allows; ``busy``
    while its writer streams (within three polls)."""
    stack = ExitStack()

    def acquire() -> bool:
        try:
            stack.enter_context(hold())
        except busy:
            return False
        return True

    taken = acquire() or (
        watch is not None
        and take_over(services, upload_id, slot, watch.client, acquire, protocol=protocol, patient=False)
    )
    if not taken:
        raise busy(f"upload:{upload_id}")
    with stack:
        yield
