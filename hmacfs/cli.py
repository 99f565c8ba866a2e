"""The ``hmacfs`` command line."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from hmacfs.units import parse_duration

if TYPE_CHECKING:  # the settings (pydantic) load on first use: `hmacfs upload` starts without them
    from hmacfs.config import ConfigError, Settings

CONFIG_ERROR_EXIT = 2


def _fail_config(error: ConfigError) -> NoReturn:
    click.echo("hmacfs: configuration error:", err=True)
    for problem in error.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(CONFIG_ERROR_EXIT)


def settings_from(ctx: click.Context, *, require_secrets: bool = True) -> Settings:
    """Load settings once per invocation; a bad configuration exits with status 2."""
    from hmacfs.config import ConfigError, load_settings

    path: str | None = ctx.find_root().params.get("config")
    try:
        return load_settings(path, require_secrets=require_secrets)
    except ConfigError as error:
        _fail_config(error)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML settings file (default: $HMACFS_CONFIG or etc/hmacfs.toml).",
)
def main(config: str | None) -> None:
    """hmacfs: self-hosted file upload server."""


# -- serve -------------------------------------------------------------------
@main.command()
@click.option("--bind", default=None, help="host:port to listen on (default: server.bind).")
@click.option("--workers", type=click.IntRange(1, 256), default=None, help="gevent worker processes.")
@click.option(
    "--gunicorn-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="gunicorn.conf.py to apply (default: etc/gunicorn.conf.py when present).",
)
@click.pass_context
def serve(ctx: click.Context, bind: str | None, workers: int | None, gunicorn_config: Path | None) -> None:
    """Run the server: gunicorn with gevent workers."""
    from hmacfs.serving import HmacfsServer, cleanup_metrics_dir, prepare_metrics_dir

    metrics_dir = prepare_metrics_dir()
    settings = settings_from(ctx)
    conf = gunicorn_config or (
        Path("etc/gunicorn.conf.py") if Path("etc/gunicorn.conf.py").is_file() else None
    )
    overrides: dict[str, Any] = {"bind": [bind] if bind else None, "workers": workers}
    click.echo(f"hmacfs: serving on http://{bind or settings.server.bind}/", err=True)
    try:
        HmacfsServer(settings, conf, overrides).run()
    finally:
        cleanup_metrics_dir(metrics_dir)


# -- cleanup -----------------------------------------------------------------
@main.command()
@click.pass_context
def cleanup(ctx: click.Context) -> None:
    """Run one cleanup pass now (expired files, orphaned blobs, stale uploads, ...)."""
    from hmacfs.composition import build_services, cleanup_steps
    from hmacfs.maintenance import run_cleanup

    result = run_cleanup(build_services(settings_from(ctx)), cleanup_steps())
    if result is None:
        click.echo("cleanup is running in another process; skipped")
        return
    for step, count in result.items():
        click.echo(f"{step}: {count if count >= 0 else 'failed'}")
    if any(count < 0 for count in result.values()):
        sys.exit(1)


# -- worker ------------------------------------------------------------------
@main.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    help="task slots, one process each (default: workers.numworkers; always 1 on SQLite).",
)
@click.option(
    "--min", "minimum", type=click.IntRange(1, 256), default=None, help="fewest slots when scaling."
)
@click.option("--max", "maximum", type=click.IntRange(1, 256), default=None, help="most slots when scaling.")
@click.pass_context
def worker(ctx: click.Context, concurrency: int | None, minimum: int | None, maximum: int | None) -> None:
    """Run background tasks (move, compress, encrypt, ...) until SIGTERM.

    With --min/--max (or workers.enable_dynamic_workers) the slots follow the queue.
    With workers.metrics_bind, /metrics there adds up every process's metrics.
    """
    from hmacfs.serving import cleanup_metrics_dir, worker_metrics_dir

    settings = settings_from(ctx)
    # Before prometheus_client is imported (by the modules below): see hmacfs.tasks.exporter.
    metrics_dir = worker_metrics_dir() if settings.workers.metrics_bind else None
    from hmacfs.tasks.worker import MetricsBindError

    try:
        _run_worker(settings, concurrency, minimum, maximum, metrics_dir)
    except MetricsBindError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if metrics_dir:
            cleanup_metrics_dir(metrics_dir)


def _run_worker(
    settings: Settings,
    concurrency: int | None,
    minimum: int | None,
    maximum: int | None,
    metrics_dir: str | None,
) -> None:
    from hmacfs.composition import task_handlers, worker_services
    from hmacfs.logs import configure_logging
    from hmacfs.tasks.scaling import policy_from, run_scaled_workers
    from hmacfs.tasks.worker import run_workers

    configure_logging(settings.logging)
    scaling = minimum is not None or maximum is not None or settings.workers.enable_dynamic_workers
    if scaling and concurrency is not None:
        raise click.UsageError("--concurrency sets a fixed number of slots; --min/--max scale them")
    if not scaling:
        slots = concurrency or settings.workers.numworkers
        click.echo(f"hmacfs: worker with {slots} slot(s)", err=True)
        run_workers(settings, slots, task_handlers(settings), worker_services, metrics_dir=metrics_dir)
        return
    try:
        policy = policy_from(settings, minimum, maximum)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--min/--max") from None
    click.echo(f"hmacfs: worker with {policy.minimum}..{policy.maximum} slot(s)", err=True)
    run_scaled_workers(settings, task_handlers(settings), worker_services, policy, metrics_dir=metrics_dir)


# -- doctor ------------------------------------------------------------------
@main.command()
@click.option("--min-free", default="1GB", show_default=True, help="least free space per storage path.")
@click.option(
    "--max-clock-skew", default="2s", show_default=True, help="largest clock difference with PostgreSQL."
)
@click.pass_context
def doctor(ctx: click.Context, min_free: str, max_clock_skew: str) -> None:
    """Check configuration, database, migrations, storage, clock and blob store; exit 1 if any fails."""
    from hmacfs.composition import task_handlers
    from hmacfs.config import ConfigError, load_settings
    from hmacfs.doctor import Limits, doctor_engine, run_checks
    from hmacfs.units import parse_size

    try:
        limits = Limits(parse_size(min_free), parse_duration(max_clock_skew).total_seconds())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        settings = load_settings(ctx.find_root().params.get("config"))
    except ConfigError as error:
        click.echo(f"FAIL config: {'; '.join(error.problems)}")
        sys.exit(1)
    try:
        task_handlers(settings)
    except Exception as exc:  # a [tasks] handler_modules entry that does not import
        click.echo(f"FAIL config: tasks.handler_modules: {type(exc).__name__}: {exc}")
        sys.exit(1)
    click.echo("ok   config: settings valid, task handler modules import")
    engine = doctor_engine(settings)
    failed = False
    try:
        for check in run_checks(settings, engine, limits):
            click.echo(check.line())
            failed = failed or check.failed
    finally:
        engine.dispose()
    sys.exit(1 if failed else 0)


# -- db ----------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema migrations (Alembic)."""


