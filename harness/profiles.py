"""Load profiles: the Locust config files in ``locustfiles/profiles/``.

paybench reads a profile only for what it must know before Locust starts (users, spawn
rate, run time, load shape): Locust itself reads the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from harness.errors import ConfigError

_Number = TypeVar("_Number", int, float)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILES = PROJECT_ROOT / "locustfiles"
DEFAULT_LOCUSTFILE = LOCUSTFILES / "payments.py"
PROFILES_DIR = LOCUSTFILES / "profiles"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(h|m|s|ms)?")


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    users: int | None
    spawn_rate: float | None
    run_time_s: float | None
    shape: str | None
    settings: dict[str, str] = field(default_factory=dict)


def available_profiles(profiles_dir: Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in profiles_dir.glob("*.conf"))


def parse_duration(text: str, what: str) -> float:
    """Locust's duration syntax (``90``, ``10s``, ``5m``, ``1h30m``) -> seconds."""
    s = text.strip().replace(" ", "")
    if not s:
        raise ConfigError(f"{what}: empty duration; use e.g. 30s, 5m or 1h30m")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.end() == pos:
            raise ConfigError(f"{what}: {text!r} is not a duration; use e.g. 30s, 5m or 1h30m")
        value, unit = float(m.group(1)), m.group(2) or "s"
        total += value * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
        pos = m.end()
    if total <= 0:
        raise ConfigError(f"{what}: {text!r} must be longer than zero")
    return total


def read_conf(path: Path) -> dict[str, str]:
    """The ``key = value`` lines of a Locust config file (its own ``[section]``-less format)."""
    settings: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("["):
            continue
        key, sep, value = line.partition("=")
        if sep:
            settings[key.strip().lstrip("-").replace("_", "-")] = value.strip()
    return settings


def load_profile(name: str, profiles_dir: Path = PROFILES_DIR) -> Profile:
    path = profiles_dir / f"{name}.conf"
    if not path.is_file():
        names = ", ".join(available_profiles(profiles_dir)) or "none"
        raise ConfigError(f"profile {name!r} does not exist: no {path}; choose one of {names}")
    settings = read_conf(path)

    def number(key: str, kind: Callable[[str], _Number]) -> _Number | None:
        if key not in settings:
            return None
        try:
            return kind(settings[key])
        except ValueError:
            raise ConfigError(
                f"{path}: {key} = {settings[key]!r} is not a number; fix the profile"
            ) from None

    run_time = settings.get("run-time")
    return Profile(
        name=name,
        path=path,
        users=number("users", int),
        spawn_rate=number("spawn-rate", float),
        run_time_s=parse_duration(run_time, f"{path}: run-time") if run_time else None,
        shape=settings.get("shape"),
        settings=settings,
    )
