"""The scaling rule of ``hmacfs worker --min/--max`` (pure) and its settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmacfs.config import ConfigError, Settings, load_settings
from hmacfs.tasks.scaling import ScalePolicy, policy_from, target_slots

POLICY = ScalePolicy(minimum=1, maximum=4, up_threshold=50, down_threshold=10, interval=5.0)


@pytest.mark.parametrize(
    ("current", "depth", "expected"),
    [
        (1, 49, 1),  # below the up threshold, above the down one: hold
        (1, 50, 2),  # one slot per threshold's worth of queue...
        (1, 120, 3),
        (1, 10_000, 4),  # ...up to the maximum, at once
        (4, 500, 4),
        (4, 10, 3),  # at or below the down threshold: one fewer per interval
        (2, 0, 1),
        (1, 0, 1),  # never below the minimum
        (3, 30, 3),
        (0, 0, 1),  # outside the bounds: back inside
        (6, 0, 4),
    ],
)
def test_target_slots(current: int, depth: int, expected: int) -> None:
    assert target_slots(current, depth, POLICY) == expected


def test_policy_defaults_and_bounds() -> None:
    settings = Settings.model_validate({"workers": {"numworkers": 6, "min_workers": 2}})
    policy = policy_from(settings, None, None)
    assert (policy.minimum, policy.maximum, policy.up_threshold, policy.down_threshold) == (2, 6, 50, 10)
    assert (policy_from(settings, 3, 8).minimum, policy_from(settings, 3, 8).maximum) == (3, 8)
    with pytest.raises(ValueError, match="--min 5 is above --max 4"):
        policy_from(settings, 5, 4)


@pytest.mark.parametrize(
    ("workers", "problem"),
    [
        ({"worker_scale_up_thresh": 10, "worker_scale_down_thresh": 10}, "below worker_scale_up_thresh"),
        ({"worker_scale_up_thresh": 0}, "worker_scale_up_thresh"),
        ({"min_workers": 5, "numworkers": 4}, "min_workers"),
        ({"metrics_bind": "nope"}, "host:port"),
        ({"worker_scale_interval": "0s"}, "worker_scale_interval"),
        ({"enable_dynamic_worker": True}, "enable_dynamic_worker"),
    ],
)
def test_bad_scaling_settings_fail_naming_the_key(
    tmp_path: Path, workers: dict[str, object], problem: str
) -> None:
    lines = "\n".join(f"{key} = {_toml(value)}" for key, value in workers.items())
    path = tmp_path / "bad.toml"
    path.write_text(f"[workers]\n{lines}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path, {}, require_secrets=False)
    assert problem in str(error.value) and "workers" in str(error.value)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f'"{value}"' if isinstance(value, str) else str(value)
