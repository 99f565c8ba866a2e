"""Proxied downloads from the S3 store (``download = "proxy"``) through the real server:
segments of 1 MiB or more are spliced from the store's connection to the client's
(``hmacfs.storage.splicing``), smaller ones read. Ranges, conditional requests, HEAD,
and a store pool smaller than the downloads in flight, all against a real SeaweedFS."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from tests.conftest import HMAC_SECRET
from tests.e2e.test_s3_uploads import running_s3_server
from tests.e2e.test_xep0363 import slot_url
from tests.live import LiveServer
from tests.pg import PgServer
from tests.seaweed import SeaweedS3

pytestmark = pytest.mark.e2e

MiB = 1024 * 1024
SIZE = 3 * MiB + 12345


@pytest.fixture(scope="module")
def served(
    seaweed: SeaweedS3, pg_server: PgServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LiveServer, str, bytes]]:
    """A server with 2 store connections per worker, and the URL and bytes of one file."""
    workdir = tmp_path_factory.mktemp("s3-downloads")
    with running_s3_server(seaweed, pg_server, workdir, s3={"max_connections": 2}) as live:
        body = os.urandom(SIZE)
        url = slot_url(live, "s3get/film.bin", len(body), secret=HMAC_SECRET)
        put = requests.put(url, data=body, headers={"Content-Type": "application/octet-stream"}, timeout=60)
        assert put.status_code == 201, put.text
        yield live, f"{live.url}/upload/s3get/film.bin", body


def byteranges(answer: requests.Response) -> list[tuple[str, bytes]]:
    """The parts of a multipart/byteranges answer: (Content-Range, bytes)."""
    boundary = answer.headers["Content-Type"].split("boundary=")[1]
    parts = answer.content.split(f"--{boundary}".encode())[1:-1]
    found = []
    for part in parts:
        head, _, data = part.partition(b"\r\n\r\n")
        content_range = re.search(rb"Content-Range: (.*)", head)
        assert content_range is not None
        found.append((content_range.group(1).decode().strip(), data.removesuffix(b"\r\n")))
    return found


def test_whole_and_single_ranges(served: tuple[LiveServer, str, bytes]) -> None:
    _, url, body = served
    assert requests.get(url, timeout=30).content == body
    for first, last in [(0, 2 * MiB), (MiB - 1, SIZE - 1), (SIZE - 10, SIZE - 1), (7, 7)]:
        answer = requests.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=30)
        assert answer.status_code == 206
        assert answer.headers["Content-Range"] == f"bytes {first}-{last}/{SIZE}"
        assert answer.content == body[first : last + 1]


def test_multiple_ranges_large_and_small(served: tuple[LiveServer, str, bytes]) -> None:
    _, url, body = served
    answer = requests.get(url, headers={"Range": f"bytes=0-9,100-{MiB + 99},-{MiB + 5}"}, timeout=30)
    assert answer.status_code == 206
    assert int(answer.headers["Content-Length"]) == len(answer.content)
    assert byteranges(answer) == [
        (f"bytes 0-9/{SIZE}", body[:10]),
        (f"bytes 100-{MiB + 99}/{SIZE}", body[100 : MiB + 100]),
        (f"bytes {SIZE - MiB - 5}-{SIZE - 1}/{SIZE}", body[-(MiB + 5) :]),
    ]


def test_conditional_requests_and_head(served: tuple[LiveServer, str, bytes]) -> None:
    _, url, body = served
    tag = requests.head(url, timeout=10).headers["ETag"]
    head = requests.head(url, timeout=10)
    assert head.status_code == 200 and head.content == b"" and head.headers["Content-Length"] == str(SIZE)
    assert requests.get(url, headers={"If-None-Match": tag}, timeout=10).status_code == 304
    kept = requests.get(url, headers={"If-Range": tag, "Range": f"bytes={MiB}-"}, timeout=30)
    assert kept.status_code == 206 and kept.content == body[MiB:]
    changed = requests.get(url, headers={"If-Range": '"other"', "Range": f"bytes={MiB}-"}, timeout=30)
    assert changed.status_code == 200 and changed.content == body


def test_more_downloads_than_store_connections(served: tuple[LiveServer, str, bytes]) -> None:
    _, url, body = served

    def whole(_: int) -> bytes:
        return requests.get(url, timeout=60).content

    with ThreadPoolExecutor(6) as pool:
        assert all(got == body for got in pool.map(whole, range(12)))


def test_a_client_leaving_mid_download_leaves_the_server_serving(
    served: tuple[LiveServer, str, bytes],
) -> None:
    _, url, body = served
    where = urlsplit(url)
    for _ in range(4):
        with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
            sock.sendall(f"GET {where.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(1000).startswith(b"HTTP/1.1 200")
    # Each abandoned body's store connection was closed and given back to the pool.
    assert requests.get(url, timeout=30).content == body
    assert requests.get(url, headers={"Range": "bytes=5-14"}, timeout=10).content == body[5:15]


def test_a_file_whose_object_is_gone_is_404_before_any_byte(
    served: tuple[LiveServer, str, bytes], seaweed: SeaweedS3
) -> None:
    """The download's first range is fetched as the blob is opened (no HEAD): a missing
    object is still a clean 404, answered before the status line goes out."""
    live, url, body = served
    small = os.urandom(300 * 1024)  # more than a worker keeps in memory (``s3_blob_cache``)
    slot = slot_url(live, "s3get/gone.bin", len(small), secret=HMAC_SECRET)
    assert requests.put(slot, data=small, timeout=30).status_code == 201
    gone_url = f"{live.url}/upload/s3get/gone.bin"
    assert requests.get(gone_url, timeout=10).content == small
    client, digest = seaweed.client(), hashlib.sha256(small).hexdigest()
    listed = client.list_objects_v2(Bucket=seaweed.bucket).get("Contents", [])
    keys = [item["Key"] for item in listed if digest in item["Key"] and "/touched/" not in item["Key"]]
    assert len(keys) == 1, keys
    client.delete_object(Bucket=seaweed.bucket, Key=keys[0])
    for headers in ({}, {"Range": "bytes=10-20"}):
        answer = requests.get(gone_url, headers=headers, timeout=10)
        assert answer.status_code == 404, answer.text
        assert answer.json()["code"] == "NOT_FOUND"
    assert requests.head(gone_url, timeout=10).status_code == 404  # a HEAD request: by HEAD
    assert requests.get(url, timeout=30).content == body  # the other file is served as before


def test_a_small_file_served_from_memory_is_gone_when_its_row_is(
    served: tuple[LiveServer, str, bytes], seaweed: SeaweedS3
) -> None:
    """Each worker keeps small blobs it stored or served (``s3_blob_cache``): downloads
    of them need no GET, and still end everywhere once the file's row is deleted."""
    live, _, _ = served
    small = os.urandom(2048)
    slot = slot_url(live, "s3get/kept.bin", len(small), secret=HMAC_SECRET)
    assert requests.put(slot, data=small, timeout=30).status_code == 201
    url = f"{live.url}/upload/s3get/kept.bin"
    for _ in range(8):  # new connections: both workers serve it, then keep it
        with requests.Session() as session:
            assert session.get(url, timeout=10).content == small
    client, digest = seaweed.client(), hashlib.sha256(small).hexdigest()
    listed = client.list_objects_v2(Bucket=seaweed.bucket).get("Contents", [])
    key = next(item["Key"] for item in listed if digest in item["Key"] and "/touched/" not in item["Key"])
    client.delete_object(Bucket=seaweed.bucket, Key=key)  # only memory has the bytes now
    for _ in range(8):
        with requests.Session() as session:
            assert session.get(url, timeout=10).content == small
            ranged = session.get(url, headers={"Range": "bytes=100-199"}, timeout=10)
            assert ranged.status_code == 206 and ranged.content == small[100:200]
    engine = sa.create_engine(live.database_url, poolclass=sa.pool.NullPool)
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM files WHERE path = 's3get/kept.bin'"))
    engine.dispose()
    time.sleep(0.3)  # the notice reaches every worker's slot cache after the commit
    for _ in range(8):
        with requests.Session() as session:
            assert session.get(url, timeout=10).status_code == 404
