"""``/ws``: live events over WebSocket (flask-sock under gunicorn gevent workers).

Authenticate with ``Authorization: Bearer``, ``?token=``, or a first message
``{"type":"auth","token":"..."}`` within 5 s; failure closes with 4401.
The socket's request holds no database session: replay uses short ones.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import jwt
from flask import Blueprint, request
from flask.blueprints import BlueprintSetupState
from flask_sock import Sock
from simple_websocket import Server

from hmacfs.auth import bearer_token
from hmacfs.container import Services
from hmacfs.errors import Forbidden, Unauthorized
from hmacfs.events.stream import EventStream, error_message, parse_since
from hmacfs.web.context import services
from hmacfs.web.cors import origin_of, origin_permitted

AUTH_TIMEOUT = 5.0
CLOSE_UNAUTHORIZED = 4401
CLOSE_BAD_REQUEST = 4400
CLOSE_GOING_AWAY = 1001

ws = Blueprint("ws", __name__)
sock = Sock()


class WholeFrameSocket:
    """simple-websocket writes frames with ``socket.send``, which may write part of a
    large frame when the peer is slow, and sends pings from its reader greenlet.
    This wrapper makes every write complete and exclusive, so frames never tear."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, data: bytes) -> int:
        with self._lock:
            self._sock.sendall(data)
        return len(data)

    sendall = send

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


@ws.record_once
def _configure(state: BlueprintSetupState) -> None:
    settings = state.app.extensions["hmacfs"].settings
    # simple-websocket pings on its reader greenlet and closes a socket whose pong never comes.
    state.app.config["SOCK_SERVER_OPTIONS"] = {
        "ping_interval": settings.events.ping_interval.total_seconds(),
        "max_message_size": 64 * 1024,
    }


@ws.before_request
def _check_origin() -> None:
    """Refuse the handshake (403, before any upgrade) from a page of a foreign origin."""
    settings = services().settings
    own = (request.host_url, origin_of(settings.server.base_url))
    if not origin_permitted(request.headers.get("Origin"), (origin_of(url) for url in own), settings):
        raise Forbidden("origin not allowed", code="CORS_ORIGIN_DENIED")


@sock.route("/ws", bp=ws)  # type: ignore[untyped-decorator]
def events_socket(socket: Server) -> None:
    found = services()
    token = _token(socket)
    account = _authenticate(socket, found, token)
    if account is None or token is None:
        return
    try:
        since = parse_since(request.args["since"]) if "since" in request.args else None
    except ValueError as error:
        socket.close(reason=CLOSE_BAD_REQUEST, message=str(error))
        return
    socket.sock = WholeFrameSocket(socket.sock)
    stream = EventStream(
        account,
        found.hub,
        found.db.sessions,
        capacity=found.settings.events.subscriber_queue_size,
        send=socket.send,
        wake=socket.event.set,
    )
    try:
        stream.open(since)
        _pump(socket, stream, _expiry(token, found))
    except OSError:  # the peer vanished mid-send; nothing left to tell it
        pass
    finally:
        stream.close()


def _pump(socket: Server, stream: EventStream, expires: float) -> None:
    """Serve the socket from this one greenlet: client messages and events both set
    ``socket.event`` (simple-websocket's own wake-up), so no extra greenlet per socket.
    The socket lives no longer than its token (epoch seconds ``expires``)."""
    while stream.flush():
        remaining = expires - time.time()
        if remaining <= 0:
            socket.close(reason=CLOSE_UNAUTHORIZED, message="token expired")
            return
        # receive() clears the event after waking even when more messages are
        # buffered (e.g. a ping right behind the auth message): look before waiting.
        if not socket.input_buffer:
            socket.event.wait(remaining)
        socket.event.clear()
        while (message := socket.receive(timeout=0)) is not None:  # raises once closed
            stream.handle(message)
    socket.close(reason=CLOSE_GOING_AWAY, message="server shutting down; reconnect with since")


def _token(socket: Server) -> str | None:
    return bearer_token() or request.args.get("token") or _first_message_token(socket)


def _expiry(token: str, found: Services) -> float:
    """When a verified token stops being valid (its ``exp`` plus the configured leeway)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims["exp"]) + found.tokens.leeway.total_seconds()


def _authenticate(socket: Server, found: Services, token: str | None) -> uuid.UUID | None:
    try:
        if token is None:
            raise Unauthorized("authentication required")
        return found.tokens.account(token)
    except Unauthorized as error:
        socket.close(reason=CLOSE_UNAUTHORIZED, message=error.message)
        return None


def _first_message_token(socket: Server) -> str | None:
    message = socket.receive(timeout=AUTH_TIMEOUT)
    try:
        parsed: Any = json.loads(message) if message is not None else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("type") == "auth" and isinstance(parsed.get("token"), str):
        return str(parsed["token"])
    if message is not None:
        socket.send(error_message('the first message must be {"type":"auth","token":...}'))
    return None
