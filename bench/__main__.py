"""Run benchmark suites: ``python -m bench [SUITE ...] [-- suite args]``.

A suite is a module ``bench/<name>.py`` defining ``main(argv: list[str]) -> int``.
With no names, every suite runs in turn. Results go to stdout and
``bench/results/``; the latest tables are committed to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def suites() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(here)])
        if not info.name.startswith("_") and hasattr(importlib.import_module(f"bench.{info.name}"), "main")
    )


def main(argv: list[str]) -> int:
    names, _, rest = (
        (argv[: argv.index("--")], None, argv[argv.index("--") + 1 :]) if "--" in argv else (argv, None, [])
    )
    available = suites()
    chosen = names or available
    unknown = [name for name in chosen if name not in available]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; available: {', '.join(available) or 'none'}")
        return 2
    status = 0
    for name in chosen:
        print(f"== bench {name}")
        status |= importlib.import_module(f"bench.{name}").main(rest)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
