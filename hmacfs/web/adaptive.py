"""The adaptive engine at the request level: who the client is, which arm an upload is on,
the sizes recommended on create and by ``GET /api/network/profile``, and recording each
measured body into the client's profile after the request. docs/adaptive.md.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from hmacfs.auth import optional_account
from hmacfs.container import Services
from hmacfs.errors import HmacfsError
from hmacfs.metrics import NetworkMetrics, network_metrics
from hmacfs.network.estimate import UNMEASURED, BodyMeasurement, LinkEstimate, NetworkClass, Outcome
from hmacfs.network.keys import ClientKey
from hmacfs.network.profiles import (
    NetworkHint,
    Recommendation,
    choose_estimate,
    estimate_of,
    note_recommendation,
    open_profile,
    recommend,
    record_bodies,
)
from hmacfs.network.sizing import recommend_buffer_size
from hmacfs.network.sql import find_profile
from hmacfs.network.strategy import Arm, Fallback, FallbackRule, arm_for
from hmacfs.storage.buffers import BufferPool
from hmacfs.uploads import engine
from hmacfs.web.context import db_session, services
from hmacfs.web.measured_body import AdaptiveBody, BodyPlan, MeasuredBody, SourceBody
from hmacfs.web.network_header import HEADER, parse_network_header
from hmacfs.web.save_schedule import SaveSchedule

log = logging.getLogger(__name__)

CHUNK_SIZE_HEADER = "Hmacfs-Chunk-Size"  # tus POST/HEAD: the PATCH size the server recommends
BUFFER_SIZE_HEADER = "Hmacfs-Buffer-Size"
CLIENT_ID_HEADER = "Hmacfs-Client-Id"
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")
_UPLOAD_ID_HEADER = "X-Upload-Session-ID"  # the chunked API names its upload in a header

network_api = Blueprint("network", __name__, url_prefix="/api/network")


@network_api.get("/profile")
def profile() -> Response:
    """The sizes this client should use now (``?fileSize=`` refines the seed rule)."""
    size = request.args.get("fileSize", type=int)
    key, recommendation = current_recommendation(optional_account(), arm=current_arm(None), file_size=size)
    return jsonify(recommendation_json(key, recommendation))


def recommendation_json(key: ClientKey, rec: Recommendation) -> dict[str, object]:
    estimate = rec.estimate
    return {
        "chunkSize": rec.chunk_size,
        "bufferSize": rec.buffer_size,
        "networkClass": rec.network_class.value,
        "clientId": key.client_id,
        "arm": rec.arm.value,
        "source": rec.source,
        "estimate": {
            "throughputBytesPerSecond": estimate.throughput,
            "rttMs": estimate.rtt_ms,
            "loss": estimate.loss,
            "reliability": estimate.reliability,
            "bodies": estimate.bodies,
        },
    }


@dataclass
class _State:
    """Per worker process: the fallback watching both arms, and the metrics (a private
    registry when ``[metrics] enabled`` is false, so the code path is one)."""

    fallback: Fallback
    metrics: NetworkMetrics
    held: deque[_Held] = field(default_factory=lambda: deque(maxlen=1000))  # SQLite's failed bodies
    # PostgreSQL: bodies waiting for the transaction in flight to end (see _save_together).
    waiting: deque[_Held] = field(default_factory=lambda: deque(maxlen=10_000))
    saving: threading.Lock = field(default_factory=threading.Lock)
    # A served worker saves in a greenlet of its own (save_in_background), not in the teardown;
    # a settled client's bodies wait there for its next save (hmacfs.web.save_schedule).
    background: bool = False
    schedule: SaveSchedule[_Held] = field(default_factory=lambda: SaveSchedule(_SETTLED_SAVE_SECONDS))
    estimates: OrderedDict[str, LinkEstimate] = field(default_factory=OrderedDict)  # by profile key


def configure_adaptive(app: Flask) -> None:
    """Install the per-process fallback, the after-request recording and the API."""
    svc: Services = app.extensions["hmacfs"]
    performance = svc.settings.performance
    rule = FallbackRule(
        window=performance.fallback_window.total_seconds(),
        ratio=performance.fallback_ratio,
        min_bodies=performance.fallback_min_bodies,
        cooldown=performance.fallback_cooldown.total_seconds(),
    )
    metrics = svc.metrics.network if svc.metrics is not None else network_metrics(CollectorRegistry())
    app.extensions["hmacfs.adaptive"] = _State(Fallback(rule), metrics)
    app.after_request(_record_in_request)  # runs before the request boundary's commit
    app.teardown_request(_record_measured_body)
    app.register_blueprint(network_api)


def _state() -> _State:
    found: _State = current_app.extensions["hmacfs.adaptive"]
    return found


def current_arm(upload_key: str | None) -> Arm:
    """The arm of the upload ``upload_key`` (a new key: the arm a new upload would get)."""
    settings = services().settings
    performance = settings.performance
    # network_resilience.enabled = false: nothing is measured, so nothing adapts either.
    if not (
        settings.network_resilience.enabled and performance.adaptive_buffers and performance.adaptive_uploads
    ):
        return Arm.FIXED
    if not _state().fallback.adaptive_allowed(time.monotonic()):
        _state().metrics.fallback_active.set(1)
        return Arm.FIXED
    _state().metrics.fallback_active.set(0)
    if not performance.testing_mode:
        return Arm.ADAPTIVE
    return arm_for(upload_key or engine.new_task_id(), performance.adaptive_share)


def client_key(account: uuid.UUID | None, hint: NetworkHint | None) -> ClientKey:
    """The profile key: the client's own id (``Hmacfs-Client-Id``) or a hash of its
    User-Agent and address prefix (/24, /48), and the class its hint names. The id is
    worked out once per request (a body asks for its first read size and when recorded)."""
    given: str | None = g.get("client_id")
    if given is None:
        given = request.headers.get(CLIENT_ID_HEADER, "").strip()
        if not _CLIENT_ID.fullmatch(given):
            given = _agent_id(request.headers.get("User-Agent", ""), address_prefix())
        g.client_id = given
    network_class = hint.network_class if hint is not None else NetworkClass.UNKNOWN
    return ClientKey(account, given, network_class)


# A body asks for the client's id and prefix twice (its first read size, its recording):
# parsing the address and hashing the agent were 3 % of a worker's Python time under a
# tus upload (py-spy), for answers that depend on those strings alone.
_CACHED_CLIENTS = 4096


@functools.lru_cache(maxsize=_CACHED_CLIENTS)
def _agent_id(agent: str, prefix: str) -> str:
    """The profile id of a client that sent no id of its own: its User-Agent and network."""
    return "ua-" + hashlib.sha256(f"{agent}\n{prefix}".encode()).hexdigest()[:24]


def address_prefix() -> str:
    """The client's network: its address's /24 (IPv4) or /48 (IPv6)."""
    return _prefix_of(request.remote_addr or "")


@functools.lru_cache(maxsize=_CACHED_CLIENTS)
def _prefix_of(remote_addr: str) -> str:
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return "unknown"
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def current_recommendation(
    account: uuid.UUID | None, *, arm: Arm, file_size: int | None = None, create: bool = False
) -> tuple[ClientKey, Recommendation]:
    """The client's key and the sizes for ``arm``; ``create``: its profile row is made if
    missing (an upload names it)."""
    hint = parse_network_header(request.headers.get(HEADER))
    key = client_key(account, hint)
    session, now = db_session(), services().clock.now()
    stored = open_profile(session, key, now) if create else find_profile(session, key.key)
    behind_proxy = services().settings.server.trusted_proxy_count > 0
    if stored is not None and stored.samples:
        _remember(key.key, estimate_of(stored))
    estimate, source = choose_estimate(estimate_of(stored), hint, behind_proxy=behind_proxy)
    rec = recommend(services().settings, estimate, source, key.network_class, arm, file_size=file_size)
    return key, rec


@dataclass(frozen=True)
class CreatePlan:
    """What a create call sends to the engine: the upload's id, its chunk size (the
    client's own, else the recommendation) and its profile."""

    task_id: str
    chunk_size: int
    profile_key: str | None
    recommendation: Recommendation


