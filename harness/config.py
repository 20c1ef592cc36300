"""Configuration files on disk: the budgets file read, checked and parsed.

The parsing itself is pure (``harness.core.budgets``); this module does the reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.core.budgets import MAX_FILE_BYTES, parse_budgets
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
    if Path(path).exists() and not Path(path).is_file() and not Path(path).is_dir():
        # A device or a pipe would be read forever.
        raise ConfigError(f"{source}: not a regular file; name the budgets file itself")
    try:
        with Path(path).open("rb") as f:
            # Bounded up front: a few megabytes of YAML would take PyYAML minutes to refuse.
            raw = f.read(MAX_FILE_BYTES + 1)
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
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            f"{source}: larger than {MAX_FILE_BYTES // 1024} KiB, more than a budgets file may "
            "hold (see docs/budgets.md); check that this is the right file"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{source}: line {line}: byte 0x{raw[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8"
        ) from None
    return parse_budgets(text, source, profile, known_keys, known_profiles)
