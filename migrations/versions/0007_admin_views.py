"""Read-only views for DB admins: upload progress and speed, stale uploads, the task
queue by status and priority, storage by account and pool (see docs/schema.md).

The views exist on PostgreSQL and SQLite alike; only the arithmetic on
timestamps differs (``EXTRACT(EPOCH ...)`` against ``julianday``), so each view
is written once with that expression filled in per dialect. Every view joins
or aggregates, so none is auto-updatable on PostgreSQL, and SQLite views are
never writable: an admin cannot change data through them by mistake.

The models do not declare views, and autogenerate compares tables only, so
"models and migrated schema agree" is unaffected. A later migration that
rebuilds ``upload_tasks``, ``tasks``, ``files`` or ``pools`` on SQLite
(``batch_alter_table`` copies and renames the table) must drop these views
first and create them again afterwards: ``drop_views()`` / ``create_views()``.

Revision ID: 0007_admin_views
Revises: 0006_rate_limit_buckets
"""

# ruff: noqa: S608  (every SQL string here is built from constants of this file)
from __future__ import annotations

from alembic import op

revision = "0007_admin_views"
down_revision = "0006_rate_limit_buckets"
branch_labels = None
depends_on = None

# An open upload with no activity for this long is "stale" (admin_stale_uploads);
# cleanup expires it later, after [uploads] max_resumable_age (48 h by default).
STALE_AFTER_SECONDS = 3600

OPEN = "('Pending', 'InProgress', 'Paused')"


def _seconds_between(dialect: str, later: str, earlier: str) -> str:
    """SQL for the seconds from ``earlier`` to ``later`` (a double), in ``dialect``."""
    if dialect == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION)"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _views(dialect: str) -> dict[str, str]:
    elapsed = _seconds_between(dialect, "u.last_activity", "u.created_at")
    idle = _seconds_between(dialect, "CURRENT_TIMESTAMP", "u.last_activity")
    waited = _seconds_between(dialect, "CURRENT_TIMESTAMP", "MIN(t.created_at)")
    progress = (
        "CASE WHEN u.file_size > 0 THEN ROUND(CAST(100.0 * u.bytes_received / u.file_size AS NUMERIC), 2)"
        " WHEN u.file_size = 0 THEN 100 END"
    )
    return {
        "admin_upload_progress": f"""
            SELECT u.task_id, u.protocol, u.status, u.account_id, p.name AS pool_name,
                   u.file_name, u.file_size, u.bytes_received, {progress} AS progress_percent,
                   u.chunks_uploaded, u.chunks_count, u.created_at, u.last_activity, u.completed_at,
                   {elapsed} AS active_seconds,
                   CASE WHEN {elapsed} > 0 THEN u.bytes_received / {elapsed} END AS bytes_per_second,
                   {idle} AS idle_seconds
            FROM upload_tasks u JOIN pools p ON p.id = u.pool_id
            WHERE u.deleted_at IS NULL""",
        "admin_stale_uploads": f"""
            SELECT u.task_id, u.protocol, u.status, u.account_id, p.name AS pool_name,
                   u.file_name, u.file_size, u.bytes_received, {progress} AS progress_percent,
                   u.created_at, u.last_activity, {idle} AS idle_seconds
            FROM upload_tasks u JOIN pools p ON p.id = u.pool_id
            WHERE u.deleted_at IS NULL AND u.status IN {OPEN}
              AND {idle} > {STALE_AFTER_SECONDS}""",
        "admin_task_queue": f"""
            SELECT t.status, t.priority, COUNT(*) AS tasks,
                   SUM(CASE WHEN t.status = 'Pending'
                             AND (t.run_after IS NULL OR t.run_after <= CURRENT_TIMESTAMP)
                            THEN 1 ELSE 0 END) AS claimable,
                   SUM(CASE WHEN t.lease_owner IS NOT NULL THEN 1 ELSE 0 END) AS leased,
                   MIN(t.created_at) AS oldest_created_at,
                   {waited} AS oldest_age_seconds
            FROM tasks t
            GROUP BY t.status, t.priority""",
        "admin_storage_by_account_pool": """
            SELECT f.account_id, p.name AS pool_name, f.pool_id,
                   COUNT(*) AS files, SUM(f.size) AS bytes,
                   SUM(CASE WHEN f.encrypted THEN 1 ELSE 0 END) AS encrypted_files,
                   MIN(f.created_at) AS oldest_created_at, MAX(f.created_at) AS newest_created_at
            FROM files f JOIN pools p ON p.id = f.pool_id
            GROUP BY f.account_id, p.name, f.pool_id""",
    }


def create_views() -> None:
    for name, query in _views(op.get_bind().dialect.name).items():
        op.execute(f"CREATE VIEW {name} AS {query}")


def drop_views() -> None:
    for name in _views(op.get_bind().dialect.name):
        op.execute(f"DROP VIEW IF EXISTS {name}")


def upgrade() -> None:
    create_views()


def downgrade() -> None:
    drop_views()
