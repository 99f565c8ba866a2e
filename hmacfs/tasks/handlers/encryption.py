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

from hmacfs.container import Services
from hmacfs.files.service import replace_content
from hmacfs.models import File
from hmacfs.tasks.context import TaskContext, TaskError
from hmacfs.tasks.crypto import (
    CryptoError,
    Header,
    SegmentCipher,
    WrongPassword,
    decrypt_segments,
    encrypt_segments,
    read_header,
)
from hmacfs.tasks.handlers.common import PartWriter, check_owned_files, file_path, owned_file, uuid_param
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


def _validate_encrypt(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Services) -> None:
    _validate(parameters, account, session, encrypted=False)


def _validate_decrypt(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Services) -> None:
    _validate(parameters, account, session, encrypted=True)


def _load(ctx: TaskContext, encrypted: bool) -> tuple[File, Any]:
    with ctx.services.db.sessions() as session:
        file = owned_file(session, ctx, ctx.parameters["fileId"])
        if file.encrypted != encrypted:
            raise TaskError("the file is " + ("not encrypted" if encrypted else "already encrypted"))
        return file, file_path(session, ctx.services, file)


@task_handler("FileEncrypt", validate=_validate_encrypt, display_name="Encrypt File")
def encrypt(ctx: TaskContext) -> None:
    file, path = _load(ctx, encrypted=False)
    header = Header.new(ctx.services.settings.tasks.encryption_segment_size)
    cipher = SegmentCipher(ctx.secret(), header)
    writer = PartWriter(ctx, "encrypted")
    try:
        writer.write(header.pack())
        with path.open("rb") as source:
            for counter, sealed in enumerate(encrypt_segments(source, cipher)):
                writer.write(sealed)
                ctx.checkpoint((counter + 1) * header.segment_size, max(file.size, 1))
    finally:
        sha256 = writer.close()
    with ctx.finishing() as session:
        target = _switch(session, ctx, file, writer, sha256)
        target.encrypted = True
        target.encryption = {**header.describe(), "plaintextSha256": file.sha256, "plaintextSize": file.size}
        ctx.results.update(fileId=str(file.id), encryptedSize=writer.size)


@task_handler("FileDecrypt", validate=_validate_decrypt, display_name="Decrypt File")
def decrypt(ctx: TaskContext) -> None:
    file, path = _load(ctx, encrypted=True)
    writer = PartWriter(ctx, "decrypted")
    try:
        with path.open("rb") as source:
            cipher = SegmentCipher(ctx.secret(), read_header(source))
            for block in decrypt_segments(source, cipher):
                writer.write(block)
                ctx.checkpoint(writer.size, max(file.size, 1))
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
        ctx.results.update(fileId=str(file.id), decryptedSize=writer.size)


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
    )
    return target
