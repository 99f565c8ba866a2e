"""The Hmacfs-Network header the Python client sends, and the chunk-size restart it
follows after a network change (the server side of the header: tests/web)."""

from __future__ import annotations

import pytest

from hmacfs.client.link import Link, LinkOptions
from hmacfs.client.network import HEADER, network_hint, network_type
from hmacfs.client.report import JsonReporter
from hmacfs.client.sizing import ChunkSizer, MiB
from hmacfs.client.watch import Watchdog
from hmacfs.web.network_header import parse_network_header


@pytest.mark.parametrize(
    ("interface", "kind"),
    [
        ("wlan0", "wifi"), ("wlp2s0", "wifi"), ("wwan0", "cellular"), ("rmnet_data0", "cellular"),
        ("eth0", "ethernet"), ("enp3s0", "ethernet"), ("tun0", "vpn"), ("wg0", "vpn"),
        ("lo", None), ("veth12ab", None), ("docker0", None), ("", None), (None, None),
    ],
)  # fmt: skip
def test_the_default_route_interface_names_the_network_type(interface: str | None, kind: str | None) -> None:
    assert network_type(interface) == kind


@pytest.mark.parametrize("kind", ["wifi", "cellular", "lte", "ethernet", "vpn"])
def test_every_type_the_client_sends_is_a_class_the_server_knows(kind: str) -> None:
    value = network_hint(kind)
    assert value is not None
    hint = parse_network_header(value)
    assert hint is not None and hint.network_class.value == kind
    assert network_hint(None) is None


def _link(network: str, route: list[str]) -> Link:
    watchdog = Watchdog(lambda kind, detail: None, snapshot=lambda: (frozenset(), (route[0],)))
    link = Link(LinkOptions("http://127.0.0.1:1", "t", network=network), watchdog, JsonReporter())
    return link


def test_auto_guesses_again_after_each_network_change_only(monkeypatch: pytest.MonkeyPatch) -> None:
    route = ["wlan0"]
    calls: list[str] = []

    def interface() -> str:
        calls.append(route[0])
        return route[0]

    monkeypatch.setattr("hmacfs.client.link.default_interface", interface)
    link = _link("auto", route)
    link.watchdog._last = link.watchdog._snapshot()
    assert link.auth[HEADER] == "type=wifi" and link.auth["Authorization"] == "Bearer t"
    assert link.auth[HEADER] == "type=wifi" and calls == ["wlan0"]  # cached until a change
    route[0] = "wwan0"
    link.watchdog.check()  # the watchdog sees the default route move
    assert link.auth[HEADER] == "type=cellular" and calls == ["wlan0", "wwan0"]
    route[0] = "docker0"
    link.watchdog.check()
    assert HEADER not in link.auth


def test_an_explicit_network_wins_and_none_sends_nothing() -> None:
    assert _link("lte", ["wlan0"]).auth[HEADER] == "type=lte"
    assert HEADER not in _link("none", ["wlan0"]).auth


def test_restart_forgets_the_old_links_goodput() -> None:
    sizer = ChunkSizer(8 * MiB)
    sizer.observe(8 * MiB, 0.1)  # a fast link: the size doubles
    assert sizer.next_size() == 16 * MiB and sizer.goodput
    sizer.restart(2 * MiB + 1000)  # the server's recommendation for the new network
    assert sizer.next_size() == 2 * MiB and sizer.goodput is None
    sizer.observe(2 * MiB, 4.0)  # 512 KiB/s: 1 MiB per 2 s target
    assert sizer.next_size() == 1 * MiB
