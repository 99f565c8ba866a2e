"""Assembling a finished part's pieces into a blob object: one S3 multipart upload.

S3's rules: every part but the last is 5 MiB..5 GiB, at most 10,000 parts, and
some providers (Cloudflare R2) want every part but the last of the same size.
So part *n* is always bytes [n x part_size, (n + 1) x part_size) of the blob
(the last one shorter), whatever sizes the client's chunks had:

- a slot filled by a single piece (chunks of the part size, or of a multiple of
  it, which ``write_part`` cut at slot boundaries) is copied by the store itself
  (UploadPartCopy): no byte travels through hmacfs again;
- a slot covered by several smaller pieces is read from them and uploaded (at
  most one slot, ``part_size`` bytes, in memory at a time).

A failure aborts the multipart upload (nothing is left but the pieces, and the
caller may promote again); the cleanup step aborts any that a dying process
left behind (``hmacfs.storage.s3_cleanup``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from hmacfs.storage.s3_client import call, translated
from hmacfs.storage.s3_pieces import Piece, Segment, cover, covered_length

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)


class PieceSource(Protocol):
    """What assembling needs of the store (``hmacfs.storage.s3.S3BlobStore``)."""

    client: S3Client
    bucket: str
    slot_size: int

    def read_segment(self, segment: Segment) -> Iterator[bytes]:
        """The segment's bytes, from its piece, in bounded blocks."""


def assemble(store: PieceSource, pieces: list[Piece], key: str, size: int) -> None:
    """Make object ``key`` of bytes [0, size) of the pieces. ValueError when they do not
    hold them all."""
    slots = [
        cover(pieces, start, min(store.slot_size, size - start)) for start in range(0, size, store.slot_size)
    ]
    for number, segments in enumerate(slots):
        expected = min(store.slot_size, size - number * store.slot_size)
        if covered_length(segments) != expected:
            raise ValueError(
                f"the part has no bytes at {number * store.slot_size + covered_length(segments)}"
            )
    if len(slots) <= 1 and (not slots or len(slots[0]) == 1):
        _single(store, slots[0] if slots else [], key)
        return
    upload = call(f"starting {key}", store.client.create_multipart_upload, Bucket=store.bucket, Key=key)
    upload_id = upload["UploadId"]
    try:
        parts = [
            upload_slot(store, key, upload_id, number + 1, segments) for number, segments in enumerate(slots)
        ]
        call(
            f"completing {key}", store.client.complete_multipart_upload,
            Bucket=store.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts},
        )  # fmt: skip
    except BaseException:
        _abort(store, key, upload_id)
        raise


def _single(store: PieceSource, segments: list[Segment], key: str) -> None:
    """A blob of one piece or none (an empty file): one copy or one empty PUT."""
    if not segments:
        call(f"storing {key}", store.client.put_object, Bucket=store.bucket, Key=key, Body=b"")
        return
    segment = segments[0]
    if segment.start == segment.piece.offset and segment.length == segment.piece.length:
        source = {"Bucket": store.bucket, "Key": segment.piece.key}
        call(f"copying {key}", store.client.copy_object, Bucket=store.bucket, Key=key, CopySource=source)
        return
    data = b"".join(store.read_segment(segment))
    call(f"storing {key}", store.client.put_object, Bucket=store.bucket, Key=key, Body=data)


def upload_slot(
    store: PieceSource, key: str, upload_id: str, number: int, segments: list[Segment]
) -> dict[str, Any]:
    """Part ``number`` of the upload, of the segments' bytes: copied on the store from a single
    piece, else read and uploaded (one slot in memory at most)."""
    common = {"Bucket": store.bucket, "Key": key, "UploadId": upload_id, "PartNumber": number}
    what = f"part {number} of {key}"
    if len(segments) == 1:
        segment = segments[0]
        first = segment.start - segment.piece.offset
        source_range = f"bytes={first}-{first + segment.length - 1}"
        source = {"Bucket": store.bucket, "Key": segment.piece.key}
        copied = call(
            what, store.client.upload_part_copy, CopySource=source, CopySourceRange=source_range, **common
        )
        return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}
    data = bytearray()
    for segment in segments:
        for block in store.read_segment(segment):
            data += block
    uploaded = call(what, store.client.upload_part, Body=bytes(data), **common)
    return {"PartNumber": number, "ETag": uploaded["ETag"]}


def _abort(store: PieceSource, key: str, upload_id: str) -> None:
    """Abort the multipart upload, best effort (the store may be what failed)."""
    try:
        with translated(f"aborting {key}"):
            store.client.abort_multipart_upload(Bucket=store.bucket, Key=key, UploadId=upload_id)
    except Exception as exc:  # the cleanup step aborts it later
        log.warning("could not abort the multipart upload of %s: %s", key, type(exc).__name__)
