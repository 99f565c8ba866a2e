"""Settings of the S3 blob store (``[storage.s3]``, used when ``[storage] backend = "s3"``).

Part of the frozen settings (``hmacfs.config`` includes this section); kept in
its own module so that ``config.py`` stays readable. No secret lives here:
credentials come from the standard ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY`` variables (read by the S3 client library, as every
S3 tool does) or from the shared-credentials file ``credentials_file`` names,
so printing the settings can never show one.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from hmacfs.units import parse_duration, parse_size

Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

MIN_PART_SIZE = 5 * 1024 * 1024  # S3: every part but the last is at least 5 MiB ...
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024  # ... and at most 5 GiB
MAX_PARTS = 10_000  # ... and an upload has at most 10,000 parts

# S3 bucket names (the strictest rules, so that virtual-host addressing works too).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_ENDPOINT = re.compile(r"https?://[^/\s?#]+/?", re.IGNORECASE)
_PREFIX = re.compile(r"(?:[A-Za-z0-9_.=-]+/)*")


class S3Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    endpoint: str = ""
    bucket: str = ""
    region: str = "us-east-1"
    prefix: str = ""
    path_style: bool = False
    part_size: Size = Field(parse_size("8MiB"), ge=MIN_PART_SIZE, le=MAX_PART_SIZE)
    download: Literal["proxy", "redirect"] = "proxy"
    presign_expiry: Duration = Field(timedelta(minutes=15), ge=timedelta(seconds=1), le=timedelta(days=7))
    credentials_file: Path | None = None
    max_connections: int = Field(100, ge=1, le=10_000)
    connect_timeout: Duration = Field(timedelta(seconds=5), gt=timedelta(0))
    read_timeout: Duration = Field(timedelta(seconds=60), gt=timedelta(0))
    slot_copies: Size = Field(parse_size("1GiB"), ge=0)
    small_blob_cache: Size = Field(parse_size("64MiB"), ge=0)

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, endpoint: str) -> str:
        if endpoint and not _ENDPOINT.fullmatch(endpoint):
            raise ValueError(f"{endpoint!r} is not http(s)://host[:port]")
        return endpoint.rstrip("/")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, bucket: str) -> str:
        if bucket and not _BUCKET.fullmatch(bucket):
            raise ValueError(f"{bucket!r} is not an S3 bucket name (3-63 of a-z 0-9 . -)")
        return bucket

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, prefix: str) -> str:
        normal = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if not _PREFIX.fullmatch(normal) or any(s in (".", "..") for s in normal.split("/")):
            raise ValueError(f"{prefix!r} is not a key prefix of [A-Za-z0-9_.=-] segments")
        return normal

    @field_validator("credentials_file", mode="before")
    @classmethod
    def _no_credentials_file(cls, path: object) -> object:
        return None if path == "" else path

    @field_validator("credentials_file")
    @classmethod
    def _credentials_file(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"{str(path)!r} is not a readable file")
        return path

    def max_object_size(self) -> int:
        """The largest object an upload of ``part_size`` parts can make (10,000 parts)."""
        return self.part_size * MAX_PARTS
