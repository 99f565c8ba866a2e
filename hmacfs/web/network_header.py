"""The ``Hmacfs-Network`` request header, a client's description of its network. Pure.

Form: ``type=lte; downlink=8.5; rtt=60`` (parameters in any order, each
optional), mapped from the browser's ``navigator.connection`` (``type`` or
``effectiveType``, ``downlink`` in Mbit/s, ``rtt`` in ms) or Android's
connectivity API (``TRANSPORT_WIFI`` → ``wifi``, ...). Unknown parameters are
ignored and unknown types mean ``unknown``, so newer clients keep working.
"""

from __future__ import annotations

import math

from hmacfs.errors import BadRequest
from hmacfs.network.estimate import NetworkClass
from hmacfs.network.profiles import NetworkHint

HEADER = "Hmacfs-Network"
_MAX_LENGTH = 256

# navigator.connection.type / effectiveType and Android transport names, lower-cased.
_CLASSES = {
    "ethernet": NetworkClass.ETHERNET, "wired": NetworkClass.ETHERNET,
    "transport_ethernet": NetworkClass.ETHERNET,
    "wifi": NetworkClass.WIFI, "wlan": NetworkClass.WIFI, "wimax": NetworkClass.WIFI,
    "transport_wifi": NetworkClass.WIFI,
    "lte": NetworkClass.LTE, "4g": NetworkClass.LTE, "5g": NetworkClass.LTE, "nr": NetworkClass.LTE,
    "cellular": NetworkClass.CELLULAR, "transport_cellular": NetworkClass.CELLULAR,
    "3g": NetworkClass.CELLULAR, "2g": NetworkClass.CELLULAR, "slow-2g": NetworkClass.CELLULAR,
    "edge": NetworkClass.CELLULAR, "umts": NetworkClass.CELLULAR, "hspa": NetworkClass.CELLULAR,
    "gprs": NetworkClass.CELLULAR,
    "vpn": NetworkClass.VPN, "transport_vpn": NetworkClass.VPN,
}  # fmt: skip


def network_class(value: str | None) -> NetworkClass:
    """The network class a header names (its ``type``), else UNKNOWN. Lenient, unlike
    ``parse_network_header``: a malformed header is UNKNOWN, never an error, for the callers
    that only pick a timeout or a buffer by class."""
    for item in (value or "").split(";"):
        key, _, raw = item.partition("=")
        if key.strip().lower() == "type":
            return _class(raw)
    return NetworkClass.UNKNOWN


def _class(raw: str) -> NetworkClass:
    return _CLASSES.get(raw.strip().strip('"').lower(), NetworkClass.UNKNOWN)


def parse_network_header(value: str | None) -> NetworkHint | None:
    """The hint in ``value`` (None when the header is absent or empty).

    Raises BadRequest INVALID_NETWORK_HINT for a header that is too long, a
    parameter without ``=``, or a ``downlink``/``rtt`` that is not a finite
    number >= 0.
    """
    if value is None or not value.strip():
        return None
    if len(value) > _MAX_LENGTH:
        raise _invalid(f"longer than {_MAX_LENGTH} characters")
    params: dict[str, str] = {}
    for part in value.split(";"):
        if not part.strip():
            continue
        name, equals, raw = part.partition("=")
        if not equals:
            raise _invalid(f"{part.strip()!r} is not name=value")
        params[name.strip().lower()] = raw.strip().strip('"')
    kind = _class(params.get("type", ""))
    return NetworkHint(kind, _number(params, "downlink"), _number(params, "rtt"))


def _number(params: dict[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        number = float(raw)
    except ValueError:
        raise _invalid(f"{name} must be a number") from None
    if not math.isfinite(number) or number < 0:
        raise _invalid(f"{name} must be a finite number >= 0")
    return number


def _invalid(reason: str) -> BadRequest:
    return BadRequest(f"{HEADER}: {reason}", code="INVALID_NETWORK_HINT", details={"field": HEADER})
