"""FileConversion: image format conversion and thumbnails with Pillow (jpeg, png, webp)."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from hmacfs.config import Settings
from hmacfs.tasks.context import TaskContext, TaskError
from hmacfs.tasks.handlers.common import (
    PartWriter,
    check_owned_files,
    choice_param,
    file_content,
    int_param,
    name_param,
    owned_file,
    store_output,
    uuid_param,
)
from hmacfs.tasks.registry import task_handler

if TYPE_CHECKING:
    from PIL import Image

FORMATS = {
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "png": ("PNG", "image/png", "png"),
    "webp": ("WEBP", "image/webp", "webp"),
}
MAX_DIMENSION = 20_000


def _validate(parameters: dict[str, Any], account: uuid.UUID, session: Session, _: Settings) -> None:
    file_id = uuid_param(parameters, "fileId")
    assert file_id is not None
    check_owned_files(session, account, "fileId", [file_id])
    choice_param(parameters, "targetFormat", tuple(FORMATS), "")
    int_param(parameters, "maxWidth", 1, MAX_DIMENSION, None)
    int_param(parameters, "maxHeight", 1, MAX_DIMENSION, None)
    int_param(parameters, "quality", 1, 100, 85)
    if "outputFileName" in parameters:
        name_param(parameters, "outputFileName", "")


def _output_name(source: str, extension: str) -> str:
    stem = source.rsplit(".", 1)[0] if "." in source else source
    return f"{stem}.{extension}"


@task_handler("FileConversion", validate=_validate, display_name="Convert Image")
def convert(ctx: TaskContext) -> None:
    params = ctx.parameters
    pillow_format, content_type, extension = FORMATS[str(params["targetFormat"])]
    with ctx.services.db.sessions() as session:
        source = owned_file(session, ctx, params["fileId"])
        content, source_name = file_content(session, ctx.services.store, source), source.name
    # Imported here: Pillow costs every worker slot ~2 MiB, and most never convert an image.
    from PIL import Image, UnidentifiedImageError

    ctx.checkpoint(0, 3)
    writer = PartWriter(ctx, "converted")
    try:
        with content.open() as handle, Image.open(handle) as image:
            size = _convert(image, writer, pillow_format, params)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError) as exc:
        raise TaskError(f"cannot convert: not an image Pillow can read ({type(exc).__name__})") from None
    finally:
        sha256 = writer.close()
    ctx.checkpoint(2, 3)
    name = str(params.get("outputFileName") or _output_name(source_name, extension))
    with ctx.finishing() as session:
        like = owned_file(session, ctx, params["fileId"])
        result = store_output(
            session, ctx, writer, sha256=sha256, name=name, content_type=content_type, like=like
        )
        ctx.results.update(resultFileId=str(result.id), width=size[0], height=size[1], size=writer.size)


def _convert(
    image: Image.Image, writer: PartWriter, pillow_format: str, params: dict[str, Any]
) -> tuple[int, int]:
    limit = (int(params.get("maxWidth") or MAX_DIMENSION), int(params.get("maxHeight") or MAX_DIMENSION))
    if image.format == "JPEG":
        image.draft("RGB", limit)  # decode at a reduced scale: far less memory for big photos
    image.thumbnail(limit)  # keeps the aspect ratio; never enlarges
    if pillow_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    options: dict[str, Any] = {"quality": int(params.get("quality", 85))} if pillow_format != "PNG" else {}
    image.save(writer, format=pillow_format, **options)  # type: ignore[arg-type]
    return image.size
