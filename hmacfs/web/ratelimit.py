"""Rate limits on every request (``[rate_limit]``, docs/rate-limits.md).

Before a request runs, it takes one token from its client address's bucket and
one from its account's (the bearer token's subject), plus one from each of their
create buckets on an endpoint that creates an upload, a file or a task; it also
looks at its address's failed-authentication bucket. A refused request gets 429
``RATE_LIMITED`` with ``Retry-After``, and is counted in
``hmacfs_rate_limited_total{limit}``. After a request that carried credentials
is answered 401, or 403 for a bad signature or token, the failure takes a
token from that bucket: guessing is throttled far below ordinary use.

When Redis buckets cannot be reached, requests pass unchecked (a limiter is not
worth refusing every upload for), each counted in
``hmacfs_rate_limit_unchecked_total`` and logged at most once a minute.
"""

from __future__ import annotations

import ipaddress
import logging
import time
import uuid
from collections.abc import Sequence

from flask import Flask, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from hmacfs.auth import bearer_token
from hmacfs.config import RateLimitSettings
from hmacfs.container import Services
from hmacfs.errors import HmacfsError, RateLimited
from hmacfs.ratelimit import Buckets, BucketsUnavailable, Refusal, Take, build_buckets

log = logging.getLogger(__name__)

CREATE_ENDPOINTS = frozenset(
    {
        "drive_api.create",
        "drive_gateway.create",
        "tus.create",
        "chunked.start_session",
        "multipart.post_upload",
        "tasks.create",
        "bundles.create",
        "xep0363.put_slot",
    }
)
# Probes and scrapes come from one address again and again (a load balancer, Prometheus),
# and the API document is what every client and tool fetches first.
EXEMPT_PATHS = frozenset({"/health", "/health/uploads", "/metrics", "/openapi.json", "/docs"})
_CREDENTIAL_HEADERS = ("Authorization", "X-Signature")
_CREDENTIAL_QUERY = ("v", "v2", "v3", "token")
_REMEMBERED_ADDRESSES = 4096  # answers of _exempt_address kept per process
_WARNING_INTERVAL = 60.0  # seconds between two "limits unchecked" warnings of one process


def install_rate_limits(app: Flask, services: Services) -> None:
    """Check the limits before every request and record failed authentication after it.

    Buckets live in PostgreSQL or Redis (shared by all workers and nodes) or, on SQLite
    or with ``storage = "memory"``, in this process (``hmacfs.ratelimit.build_buckets``).
    """
    settings = services.settings.rate_limit
    if not settings.enabled:
        return
    limiter = _Limiter(settings, build_buckets(settings, services.db))
    app.before_request(limiter.check)
    app.after_request(limiter.record_failure)


class _Limiter:
    def __init__(self, settings: RateLimitSettings, buckets: Buckets) -> None:
        self.settings = settings
        self.buckets = buckets
        self.exempt_networks = tuple(ipaddress.ip_network(n, strict=False) for n in settings.whitelisted_ips)
        self.exempt_accounts = frozenset(settings.whitelisted_jids)
        self._warned_at = -_WARNING_INTERVAL
        # Parsing the address for each request cost about 3 % of a cached 4 KiB GET.
        self._exempt_by_address: dict[str, bool] = {}

    def check(self) -> None:
        """Raise RateLimited (429) when any bucket of this request is empty."""
        if request.method == "OPTIONS" or request.path in EXEMPT_PATHS or self._exempt_address():
            return
        account = _peek_account()
        if account in self.exempt_accounts:
            return
        try:
            refused = self.buckets.take(self._takes(_address(), account))
        except BucketsUnavailable as exc:
            self._pass_unchecked(exc)
            return
        if refused:
            raise self._refusal(refused)

    def record_failure(self, response: Response) -> Response:
        if not _is_auth_failure(response) or self._exempt_address():
            return response
        try:
            self.buckets.take([self._auth_take(_address(), cost=1.0)])
        except SQLAlchemyError as exc:  # the answer is already decided; losing one count is harmless
            log.warning("could not record a failed authentication: %s", type(exc).__name__)
        except BucketsUnavailable:
            pass  # the same; check() counts and reports a Redis outage
        return response

    def _pass_unchecked(self, exc: BucketsUnavailable) -> None:
        current_app.extensions["hmacfs"].metrics.rate_limit_unchecked_total.inc()
        now = time.monotonic()
        if now - self._warned_at >= _WARNING_INTERVAL:
            self._warned_at = now
            log.warning("rate limits unchecked: the Redis buckets are unreachable (%s)", exc)

    def _takes(self, address: str, account: uuid.UUID | None) -> list[Take]:
        limits = self.settings
        rate, burst = limits.requests_per_minute / 60, float(limits.burst_size)
        create_rate, create_burst = limits.create_per_minute / 60, float(limits.create_burst)
        creates = request.endpoint in CREATE_ENDPOINTS
        subjects = [("address", address)] if limits.by_ip else []
        if limits.by_jid and account is not None:
            subjects.append(("account", str(account)))
        takes = [Take(f"{kind}:{subject}", rate, burst) for kind, subject in subjects]
        if creates:
            takes += [
                Take(f"create-{kind}:{subject}", create_rate, create_burst) for kind, subject in subjects
            ]
        takes.append(self._auth_take(address, cost=0.0))
        return takes

    def _auth_take(self, address: str, *, cost: float) -> Take:
        limits = self.settings
        return Take(
            f"auth-failures:{address}", limits.auth_failures_per_minute / 60, limits.auth_failures_burst, cost
        )

    def _refusal(self, refused: Sequence[Refusal]) -> RateLimited:
        worst = max(refused, key=lambda item: item.retry_after)
        limit = worst.key.split(":", 1)[0]
        current_app.extensions["hmacfs"].metrics.rate_limited_total.labels(limit).inc()
        return RateLimited(
            "too many requests; retry later",
            details={"limit": limit, "retryAfter": worst.retry_after},
            headers={"Retry-After": str(worst.retry_after)},
        )

    def _exempt_address(self) -> bool:
        if not self.exempt_networks:
            return False
        address = _address()
        known = self._exempt_by_address.get(address)
        if known is None:
            known = self._in_exempt_networks(address)
            if len(self._exempt_by_address) >= _REMEMBERED_ADDRESSES:
                self._exempt_by_address.clear()
            self._exempt_by_address[address] = known
        return known

    def _in_exempt_networks(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        return any(ip in network for network in self.exempt_networks)


def _address() -> str:
    """The client address: the socket peer, or the one ``server.trusted_proxy_count``
    proxies report (ProxyFix has already applied it)."""
    return request.remote_addr or "unknown"


def _peek_account() -> uuid.UUID | None:
    """The bearer token's account when the token is valid (cached for the handler), else None:
    an invalid token is the handler's to refuse, and then counts as a failure."""
    token = bearer_token()
    if token is None:
        return None
    try:
        account: uuid.UUID = current_app.extensions["hmacfs"].tokens.account(token)
    except HmacfsError:
        return None
    g.account_id = account
    return account


def _is_auth_failure(response: Response) -> bool:
    if response.status_code not in (401, 403) or not _sent_credentials():
        return False
    if response.status_code == 401:
        return True
    body = response.get_json(silent=True) if response.is_json else None
    code = str(body.get("code", "")) if isinstance(body, dict) else ""
    return "SIGNATURE" in code or "TOKEN" in code


def _sent_credentials() -> bool:
    return any(name in request.headers for name in _CREDENTIAL_HEADERS) or any(
        name in request.args for name in _CREDENTIAL_QUERY
    )