def plan_create(account: uuid.UUID | None, requested: int | None, file_size: int | None) -> CreatePlan:
    """Choose the new upload's id and arm and what to recommend; record the chunk size."""
    task_id = engine.new_task_id()
    arm = current_arm(task_id)
    if not services().settings.network_resilience.enabled:
        fixed = recommend(services().settings, estimate_of(None), "none", NetworkClass.UNKNOWN, Arm.FIXED)
        return CreatePlan(task_id, requested or fixed.chunk_size, None, fixed)
    key, rec = current_recommendation(account, arm=arm, file_size=file_size, create=True)
    note_recommendation(db_session(), key, rec)
    _state().metrics.chunk_size.labels(arm.value).observe(rec.chunk_size)
    return CreatePlan(task_id, requested or rec.chunk_size, key.key, rec)


def upload_key_of_request() -> str:
    """The id of the upload this request writes to, whatever the protocol calls it."""
    args = request.view_args or {}
    for name in ("task_id", "upload_id"):
        if isinstance(args.get(name), str):
            return str(args[name])
    return request.headers.get(_UPLOAD_ID_HEADER) or request.path


def measure(source: SourceBody, sock: socket.socket | None) -> MeasuredBody:
    """``source`` read through a meter (and, on the adaptive arm, an adapting read size)."""
    svc = services()
    performance = svc.settings.performance
    arm = current_arm(upload_key_of_request())
    adaptive = arm is Arm.ADAPTIVE and performance.adaptive("buffer")
    initial = performance.max_buffer_size
    if adaptive:
        initial = _starting_buffer(performance.min_buffer_size, performance.max_buffer_size)
    plan = BodyPlan(
        expected=request.content_length,
        initial=initial,
        minimum=performance.min_buffer_size,
        maximum=performance.max_buffer_size,
        sample_kernel=svc.settings.server.trusted_proxy_count == 0,
    )
    body = AdaptiveBody(source, sock, plan) if adaptive else MeasuredBody(source, sock, plan)
    g.measured_body, g.measured_arm = body, arm
    return body


def _starting_buffer(minimum: int, maximum: int) -> int:
    """The read size a body starts with: from this worker's cache of the client's estimate.

    Deliberately no database read here: on SQLite a read before the body would keep a
    read transaction open while the body streams, blocking every other writer; and
    on PostgreSQL it would cost a round trip per chunk. A miss starts at 64 KiB and
    the body's own rate takes over within its first blocks."""
    try:
        hint = parse_network_header(request.headers.get(HEADER))
    except HmacfsError:
        hint = None
    known = _state().estimates.get(client_key(g.get("account_id"), hint).key, UNMEASURED)
    return recommend_buffer_size(known, minimum, maximum)


def _remember(key: str, estimate: LinkEstimate) -> None:
    estimates = _state().estimates
    estimates[key] = estimate
    estimates.move_to_end(key)
    while len(estimates) > _REMEMBERED:
        estimates.popitem(last=False)


_REMEMBERED = 10_000  # client estimates cached per worker


def _record_in_request(response: Response) -> Response:
    """SQLite: a successful request folds its body (and bodies held from failed requests)
    into the profile inside its own transaction, under a savepoint. PostgreSQL waits for
    the teardown: the request's uncommitted rows may hold a key-share lock on the
    profile (upload_tasks.client_profile_key), which a second transaction would wait on."""
    if response.status_code < 400 and "measured_body" in g and not services().db.is_postgresql:
        _finish_body(in_request=True)
    return response


