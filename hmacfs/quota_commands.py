"""``hmacfs quota set|show``: an account's storage quota and usage (docs/quotas.md)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from hmacfs.units import parse_size

if TYPE_CHECKING:  # loaded by the caller's settings_from, not at start-up
    from hmacfs.config import Settings

SettingsOf = Callable[[click.Context], "Settings"]


def quota_group(settings_from: SettingsOf) -> click.Group:
    """The ``quota`` command group; ``settings_from`` loads the invocation's settings."""

    @click.group()
    def quota() -> None:
        """Per-account storage quotas."""

    @quota.command("set")
    @click.argument("account", type=click.UUID)
    @click.argument("size")
    @click.pass_context
    def quota_set(ctx: click.Context, account: uuid.UUID, size: str) -> None:
        """Let ACCOUNT hold SIZE bytes (e.g. 10GB; 0 = unlimited)."""
        try:
            max_bytes = parse_size(size)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="SIZE") from None
        _run(settings_from(ctx), account, max_bytes)

    @quota.command("show")
    @click.argument("account", type=click.UUID)
    @click.pass_context
    def quota_show(ctx: click.Context, account: uuid.UUID) -> None:
        """Print ACCOUNT's limit, used, reserved and available bytes as JSON."""
        _run(settings_from(ctx), account, None)

    return quota


def _run(settings: Settings, account: uuid.UUID, max_bytes: int | None) -> None:
    """Set the quota when ``max_bytes`` is given, then print the account's usage."""
    from hmacfs.composition import build_services
    from hmacfs.uploads.quotas import quota_report, set_quota, usage_json

    services = build_services(settings)
    try:
        with services.db.sessions() as session:
            if max_bytes is not None:
                set_quota(session, account, max_bytes)
                session.commit()
            click.echo(json.dumps(usage_json(account, quota_report(session, settings, account))))
    finally:
        services.db.engine.dispose()