def _engine(ctx: click.Context) -> Any:
    from hmacfs.db import make_engine

    return make_engine(settings_from(ctx, require_secrets=False).database_url)


@db.command()
@click.argument("revision", default="head")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the schema up to REVISION (default: head)."""
    from hmacfs import migrate

    engine = _engine(ctx)
    migrate.upgrade(engine, revision)
    click.echo(f"database at {migrate.current_revision(engine)}")


@db.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the schema down to REVISION ("base" removes every table)."""
    from hmacfs import migrate

    engine = _engine(ctx)
    migrate.downgrade(engine, revision)
    click.echo(f"database at {migrate.current_revision(engine) or 'base'}")


@db.command()
@click.pass_context
def current(ctx: click.Context) -> None:
    """Print the schema revision of the database."""
    from hmacfs import migrate

    click.echo(migrate.current_revision(_engine(ctx)) or "base (empty database)")


# -- token -------------------------------------------------------------------
@main.group()
def token() -> None:
    """Account tokens (JWT)."""


@token.command("issue")
@click.option("--account", required=True, type=click.UUID, help="account UUID (the sub claim).")
@click.option("--ttl", default="1h", show_default=True, help="lifetime, e.g. 30m, 1h, 7d.")
@click.option("--admin", is_flag=True, help="with the admin claim (e.g. PUT /api/admin/quotas/...).")
@click.pass_context
def token_issue(ctx: click.Context, account: uuid.UUID, ttl: str, admin: bool) -> None:
    """Print a bearer token for ACCOUNT."""
    from hmacfs.tokens import TokenCodec

    try:
        lifetime = parse_duration(ttl)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--ttl") from None
    codec = TokenCodec.from_settings(settings_from(ctx).security)
    try:
        click.echo(codec.issue(account, lifetime, **({"admin": True} if admin else {})))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


