"""Downloads that resume: the bytes go to ``<file>.part``; a rerun (or a retry after a cut)
asks for the rest with ``Range``, guarded by ``If-Range`` on the ETag (the file's
SHA-256), and the finished file is checked against that SHA-256 before it takes its name."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from hmacfs.client.errors import IntegrityError, LocalFileError
from hmacfs.client.link import Link, Transient, expect
from hmacfs.client.reading import file_sha256

_FILENAME = re.compile(r"filename\*=UTF-8''([^;]+)|filename=\"?([^\";]+)\"?", re.IGNORECASE)
_SHA256_TAG = re.compile(r'^"([0-9a-f]{64})"$')


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str | None
    resumed_from: int


def split_target(target: str) -> tuple[str | None, str]:
    """(server base URL or None, request path) for a URL or a bare file id."""
    if "://" in target:
        parts = urlsplit(target)
        query = f"?{parts.query}" if parts.query else ""
        return f"{parts.scheme}://{parts.netloc}", (parts.path or "/") + query
    return None, f"/download/{target}"


def name_from(disposition: str | None, path: str) -> str:
    """The file name the server suggests, else the last path segment (never a path)."""
    match = _FILENAME.search(disposition or "")
    name = ""
    if match:
        name = unquote(match.group(1)) if match.group(1) else match.group(2)
    return Path(name).name or Path(urlsplit(path).path).name or "download"


class Downloader:
    def __init__(self, link: Link) -> None:
        self.link = link

    def download(self, path: str, output: Path | None) -> DownloadResult:
        """Fetch ``path`` to ``output`` (default: the server's file name), resuming a part
        left by an earlier run. Raises ClientError subclasses."""
        head = self.link.retrying(
            lambda: expect(self.link.call("HEAD", path), f"HEAD {path}", 200), "download HEAD", path
        )
        size = int(head.header("Content-Length") or 0)
        tag = head.header("ETag") or ""
        target = output or Path(name_from(head.header("Content-Disposition"), path))
        label = str(target)
        part = target.with_name(target.name + ".part")
        meta = target.with_name(target.name + ".part.json")
        start = self._usable_part(part, meta, tag, size)
        _write(meta, json.dumps({"etag": tag}))
        if start:
            self.link.reporter.event("resumed", label, offset=start)
        self.link.reporter.start(label, size, start)
        try:
            self.link.retrying(lambda: self._fetch(path, part, tag, size, label), "download", label)
            sha256 = _verify(part, tag)
        except Exception as exc:
            self.link.reporter.finish(label, error=str(exc))
            raise
        os.replace(part, target)
        meta.unlink(missing_ok=True)
        self.link.reporter.finish(label, size=size, sha256=sha256, path=label)
        return DownloadResult(target, size, sha256, start)

    @staticmethod
    def _usable_part(part: Path, meta: Path, tag: str, size: int) -> int:
        """Bytes of an earlier attempt worth keeping (same ETag, not too long), else 0."""
        try:
            saved = json.loads(meta.read_text()).get("etag")
            have = part.stat().st_size
        except (OSError, ValueError, AttributeError):
            return 0
        return have if tag and saved == tag and have <= size else 0

    def _fetch(self, path: str, part: Path, tag: str, size: int, label: str) -> None:
        """One GET of what is still missing, appended to ``part``; Transient when it ends short."""
        have = part.stat().st_size if part.exists() else 0
        if have == size:
            return
        ranged = bool(have and tag)
        headers = {"Range": f"bytes={have}-", "If-Range": tag} if ranged else {}
        try:
            handle = part.open("r+b" if ranged else "wb")
        except OSError as exc:
            raise LocalFileError(f"{part}: {exc.strerror}") from exc
        with handle:
            handle.seek(have if ranged else 0)
            moved = -have if not ranged else 0  # starting over: the bar goes back
            self.link.reporter.advance(label, moved)

            def write(block: bytes) -> None:
                handle.write(block)
                self.link.reporter.advance(label, len(block))

            answer = expect(self.link.fetch(path, headers, write), f"GET {path}", 200, 206)
            if answer.status == 200 and ranged:  # the validator no longer matched: a full body came
                handle.truncate(0)
                raise Transient("the server sent the whole file; starting over")
        if part.stat().st_size != size:
            raise Transient(f"the body ended at {part.stat().st_size} of {size} bytes")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text)
    except OSError as exc:
        raise LocalFileError(f"{path}: {exc.strerror}") from exc


def _verify(part: Path, tag: str) -> str | None:
    """The part's SHA-256 when the ETag is one (hmacfs's are); raises IntegrityError on a mismatch."""
    match = _SHA256_TAG.match(tag)
    if match is None:
        return None
    found = file_sha256(part)
    if found != match.group(1):
        part.unlink(missing_ok=True)
        raise IntegrityError(f"{part}: SHA-256 {found} differs from the server's {match.group(1)}")
    return found
