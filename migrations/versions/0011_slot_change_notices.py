"""PostgreSQL notices on channel ``hmacfs_files`` when a slot file or a blob's location changes.

Each serving worker caches what a slot GET needs (``hmacfs.xep0363.slot_cache``)
and drops it on these notices. A trigger, not the application, sends them, so
every writer is covered: request handlers, ``hmacfs worker`` task handlers,
the cleanup pass, another node, an operator's SQL. NOTIFY is transactional:
a notice is delivered when its transaction commits, never for a rollback.

- ``files``: after an UPDATE or DELETE of a row with a slot path, the old path
  (or an empty payload, "anything", for a path too long for a notice).
- ``blobs``: after an UPDATE that moves a blob (``storage_key`` or
  ``storage_root``), an empty payload. The dedup upsert's reference counting
  does not match the trigger's WHEN.

SQLite serves one process and caches nothing: no trigger there.

Revision ID: 0011_slot_change_notices
Revises: 0010_upload_reservations
"""

from __future__ import annotations

from alembic import op

revision = "0011_slot_change_notices"
down_revision = "0010_upload_reservations"
branch_labels = None
depends_on = None

# NOTIFY payloads must stay under 8,000 bytes; slot paths are at most 8,192 characters.
_FUNCTIONS = """
CREATE FUNCTION hmacfs_file_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hmacfs_files',
                      CASE WHEN octet_length(OLD.path) < 4000 THEN OLD.path ELSE '' END);
    RETURN NULL;
END $$;
CREATE FUNCTION hmacfs_blob_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hmacfs_files', '');
    RETURN NULL;
END $$;
"""
_TRIGGERS = """
CREATE TRIGGER files_slot_changed AFTER UPDATE OR DELETE ON files
    FOR EACH ROW WHEN (OLD.path IS NOT NULL) EXECUTE FUNCTION hmacfs_file_changed();
CREATE TRIGGER blobs_moved AFTER UPDATE OF storage_key, storage_root ON blobs
    FOR EACH ROW WHEN (OLD.storage_key IS DISTINCT FROM NEW.storage_key
                       OR OLD.storage_root IS DISTINCT FROM NEW.storage_root)
    EXECUTE FUNCTION hmacfs_blob_moved();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_FUNCTIONS)
    op.execute(_TRIGGERS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS blobs_moved ON blobs")
    op.execute("DROP TRIGGER IF EXISTS files_slot_changed ON files")
    op.execute("DROP FUNCTION IF EXISTS hmacfs_blob_moved()")
    op.execute("DROP FUNCTION IF EXISTS hmacfs_file_changed()")
