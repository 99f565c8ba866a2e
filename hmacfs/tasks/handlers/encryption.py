"""FileEncrypt and FileDecrypt: rewrite a file's bytes through :mod:`hmacfs.tasks.crypto`.

The new bytes go to a part first; the file row switches to them only in the
final transaction, so a wrong password, a crash or a cancel leaves the original
untouched. The file keeps its plaintext ``size`` and ``sha256`` (what a
download hands out after decrypting); ``files.encryption`` records the
parameters and the plaintext hash that decryption verifies.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from hmacfs.config import Settings
from hmacfs.files.service import replace_content
from hmacfs.models import File
from hmacfs.tasks.context import TaskContext, TaskError
from hmacfs.tasks.crypto import (
    HEADER_SIZE,
    TAG_SIZE,
    CryptoError,
    Header,
    SegmentCipher,
    WrongPassword,
    decrypt_segments,
    encrypt_segments,
    read_header,
    segment_count,
)
from hmacfs.tasks.handlers.common import (
    Content,
    PartWriter,
    check_owned_files,
    file_content,
    owned_file,
    place_output,
    uuid_param,
)
from hmacfs.tasks.registry import task_handler


def _validate(parameters: dict[str, Any], account: uuid.UUID, session: Session, encrypted: bool) -> None:
    file_id = uuid_param(parameters, "fileId")
    assert file_id is not None
    check_owned_files(session, account, "fileId", [file_id])
    if not isinstance(parameters.get("password"), str) or not parameters["password"]:
        raise ValueError("password: required")
    file = session.get(File, file_id)
    if file is not None and file.encrypted != encrypted:
        raise ValueError("fileId: " + ("is not encrypted" if encrypted else "is already encrypted"))


def _validate_encrypt(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Settings) -> None:
    _validate(parameters, account, session, encrypted=False)


def _validate_decrypt(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Settings) -> None:
    _validate(parameters, account, session, encrypted=True)


def _load(ctx: TaskContext, encrypted: bool) -> tuple[File, Content]:
    with ctx.services.db.sessions() as session:
        file = owned_file(session, ctx, ctx.parameters["fileId"])
        if file.encrypted != encrypted:
            raise TaskError("the file is " + ("not encrypted" if encrypted else "already encrypted"))
        return file, file_content(session, ctx.services.store, file)


def _resumable(ctx: TaskContext, file: File, prefix: int) -> dict[str, Any]:
    """The checkpoint to resume from, if it belongs to these very bytes and its part is intact.

    Resuming re-seals segments with the same key and nonces; that is only safe
    because a blob's bytes never change (the plaintext is the same).
    """
    state = ctx.state
    if state.get("blob") != str(file.blob_id) or not state.get("segments"):
        return {}
    size = ctx.services.store.part_size(str(state["part"]))
    if size is None or size < prefix:
        return {}
    return state


def _copy_prefix(ctx: TaskContext, part: str, writer: PartWriter, length: int) -> None:
    for block in ctx.services.store.read_part(part, 0, length):
        writer.write(block)


def _encrypt_start(ctx: TaskContext, file: File) -> tuple[Header, int, dict[str, Any]]:
    """(header, segments already sealed, checkpoint) for a fresh or a resumed run."""
    state = ctx.state
    if state.get("header") and state.get("segments"):
        header, done = Header.unpack(bytes.fromhex(str(state["header"]))), int(state["segments"])
        if _resumable(ctx, file, HEADER_SIZE + done * (header.segment_size + TAG_SIZE)):
            return header, done, state
    return Header.new(ctx.services.settings.tasks.encryption_segment_size), 0, {}


@task_handler("FileEncrypt", validate=_validate_encrypt, display_name="Encrypt File")
def encrypt(ctx: TaskContext) -> None:
    file, content = _load(ctx, encrypted=False)
    header, done, state = _encrypt_start(ctx, file)
    seg = header.segment_size
    cipher = SegmentCipher(ctx.secret(), header)
    last = segment_count(file.size, seg) - 1
    writer = PartWriter(ctx, "encrypted")
    try:
        if done:
            _copy_prefix(ctx, str(state["part"]), writer, HEADER_SIZE + done * (seg + TAG_SIZE))
        else:
            writer.write(header.pack())
        with content.open() as source:
            source.seek(done * seg)
            for counter, sealed in enumerate(encrypt_segments(source, cipher, start=done), start=done):
                writer.write(sealed)
                saved = {"blob": str(file.blob_id), "header": header.pack().hex(), "part": writer.part}
                resume = {**saved, "segments": counter + 1} if counter < last else None
                ctx.checkpoint((counter + 1) * seg, max(file.size, 1), state=resume, sync=writer.sync)
    finally:
        sha256 = writer.close()
    with ctx.finishing() as session:
        target = _switch(session, ctx, file, writer, sha256)
        target.encrypted = True
        target.encryption = {**header.describe(), "plaintextSha256": file.sha256, "plaintextSize": file.size}
        ctx.results.update(fileId=str(file.id), encryptedSize=writer.size, resumedFromSegment=done)


@task_handler("FileDecrypt", validate=_validate_decrypt, display_name="Decrypt File")
def decrypt(ctx: TaskContext) -> None:
    file, content = _load(ctx, encrypted=True)
    writer = PartWriter(ctx, "decrypted")
    try:
        with content.open() as source:
            header = read_header(source)
            seg, last = header.segment_size, segment_count(file.size, header.segment_size) - 1
            done = int(ctx.state.get("segments", 0))
            state = _resumable(ctx, file, done * seg) if done else {}
            done = done if state else 0
            cipher = SegmentCipher(ctx.secret(), header)
            if done:
                _copy_prefix(ctx, str(state["part"]), writer, done * seg)
                source.seek(HEADER_SIZE + done * (seg + TAG_SIZE))
            for counter, block in enumerate(decrypt_segments(source, cipher, start=done), start=done):
                writer.write(block)
                resume = {"blob": str(file.blob_id), "part": writer.part, "segments": counter + 1}
                ctx.checkpoint(
                    writer.size, max(file.size, 1), state=resume if counter < last else None, sync=writer.sync
                )
    except WrongPassword:
        raise TaskError("wrong password: the file was left unchanged") from None
    except CryptoError as exc:
        raise TaskError(f"cannot decrypt: {exc}; the file was left unchanged") from None
    finally:
        sha256 = writer.close()
    if sha256 != file.sha256:
        raise TaskError("decrypted content does not match the recorded hash; the file was left unchanged")
    with ctx.finishing() as session:
        target = _switch(session, ctx, file, writer, sha256)
        target.encrypted, target.encryption = False, None
        ctx.results.update(fileId=str(file.id), decryptedSize=writer.size, resumedFromSegment=done)


def _switch(session: Session, ctx: TaskContext, seen: File, writer: PartWriter, sha256: str) -> File:
    target = owned_file(session, ctx, seen.id, lock=True)
    if target.blob_id != seen.blob_id:
        raise TaskError("the file changed while the task ran; nothing was changed")
    replace_content(
        session,
        ctx.services.store,
        ctx.services.settings.deduplication,
        target,
        part=writer.part,
        sha256=sha256,
        size=writer.size,
        root=place_output(session, ctx, writer, sha256, target.pool_id),
    )
    return target
