from __future__ import annotations

import pytest

from hmacfs.web.client_link import network_class


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
