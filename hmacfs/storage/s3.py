"""The S3 blob store: parts as pieces in a bucket, blobs as objects made by multipart upload.

Layout under the root (``[storage.s3] prefix``, or a pool's root): parts as
``hmacfs.storage.s3_pieces`` describes, blobs at ``blobs/<aa>/<bb>/<sha256>``
as on the local store, or at a direct part's own key ``blobs/u/<part>-<token>``.
A direct part (an upload's, ``create_part(direct=True)``) writes whole slots
as the parts of a multipart upload started with it, and its completed upload
is the blob (``hmacfs.storage.s3_direct``): each byte stored once. Any other
part is promoted by assembly (``hmacfs.storage.s3_assembly``): a multipart
upload of equal ``part_size`` parts, copied on the store from the pieces.
Every call may raise ``StoreUnavailable`` (503) when the store cannot be
reached; a missing object is ``FileNotFoundError``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, BinaryIO, NamedTuple

from hmacfs.s3_settings import S3Settings
from hmacfs.storage.blob_store import (
    S3_SCHEME,
    BlobEntry,
    BlobStore,
    PartEntry,
    RangeLock,
    Space,
    StoredBlob,
    StoreUnavailable,
    WrittenRange,
)
from hmacfs.storage.blocking import offload
from hmacfs.storage.copying import Hasher, Reader
from hmacfs.storage.memory import MemoryOpenBlob
from hmacfs.storage.s3_assembly import assemble
from hmacfs.storage.s3_blob_cache import BlobCache
from hmacfs.storage.s3_client import (
    call,
    is_invalid_range,
    is_precondition_failed,
    is_refused_request,
    translated,
)
from hmacfs.storage.s3_direct import read_slot_marker, seal, slot_marker_key
from hmacfs.storage.s3_pieces import (
    ORDERED,
    PROMOTED,
    SEALED,
    Direct,
    Listed,
    PartListing,
    Piece,
    Segment,
    cover,
    covered_length,
    direct_key,
    direct_marker_key,
    marker_key,
    marker_tag,
    parse_listing,
    part_of_direct_key,
    part_prefix,
    piece_key,
    split_at_slots,
)
from hmacfs.storage.s3_reading import Blocks, BodyStream, S3OpenBlob, new_spool, spool_into, spooled
from hmacfs.storage.s3_slot_copies import SlotCopies, SlotCopyWriter

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_PART_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ROOT = re.compile(r"^(?:[A-Za-z0-9_.=-]+/)*$")
_BASE_TIME = datetime.min.replace(tzinfo=UTC)  # older than every piece: they overlay it

LockFactory = Callable[[str], RangeLock]


@dataclass
class _Features:
    """What this process found the store to take (shared by the copies ``at`` makes)."""

    conditional_puts: bool = True  # ``If-None-Match: *`` on PutObject, until refused


class Held(NamedTuple):
    """A body of at most one slot that ``receive`` holds in this process until it is promoted
    or deleted: spooled, in memory up to ``SPOOL_IN_MEMORY`` and on local disk beyond."""

    body: IO[bytes]
    size: int
    since: float  # POSIX seconds


class OpenDirect(NamedTuple):
    """A direct part's open multipart upload, as a process knows it."""

    direct: Direct
    size: int  # the part's declared size
    copies: bool  # whether nodes keep copies of its slots (``s3_slot_copies``)


