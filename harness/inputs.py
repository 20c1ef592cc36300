"""Reading files that may come from anywhere: a run folder is a CI artefact.

Every reader of a run folder (``run.json``, ``paybench.hdr.json``, ``summary.json``,
``baseline.json``, Locust's CSV files) reads through here: a bounded number of bytes from a
regular file, JSON that is refused rather than half-understood, and values checked field by
field. Whatever is wrong ends in one `FormatError` line (exit 2) that names the file and
the field, e.g. ``paybench.hdr.json: entries[3].intervals[7].failures: -2 is negative; the
file is damaged or was edited``. The size limits are in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from harness.errors import FormatError

MIB = 1024 * 1024
# A day-long soak of 15 request names at 2 s intervals writes a few hundred MiB of
# histograms; more than this is not a recording, and parsing it could take the memory.
MAX_RECORDING_BYTES = 1024 * MIB
# run.json, summary.json, baseline.json and Locust's CSV files of thousands of names stay
# far below this.
MAX_METADATA_BYTES = 64 * MIB
# Request names, messages and other texts of a run: Locust names are URL paths.
MAX_TEXT_CHARS = 4096
# The largest count or nanosecond sum a histogram, or the history's SQLite integers, hold.
MAX_INT = 2**63 - 1
# Free-form values (run.json's extra, summary.json's budget rows) nest no deeper than this.
MAX_FREE_DEPTH = 16

DAMAGED = "the file is damaged or was edited"
_MISSING: Any = object()


def read_bytes(path: Path, limit_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``limit_bytes``; FormatError otherwise."""
    path = Path(path)
    too_big = FormatError(
        f"{path}: larger than {limit_bytes // MIB} MiB, more than paybench reads from a run "
        f"folder; {DAMAGED}"
    )
    try:
        if not path.is_file():
            # A device or a pipe (e.g. a link to /dev/zero) would be read forever.
            raise FormatError(f"{path}: not a regular file; {DAMAGED}")
        if path.stat().st_size > limit_bytes:
            raise too_big
        with path.open("rb") as f:
            data = f.read(limit_bytes + 1)  # the file may have grown since
    except OSError as e:
        raise FormatError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(data) > limit_bytes:
        raise too_big
    return data


def open_bounded(path: Path, limit_bytes: int) -> BinaryIO:
    """A regular file of at most ``limit_bytes``, opened to be read a part at a time (a
    recording of hours is read line by line); the checks and errors of `read_bytes`. The
    caller stops at ``limit_bytes`` should the file grow."""
    path = Path(path)
    try:
        if not path.is_file():
            raise FormatError(f"{path}: not a regular file; {DAMAGED}")
        if path.stat().st_size > limit_bytes:
            raise FormatError(
                f"{path}: larger than {limit_bytes // MIB} MiB, more than paybench reads from "
                f"a run folder; {DAMAGED}"
            )
        return path.open("rb")
    except OSError as e:
        raise FormatError(f"{path}: cannot be read ({e.strerror or e})") from None


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(data: bytes, source: str, kind: str = "a readable JSON file") -> Any:
    """JSON text -> values; NaN, Infinity and nesting too deep to read are refused."""
    try:
        return json.loads(data.decode("utf-8-sig"), parse_constant=_no_constant)
    except UnicodeDecodeError as e:
        detail = f"byte {e.start} is not UTF-8"
    except RecursionError:
        detail = "invalid JSON: nested too deeply"
    except ValueError as e:  # JSONDecodeError, NaN, integers of more than 4300 digits
        detail = f"invalid JSON: {_one_line(str(e))}"
    raise FormatError(f"{source}: not {kind} ({detail}); {DAMAGED}")


def load_json(path: Path, limit_bytes: int = MAX_METADATA_BYTES) -> Any:
    return parse_json(read_bytes(path, limit_bytes), str(path))


def _one_line(text: str, max_chars: int = 80) -> str:
    line = " ".join(text.split())
    return line if len(line) <= max_chars else line[: max_chars - 1] + "…"


