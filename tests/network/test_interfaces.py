"""The interface snapshot diff and naming rules (pure), and this machine's real snapshot."""

from __future__ import annotations

from hmacfs.network.interfaces import (
    Change,
    Interface,
    Snapshot,
    changes,
    interface_class,
    preferred,
    read_snapshot,
)
from hmacfs.network_settings import NetworkInterfacesSettings

BASE = Snapshot(
    {
        "lo": Interface(True, frozenset({"127.0.0.1"})),
        "eth0": Interface(True, frozenset({"10.0.0.5"})),
        "wlan0": Interface(True, frozenset({"192.168.1.7"})),
    },
    "eth0",
)


def test_nothing_changed() -> None:
    assert changes(BASE, BASE) == []


def test_a_link_going_down_with_its_route() -> None:
    down = Snapshot({**BASE.interfaces, "eth0": Interface(False, frozenset({"10.0.0.5"}))}, "wlan0")
    assert changes(BASE, down) == [
        Change("link_down", "eth0"),
        Change("default_route", "wlan0", old="eth0", new="wlan0"),
    ]
    assert changes(down, BASE)[0] == Change("link_up", "eth0")


def test_addresses_and_interfaces_coming_and_going() -> None:
    moved = Snapshot(
        {
            "lo": BASE.interfaces["lo"],
            "eth0": Interface(True, frozenset({"10.0.0.6", "fe80::1"})),
            "wwan0": Interface(True, frozenset({"100.64.0.9"})),
        },
        "eth0",
    )
    assert changes(BASE, moved) == [
        Change("address_added", "eth0", "10.0.0.6"),
        Change("address_added", "eth0", "fe80::1"),
        Change("address_removed", "eth0", "10.0.0.5"),
        Change("interface_removed", "wlan0"),
        Change("interface_added", "wwan0"),
    ]
    assert Change("default_route", None, old="eth0", new=None).as_data() == {
        "kind": "default_route", "interface": None, "old": "eth0", "new": None,
    }  # fmt: skip


def test_interface_classes_by_name() -> None:
    names = [
        "eth0",
        "enp3s0",
        "wlp2s0",
        "wlan0",
        "wwan0",
        "rmnet_data0",
        "ppp0",
        "tun0",
        "wg0",
        "veth1",
        "lo",
    ]
    assert [interface_class(name) for name in names] == [
        "ethernet", "ethernet", "wifi", "wifi", "lte", "lte", "cellular", "vpn", "vpn", "unknown", "unknown",
    ]  # fmt: skip


def test_preferred_interface_follows_class_priority() -> None:
    tuning = NetworkInterfacesSettings()
    assert preferred(BASE, tuning) == "eth0"
    wifi_first = NetworkInterfacesSettings(wifi={"priority": 1})  # type: ignore[arg-type]
    assert preferred(BASE, wifi_first) == "wlan0"
    only_lo = Snapshot({"lo": BASE.interfaces["lo"], "eth0": Interface(False, frozenset({"10.0.0.5"}))})
    assert preferred(only_lo, tuning) is None


def test_this_machine_has_a_loopback_that_is_up() -> None:
    snapshot = read_snapshot()
    assert snapshot.interfaces["lo"].up and "127.0.0.1" in snapshot.interfaces["lo"].addresses
