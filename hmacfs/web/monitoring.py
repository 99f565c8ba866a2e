"""Restricting ``/metrics`` and ``/health/uploads`` (``[metrics] access_token`` and
``allowed_networks``): both tell an outsider about load, storage and failures.

With neither set they stay public (``/health`` always is: a load balancer's
liveness probe). With ``allowed_networks``, the client address (after
``server.trusted_proxy_count`` proxies) must lie in one of them; with
``access_token``, the request must carry ``Authorization: Bearer <token>``,
compared in constant time. With both, both must hold.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Flask, request

from hmacfs.auth import bearer_token
from hmacfs.config import MetricsSettings
from hmacfs.errors import Forbidden, Unauthorized

GUARDED_PATHS = frozenset({"/metrics", "/health/uploads"})


def restrict_monitoring(app: Flask, settings: MetricsSettings) -> None:
    """Install the check on GUARDED_PATHS when a token or a network list is configured."""
    if not settings.access_token and not settings.allowed_networks:
        return
    networks = tuple(ipaddress.ip_network(item, strict=False) for item in settings.allowed_networks)
    token = settings.access_token.encode("utf-8")

    @app.before_request
    def _guard() -> None:
        if request.path not in GUARDED_PATHS:
            return
        if networks and not _address_in(request.remote_addr, networks):
            raise Forbidden("not allowed from this address", code="MONITORING_FORBIDDEN")
        if token and not hmac.compare_digest((bearer_token() or "").encode("utf-8"), token):
            raise Unauthorized("a monitoring token is required", code="MONITORING_TOKEN_REQUIRED")


def _address_in(
    address: str | None, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)
