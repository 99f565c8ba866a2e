"""Events as delivered: an immutable record and its JSON envelope (pure, no I/O)."""

from __future__ import annotations

import fnmatch
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hmacfs.models import Event
from hmacfs.models.base import iso_utc


@dataclass(frozen=True)
class EventRecord:
    """One committed event; ``message`` is its envelope, serialised once for every subscriber."""

    id: int
    account_id: uuid.UUID
    type: str
    ts: datetime
    data: dict[str, Any]
    message: str = field(default="", compare=False)

    @classmethod
    def of(cls, row: Event) -> EventRecord:
        envelope = {"id": row.id, "type": row.type, "ts": iso_utc(row.created_at), "data": row.data}
        return cls(row.id, row.account_id, row.type, row.created_at, row.data, json.dumps(envelope))


def type_matches(patterns: tuple[str, ...], type: str) -> bool:
    """Glob match of an event type against patterns such as ``upload.*``; empty means all."""
    return not patterns or any(fnmatch.fnmatchcase(type, pattern) for pattern in patterns)


@dataclass(frozen=True)
class EventFilter:
    """What a subscriber asked for: event type globs and task ids (empty: everything)."""

    types: tuple[str, ...] = ()
    task_ids: frozenset[str] = frozenset()

    def accepts(self, record: EventRecord) -> bool:
        if not type_matches(self.types, record.type):
            return False
        if not self.task_ids:
            return True
        return str(record.data.get("taskId", "")) in self.task_ids


def parse_filter(message: dict[str, Any]) -> EventFilter:
    """The filter of a ``subscribe`` message; raises ValueError on a malformed one."""
    types = message.get("types") or []
    task_ids = message.get("taskIds") or []
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ValueError("types must be a list of strings")
    if not isinstance(task_ids, list) or not all(isinstance(t, (str, int)) for t in task_ids):
        raise ValueError("taskIds must be a list of ids")
    return EventFilter(tuple(types), frozenset(str(t) for t in task_ids))