# -- config ------------------------------------------------------------------
@main.group("config")
def config_group() -> None:
    """Check and show settings."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.pass_context
def config_check(ctx: click.Context, file: str | None) -> None:
    """Validate FILE (default: the active settings); exit 2 naming each bad key."""
    from hmacfs.config import ConfigError, load_settings

    try:
        load_settings(file or ctx.find_root().params.get("config"))
    except ConfigError as error:
        _fail_config(error)
    click.echo("configuration ok")


@config_group.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the effective settings as JSON, secrets redacted."""
    import json

    from hmacfs.config import redacted

    click.echo(json.dumps(redacted(settings_from(ctx, require_secrets=False)), indent=2))


# -- pool --------------------------------------------------------------------
@main.group()
def pool() -> None:
    """Storage pools: where uploads land and the policy they follow."""


@pool.command("create")
@click.argument("name")
@click.option(
    "--max-file-size", default=None, help="largest file, e.g. 2GB (default: uploads.max_upload_size)."
)
@click.option("--content-type", "content_types", multiple=True, help="accepted type or type/*; repeatable.")
@click.option("--ttl", default=None, help="default file lifetime, e.g. 7d (default: forever).")
@click.option("--storage-path", default=None, help="absolute, writable directory for this pool's bytes.")
@click.option("--public", is_flag=True, help="files are shared across accounts (dedup may return them).")
@click.option("--allow-anonymous", is_flag=True, help="accept tus uploads without an account.")
@click.pass_context
def pool_create(ctx: click.Context, /, name: str, **options: Any) -> None:
    """Create pool NAME and print its id."""
    from hmacfs.composition import build_services
    from hmacfs.errors import HmacfsError
    from hmacfs.models import Pool
    from hmacfs.units import parse_size
    from hmacfs.uploads.policy import add_pool

    try:
        size = parse_size(options["max_file_size"]) if options["max_file_size"] else None
        ttl = parse_duration(options["ttl"]) if options["ttl"] else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    new = Pool(
        name=name,
        max_file_size=size,
        allowed_content_types=list(options["content_types"]) or None,
        file_ttl_seconds=None if ttl is None else int(ttl.total_seconds()),
        storage_path=options["storage_path"],
        public=options["public"],
        allow_anonymous=options["allow_anonymous"],
    )
    services = build_services(settings_from(ctx))
    with services.db.sessions() as session:
        try:
            created = add_pool(session, services.store, new)
        except HmacfsError as exc:
            raise click.ClickException(exc.message) from None
        session.commit()
        click.echo(str(created.id))


