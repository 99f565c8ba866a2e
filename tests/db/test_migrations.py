"""The migrated schema is exactly the models' schema, on every backend."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hmacfs.db import DEFAULT_POOL_ID, make_engine
from hmacfs.migrate import current_revision, downgrade, head_revision, include_object_for, upgrade
from hmacfs.models import Base
from tests.conftest import new_database_url
from tests.pg import PgServer


def test_upgrade_matches_models_and_downgrade_empties(
    backend: str, pg_server: PgServer | None, tmp_path: Path
) -> None:
    engine = make_engine(new_database_url(backend, pg_server, tmp_path))
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"compare_type": True, "include_object": include_object_for(connection.dialect.name)},
        )
        assert compare_metadata(context, Base.metadata) == []
        pool = connection.execute(
            sa.text("SELECT name FROM pools WHERE id = :id"),
            {"id": DEFAULT_POOL_ID.hex if backend == "sqlite" else DEFAULT_POOL_ID},
        ).scalar()
        assert pool == "default"

    downgrade(engine, "base")
    remaining = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert remaining == set()
    assert current_revision(engine) is None

    upgrade(engine)  # and back up again: the chain is repeatable
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_the_migrations_have_exactly_one_head() -> None:
    """Two helpers landing a revision on the same parent make two heads: ``upgrade("head")``
    then fails. The later one must rebase onto the other (fix its ``down_revision``)."""
    from alembic.script import ScriptDirectory

    from hmacfs.migrate import alembic_config

    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads
