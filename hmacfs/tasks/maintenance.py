"""The task module's cleanup steps, registered when imported (``hmacfs.maintenance``
loads this module before every pass, so ``hmacfs cleanup`` runs them too)."""

from __future__ import annotations

from hmacfs.maintenance import register_step
from hmacfs.tasks.output import discard_stray_pool_parts
from hmacfs.tasks.queries import cleanup_step

register_step("tasks.finished", cleanup_step)
register_step("tasks.stray_parts", discard_stray_pool_parts)