def _record_measured_body(_exc: BaseException | None) -> None:
    _finish_body(in_request=False)


@dataclass(frozen=True)
class _Held:
    client: ClientKey
    measurement: BodyMeasurement
    prefix: str


def _finish_body(*, in_request: bool) -> None:
    body: MeasuredBody | None = g.pop("measured_body", None)
    measurement = None if body is None else body.measurement()
    if body is None or measurement is None:
        return
    _count(body, measurement, g.pop("measured_arm", Arm.FIXED))
    svc = services()
    if not svc.settings.network_resilience.enabled:
        return
    try:
        hint = parse_network_header(request.headers.get(HEADER))
    except HmacfsError:  # a bad hint was already answered 400; measure without it
        hint = None
    held = _Held(client_key(g.get("account_id"), hint), measurement, address_prefix())
    state = _state()
    if svc.db.is_postgresql:
        if state.background:
            _hand_over(state, held)
        else:
            _save_together(state, held)
    elif in_request:
        pending = [*state.held, held]
        state.held.clear()
        _save(pending, in_request=True)
    else:
        # SQLite has one writer, and another request may be streaming a body inside its
        # write transaction: a failed body waits for the next successful request.
        state.held.append(held)


def _count(body: MeasuredBody, measurement: BodyMeasurement, arm: Arm) -> None:
    metrics, outcome = _state().metrics, measurement.outcome
    metrics.bodies_total.labels(arm.value, outcome.value).inc()
    metrics.upload_latency.labels(arm.value, outcome.value).observe(measurement.seconds)
    if measurement.seconds > 0 and measurement.received:
        metrics.upload_throughput.labels(arm.value).observe(measurement.received / measurement.seconds)
    if isinstance(body, AdaptiveBody):
        metrics.buffer_size.set(body.size)
        metrics.buffer_size_changes_total.inc(body.changes)
    _observe_pool(services().buffers)
    if _state().fallback.record(arm, outcome is Outcome.COMPLETE, time.monotonic()):
        metrics.fallbacks_total.inc()
        metrics.fallback_active.set(1)


def _observe_pool(pool: BufferPool | None) -> None:
    if pool is not None:
        _state().metrics.buffer_bytes_in_use.set(pool.in_use)


def save_in_background(app: Flask) -> None:
    """In a served worker (gevent), PostgreSQL saves measurements off the request: the
    teardown held the connection's next request back for the save's transaction
    (tus, 205 PATCHes per GiB one after another: 27 % of the upload's time)."""
    _state_of(app).background = True


def _state_of(app: Flask) -> _State:
    found: _State = app.extensions["hmacfs.adaptive"]
    return found


def _hand_over(state: _State, held: _Held) -> None:
    """Queue ``held`` for a saver greenlet (a new one unless one is saving already)."""
    state.waiting.append(held)
    if not state.saving.locked():
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        threading.Thread(target=_save_waiting, args=(app, state), daemon=True).start()


def _save_waiting(app: Flask, state: _State) -> None:
    with app.app_context():
        while (state.waiting or state.schedule.pending) and state.saving.acquire(blocking=False):
            try:
                time.sleep(_GATHER_SECONDS)
                _save_due(state)
            finally:
                state.saving.release()


# A saver first lets the bodies of the next moments queue, then folds them in one
# transaction: a tus upload sends a PATCH every 15-20 ms, and saving each on its own
# cost a transaction (five round trips and a WAL flush) per PATCH, a fifth of the
# worker's CPU beside the PATCHes themselves (py-spy). A measurement is advisory: one
# that a stopping worker never saves is lost, never wrong.
_GATHER_SECONDS = 0.25
# A settled client is saved at most this often (seconds): still a pass every 0.25 s, but
# one with nothing due costs no transaction (hmacfs.web.save_schedule).
_SETTLED_SAVE_SECONDS = 2.0
# Settled: this many (decayed) bodies behind its estimate, of a window of about ten.
_SETTLED_BODIES = 5.0


