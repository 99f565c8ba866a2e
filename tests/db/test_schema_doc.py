"""docs/schema.md names every table, column, index, constraint and admin view of the schema."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from hmacfs.models import Base

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
VIEWS = ("admin_upload_progress", "admin_stale_uploads", "admin_task_queue", "admin_storage_by_account_pool")


def _names() -> list[str]:
    names: list[str] = []
    for table in Base.metadata.sorted_tables:
        names.append(f"### `{table.name}`")
        names += [f"`{column.name}`" for column in table.columns]
        names += [f"`{index.name}`" for index in table.indexes]
        names += [f"`{constraint.name}`" for constraint in table.constraints]
    return names + [f"### `{view}`" for view in VIEWS]


def test_every_schema_object_is_documented() -> None:
    text = DOC.read_text()
    missing = [name for name in _names() if name not in text]
    assert missing == [], f"docs/schema.md lacks {missing}"


def test_the_views_documented_are_the_views_migrated(engine: sa.Engine) -> None:
    views = set(sa.inspect(engine).get_view_names())
    assert views == set(VIEWS)
    documented = set(re.findall(r"^### `(admin_\w+)`", DOC.read_text(), re.MULTILINE))
    assert documented == views
