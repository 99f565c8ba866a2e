"""Starting real ``hmacfs worker`` processes for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.live import HMACFS, REPO, write_config


def worker_config(workdir: Path, database_url: str, **sections: dict[str, Any]) -> Path:
    """Write the TOML a worker (and the test's own Services) use; returns its path."""
    from tests.conftest import HMAC_SECRET, JWT_SECRET

    base: dict[str, dict[str, Any]] = {
        "database": {"url": database_url},
        "security": {"secret": HMAC_SECRET, "jwt_secret": JWT_SECRET},
        "storage": {"path": str(workdir / "storage")},
        "logging": {"access_log": False},
    }
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    workdir.mkdir(parents=True, exist_ok=True)
    return write_config(workdir / "hmacfs.toml", base)


def worker_env(config: Path, source: Path = REPO) -> dict[str, str]:
    """The environment of a worker process; ``source`` is the checkout whose code it runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HMACFS_")}
    env.pop("DATABASE_URL", None)
    env["HMACFS_CONFIG"] = str(config)
    # handler_modules may name test modules (tests.tasks.slow_handlers, bench.tasks).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH", "")]))
    return env


@dataclass
class WorkerProcess:
    """A running ``hmacfs worker --concurrency N`` (or with ``arguments`` instead; its own process group)."""

    config: Path
    concurrency: int = 1
    arguments: tuple[str, ...] = ()
    log_path: Path | None = None
    source: Path = REPO  # benchmarks run another checkout (a baseline) the same way
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> WorkerProcess:
        log_path = self.log_path or self.config.with_name("worker.log")
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [HMACFS, "worker", *(self.arguments or ("--concurrency", str(self.concurrency)))],
                cwd=REPO,
                env=worker_env(self.config, self.source),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        """Signal the whole group and wait; returns the exit status."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        os.killpg(self.process.pid, sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)

    def kill(self) -> None:
        """``kill -9`` the supervisor and every slot at once, as a crash would."""
        self.stop(signal.SIGKILL)


def scrape(port: int) -> dict[str, float]:
    """A worker's ``[workers] metrics_bind`` /metrics: each sample as ``name`` or
    ``name{label=value,...}`` (labels sorted) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found
