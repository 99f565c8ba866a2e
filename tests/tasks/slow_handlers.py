"""A deliberately slow, resumable Custom handler for worker-process tests (listed in handler_modules)."""

from __future__ import annotations

import hashlib
import os
import time

from hmacfs.db import DEFAULT_POOL_ID
from hmacfs.files import NewFile, create_file_from_part
from hmacfs.tasks.context import TaskContext
from hmacfs.tasks.registry import task_handler


def expected_output(steps: int) -> bytes:
    return b"".join(f"line {i}\n".encode() for i in range(steps))


@task_handler("test-slow")
def slow(ctx: TaskContext) -> None:
    """Writes ``line i`` per step into a part, resuming after the last checkpointed step.

    Each attempt has its own part: a resumed run copies the checkpointed prefix of
    the previous attempt's part (never writes into it: its worker may still be alive).
    """
    steps, delay = int(ctx.parameters["steps"]), float(ctx.parameters["delay"])
    start, offset = int(ctx.state.get("done", 0)), int(ctx.state.get("offset", 0))
    part = ctx.part("slow")
    path = ctx.services.store.part_path(part)
    with path.open("wb") as handle:
        if start:
            previous = ctx.services.store.part_path(ctx.state["part"])
            with previous.open("rb") as old:
                handle.write(old.read(offset))
        for step in range(start, steps):
            handle.write(f"line {step}\n".encode())
            time.sleep(delay)
            handle.flush()
            ctx.checkpoint(
                step + 1,
                steps,
                state={"done": step + 1, "offset": handle.tell(), "part": part},
                sync=lambda: os.fsync(handle.fileno()),
            )
    data = path.read_bytes()
    with ctx.finishing() as session:
        file = create_file_from_part(
            session,
            ctx.services.store,
            ctx.services.settings.deduplication,
            part=part,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            new=NewFile(
                name="slow.txt", content_type="text/plain", pool_id=DEFAULT_POOL_ID, account_id=ctx.account_id
            ),
        )
        ctx.results.update(resultFileId=str(file.id), resumedFrom=start)