@pool.command("list")
@click.pass_context
def pool_list(ctx: click.Context) -> None:
    """Print every pool as a JSON line."""
    import json

    from hmacfs.composition import build_services
    from hmacfs.uploads.policy import all_pools

    services = build_services(settings_from(ctx))
    with services.db.sessions() as session:
        for found in all_pools(session):
            click.echo(json.dumps({
                "id": str(found.id), "name": found.name, "maxFileSize": found.max_file_size,
                "allowedContentTypes": found.allowed_content_types, "fileTtlSeconds": found.file_ttl_seconds,
                "public": found.public, "allowAnonymous": found.allow_anonymous,
                "storagePath": found.storage_path,
            }))  # fmt: skip


# -- sign-url ----------------------------------------------------------------
@main.command("sign-url")
@click.option("--method", default="PUT", show_default=True, type=click.Choice(["PUT", "GET", "HEAD"]))
@click.option("--path", "slot_path", required=True, help="slot path SLOT/NAME, not percent-encoded.")
@click.option("--size", type=click.IntRange(0), default=0, help="Content-Length the client will send.")
@click.option("--type", "content_type", default="application/octet-stream", show_default=True)
@click.option("--protocol", default="v2", show_default=True, type=click.Choice(["v", "v2", "token", "v3"]))
@click.option("--expires-in", default="1h", show_default=True, help="v3 lifetime, e.g. 10m.")
@click.option(
    "--base-url", default=None, help="scheme://host[:port] (default: server.base_url or server.bind)."
)
@click.pass_context
def sign_url(
    ctx: click.Context,
    *,
    method: str,
    slot_path: str,
    size: int,
    content_type: str,
    protocol: str,
    expires_in: str,
    base_url: str | None,
) -> None:
    """Print a signed XEP-0363 slot URL, as an XMPP server would issue it."""
    import time
    from urllib.parse import quote, urlencode

    from hmacfs.xep0363.signing import BadPath, SignedRequest, signed_query, validate_path

    settings = settings_from(ctx)
    xep = settings.xep0363
    try:
        validate_path(slot_path, max_length=xep.max_path_length)
        lifetime = parse_duration(expires_in)
    except (BadPath, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    request = SignedRequest(method, slot_path, xep.base_path + slot_path, size, content_type)
    expires = int(time.time() + lifetime.total_seconds())
    query = signed_query(
        settings.security.secret, protocol, request, expires=expires, signed_path=xep.signed_path
    )
    root = (base_url or settings.server.base_url or f"http://{settings.server.bind}").rstrip("/")
    click.echo(f"{root}{quote(xep.base_path + slot_path, safe='/')}?{urlencode(query)}")


# -- sign-upload -------------------------------------------------------------
@main.command("sign-upload")
@click.option(
    "--path", default="/upload", show_default=True, type=click.Choice(["/upload", "/upload/chunked"])
)
@click.option("--name", "file_name", required=True, help="the file name the client sends as X-Filename.")
@click.option("--size", type=click.IntRange(0), required=True, help="the file's exact size in bytes.")
@click.option("--expires-in", default="1h", show_default=True, help="lifetime, e.g. 10m.")
@click.pass_context
def sign_upload_command(ctx: click.Context, *, path: str, file_name: str, size: int, expires_in: str) -> None:
    """Print the X-Signature headers of one upload to POST /upload or /upload/chunked."""
    import time

    from hmacfs.upload_signing import SignedUpload, sign_upload

    try:
        lifetime = parse_duration(expires_in)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    upload = SignedUpload("POST", path, int(time.time() + lifetime.total_seconds()), file_name, size)
    for key, value in sign_upload(settings_from(ctx).security.secret, upload).items():
        click.echo(f"{key}: {value}")


# -- upload, download (the client: hmacfs/client/) --------------------------
from hmacfs.client.commands import register_client_commands  # noqa: E402

register_client_commands(main)

# -- quota (hmacfs/quota_commands.py) ----------------------------------------
from hmacfs.quota_commands import quota_group  # noqa: E402

main.add_command(quota_group(settings_from), "quota")
