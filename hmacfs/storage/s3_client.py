"""The boto3 client of the S3 store, and what its errors mean to the port.

boto3 (through botocore and urllib3) does blocking socket I/O, which gunicorn's
gevent worker makes cooperative: the worker patches the standard library
before it loads the app, and boto3 is imported only here, when the store is
built in the worker (never at import time of the package), so its sockets and
its connection pool's queue are gevent's. The pool holds ``max_connections``
connections: every greenlet doing S3 I/O takes one, and more wait for one
instead of opening (and then dropping) extra connections.

Errors: a missing key is ``FileNotFoundError``; a store that refuses the
connection, times out, drops it mid-answer or answers 5xx is
``StoreUnavailable`` (503); anything else (a 403 for bad credentials, a
missing bucket) is a configuration fault and propagates as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from hmacfs.s3_settings import S3Settings
from hmacfs.storage.blob_store import StoreUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")

_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchUpload"})


def build_client(settings: S3Settings) -> S3Client:
    """A client for ``settings``' endpoint and region: credentials from the standard chain
    (the AWS_* variables) or ``credentials_file``; retries bounded so that a store that is
    down is answered 503 within seconds, not minutes. ValueError when no credentials can
    be found (the message names none)."""
    import boto3.session
    from botocore.config import Config

    session = boto3.session.Session()
    if settings.credentials_file is not None:
        session._session.set_config_variable("credentials_file", str(settings.credentials_file))
    if session.get_credentials() is None:
        raise ValueError(
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or credentials_file"
        )
    config = Config(
        region_name=settings.region,
        signature_version="s3v4",
        # Unsigned payloads (the headers are still signed): a piece is streamed from the
        # client to the store as it arrives, which a signature over the payload's SHA-256
        # would forbid (it must be known before the first byte is sent), and signing cost
        # one more SHA-256 pass over every byte. hmacfs verifies its own SHA-256.
        s3={
            "addressing_style": "path" if settings.path_style else "auto",
            "payload_signing_enabled": False,
        },
        max_pool_connections=settings.max_connections,
        connect_timeout=settings.connect_timeout.total_seconds(),
        read_timeout=settings.read_timeout.total_seconds(),
        retries={"mode": "standard", "max_attempts": 3},
        # Checksums only where S3 requires them: hmacfs verifies SHA-256 itself, and the
        # S3-compatible stores do not all accept the newer trailing checksums.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    # Listings' times parsed by the standard library where it can: botocore's own parser
    # (dateutil) was 5.6 % of a worker's Python time in a Drive upload on S3, most of its
    # listings' cost.
    session._session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    return session.client("s3", endpoint_url=settings.endpoint or None, config=config)


def _timestamp(value: str) -> datetime:
    """A time in an S3 answer: ISO 8601 in XML bodies (``datetime.fromisoformat``), anything
    else (an HTTP date in a header, an epoch) as botocore parses it; always aware."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        from botocore.utils import parse_timestamp

        return parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` is S3's answer for a key (or multipart upload) that is not there."""
    from botocore.exceptions import ClientError

    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error.get("Code") in _MISSING or status == 404


def _answer(exc: BaseException | None) -> tuple[str | None, int | None]:
    """The error code and HTTP status of S3's answer ``exc`` (or what it was raised from)."""
    from botocore.exceptions import ClientError

    while exc is not None and not isinstance(exc, ClientError):
        exc = exc.__cause__
    if exc is None:
        return None, None
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return exc.response.get("Error", {}).get("Code"), None if status is None else int(status)


def is_precondition_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is S3's 412: a conditional write found the object there."""
    code, status = _answer(exc)
    return code == "PreconditionFailed" or status == 412


def is_refused_request(exc: BaseException) -> bool:
    """Whether ``exc`` (or the outage it was translated into) is a store refusing what was
    asked rather than failing: a feature it does not have (501, ``NotImplemented``) or
    any other 4xx but a missing key or a failed precondition."""
    code, status = _answer(exc)
    if code == "NotImplemented" or status == 501:
        return True
    return status is not None and 400 <= status < 500 and status not in (404, 412)


def is_invalid_range(exc: BaseException) -> bool:
    """Whether ``exc`` is S3's answer (416) for a range that starts past the object's end."""
    code, status = _answer(exc)
    return code == "InvalidRange" or status == 416


def _is_outage(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError, UnseekableStreamError
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return int(status) >= 500
    # UnseekableStreamError: a retry of a PUT whose streamed body was partly sent (the
    # store failed mid-piece; the client re-sends the chunk).
    outages = ConnectionError | HTTPClientError | Urllib3Error | ConnectionResetError | UnseekableStreamError
    return isinstance(exc, outages)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run S3 calls, raising FileNotFoundError for a missing key and StoreUnavailable for an
    outage; ``what`` says what was being done (it never names a credential)."""
    try:
        yield
    except (FileNotFoundError, StoreUnavailable):
        raise
    except Exception as exc:
        if is_missing(exc):
            raise FileNotFoundError(f"{what}: no such object") from exc
        if _is_outage(exc):
            raise StoreUnavailable(f"{what}: the S3 store is unavailable ({type(exc).__name__})") from exc
        raise


def call(what: str, function: Callable[..., T], **kwargs: Any) -> T:
    """``function(**kwargs)`` with its errors translated (``translated``)."""
    with translated(what):
        return function(**kwargs)
