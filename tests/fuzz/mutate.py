"""Hypothesis strategies that damage valid files: JSON documents, CSV and YAML texts.

Each mutation starts from a valid file a test builds and changes a few things about it:
a value replaced by a hostile one (wrong type, negative, huge, non-finite, a text with
markup, maths or an unpaired surrogate, deep nesting), a key dropped, an item repeated, a
number nudged so that sums stop adding up, the text cut short or a byte changed.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from harness.core import stats
from harness.errors import PaybenchError


def fuzz_settings(max_examples: int) -> settings:
    """Bounded and reproducible: the same examples on every run, on any machine."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


def refused_in_one_line(call: Callable[[], Any], names: str) -> Any:
    """``call()``'s value, or None when it raised a one-line usage error naming ``names``.

    Any other exception (a traceback for the user) propagates and fails the test.
    """
    try:
        return call()
    except PaybenchError as e:
        assert e.exit_code == 2, (e.exit_code, e.message)
        assert "\n" not in e.message and "\r" not in e.message, e.message
        assert names in e.message, e.message
        return None


# -- hostile values ------------------------------------------------------------------------


def _zip_bomb() -> str:
    """An HdrHistogram V2 envelope whose payload inflates to 4 MiB of zeros."""
    payload = zlib.compress(b"\0" * (4 * 1024 * 1024), 9)
    return base64.b64encode(struct.pack(">II", 0x1C849314, len(payload)) + payload).decode()


def _other_layout() -> str:
    """A valid histogram of another layout (5 significant figures, up to an hour)."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 3_600_000_000_000, 5)
    h.record_value(1000)
    return h.encode().decode()


HISTOGRAMS = (
    stats.histogram_from_ms([]).encode(),
    stats.histogram_from_ms([1.0, 2.0, 3.0]).encode(),
    stats.histogram_from_ms([5.0] * 21).encode(),
    _other_layout(),
    _zip_bomb(),
    "HISTFAAAAA==",
    "not base64!",
)

TEXTS = (
    "",
    " ",
    "/cost/$x^$",
    "a``b`c",
    "<script>alert(1)</script>",
    "a|b",
    "line\nbreak",
    "\ud800",
    "\x00\x1b[31m",
    "# heading",
    "- item",
    "1. item",
    "x" * 5000,
    "2025-13-45T99:99:99Z",
    "PASS",
    "reference",
    "Aggregated",
    "FLOW",
)

INTS = (-1, -(2**63), 0, 1, 2, 7, 2**53 + 1, 2**63 - 1, 2**63, 2**64, 10**30)
FLOATS = (-0.0, 0.5, -1.5, 1e-300, 1e300, 1e308, float("inf"), float("-inf"), float("nan"))


def nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


hostile_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(INTS),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(FLOATS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(TEXTS),
    st.text(max_size=12),
    st.sampled_from(HISTOGRAMS),
    st.just([]),
    st.just({}),
    st.lists(st.integers(min_value=-3, max_value=3), max_size=3),
    st.dictionaries(st.sampled_from(["a", "count", "name"]), st.integers(), max_size=2),
    # Deeper than the free-form limit; deeper still comes as raw text (RAW_TOKENS).
    st.sampled_from([3, 20, 60]).map(nested),
)

# Raw JSON put in place of one scalar of the text: what json.dumps would never write.
RAW_TOKENS = (
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "1" + "0" * 5000,
    "-0",
    "1.0",
    '"\\ud800"',
    '"\\u0000"',
    "[" * 3000 + "]" * 3000,
    "{" * 10,
    "",
)
_SCALAR = re.compile(r'-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|"(?:[^"\\]|\\.)*"|true|false|null')


# -- mutating a JSON document --------------------------------------------------------------


def _rng(data: st.DataObject) -> random.Random:
    """Positions drawn from this are uniform: hypothesis's own integers lean to the first."""
    return random.Random(data.draw(st.integers(0, 2**32 - 1), label="seed"))


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``doc`` (the root excluded), parents before their children."""
    out = []
    if isinstance(doc, dict):
        items: Any = doc.items()
    else:
        items = enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_paths(value, (*prefix, key)))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


def _mutate_once(data: st.DataObject, doc: Any) -> None:
    paths = _paths(doc)
    if not paths:
        return
    path = _rng(data).choice(paths)
    parent, key = _parent(doc, path), path[-1]
    op = data.draw(st.sampled_from(["replace", "replace", "drop", "nudge", "repeat"]), label="op")
    if op == "replace":
        parent[key] = data.draw(hostile_values, label="value")
    elif op == "drop":
        del parent[key]
    elif op == "nudge":
        value = parent[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[key] = value + data.draw(st.sampled_from([-1, 1, -value, 1000]), label="by")
        else:
            parent[key] = data.draw(hostile_values, label="value")
    elif isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    else:
        parent[key] = [copy.deepcopy(parent[key])] * 2


def mutated_value(data: st.DataObject, doc: Any, max_mutations: int = 3) -> Any:
    """A copy of ``doc`` with 1..``max_mutations`` mutations."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, max_mutations), label="mutations")):
        _mutate_once(data, doc)
    return doc


