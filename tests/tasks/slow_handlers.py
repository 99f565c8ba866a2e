"""A deliberately slow, resumable Custom handler for worker-process tests (listed in handler_modules)."""

from __future__ import annotations

import hashlib
import io
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
    store, part = ctx.services.store, ctx.part("slow")
    written = b""
    if start:
        written = b"".join(store.read_part(ctx.state["part"], 0, offset))
    store.write_part(part, 0, io.BytesIO(written).read, len(written), durable=False)
    for step in range(start, steps):
        line = f"line {step}\n".encode()
        store.write_part(part, len(written), io.BytesIO(line).read, len(line), durable=False)
        written += line
        time.sleep(delay)
        ctx.checkpoint(
            step + 1,
            steps,
            state={"done": step + 1, "offset": len(written), "part": part},
            sync=lambda: store.sync_part(part),
        )
    data = written
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
