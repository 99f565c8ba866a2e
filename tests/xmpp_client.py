"""A real XMPP client (slixmpp, PyPI) that asks a real XMPP server for XEP-0363 slots.

Each call logs in over plain TCP on 127.0.0.1 (the test servers offer no TLS),
does its work and disconnects, all inside one ``asyncio.run`` bounded by
``TIMEOUT`` seconds, so a server that never answers fails the test instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import slixmpp

TIMEOUT = 10.0
T = TypeVar("T")

# slixmpp logs every stanza at DEBUG; pytest would keep them all for a failure report.
logging.getLogger("slixmpp").setLevel(logging.INFO)


@dataclass(frozen=True)
class Account:
    """Where and as whom to log in: ``jid`` is ``user@host``."""

    jid: str
    password: str
    port: int


@dataclass(frozen=True)
class Slot:
    """An upload slot as the server handed it out (XEP-0363 ``<slot/>``)."""

    put_url: str
    get_url: str
    headers: dict[str, str]


def upload(account: Account, filename: str, data: bytes, content_type: str | None = None) -> str:
    """Upload ``data`` as ``filename`` the way slixmpp's ``xep_0363`` plugin does
    (slot request, then PUT with the slot's headers); return the GET URL.

    ``content_type`` None lets slixmpp guess it from the name, as clients do.
    Raises slixmpp's ``HTTPError`` when the upload server refuses the PUT.
    """

    async def work(client: slixmpp.ClientXMPP) -> str:
        url: str = await client.plugin["xep_0363"].upload_file(
            filename, size=len(data), content_type=content_type, input_file=io.BytesIO(data), timeout=TIMEOUT
        )
        return url

    return _session(account, work)


def request_slot(account: Account, filename: str, size: int, content_type: str) -> Slot:
    """Only ask for a slot (no upload), to try the URL with tampered requests."""

    async def work(client: slixmpp.ClientXMPP) -> Slot:
        plugin = client.plugin["xep_0363"]
        service = await plugin.find_upload_service(timeout=TIMEOUT)
        assert service is not None, "the server announces no upload service"
        answer = await plugin.request_slot(service["from"], filename, size, content_type, timeout=TIMEOUT)
        slot = answer["http_upload_slot"]
        headers = {header["name"]: header["value"] for header in slot["put"]["headers"]}
        return Slot(put_url=slot["put"]["url"], get_url=slot["get"]["url"], headers=headers)

    return _session(account, work)


def _session(account: Account, work: Callable[[slixmpp.ClientXMPP], Awaitable[T]]) -> T:
    async def run() -> T:
        client = _client(account)
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        client.add_event_handler("session_start", lambda _: started.done() or started.set_result(None))
        client.add_event_handler(
            "failed_auth", lambda _: started.done() or started.set_exception(AssertionError("login refused"))
        )
        client.connect("127.0.0.1", account.port)
        try:
            await started
            return await work(client)
        finally:
            client.disconnect()
            await _quietly(client.disconnected)

    return asyncio.run(asyncio.wait_for(run(), TIMEOUT))


def _client(account: Account) -> slixmpp.ClientXMPP:
    client = slixmpp.ClientXMPP(account.jid, account.password)
    # Loopback test servers without certificates: plain TCP, SCRAM over it.
    client.enable_plaintext = True
    client.enable_starttls = False
    client.enable_direct_tls = False
    client.plugin["feature_mechanisms"].unencrypted_scram = True
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0363")
    return client


async def _quietly(waiting: Awaitable[Any]) -> None:
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(waiting, 2)