def mutated_json(data: st.DataObject, doc: Any, max_mutations: int = 3) -> bytes:
    """``doc`` mutated, as the bytes of a file (sometimes damaged as text too)."""
    text = json.dumps(mutated_value(data, doc, max_mutations), allow_nan=True)
    return mutated_text(data, text).encode("utf-8", "surrogatepass")


def mutated_text(data: st.DataObject, text: str) -> str:
    """Sometimes a raw token in place of a scalar, the text cut short, or a byte changed."""
    op = data.draw(st.sampled_from(["keep"] * 10 + ["token"] * 2 + ["cut", "char"]), label="text")
    if op == "token":
        # Values only: a key made a number would just be a syntax error.
        scalars = [m for m in _SCALAR.finditer(text) if not text[m.end() :].startswith(":")]
        if scalars:
            m = _rng(data).choice(scalars)
            raw = data.draw(st.sampled_from(RAW_TOKENS), label="raw")
            text = text[: m.start()] + raw + text[m.end() :]
    elif op == "cut" and text:
        text = text[: _rng(data).randrange(len(text))]
    elif op == "char" and text:
        at = _rng(data).randrange(len(text))
        char = data.draw(st.sampled_from(list('{}[]",:-0.9eE\\\n \x00\u00e9')), label="char")
        text = text[:at] + char + text[at + 1 :]
    return text


# -- mutating CSV and YAML text ------------------------------------------------------------

CSV_CELLS = st.one_of(
    st.sampled_from(
        ["", "N/A", "nan", "inf", "-inf", "-1", "1e400", "1.5", "0", "3", "abc", '"', ",", "\n"]
    ),
    st.sampled_from(["9" * 400, "$x^$", "a``b", "<script>", "Aggregated", "\ud800"]),
    st.text(max_size=8),
)


def mutated_csv(data: st.DataObject, text: str) -> bytes:
    """A CSV text with a cell replaced or removed, a row repeated, dropped or cut short."""
    lines = text.splitlines()
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        rng = _rng(data)
        row = rng.randrange(len(lines))
        cells = lines[row].split(",")
        op = data.draw(st.sampled_from(["cell", "cell", "drop cell", "repeat", "drop row", "cut"]))
        if op == "cell":
            cells[rng.randrange(len(cells))] = data.draw(CSV_CELLS, label="value")
            lines[row] = ",".join(cells)
        elif op == "drop cell" and len(cells) > 1:
            del cells[rng.randrange(len(cells))]
            lines[row] = ",".join(cells)
        elif op == "repeat":
            lines.insert(row, lines[row])
        elif op == "drop row" and len(lines) > 1:
            del lines[row]
        elif op == "cut":
            lines[row] = lines[row][: rng.randrange(len(lines[row]) + 1)]
            lines = lines[: row + 1]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")


YAML_PIECES = st.sampled_from(
    [
        ":",
        ": ",
        "- ",
        "\n",
        "\n  ",
        "  ",
        "\t",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "<<: *a",
        "!!python/object:os.system ",
        "!!binary ",
        "? ",
        "|",
        ">",
        "'",
        '"',
        "#",
        "%YAML 1.1\n",
        "---\n",
        "...\n",
        "~",
        "null",
        "yes",
        "off",
        "1e999",
        "-5",
        "0x1F",
        "2024-01-01",
        '"< 0ms"',
        '">= 5"',
        "p95",
        "p100",
        "error_rate",
        '"*"',
        '"GET /api/plans"',
        "requests",
        "profiles",
        "version: 2",
        "\ud800",
        "\u00e9",
        "x" * 300,
    ]
)


def mutated_yaml(data: st.DataObject, text: str) -> str:
    """A YAML text with pieces inserted, characters deleted or lines repeated and dropped."""
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        op = data.draw(st.sampled_from(["insert", "insert", "delete", "repeat line", "drop line"]))
        lines = text.split("\n")
        rng = _rng(data)
        if op == "insert":
            at = rng.randrange(len(text) + 1)
            text = text[:at] + data.draw(YAML_PIECES, label="piece") + text[at:]
        elif op == "delete" and text:
            at = rng.randrange(len(text))
            text = text[:at] + text[at + rng.randint(1, 8) :]
        elif op == "repeat line":
            at = rng.randrange(len(lines))
            lines.insert(at, lines[at])
            text = "\n".join(lines)
        elif op == "drop line" and len(lines) > 1:
            del lines[rng.randrange(len(lines))]
            text = "\n".join(lines)
    return text
