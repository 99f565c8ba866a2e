"""A tus PATCH's bytes are made durable beside the statement that records them, and the
PATCH is acknowledged, and its offset committed, only once they are."""

from __future__ import annotations

import errno
import os

import pytest
from flask import Flask
from flask.testing import FlaskClient

from hmacfs.storage.local import LocalBlobStore
from tests.web.test_tus import TUS, create, patch, path_of


def test_a_patch_whose_bytes_cannot_be_synced_is_not_acknowledged_nor_recorded(
    app: Flask, client: FlaskClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(4000)
    url = path_of(create(client, auth, len(payload)))
    synced: list[str] = []
    original = LocalBlobStore.sync_part

    def failing(store: LocalBlobStore, part: str) -> None:
        synced.append(part)
        raise OSError(errno.EIO, "disk gone")

    monkeypatch.setattr(LocalBlobStore, "sync_part", failing)
    failed = patch(client, auth, url, 0, payload[:1000])
    assert failed.status_code >= 500 and synced == [url.rsplit("/", 1)[1]]
    assert client.head(url, headers={**TUS, **auth}).headers["Upload-Offset"] == "0"

    monkeypatch.setattr(LocalBlobStore, "sync_part", original)
    assert patch(client, auth, url, 0, payload[:1000]).headers["Upload-Offset"] == "1000"
    done = patch(client, auth, url, 1000, payload[1000:])
    assert done.status_code == 204 and done.headers["Upload-Offset"] == "4000"


def test_each_patch_with_bytes_syncs_its_part_once(
    client: FlaskClient, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = path_of(create(client, auth, 3000))
    synced: list[str] = []
    original = LocalBlobStore.sync_part

    def counted(store: LocalBlobStore, part: str) -> None:
        synced.append(part)
        original(store, part)

    monkeypatch.setattr(LocalBlobStore, "sync_part", counted)
    for offset in (0, 1000, 2000):
        assert patch(client, auth, url, offset, b"x" * 1000).status_code == 204
    assert len(synced) == 3
