"""``hmacfs pool create|list`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import good_config, run


def test_pool_create_and_list(tmp_path: Path) -> None:
    config = good_config(tmp_path)
    assert run("db", "upgrade", config=config).returncode == 0
    created = run(
        "pool", "create", "photos", "--max-file-size", "20MB", "--content-type", "image/*", "--ttl", "7d",
        "--public", config=config,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    again = run("pool", "create", "photos", config=config)
    assert again.returncode == 1 and "exists" in again.stderr
    listed = [json.loads(line) for line in run("pool", "list", config=config).stdout.splitlines()]
    photos = next(pool for pool in listed if pool["name"] == "photos")
    assert photos["id"] == created.stdout.strip() and photos["maxFileSize"] == 20 * 1024**2
    assert photos["allowedContentTypes"] == ["image/*"] and photos["fileTtlSeconds"] == 7 * 86400
    assert photos["public"] is True and photos["allowAnonymous"] is False
    assert {pool["name"] for pool in listed} == {"default", "photos"}
