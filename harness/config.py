"""Configuration files on disk: the budgets file read, checked and parsed.

The parsing itself is pure (``harness.core.budgets``); this module does the reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.core.budgets import parse_budgets
from harness.core.model import Budgets
from harness.errors import ConfigError


def load_budgets(
    path: Path,
    profile: str | None = None,
    known_keys: Sequence[str] | None = None,
    known_profiles: Sequence[str] | None = None,
) -> Budgets:
    """Read and parse a budgets file; unreadable files are ConfigErrors too."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{source}: file not found; create it (see docs/budgets.md) "
            "or name another budgets file"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory; name the budgets file itself") from None
    except OSError as exc:
        raise ConfigError(
            f"{source}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}: line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8"
        ) from None
    return parse_budgets(text, source, profile, known_keys, known_profiles)
