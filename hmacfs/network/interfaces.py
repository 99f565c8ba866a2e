"""This node's network interfaces: a snapshot (netifaces and sysfs) and what changed between two.

``read_snapshot`` is the only function here that touches the system; the
rest is pure. Link state comes from ``/sys/class/net/<name>/operstate``
(netifaces reports addresses only, and an interface that goes down keeps its
IPv4 address); the default route from netifaces' gateways.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import netifaces

from hmacfs.network_settings import NetworkInterfacesSettings

_SYS_NET = Path("/sys/class/net")


@dataclass(frozen=True)
class Interface:
    """One interface: whether its link is up, and its addresses (IPv4 and IPv6, as text)."""

    up: bool
    addresses: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Snapshot:
    interfaces: Mapping[str, Interface] = field(default_factory=dict)
    default_route: str | None = None  # the interface of the IPv4 default route (else IPv6's)


@dataclass(frozen=True)
class Change:
    """``kind``: interface_added, interface_removed, link_up, link_down, address_added,
    address_removed or default_route (then ``old`` and ``new`` name the interfaces)."""

    kind: str
    interface: str | None
    address: str | None = None
    old: str | None = None
    new: str | None = None

    def as_data(self) -> dict[str, str | None]:
        data = {"kind": self.kind, "interface": self.interface}
        if self.address is not None:
            data["address"] = self.address
        if self.kind == "default_route":
            data.update(old=self.old, new=self.new)
        return data


def read_snapshot(sys_net: Path = _SYS_NET) -> Snapshot:
    """The interfaces of this process's network namespace now."""
    interfaces = {
        name: Interface(_link_up(sys_net, name), _addresses(name)) for name in netifaces.interfaces()
    }
    return Snapshot(interfaces, _default_route())


def _link_up(sys_net: Path, name: str) -> bool:
    """Up unless sysfs says down (loopback reports "unknown" while up)."""
    try:
        state = (sys_net / name / "operstate").read_text().strip()
    except OSError:
        return True
    return state not in {"down", "lowerlayerdown"}


def _addresses(name: str) -> frozenset[str]:
    try:
        found = netifaces.ifaddresses(name)
    except ValueError:  # vanished between the listing and now
        return frozenset()
    return frozenset(
        entry["addr"].split("%", 1)[0]
        for family in (netifaces.AF_INET, netifaces.AF_INET6)
        for entry in found.get(family, [])
        if entry.get("addr")
    )


def _default_route() -> str | None:
    defaults = netifaces.gateways().get("default", {})
    for family in (netifaces.AF_INET, netifaces.AF_INET6):
        route = defaults.get(family)
        if route:
            return str(route[1])
    return None


def changes(old: Snapshot, new: Snapshot) -> list[Change]:
    """What differs from ``old`` to ``new``, interfaces in name order, then the default route."""
    found: list[Change] = []
    for name in sorted(set(old.interfaces) | set(new.interfaces)):
        found += _interface_changes(name, old.interfaces.get(name), new.interfaces.get(name))
    if old.default_route != new.default_route:
        found.append(Change("default_route", new.default_route, old=old.default_route, new=new.default_route))
    return found


def _interface_changes(name: str, before: Interface | None, after: Interface | None) -> list[Change]:
    if before is None or after is None:
        return [Change("interface_added" if before is None else "interface_removed", name)]
    found = []
    if before.up != after.up:
        found.append(Change("link_up" if after.up else "link_down", name))
    found += [
        Change("address_added", name, address) for address in sorted(after.addresses - before.addresses)
    ]
    found += [
        Change("address_removed", name, address) for address in sorted(before.addresses - after.addresses)
    ]
    return found


# Interface names, by the usual kernel and systemd naming, to network classes.
_NAME_CLASSES = (
    (re.compile(r"^(eth|en|em|eno|ens|enp|bond|br)"), "ethernet"),
    (re.compile(r"^(wl|wlan|wifi|ath|ra)"), "wifi"),
    (re.compile(r"^(wwan|rmnet|usb|lte)"), "lte"),
    (re.compile(r"^(ppp|cdc|gsm)"), "cellular"),
    (re.compile(r"^(tun|tap|wg|vpn|ipsec|tailscale|zt)"), "vpn"),
)


def interface_class(name: str) -> str:
    """The network class an interface's name suggests ("unknown" when none does)."""
    for pattern, network_class in _NAME_CLASSES:
        if pattern.match(name):
            return network_class
    return "unknown"


def preferred(snapshot: Snapshot, tuning: NetworkInterfacesSettings) -> str | None:
    """The up interface with an address whose class has the lowest ``priority`` (loopback
    excluded; ties by name): the one this node would rather serve over."""
    candidates = [
        (tuning.of(interface_class(name)).priority, name)
        for name, interface in snapshot.interfaces.items()
        if interface.up and interface.addresses and name != "lo"
    ]
    return min(candidates)[1] if candidates else None


def describe(snapshot: Snapshot) -> dict[str, dict[str, object]]:
    """The snapshot as event data: per interface, its link, addresses and class."""
    return {
        name: {"up": interface.up, "addresses": sorted(interface.addresses), "class": interface_class(name)}
        for name, interface in sorted(snapshot.interfaces.items())
    }