def show(value: Any) -> str:
    """A value as a message shows it: on one line, shortened."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {_one_line(ascii(value))}"
    return _one_line(repr(value))


def _key_part(key: str) -> str:
    if key.isidentifier():
        return f".{key}"
    return "[" + json.dumps(key, ensure_ascii=True) + "]"


@dataclass(frozen=True)
class Field:
    """Where a value sits in a file, for messages: ``entries[3].intervals[7].failures``."""

    source: str
    path: str = ""

    def at(self, key: str | int) -> Field:
        if isinstance(key, int):
            return Field(self.source, f"{self.path}[{key}]")
        part = _key_part(key)
        return Field(self.source, (self.path + part) if self.path else part.lstrip("."))

    def fail(self, what: str) -> NoReturn:
        where = f"{self.path}: " if self.path else ""
        raise FormatError(f"{self.source}: {where}{what}; {DAMAGED}")

    # -- one value -----------------------------------------------------------------------

    def whole(self, value: Any, low: int = 0, high: int = MAX_INT) -> int:
        """An integer in ``[low, high]`` (a JSON ``5.0`` is refused: we write integers)."""
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"expected a whole number, got {show(value)}")
        if value < low:
            self.fail(f"{show(value)} is negative" if low == 0 else f"{show(value)} < {low}")
        if value > high:
            self.fail(f"{show(value)} is too large (at most {high})")
        return value

    def number(self, value: Any, low: float | None = 0.0, positive: bool = False) -> float:
        """A finite number (``low=None``: of any sign)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"expected a number, got {show(value)}")
        try:
            f = float(value)
        except OverflowError:
            self.fail(f"{show(value)} is too large")
        if not math.isfinite(f):
            self.fail(f"{show(value)} is not a finite number")
        if positive and f <= 0:
            self.fail(f"{show(value)} must be greater than zero")
        if low is not None and f < low:
            self.fail(f"{show(value)} is negative" if low == 0 else f"{show(value)} < {low}")
        return f

    def text(self, value: Any, max_chars: int = MAX_TEXT_CHARS) -> str:
        if not isinstance(value, str):
            self.fail(f"expected a text, got {show(value)}")
        if len(value) > max_chars:
            self.fail(f"a text of {len(value):,} characters (at most {max_chars:,})")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # "\ud800" in JSON: no file, database or page can hold it.
            self.fail(f"{show(value)} holds an unpaired surrogate")
        return value

    def mapping(self, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            self.fail(f"expected an object, got {show(value)}")
        return value

    def sequence(self, value: Any) -> list[Any]:
        if not isinstance(value, list):
            self.fail(f"expected a list, got {show(value)}")
        return value

    def free(self, value: Any, max_depth: int = MAX_FREE_DEPTH) -> Any:
        """Any JSON value, checked all through: texts storable, depth bounded."""
        stack: list[tuple[Any, Field, int]] = [(value, self, 0)]
        while stack:
            v, where, depth = stack.pop()
            if depth > max_depth:
                where.fail(f"nested deeper than {max_depth} levels")
            if isinstance(v, str):
                where.text(v, max_chars=MAX_METADATA_BYTES)
            elif isinstance(v, float):
                where.number(v, low=None)
            elif isinstance(v, dict):
                for k, item in v.items():
                    where.text(k)
                    stack.append((item, where.at(k), depth + 1))
            elif isinstance(v, list):
                stack.extend((item, where.at(i), depth + 1) for i, item in enumerate(v))
        return value


class Obj:
    """A JSON object of a file, read key by key with the type each key must have.

    ``default`` makes a key optional: absent or ``null``, it reads as the default.
    """

    def __init__(self, value: Any, where: Field) -> None:
        self.where = where
        self.value = where.mapping(value)

    def _get(self, key: str, default: Any) -> tuple[Any, Field, bool]:
        """The value, where it sits, and whether it is there (not absent, not null)."""
        where = self.where.at(key)
        value = self.value.get(key)
        if value is None:
            if default is _MISSING:
                where.fail("missing" if key not in self.value else "is null")
            return default, where, False
        return value, where, True

    def has(self, key: str) -> bool:
        return self.value.get(key) is not None

    def whole(self, key: str, default: Any = _MISSING, low: int = 0, high: int = MAX_INT) -> Any:
        value, where, present = self._get(key, default)
        return where.whole(value, low, high) if present else value

    def number(
        self, key: str, default: Any = _MISSING, low: float | None = 0.0, positive: bool = False
    ) -> Any:
        value, where, present = self._get(key, default)
        return where.number(value, low, positive) if present else value

    def text(self, key: str, default: Any = _MISSING, max_chars: int = MAX_TEXT_CHARS) -> Any:
        value, where, present = self._get(key, default)
        return where.text(value, max_chars) if present else value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        value, where, present = self._get(key, default)
        if present and not isinstance(value, bool):
            where.fail(f"expected true or false, got {show(value)}")
        return value

    def obj(self, key: str, optional: bool = False) -> Obj:
        value, where, _present = self._get(key, {} if optional else _MISSING)
        return Obj(value, where)

    def objs(self, key: str, optional: bool = True) -> Iterator[Obj]:
        """Each object of a list (an absent list, when ``optional``, holds none)."""
        value, where, _present = self._get(key, [] if optional else _MISSING)
        for i, item in enumerate(where.sequence(value)):
            yield Obj(item, where.at(i))

    def texts(self, key: str) -> tuple[str, ...]:
        value, where, _present = self._get(key, [])
        return tuple(where.at(i).text(v) for i, v in enumerate(where.sequence(value)))

    def numbers(self, key: str, low: float | None = 0.0) -> tuple[float, ...]:
        value, where, _present = self._get(key, [])
        return tuple(where.at(i).number(v, low) for i, v in enumerate(where.sequence(value)))

    def free(self, key: str, default: Any = _MISSING) -> Any:
        value, where, present = self._get(key, default)
        return where.free(value) if present else value