class S3BlobStore:
    """A BlobStore on one bucket under key prefix ``root`` ("" or ending in "/")."""

    def __init__(
        self,
        client: S3Client,
        settings: S3Settings,
        *,
        locks: LockFactory,
        buffer_size: int = 1024 * 1024,
        slots: SlotCopies | None = None,
        cache: BlobCache | None = None,
    ) -> None:
        self.client = client
        self.bucket = settings.bucket
        self.prefix = settings.prefix  # the root: "" or ending in "/"
        self.slot_size = settings.part_size
        self.buffer_size = buffer_size
        self._locks = locks
        # What this process knows of parts' multipart uploads (``create_part`` with
        # ``direct``), shared by the copies ``at`` makes: (bucket, root, part) -> the open
        # upload and the part's declared size, or None (none, or no longer open).
        self._directs: dict[tuple[str, str, str], OpenDirect | None] = {}
        # This node's copies of the slots it stored, for the running hash (``s3_slot_copies``).
        self.slots = slots
        # Small blobs' bytes, served again without a GET (``s3_blob_cache``).
        self.cache = cache
        # Small bodies received whole, held until promoted (``receive``), shared like _directs.
        self._held: dict[tuple[str, str, str], Held] = {}
        self._features = _Features()  # what the store takes, as this process found out
        # The store of a root of another backend (a local path), when one is configured.
        self.foreign: Callable[[str], BlobStore] | None = None

    def __repr__(self) -> str:
        return f"S3BlobStore({self.location!r})"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    # -- roots and health -------------------------------------------------------------
    @staticmethod
    def usable_prefix(root: str) -> str:
        """``root`` as a key prefix ("" or ending in "/"); ValueError when it is not one."""
        normal = root.strip("/") + "/" if root.strip("/") else ""
        if not _ROOT.match(normal) or any(s in (".", "..") for s in normal.split("/")):
            raise ValueError(f"{root!r} is not a key prefix of [A-Za-z0-9_.=-] segments")
        return normal

    def usable_root(self, root: str) -> str:
        normal = self.usable_prefix(root)
        try:
            self.at(normal).check_writable()
        except OSError as exc:
            raise ValueError(f"{root!r} is not writable: {exc}") from None
        return normal

    def at(self, root: str | None) -> BlobStore:
        """The store over ``root``: a key prefix of this bucket, ``s3://bucket/prefix`` (any
        bucket these credentials reach), or an absolute path: the local store there
        (``foreign``; StorageMigration between backends)."""
        if root is None or root == self.prefix:
            return self
        if root.startswith("/"):
            if self.foreign is None:
                raise ValueError(f"{root!r}: no local store is configured")
            return self.foreign(root)
        other = copy.copy(self)
        if root.startswith(S3_SCHEME):
            other.bucket, _, root = root[len(S3_SCHEME) :].partition("/")
        other.prefix = self.usable_prefix(root)
        return other

    def ensure_layout(self) -> None:
        """Nothing to make: keys need no directories (the bucket must exist)."""

    def check_writable(self) -> None:
        key = f"{self.prefix}parts/.probe-{secrets.token_hex(8)}"
        call("probing the store", self.client.put_object, Bucket=self.bucket, Key=key, Body=b"ok")
        call("probing the store", self.client.delete_object, Bucket=self.bucket, Key=key)

    def space(self) -> Space | None:
        return None  # an object store has no limit hmacfs can see

    # -- parts ------------------------------------------------------------------------
    def _check_part(self, part: str) -> None:
        if not _PART_NAME.match(part):
            raise ValueError(f"bad part name {part!r}")

    def create_part(
        self, part: str, size: int | None, *, direct: bool = False, hashed_on_arrival: bool = False
    ) -> None:
        """The part's marker; with ``direct`` and a size of more than one slot, also an S3
        multipart upload at a key of the part's own (``direct_key``), recorded in a marker
        any node finds: every write that fills a slot becomes its part (``UploadPart``
        number slot + 1) and the completed upload the blob (``promoted_key``), so each
        byte is stored once (``hmacfs.storage.s3_direct``). Unless ``hashed_on_arrival``
        (an ``ordered`` marker says so to every node), the nodes keep copies of the slots
        they store for the running hash (``s3_slot_copies``)."""
        self._check_part(part)
        key = marker_key(self.prefix, part, size)
        call(f"creating part {part}", self.client.put_object, Bucket=self.bucket, Key=key, Body=b"")
        if direct and size is not None and size > self.slot_size and self.listing(part).direct is None:
            self._start_direct(part, size, copies=not hashed_on_arrival)

    def _start_direct(self, part: str, size: int, *, copies: bool) -> None:
        if not copies:  # before the upload's marker: a node that finds the upload finds this
            ordered = part_prefix(self.prefix, part) + ORDERED
            call(f"creating part {part}", self.client.put_object, Bucket=self.bucket, Key=ordered, Body=b"")
        token = secrets.token_hex(8)
        key = self.prefix + direct_key(part, token)
        started = call(f"starting {key}", self.client.create_multipart_upload, Bucket=self.bucket, Key=key)
        upload_id = started["UploadId"]
        marker = direct_marker_key(self.prefix, part, token, upload_id)
        try:
            call(f"creating part {part}", self.client.put_object, Bucket=self.bucket, Key=marker, Body=b"")
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        self._remember(part, OpenDirect(Direct(direct_key(part, token), upload_id), size, copies))

    def _cache_key(self, part: str) -> tuple[str, str, str]:
        return (self.bucket, self.prefix, part)

    def _remember(self, part: str, known: OpenDirect | None) -> None:
        if len(self._directs) >= 4096:  # parts finish; forget them all now and then
            self._directs.clear()
        self._directs[self._cache_key(part)] = known

    def _forget(self, part: str) -> None:
        self._directs.pop(self._cache_key(part), None)

    def _open_direct(self, part: str) -> OpenDirect | None:
        """The part's multipart upload and declared size while the upload is open (as far as
        this process knows: another node may have completed it since, ``_put_slot``)."""
        cache_key = self._cache_key(part)
        if cache_key in self._directs:
            return self._directs[cache_key]
        listing = self.listing(part)
        declared = [size for size in listing.declared if size is not None]
        known = None
        if listing.direct is not None and not listing.sealed and declared:
            known = OpenDirect(listing.direct, max(declared), copies=not listing.ordered)
        self._remember(part, known)
        return known

    def write_part(
        self,
        part: str,
        offset: int,
        read: Reader,
        length: int,
        *,
        hashers: tuple[Hasher, ...] = (),
        durable: bool = True,
    ) -> None:
        """Store the range as pieces cut at slot boundaries, each streamed from ``read`` into
        one PUT as its bytes arrive (``BodyStream``): always durable when it returns
        (``durable`` changes nothing). IncompleteBody when ``read`` ends early."""
        self._check_part(part)
        self._unheld(part)
        for start, size in split_at_slots(offset, length, self.slot_size):
            direct = self._open_direct(part) if start % self.slot_size == 0 else None
            if direct is not None and not self._whole_slot(start, size, direct.size):
                direct = None
            slot_copy = self._slot_writer(part, start, size) if direct is not None and direct.copies else None
            feeds = hashers if slot_copy is None else (*hashers, slot_copy)
            stream = BodyStream(read, size, feeds, block=self.buffer_size)
            try:
                if direct is not None:
                    self._put_slot(part, direct.direct, start, stream, size, slot_copy=slot_copy)
                else:
                    self._put_piece(part, start, stream, size)
            except BaseException:
                if slot_copy is not None:
                    slot_copy.discard()
                if stream.failure is not None:  # the client's body failed, not the store
                    raise stream.failure from None
                raise

    def _scope(self) -> str:
        return f"{self.bucket}/{self.prefix}"

    def _slot_writer(self, part: str, start: int, size: int) -> SlotCopyWriter | None:
        if self.slots is None:
            return None
        return self.slots.writer(self._scope(), part, start // self.slot_size + 1, size)

    def sync_part(self, part: str) -> None:
        """Nothing to do: every piece was stored by its PUT."""

    def seal_part(self, part: str) -> None:
        """Complete a direct part's multipart upload, making all its bytes readable
        (``hmacfs.storage.s3_direct``); nothing for any other part or a sealed one. The
        caller makes sure no write to the part runs meanwhile (the whole part locked)."""
        listing = self.listing(part)
        direct = listing.direct
        if direct is None or listing.sealed:
            return
        declared = [size for size in listing.declared if size is not None]
        try:
            used = seal(
                self, direct, listing.pieces, max(declared, default=0),
                part_prefix=part_prefix(self.prefix, part), markers=listing.slots, delete=self._delete_keys,
            )  # fmt: skip
        except FileNotFoundError:  # completed already (its marker not written), or aborted
            with self.open_blob(direct.storage_key):  # FileNotFoundError: the bytes are gone
                used = []
        self._forget(part)
        call(
            f"sealing part {part}", self.client.put_object,
            Bucket=self.bucket, Key=part_prefix(self.prefix, part) + SEALED, Body=b"",
        )  # fmt: skip
        self._remember(part, None)
        self._delete_keys(used)

    def receive(self, part: str, read: Reader, length: int | None) -> WrittenRange:
        """A whole body as pieces of ``part_size`` (for an unknown length: until ``read``
        returns b""); nothing remains when it raises.

        A body of at most one slot is held in this process instead (``Held``), and
        ``promote_part`` stores it by one PutObject at the blob's key: a 4 KiB XEP-0363
        PUT made 8 requests (list, piece, HEAD, list, copy, list, delete), now 2 (HEAD,
        PUT). Any other use of the part first stores it as its piece (``_unheld``)."""
        if length is not None and length <= self.slot_size:
            hasher, spool = hashlib.sha256(), new_spool()
            try:
                spool_into(spool, read, length, (hasher,), block=self.buffer_size)
            except BaseException:
                spool.close()
                raise
            self._held[self._cache_key(part)] = Held(spool, length, time.time())
            return WrittenRange(0, length, hasher.hexdigest())
        self._remember(part, None)  # a received part is never direct: no listing to tell
        hasher = hashlib.sha256()
        try:
            if length is not None:
                self.write_part(part, 0, read, length, hashers=(hasher,))
            else:
                length = self._receive_unknown(part, read, hasher)
        except BaseException:
            self.delete_part(part)
            raise
        return WrittenRange(0, length, hasher.hexdigest())

    def _receive_unknown(self, part: str, read: Reader, hasher: Hasher) -> int:
        offset, step = 0, self.slot_size
        while True:
            with spooled(read, step, (hasher,), block=self.buffer_size, exact=False) as (piece, got):
                if got or not offset:  # an empty body is one empty piece
                    self._put_piece(part, offset, piece, got)
            offset += got
            if got < step:
                return offset

    def _whole_slot(self, start: int, size: int, declared: int) -> bool:
        """Whether [start, start + size) is a whole slot of a part of ``declared`` bytes (the
        last may be shorter)."""
        return size in (self.slot_size, declared - start) and start + size <= declared

    def _put_slot(
        self,
        part: str,
        direct: Direct,
        start: int,
        body: BodyStream,
        size: int,
        *,
        slot_copy: SlotCopyWriter | None,
    ) -> None:
        """Store the slot at ``start`` as its part of the part's multipart upload (and keep
        ``slot_copy`` of its bytes, named by the ETag, before the slot's marker names it)."""
        number = start // self.slot_size + 1
        try:
            uploaded = call(
                f"writing part {part}", self.client.upload_part,
                Bucket=self.bucket, Key=self.prefix + direct.storage_key, UploadId=direct.upload_id,
                PartNumber=number, Body=body, ContentLength=size,
            )  # fmt: skip
        except FileNotFoundError:
            # The upload was completed (sealed) or the part deleted, by this node or another,
            # and the body was spent: the client sends it again, which then becomes a piece.
            self._forget(part)
            raise StoreUnavailable(f"part {part} changed while it was written; retry") from None
        # Which upload of this number is the slot's (the last acknowledged: writes of one
        # range are serialised by its lock): a store may keep every upload of a number.
        marker = slot_marker_key(part_prefix(self.prefix, part), number)
        if slot_copy is not None:
            slot_copy.keep(marker_tag(uploaded["ETag"]), size)
        etag = uploaded["ETag"].encode()
        call(f"writing part {part}", self.client.put_object, Bucket=self.bucket, Key=marker, Body=etag)

    def _put_piece(self, part: str, offset: int, body: IO[bytes] | BodyStream, size: int) -> None:
        """Store ``size`` bytes of ``body`` as the piece at ``offset``."""
        key = piece_key(self.prefix, part, offset, size)
        call(
            f"writing part {part}", self.client.put_object,
            Bucket=self.bucket, Key=key, Body=body, ContentLength=size,
        )  # fmt: skip

    def _unheld(self, part: str) -> None:
        """Store a held body (``receive``) as the part's piece, before the part is used as any
        other part is."""
        held = self._held.pop(self._cache_key(part), None)
        if held is not None:
            with held.body:
                self._put_piece(part, 0, held.body, held.size)

    def listing(self, part: str) -> PartListing:
        """The part's pieces and markers, from one listing of its prefix."""
        self._check_part(part)
        self._unheld(part)
        prefix = part_prefix(self.prefix, part)
        return parse_listing(prefix, self._list(prefix))

    def _declared(self, part: str) -> bool:
        """Whether the part's size marker is there (then it exists: ``PartListing.exists``),
        from a listing of that marker alone: a chunk's lock needs no more, and a whole
        listing (every slot's marker and piece) cost the store 2.4 CPU-ms, hmacfs more in
        parsing it, once per chunk."""
        self._check_part(part)
        self._unheld(part)
        prefix = part_prefix(self.prefix, part) + "size-"
        with translated(f"listing {prefix}"):
            found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        return bool(found.get("Contents"))

    def _list(self, prefix: str) -> list[Listed]:
        found: list[Listed] = []
        with translated(f"listing {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                found.extend(
                    Listed(item["Key"], item["LastModified"], item.get("ETag", "").strip('"'))
                    for item in page.get("Contents", [])
                )
        return found

    def readable(self, listing: PartListing) -> list[Piece]:
        """The part's pieces, and for a sealed direct part its object as the base they overlay
        (``hmacfs.storage.s3_direct``). An open direct part's slots are not readable."""
        if listing.direct is None or not listing.sealed:
            return listing.pieces
        declared = [size for size in listing.declared if size is not None]
        base = Piece(self.prefix + listing.direct.storage_key, 0, max(declared, default=0), _BASE_TIME)
        return [*listing.pieces, base]

    def read_part(self, part: str, start: int, length: int) -> Iterator[bytes]:
        listing = self.listing(part)
        if not listing.exists:
            raise FileNotFoundError(f"no part {part}")
        for segment in cover(self.readable(listing), start, length):
            yield from self.read_segment(segment)

    def read_segment(self, segment: Segment) -> Iterator[bytes]:
        """The segment's bytes, from its piece, in bounded blocks."""
        first = segment.start - segment.piece.offset
        yield from self._get_range(segment.piece.key, first, segment.length)

    def _get_range(self, key: str, start: int, length: int, opened: Any = None) -> Iterator[bytes]:
        """The range's bytes in blocks; from ``opened`` when its GET was made already."""
        if length <= 0:
            return
        what = f"reading {key}"
        body = opened if opened is not None else self._open_range(key, start, length)
        try:
            with translated(what):
                yield from body.iter_chunks(self.buffer_size)
        finally:
            body.close()

    def _open_range(self, key: str, start: int, length: int) -> Any:
        """The body (botocore's StreamingBody) of a GET of ``length`` bytes from ``start``."""
        return self._ranged_get(f"reading {key}", key, start, length)["Body"]

    def _ranged_get(self, what: str, key: str, start: int, length: int) -> Any:
        """GetObject's answer for ``length`` bytes of ``key`` from ``start``."""
        ranged = f"bytes={start}-{start + length - 1}"
        return call(what, self.client.get_object, Bucket=self.bucket, Key=key, Range=ranged)

    def feed_range(self, part: str, hasher: Hasher, start: int, length: int) -> None:
        """Feed the range to ``hasher``, slot by slot: from this node's copy of a direct part's
        slot where it holds the one acknowledged (``s3_slot_copies``; the copy is then
        dropped when the range reaches the slot's end), else from the store. ValueError,
        before anything is read (or a copy dropped), when a slot cannot be read (an open
        direct part's, not copied here)."""
        listing = self.listing(part)
        if not listing.exists:
            raise FileNotFoundError(f"no part {part}")
        readable = self.readable(listing)
        sources: list[tuple[int, int, tuple[BinaryIO, int, int] | list[Segment]]] = []
        with contextlib.ExitStack() as opened:
            for position, size in split_at_slots(start, length, self.slot_size):
                slot = self._slot_copy(part, listing, position // self.slot_size)
                if slot is not None:
                    opened.enter_context(slot[0])
                    sources.append((position, size, slot))
                    continue
                segments = cover(readable, position, size)
                if covered_length(segments) < size:
                    raise ValueError(f"part {part} has no bytes at {position + covered_length(segments)}")
                sources.append((position, size, segments))
            for position, size, source in sources:
                if isinstance(source, list):
                    for segment in source:
                        for block in self.read_segment(segment):
                            hasher.update(block)
                    continue
                file, slot_start, slot_end = source
                offload(SlotCopies.feed, file, hasher, position - slot_start, size)
                if position + size == slot_end and self.slots is not None:
                    self.slots.drop(file)

    def _slot_copy(self, part: str, listing: PartListing, index: int) -> tuple[BinaryIO, int, int] | None:
        """This node's copy of slot ``index`` of a direct part, open, with the slot's bounds,
        when the copy holds the bytes the slot's marker names and no piece overlays the slot
        (a slot with pieces is read from the store, as sealing decides between the two)."""
        if self.slots is None or listing.direct is None or index + 1 not in listing.slots:
            return None
        declared = max((size for size in listing.declared if size is not None), default=0)
        slot_start, slot_end = index * self.slot_size, min((index + 1) * self.slot_size, declared)
        if any(p.offset < slot_end and p.end > slot_start for p in listing.pieces):
            return None
        size, number = slot_end - slot_start, index + 1
        tag = listing.slots[number]  # the marker's MD5, on stores that list MD5s: no GET
        file = self.slots.open(self._scope(), part, number, tag, size)
        if file is None and self.slots.holds(self._scope(), part, number):
            etag = read_slot_marker(self, part_prefix(self.prefix, part), number)
            if etag is None:
                return None
            file = self.slots.open(self._scope(), part, number, marker_tag(etag), size)
        return None if file is None else (file, slot_start, slot_end)

    def same_bytes(self, part: str, offset: int, other: str, length: int) -> bool:
        mine = Blocks(self.read_part(part, offset, length))
        theirs = Blocks(self.read_part(other, 0, length))
        return mine.equals(theirs, length)

    def part_size(self, part: str) -> int | None:
        listing = self.listing(part)
        return listing.size if listing.exists else None

    def lock_part(self, part: str) -> RangeLock:
        """The part's range lock; FileNotFoundError when it does not exist. A direct part this
        process knows is open is taken to exist (no listing): were it deleted meanwhile, its
        ``UploadPart`` finds no upload (``_put_slot``)."""
        known = self._directs.get(self._cache_key(part))
        if known is None and not self._declared(part) and not self.listing(part).exists:
            raise FileNotFoundError(f"no part {part}")
        return self._locks(f"{self.bucket}/{part_prefix(self.prefix, part)}")

    def delete_part(self, part: str) -> None:
        """Delete the part's objects, after aborting its multipart upload while open, or
        deleting the object of a completed one unless it was promoted (a blob)."""
        self._check_part(part)
        held = self._held.pop(self._cache_key(part), None)
        if held is not None:  # never stored (``receive``)
            held.body.close()
            return
        prefix = part_prefix(self.prefix, part)
        objects = self._list(prefix)
        listing = parse_listing(prefix, objects)
        self._forget(part)
        if listing.direct is not None and not listing.sealed:
            key = self.prefix + listing.direct.storage_key
            with contextlib.suppress(FileNotFoundError):  # completed or aborted already
                call(
                    f"aborting {key}", self.client.abort_multipart_upload,
                    Bucket=self.bucket, Key=key, UploadId=listing.direct.upload_id,
                )  # fmt: skip
        if self.slots is not None:
            self.slots.drop_part(self._scope(), part)
        keys = [listed.key for listed in objects]
        if listing.direct is not None and listing.sealed and not listing.promoted:
            keys.append(self.prefix + listing.direct.storage_key)  # a dedup hit, or cancelled
        self._delete_keys(keys)

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes up to 1,000 keys
            batch = {"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True}
            call("deleting objects", self.client.delete_objects, Bucket=self.bucket, Delete=batch)

    def list_parts(self, prefix: str = "") -> list[PartEntry]:
        grouped: dict[str, list[Listed]] = {}
        base = f"{self.prefix}parts/"
        for listed in self._list(base + prefix):
            name = listed.key[len(base) :].partition("/")[0]
            if _PART_NAME.match(name):
                grouped.setdefault(name, []).append(listed)
        entries = []
        for name, objects in grouped.items():
            listing = parse_listing(part_prefix(self.prefix, name), objects)
            modified = listing.modified.timestamp() if listing.modified else 0.0
            entries.append(PartEntry(name, listing.size, modified))
        held = [
            PartEntry(name, kept.size, kept.since)
            for (bucket, root, name), kept in list(self._held.items())
            if (bucket, root) == (self.bucket, self.prefix) and name.startswith(prefix)
        ]
        return entries + held

    # -- blobs ------------------------------------------------------------------------
    def blob_key(self, sha256: str, unique: str | None = None) -> str:
        if not _SHA256.match(sha256):
            raise ValueError("not a sha256 hex digest")
        name = sha256 if unique is None else f"{sha256}-{unique}"
        return f"blobs/{sha256[:2]}/{sha256[2:4]}/{name}"

    def promoted_key(self, part: str, sha256: str, *, shared: bool = True) -> str:
        """A direct part's own key (its multipart upload's object: no byte is copied) unless it
        was sealed and written since (pieces overlay the object: it is not the blob); else
        ``blob_key``."""
        listing = self.listing(part)
        if listing.direct is not None and not (listing.sealed and listing.pieces):
            return listing.direct.storage_key
        return self.blob_key(sha256, None if shared else part)

    def promote_part(
        self,
        part: str,
        sha256: str,
        size: int,
        *,
        shared: bool = True,
        drop_part: bool = False,
        key: str | None = None,
    ) -> StoredBlob:
        """Make the part's first ``size`` bytes the object at ``key``: for a direct part's own
        key, by sealing it (``hmacfs.storage.s3_direct``), else by assembling them (an S3
        multipart upload of ``part_size`` parts, copied on the store). Nothing to do when
        the object is there with that size already (dedup)."""
        key = key or self.blob_key(sha256, None if shared else part)
        held = self._held.get(self._cache_key(part))
        if held is not None and held.size == size:
            return self._promote_held(part, held, sha256, key, drop_part=drop_part)
        if part_of_direct_key(key) == part:  # before the object can be a blob: delete_part keeps it
            call(
                f"promoting part {part}", self.client.put_object,
                Bucket=self.bucket, Key=part_prefix(self.prefix, part) + PROMOTED, Body=b"",
            )  # fmt: skip
        if self.has_blob(key, size):
            self._touch(key)
            created = False
        else:
            listing = self.listing(part)
            if not listing.exists:
                raise FileNotFoundError(f"no part {part}")
            if listing.direct is not None and not listing.sealed:
                self.seal_part(part)
                listing = self.listing(part)
            if listing.direct is not None and key == listing.direct.storage_key:
                if listing.pieces:  # promoted_key names this key only when nothing overlays it
                    raise ValueError(f"part {part} was written after it was sealed")
                if not self.has_blob(key, size):
                    raise ValueError(f"part {part} does not hold {size} bytes")
            else:
                assemble(self, self.readable(listing), self.prefix + key, size)
            created = True
        if drop_part:
            self.delete_part(part)
        return StoredBlob(sha256, size, key, created=created)

    def _promote_held(self, part: str, held: Held, sha256: str, key: str, *, drop_part: bool) -> StoredBlob:
        """``promote_part`` of a body ``receive`` held: PUT at ``key`` unless an object is there
        (``If-None-Match: *``, one request for new content; a store that refuses the
        condition gets a HEAD first). A new object's time is what the orphan collector sees,
        as a touch's is."""
        created = self._put_if_absent(part, held, key)
        if created is None:  # the key is taken: by these bytes, or by a store's broken copy
            created = not self.has_blob(key, held.size)
            if created:
                self._put_held(part, held, key)
        if not created:
            self._touch(key)
        if self.cache is not None and self.cache.keeps(held.size):  # its first download is here
            held.body.seek(0)
            self.cache.put(self._blob_cache_key(key), held.body.read())
        if drop_part:
            self.delete_part(part)
        return StoredBlob(sha256, held.size, key, created=created)

    def _put_if_absent(self, part: str, held: Held, key: str) -> bool | None:
        """True once stored, None when the key holds an object already (or the store does
        not take conditional writes: then from now on this process never asks)."""
        if not self._features.conditional_puts:
            return None
        try:
            self._put_held(part, held, key, if_absent=True)
        except Exception as exc:
            if is_precondition_failed(exc):
                return None
            if is_refused_request(exc):  # the HEAD and PUT that follow raise a real refusal
                self._features.conditional_puts = False
                return None
            raise
        return True

    def _put_held(self, part: str, held: Held, key: str, *, if_absent: bool = False) -> None:
        held.body.seek(0)
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        call(
            f"promoting part {part}", self.client.put_object,
            Bucket=self.bucket, Key=self.prefix + key, Body=held.body, ContentLength=held.size, **condition,
        )  # fmt: skip

    def _blob_cache_key(self, storage_key: str) -> str:
        return f"{self.bucket}/{self.prefix}{storage_key}"

    def _touch(self, storage_key: str) -> None:
        """Note that the blob was promoted again (an object cannot be touched): the orphan
        collector counts the marker's time as the blob's (``list_blobs``, ``delete_blob``),
        so it never removes content a completion has just reused."""
        key = f"{self.prefix}touched/{storage_key}"
        call(f"touching {storage_key}", self.client.put_object, Bucket=self.bucket, Key=key, Body=b"")

    def _touched(self) -> dict[str, float]:
        base = f"{self.prefix}touched/"
        return {listed.key[len(base) :]: listed.stored.timestamp() for listed in self._list(base)}

    def open_blob(
        self, storage_key: str, *, first: tuple[int, int] | None = None
    ) -> S3OpenBlob | MemoryOpenBlob:
        """With ``first``, one ranged GET of it instead of a HEAD: its answer says that the
        object exists and its size (``Content-Range``), and its body is the first read's
        (a 4 KiB download took a HEAD and a GET: 1.2 and 1.4 ms). A download of a small
        blob is served from, or kept in, this process's memory (``s3_blob_cache``)."""
        key = self.prefix + storage_key
        # A download (``first``) may be served from memory; an existence check never is.
        cache = self.cache if first is not None else None
        cached = cache.get(self._blob_cache_key(storage_key)) if cache is not None else None
        if cached is not None:
            return MemoryOpenBlob(cached)
        # Only a plain-HTTP connection's socket can be handed over (spliced); over TLS the
        # GET made for it would be wasted.
        plain = self.client.meta.endpoint_url.startswith("http://")
        opener = self._open_range if plain else None
        if first is not None and first[1] > 0:
            start, length = first
            try:
                answer = self._ranged_get(f"opening {storage_key}", key, start, length)
            except Exception as exc:
                if not is_invalid_range(exc):  # a range past the object: its size by HEAD
                    raise
            else:
                size = _total_size(answer.get("ContentRange"), answer["ContentLength"])
                whole = start == 0 and answer["ContentLength"] == size
                if cache is not None and whole and cache.keeps(size):
                    with translated(f"reading {storage_key}"):
                        data = answer["Body"].read()
                    cache.put(self._blob_cache_key(storage_key), data)
                    return MemoryOpenBlob(data)
                opened = (start, int(answer["ContentLength"]), answer["Body"])
                return S3OpenBlob(self._get_range, key, size, opener, opened=opened)
        head = call(f"opening {storage_key}", self.client.head_object, Bucket=self.bucket, Key=key)
        return S3OpenBlob(self._get_range, key, int(head["ContentLength"]), opener)

    def has_blob(self, storage_key: str, size: int) -> bool:
        try:
            with self.open_blob(storage_key) as blob:
                return blob.size == size
        except FileNotFoundError:
            return False

    def delete_blob(self, storage_key: str, *, changed_before: float | None = None) -> bool:
        """Delete the blob's object (after checking, with ``changed_before``, that it was not
        stored again since: a window remains between that check and the delete, which
        callers close by holding the blob's row)."""
        key, marker = self.prefix + storage_key, f"{self.prefix}touched/{storage_key}"
        what = f"deleting {storage_key}"
        try:
            changed = call(what, self.client.head_object, Bucket=self.bucket, Key=key)[
                "LastModified"
            ].timestamp()
        except FileNotFoundError:
            return False
        if changed_before is not None:
            with contextlib.suppress(FileNotFoundError):
                touched = call(what, self.client.head_object, Bucket=self.bucket, Key=marker)
                changed = max(changed, touched["LastModified"].timestamp())
            if changed >= changed_before:
                return False
        if self.cache is not None:
            self.cache.drop(self._blob_cache_key(storage_key))
        self._delete_keys([key, marker])
        return True

    def list_blobs(self) -> Iterator[BlobEntry]:
        """Every blob, but not the object of a direct part that still exists (sealed, its
        upload not completed yet: it is that part's bytes, whatever its age)."""
        base, touched = f"{self.prefix}blobs/", self._touched()
        live = {entry.name for entry in self.list_parts()}
        with translated("listing blobs"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            ):
                for item in page.get("Contents", []):
                    storage_key = item["Key"][len(self.prefix) :]
                    if part_of_direct_key(storage_key) in live:
                        continue
                    changed = max(item["LastModified"].timestamp(), touched.get(storage_key, 0.0))
                    yield BlobEntry(storage_key, item["Size"], changed)

    # -- sweeping ---------------------------------------------------------------------
    def abort_uploads(self, *, started_before: float) -> int:
        """Abort the multipart uploads under this root started before ``started_before``:
        a promotion that died left them (``hmacfs.storage.s3_assembly``), or a direct part
        deleted while its upload could not be aborted; never that of a part that exists (an
        upload stays resumable for longer than the grace)."""
        aborted = 0
        with translated("listing multipart uploads"):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}blobs/"
            )
            stale = [
                (upload["Key"], upload["UploadId"])
                for page in pages
                for upload in page.get("Uploads", [])
                if upload["Initiated"].timestamp() < started_before
            ]
        live: dict[str, bool] = {}
        for key, upload_id in stale:
            owner = part_of_direct_key(key[len(self.prefix) :])
            if owner is not None:
                if owner not in live:
                    live[owner] = self.listing(owner).exists
                if live[owner]:
                    continue
            with contextlib.suppress(FileNotFoundError):  # finished or aborted meanwhile
                call(
                    f"aborting {key}",
                    self.client.abort_multipart_upload,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                )
                aborted += 1
        return aborted

    # -- presignable ------------------------------------------------------------------
    def presigned_url(
        self,
        storage_key: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self.prefix + storage_key}
        if filename is not None:
            params["ResponseContentDisposition"] = filename
        if content_type is not None:
            params["ResponseContentType"] = content_type
        url: str = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)
        return url


def _total_size(content_range: str | None, length: int) -> int:
    """The object's size from a ranged GET's ``Content-Range`` (``bytes 0-4095/4096``); a
    store that answered the whole object without one sent ``length`` bytes."""
    if content_range is None:
        return int(length)
    return int(content_range.rpartition("/")[2])
