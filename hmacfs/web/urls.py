"""Absolute URLs in answers (tus ``Location``, the multipart ``url``) that a client's
``Host`` header cannot steer.

``server.base_url`` wins; otherwise the request's own scheme and host are used
only when that host is in ``server.trusted_hosts``; otherwise the URL is
relative (``/files/<id>``), which tus clients and browsers resolve against the
URL they called. An echoed ``Host: evil.example`` would send the client's next
requests, and their credentials, elsewhere.
"""

from __future__ import annotations

from flask import request

from hmacfs.web.context import services


def public_url(path: str) -> str:
    """``path`` (starting with "/") as the URL to hand to the client."""
    server = services().settings.server
    if server.base_url:
        return server.base_url.rstrip("/") + path
    if _trusted(request.host, server.trusted_hosts):
        return request.host_url.rstrip("/") + path
    return path


def _trusted(host: str, trusted: tuple[str, ...]) -> bool:
    """``host`` (with or without a port) matches an entry: an exact name, a
    ``name:port``, or ``.example.org`` for any subdomain."""
    name = host.lower()
    bare = name.rsplit(":", 1)[0] if not name.endswith("]") else name
    for entry in (item.lower() for item in trusted):
        if entry.startswith("."):
            if bare.endswith(entry) or bare == entry[1:]:
                return True
        elif entry in (name, bare):
            return True
    return False