def _save_batches(state: _State) -> None:
    """Save everything waiting, and what arrives meanwhile (the request path: nothing waits
    for a later pass, there is none)."""
    while state.waiting:
        batch = list(state.waiting)
        state.waiting.clear()
        # One key order for every batch: two processes never lock two rows crosswise.
        _save(sorted(batch, key=_client_of), in_request=False)


def _save_due(state: _State) -> None:
    """The saver greenlet's pass: save what is due now (``state.schedule``), and what
    arrives meanwhile; a settled client's bodies wait for a later pass."""
    while True:
        arrived = list(state.waiting)
        state.waiting.clear()
        may_wait = functools.partial(_may_wait, state)
        batch = state.schedule.due(arrived, time.monotonic(), key=_client_of, may_wait=may_wait)
        if not batch:
            return
        # One key order for every batch: two processes never lock two rows crosswise.
        _save(sorted(batch, key=_client_of), in_request=False)


def _client_of(held: _Held) -> str:
    return held.client.key


def _may_wait(state: _State, key: str, bodies: list[_Held]) -> bool:
    """A settled client's completed bodies may wait for its next save."""
    known = state.estimates.get(key)
    settled = known is not None and known.bodies >= _SETTLED_BODIES
    return settled and all(held.measurement.outcome is Outcome.COMPLETE for held in bodies)


def _save_together(state: _State, held: _Held) -> None:
    """Fold ``held`` now, or, while this process is already saving, let that saver fold it
    with the others that arrived meanwhile, in one transaction (group commit).

    One transaction per body cost six round trips and a WAL flush, and the bodies of one
    client (one profile row: many users of one app behind one NAT, or one client's
    parallel uploads) queued on that row's lock: 4 KiB PUTs ran at a tenth of their rate.
    A lone body is still saved at once, before its request ends."""
    state.waiting.append(held)
    while state.waiting and state.saving.acquire(blocking=False):
        try:
            _save_batches(state)
        finally:
            state.saving.release()


def _save(bodies: list[_Held], *, in_request: bool) -> None:
    """Fold ``bodies`` into their profiles, each client's with one write: in a transaction
    of their own (PostgreSQL: the request's is over, and a failed body's request was
    rolled back), or under a savepoint of the request's (SQLite). A failure is logged: a
    lost measurement must not fail the upload."""
    svc = services()
    history = svc.settings.performance.performance_history_samples
    clients: dict[str, list[_Held]] = {}
    for held in bodies:
        clients.setdefault(held.client.key, []).append(held)
    try:
        if in_request:
            with db_session().begin_nested() as nested:
                estimates = [_fold(nested.session, group, history) for group in clients.values()]
        else:
            with svc.db.sessions() as session, session.begin():
                estimates = [_fold(session, group, history) for group in clients.values()]
    except Exception:  # database down, ...
        log.warning("could not record %d body measurement(s)", len(bodies), exc_info=True)
        return
    state = _state()
    state.schedule.saved(clients, time.monotonic())
    metrics = state.metrics
    for group, estimate in zip(clients.values(), estimates, strict=True):
        _remember(group[0].client.key, estimate)
        label = group[0].client.network_class.value
        if estimate.throughput is not None:
            metrics.network_speed.labels(label).set(estimate.throughput)
        if estimate.rtt_ms is not None:
            metrics.network_latency.labels(label).set(estimate.rtt_ms)
        metrics.network_reliability.labels(label).set(estimate.reliability)


def _fold(session: Session, group: list[_Held], history: int) -> LinkEstimate:
    now = services().clock.now()
    bodies = [(held.measurement, held.prefix) for held in group]
    return record_bodies(session, group[0].client, bodies, now, history=history)
