from __future__ import annotations

import pytest

from hmacfs.web.client_link import client_kind
from hmacfs.web.network_header import network_class


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("type=lte; downlink=8.5; rtt=60", "lte"),
        ("downlink=30; type=WIFI", "wifi"),
        ('type="4g"', "lte"),
        ("type=slow-2g", "cellular"),
        ("type=ethernet", "ethernet"),
        ("type=vpn", "vpn"),
        ("type=bluetooth", "unknown"),
        ("downlink=3", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        (";;=;type", "unknown"),
    ],
)
def test_network_class_of_the_header(header: str | None, expected: str) -> None:
    assert network_class(header) == expected


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120 Mobile Safari/537.36",
            "mobile",
        ),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15", "mobile"),
        ("okhttp/4.12.0", "mobile"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "desktop"),
        ("curl/8.5.0", "server"),
        ("python-requests/2.31.0", "server"),
        ("hmacfs/0.1 (upload)", "server"),
        ("", "desktop"),
        (None, "desktop"),
    ],
)
def test_client_kind_of_the_user_agent(agent: str | None, kind: str) -> None:
    assert client_kind(agent) == kind
