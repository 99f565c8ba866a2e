"""FileCompress and FileDecompress: zip and tar.gz, streamed in bounded blocks.

Decompression treats every archive as hostile: it refuses entries whose
path is absolute or climbs out (zip-slip), links, device and FIFO entries,
and bombs (too many entries, too many bytes in total, or expanding more than
``tasks.decompress_max_ratio`` times the archive's size), each with a clear error.
"""

from __future__ import annotations

import mimetypes
import stat
import tarfile
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy.orm import Session

from hmacfs.config import Settings, TasksSettings
from hmacfs.models import File
from hmacfs.tasks.context import TaskContext, TaskError
from hmacfs.tasks.handlers.common import (
    Content,
    PartWriter,
    check_bundle,
    check_owned_files,
    choice_param,
    file_content,
    id_list_param,
    int_param,
    name_param,
    owned_file,
    store_output,
    uuid_param,
)
from hmacfs.tasks.registry import task_handler

FORMATS = ("zip", "tar.gz")
BLOCK = 1024 * 1024
# Ratios are only judged past this much output: a small, very repetitive file is no bomb.
RATIO_FLOOR = 1024 * 1024


def _validate_compress(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Settings) -> None:
    check_owned_files(session, account, "fileIds", id_list_param(parameters, "fileIds"))
    fmt = choice_param(parameters, "compressionFormat", FORMATS, "zip")
    int_param(parameters, "compressionLevel", 0, 9, 6)
    name_param(parameters, "outputFileName", f"archive.{fmt}")


@dataclass(frozen=True)
class _Source:
    name: str
    content: Content
    size: int


def _sources(ctx: TaskContext, ids: list[Any]) -> list[_Source]:
    with ctx.services.db.sessions() as session:
        files = [owned_file(session, ctx, ident) for ident in ids]
        contents = [file_content(session, ctx.services.store, file) for file in files]
    seen: set[str] = set()
    sources = []
    for file, content in zip(files, contents, strict=True):
        name = _unique(file.name.replace("/", "_").replace("\\", "_") or "file", seen)
        sources.append(_Source(name, content, file.size))
    return sources


def _unique(name: str, seen: set[str]) -> str:
    candidate, counter = name, 1
    while candidate in seen:
        stem, dot, ext = name.rpartition(".")
        candidate = f"{stem} ({counter}).{ext}" if dot and stem else f"{name} ({counter})"
        counter += 1
    seen.add(candidate)
    return candidate


class _Progress:
    def __init__(self, ctx: TaskContext, total: int) -> None:
        self.ctx, self.total, self.done = ctx, total, 0

    def advance(self, size: int) -> None:
        self.done += size
        self.ctx.checkpoint(self.done, self.total)

    def blocks(self, content: Content, size: int) -> Iterator[bytes]:
        with content.open() as handle:
            remaining = size
            while remaining > 0 and (data := handle.read(min(BLOCK, remaining))):
                remaining -= len(data)
                self.advance(len(data))
                yield data


class _CountingReader:
    """A source file for tarfile.addfile that reports progress as tarfile reads it."""

    def __init__(self, handle: IO[bytes], progress: _Progress) -> None:
        self._handle, self._progress = handle, progress

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(min(size, BLOCK) if size >= 0 else BLOCK)
        self._progress.advance(len(data))
        return data


@task_handler("FileCompress", validate=_validate_compress, display_name="Compress Files")
def compress(ctx: TaskContext) -> None:
    params = ctx.parameters
    fmt = str(params.get("compressionFormat", "zip"))
    level = int(params.get("compressionLevel", 6))
    sources = _sources(ctx, params["fileIds"])
    progress = _Progress(ctx, sum(source.size for source in sources))
    writer = PartWriter(ctx, "archive")
    try:
        if fmt == "zip":
            _write_zip(writer, sources, level, progress)
        else:
            _write_tar(writer, sources, level, progress)
    finally:
        sha256 = writer.close()
    name = str(params.get("outputFileName") or f"archive.{fmt}")
    content_type = "application/zip" if fmt == "zip" else "application/gzip"
    with ctx.finishing() as session:
        like = owned_file(session, ctx, params["fileIds"][0])
        result = store_output(
            session, ctx, writer, sha256=sha256, name=name, content_type=content_type, like=like
        )
        ctx.results.update(
            resultFileId=str(result.id),
            compressedSize=writer.size,
            compressionRatio=round(writer.size / progress.total, 4) if progress.total else 0.0,
            filesProcessed=len(sources),
        )


def _write_zip(writer: PartWriter, sources: list[_Source], level: int, progress: _Progress) -> None:
    # The writer has no tell()/seek(): zipfile then streams entries with data descriptors.
    method = zipfile.ZIP_DEFLATED if level else zipfile.ZIP_STORED
    with zipfile.ZipFile(writer, "w", compression=method, compresslevel=level or None) as archive:  # type: ignore[call-overload]
        for source in sources:
            with archive.open(source.name, "w", force_zip64=True) as entry:
                for block in progress.blocks(source.content, source.size):
                    entry.write(block)


def _write_tar(writer: PartWriter, sources: list[_Source], level: int, progress: _Progress) -> None:
    with tarfile.open(fileobj=writer, mode="w:gz", compresslevel=level) as archive:  # type: ignore[call-overload]
        for source in sources:
            info = tarfile.TarInfo(source.name)
            info.size, info.mode = source.size, 0o644
            with source.content.open() as handle:
                archive.addfile(info, _CountingReader(handle, progress))


# -- decompression ------------------------------------------------------------------------
def _validate_decompress(
    parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Settings
) -> None:
    file_id = uuid_param(parameters, "fileId")
    assert file_id is not None
    check_owned_files(session, account, "fileId", [file_id])
    check_bundle(session, account, "targetBundleId", uuid_param(parameters, "targetBundleId", required=False))


def safe_entry_name(name: str) -> str:
    """The entry's relative path, or TaskError for absolute and climbing paths (zip-slip)."""
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or (len(normalized) > 1 and normalized[1] == ":"):
        raise TaskError(f"archive entry {name!r} has an absolute path")
    parts = [part for part in normalized.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise TaskError(f"archive entry {name!r} points outside the archive (path traversal)")
    if not parts or "\x00" in normalized:
        raise TaskError(f"archive entry {name!r} has an invalid name")
    return "/".join(parts)


class Budget:
    """Counts what an archive expands to and stops a bomb as soon as it shows."""

    def __init__(self, limits: TasksSettings, archive_size: int) -> None:
        self.max_total, self.max_ratio = limits.decompress_max_total_size, limits.decompress_max_ratio
        self.max_entries, self.archive_size = limits.decompress_max_entries, max(archive_size, 1)
        self.total = self.entries = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise TaskError(
                f"archive refused: more than {self.max_entries} entries (tasks.decompress_max_entries)"
            )

    def add(self, size: int) -> None:
        self.total += size
        if self.total > self.max_total:
            raise TaskError(
                f"archive refused: expands past {self.max_total} bytes (tasks.decompress_max_total_size)"
            )
        if self.total > RATIO_FLOOR and self.total > self.max_ratio * self.archive_size:
            raise TaskError(
                f"archive refused: expands more than {self.max_ratio:g} times its size "
                "(tasks.decompress_max_ratio; a decompression bomb?)"
            )


@dataclass
class _Extracted:
    name: str
    writer: PartWriter
    sha256: str


Where = Callable[[], tuple[float, float]]


def _extract(
    ctx: TaskContext, source: IO[bytes], index: int, name: str, *, budget: Budget, where: Where
) -> _Extracted:
    writer = PartWriter(ctx, f"x{index}")
    try:
        while block := source.read(BLOCK):
            budget.add(len(block))
            writer.write(block)
            ctx.checkpoint(*where())
    finally:
        sha256 = writer.close()
    return _Extracted(name, writer, sha256)


def _zip_entries(ctx: TaskContext, content: Content, budget: Budget) -> list[_Extracted]:
    out: list[_Extracted] = []
    with content.open() as raw, zipfile.ZipFile(raw) as archive:
        infos = archive.infolist()
        cursor = [0]

        def where() -> tuple[float, float]:
            return cursor[0], len(infos)

        for index, info in enumerate(infos):
            budget.entry()
            name = safe_entry_name(info.filename)
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind == stat.S_IFLNK:
                raise TaskError(f"archive entry {info.filename!r} is a link (links are refused)")
            if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
                raise TaskError(f"archive entry {info.filename!r} is a device or special file (refused)")
            if info.is_dir():
                continue
            with archive.open(info) as source:
                cursor[0] = index
                out.append(_extract(ctx, source, index, name, budget=budget, where=where))
    return out


def _tar_entries(ctx: TaskContext, content: Content, budget: Budget) -> list[_Extracted]:
    out: list[_Extracted] = []
    size = max(budget.archive_size, 1)
    with content.open() as raw, tarfile.open(fileobj=raw, mode="r|gz") as archive:
        for index, member in enumerate(archive):
            budget.entry()
            name = safe_entry_name(member.name)
            if member.issym() or member.islnk():
                raise TaskError(f"archive entry {member.name!r} is a link (links are refused)")
            if not (member.isfile() or member.isdir()):
                raise TaskError(f"archive entry {member.name!r} is a device or special file (refused)")
            if member.isdir():
                continue
            source = archive.extractfile(member)
            assert source is not None
            out.append(_extract(ctx, source, index, name, budget=budget, where=lambda: (raw.tell(), size)))
    return out


def _archive_kind(content: Content) -> str:
    with content.open() as handle:
        magic = handle.read(4)
    if magic in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if magic[:2] == b"\x1f\x8b":
        return "tar.gz"
    raise TaskError("not a zip or tar.gz archive")


@task_handler("FileDecompress", validate=_validate_decompress, display_name="Extract Archive")
def decompress(ctx: TaskContext) -> None:
    with ctx.services.db.sessions() as session:
        archive = owned_file(session, ctx, ctx.parameters["fileId"])
        content, size = file_content(session, ctx.services.store, archive), archive.size
    budget = Budget(ctx.services.settings.tasks, size)
    try:
        kind = _archive_kind(content)
        extracted = (
            _zip_entries(ctx, content, budget) if kind == "zip" else _tar_entries(ctx, content, budget)
        )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise TaskError(f"the archive is damaged ({type(exc).__name__})") from None
    bundle = ctx.parameters.get("targetBundleId")
    with ctx.finishing() as session:
        like = owned_file(session, ctx, ctx.parameters["fileId"])
        created = [_store_entry(session, ctx, entry, like, bundle) for entry in extracted]
        ctx.results.update(
            filesExtracted=len(created),
            totalSize=budget.total,
            fileIds=[str(file.id) for file in created[:1000]],
        )


def _store_entry(session: Session, ctx: TaskContext, entry: _Extracted, like: File, bundle: Any) -> File:
    content_type = mimetypes.guess_type(entry.name)[0] or "application/octet-stream"
    bundle_id = uuid.UUID(str(bundle)) if bundle else None
    return store_output(
        session,
        ctx,
        entry.writer,
        sha256=entry.sha256,
        name=entry.name,
        content_type=content_type,
        like=like,
        bundle_id=bundle_id,
    )
