"""``hmacfs upload`` and ``hmacfs download``: options in, the client library, exit codes out."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from hmacfs.client.backoff import Backoff
from hmacfs.client.errors import EXIT_CODES, ClientError
from hmacfs.client.link import Link, LinkOptions
from hmacfs.client.report import BarReporter, JsonReporter, Reporter
from hmacfs.client.watch import Watchdog

_SIZE = click.IntRange(64 * 1024, 1024**3)
_NETWORKS = ["auto", "none", "ethernet", "wifi", "lte", "cellular", "vpn"]
_CODES = "; ".join(f"{code} {label}" for code, label in EXIT_CODES.items())


def _reporter(as_json: bool) -> Reporter:
    return JsonReporter() if as_json else BarReporter()


@contextmanager
def _link(server: str, token: str | None, options: dict[str, Any], reporter: Reporter) -> Iterator[Link]:
    backoff = Backoff(retries=options["retries"])
    settings = LinkOptions(
        server.rstrip("/"), token, backoff, options["stall_timeout"], network=options["network"]
    )
    with Watchdog(lambda kind, detail: reporter.event(kind, "", detail=detail)) as watchdog:
        link = Link(settings, watchdog, reporter)
        try:
            yield link
        finally:
            link.close()


def _common(func: Any) -> Any:
    for option in reversed([
        click.option("--token", envvar="HMACFS_TOKEN", default=None, help="bearer token (JWT)."),
        click.option("--json", "as_json", is_flag=True, help="print JSON progress events on stdout."),
        click.option("--retries", type=click.IntRange(0, 100), default=10, show_default=True,
                     help="retries of one step (backoff with full jitter, honouring Retry-After)."),
        click.option("--stall-timeout", type=click.FloatRange(1, 3600), default=15.0, show_default=True,
                     help="seconds without progress before a request is cut and resumed."),
        click.option("--network", type=click.Choice(_NETWORKS), default="auto", show_default=True,
                     help="network type for Hmacfs-Network (auto: from the default route's interface)."),
    ]):  # fmt: skip
        func = option(func)
    return func


@click.command(epilog=f"Exit codes: 0 ok; 1 unexpected; 2 usage; {_CODES}.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--server", required=True, help="base URL, e.g. https://files.example.org")
@click.option("--protocol", type=click.Choice(["tus", "drive", "chunked"]), default="tus", show_default=True)
@click.option("--parallel", type=click.IntRange(1, 32), default=4, show_default=True,
              help="parallel chunk streams (Drive and chunked API; tus sends in order).")  # fmt: skip
@click.option(
    "--chunk-size", type=_SIZE, default=None, help="bytes per chunk (default: the server's, then adaptive)."
)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="resume state (default: ~/.local/state/hmacfs/uploads).")  # fmt: skip
@_common
def upload(files: tuple[Path, ...], server: str, **options: Any) -> None:
    """Upload FILES, resuming any earlier attempt at the same files to the same server."""
    from hmacfs.client.job import UploadOptions
    from hmacfs.client.state import StateStore, default_state_dir
    from hmacfs.client.uploads import Uploader

    reporter = _reporter(options["as_json"])
    store = StateStore(options["state_dir"] or default_state_dir())
    upload_options = UploadOptions(options["protocol"], options["parallel"], options["chunk_size"])
    failure: ClientError | None = None
    with _link(server, options["token"], options, reporter) as link:
        uploader = Uploader(link, store, upload_options)
        for path in files:
            try:
                result = uploader.upload(path)
            except ClientError as exc:
                reporter.finish(str(path), error=exc.message, exit_code=exc.exit_code, kind=exc.label)
                failure = failure or exc
                continue
            reporter.finish(str(path), **{k: v for k, v in asdict(result).items() if k != "file"})
    if failure is not None:
        sys.exit(failure.exit_code)


@click.command(epilog=f"Exit codes: 0 ok; 1 unexpected; 2 usage; {_CODES}.")
@click.argument("target")
@click.option("--server", default=None, help="base URL when TARGET is a file id.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: the server's file name, in the current directory).")  # fmt: skip
@_common
def download(target: str, server: str | None, output: Path | None, **options: Any) -> None:
    """Download TARGET (a URL, or a file id with --server), resuming a partial download."""
    from hmacfs.client.download import Downloader, split_target

    base, path = split_target(target)
    if (base or server) is None:
        raise click.UsageError("a file id needs --server")
    reporter = _reporter(options["as_json"])
    with _link(base or str(server), options["token"], options, reporter) as link:
        try:
            Downloader(link).download(path, output)
        except ClientError as exc:
            click.echo(f"hmacfs: {exc.label}: {exc.message}", err=True)
            sys.exit(exc.exit_code)


def register_client_commands(group: click.Group) -> None:
    group.add_command(upload)
    group.add_command(download)
