"""The ``Hmacfs-Network`` header this client sends: its network's type, from the
default route's interface (docs/adaptive.md, "The Hmacfs-Network header").

A desktop or server has no ``navigator.connection``; the interface that carries
the default route is the best cheap clue: ``wlan0``/``wlp2s0`` is Wi-Fi,
``wwan0``/``rmnet0`` a cellular modem, ``eth0``/``enp3s0`` wired, ``tun0``/``wg0``
a VPN. An interface named otherwise says nothing, and no header is sent (the
server then measures the link alone). ``--network TYPE`` overrides the guess.
"""

from __future__ import annotations

import socket

HEADER = "Hmacfs-Network"

# Interface name prefixes, longest first where one is a prefix of another. Types are
# the ones the server maps (wifi, ethernet, cellular, lte, vpn).
_PREFIXES = (
    ("wlan", "wifi"), ("wlp", "wifi"), ("wlx", "wifi"), ("wifi", "wifi"), ("ath", "wifi"),
    ("wwan", "cellular"), ("wwp", "cellular"), ("rmnet", "cellular"), ("ccmni", "cellular"),
    ("eth", "ethernet"), ("enp", "ethernet"), ("eno", "ethernet"), ("ens", "ethernet"), ("enx", "ethernet"),
    ("tun", "vpn"), ("tap", "vpn"), ("wg", "vpn"), ("ipsec", "vpn"), ("utun", "vpn"),
)  # fmt: skip


def network_type(interface: str | None) -> str | None:
    """The network type an interface's name suggests, or None when it says nothing."""
    if not interface:
        return None
    name = interface.lower()
    return next((kind for prefix, kind in _PREFIXES if name.startswith(prefix)), None)


def default_interface() -> str | None:
    """The interface of the IPv4 default route (else IPv6's), or None without one."""
    import netifaces

    defaults = netifaces.gateways().get("default", {})
    for family in (socket.AF_INET, socket.AF_INET6):
        entry = defaults.get(family)
        if entry:
            return str(entry[1])
    return None


def network_hint(kind: str | None) -> str | None:
    """The header's value for a network type (``type=wifi``), or None for no header."""
    return f"type={kind}" if kind else None
