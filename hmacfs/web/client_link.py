"""Where a request comes from, as the upload engine's handoff sees it: the client's
address (after the trusted proxies, ``hmacfs.app``) and its network class, from the
``Hmacfs-Network`` header a client may send (``type=lte; downlink=8.5; rtt=60``,
mapped from the browser's ``navigator.connection`` or Android's connectivity API).
"""

from __future__ import annotations

import re

from flask import request

from hmacfs.uploads import engine
from hmacfs.web.context import services
from hmacfs.web.network_header import HEADER, network_class

_MOBILE = re.compile(r"Android|iPhone|iPad|iPod|Mobile|okhttp|CFNetwork|Dalvik", re.IGNORECASE)
_SERVER = re.compile(
    r"^(curl|Wget|python-requests|python-urllib|aiohttp|httpx|Go-http-client|Java|Apache-HttpClient|"
    r"hmacfs|tusd|rclone|libwww-perl)",
    re.IGNORECASE,
)


def client_kind(user_agent: str | None) -> str:
    """ "mobile", "server" (a program, a script) or "desktop" (a browser, anything else), from
    the User-Agent. Pure; only a hint, so a wrong guess merely changes a timeout."""
    agent = user_agent or ""
    if _MOBILE.search(agent):
        return "mobile"
    return "server" if _SERVER.search(agent) else "desktop"


def client_link() -> engine.ClientLink:
    """This request's client address and network class."""
    return engine.ClientLink(request.remote_addr, network_class(request.headers.get(HEADER)))


def body_watch() -> engine.BodyWatch:
    """A watch for this request's body, to hand to both the body reader and the engine."""
    return engine.BodyWatch(services(), client_link())
