"""requirements.lock pins what setup.cfg asks for, and this environment was installed from it."""

from __future__ import annotations

import configparser
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        found = _PIN.match(line)
        if found:
            pins[canonicalize_name(found[1])] = found[2]
    return pins


def _declared() -> list[Requirement]:
    """install_requires plus the test and dev extras, as setup.cfg states them."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    lines = setup["options"]["install_requires"].splitlines()
    for extra in ("test", "dev"):
        lines += setup["options.extras_require"][extra].splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def test_every_declared_requirement_is_pinned_within_its_range() -> None:
    """A requirement added to setup.cfg without `make lock` fails here (and in CI)."""
    pins = _pins()
    assert len(pins) > 20
    for requirement in _declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {requirement.name}=={pins[name]}, "
            f"outside {requirement.specifier}: run `make lock`"
        )


def test_installed_versions_are_the_locked_ones() -> None:
    """`make test` (and so CI) installs with the lock as constraints: what runs is what is pinned."""
    wrong = {}
    for name, version in _pins().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong[name] = f"locked {version}, installed {installed}"
    assert not wrong, f"this environment was not installed from requirements.lock: {wrong}"
