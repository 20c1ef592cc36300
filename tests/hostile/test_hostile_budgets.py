"""A hostile budgets file, of any shape, is accepted or refused at once: one line, exit 2.

Before: a deeply nested file ended in a RecursionError traceback (exit 1), a file of a few
megabytes took PyYAML more than 30 s to refuse, and anchors and aliases could make a small
file stand for billions of values. How long each shape takes at the limits is measured by
benchmarks/hostile_budgets.py, not here.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config import load_budgets
from harness.core.budgets import MAX_FILE_BYTES, MAX_VALUES, parse_budgets, selector_matches
from harness.core.model import Budgets
from harness.errors import ConfigError
from tests.e2e.helpers import paybench
from tests.fuzz.mutate import fuzz_settings
from tests.hostile import shapes
from tests.hostile.runfolders import write_run_folder

REFUSED = [
    ("deeply nested", "line 5, column 27: nested deeper than 20 levels"),
    ("nested one level too deep", "line 5, column 27: nested deeper than 20 levels"),
    ("a few megabytes", "more than a budgets file may hold"),
    ("dense flow at the size limit", f"more than {MAX_VALUES:,} keys and values"),
    ("alias bomb", f"more than {MAX_VALUES:,} keys and values (an alias counts what it repeats)"),
    ("merge-key bomb", f"more than {MAX_VALUES:,} keys and values"),
]
ACCEPTED = [
    "comments at the size limit",
    "one long scalar at the size limit",
    "names at the value limit",
    "profiles times names at the value limit",
]


@pytest.mark.parametrize(("shape", "fragment"), REFUSED)
def test_a_hostile_budgets_file_is_refused_in_one_line(
    tmp_path: Path, shape: str, fragment: str
) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(shapes.SHAPES[shape](), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_budgets(path)
    assert e.value.exit_code == 2
    assert "\n" not in e.value.message
    assert e.value.message.startswith(f"{path}: ") and fragment in e.value.message


@pytest.mark.parametrize("shape", ACCEPTED)
def test_large_but_plain_budgets_files_are_still_read(shape: str) -> None:
    assert isinstance(parse_budgets(shapes.SHAPES[shape](), "budgets.yaml"), Budgets)


def test_the_size_limit_is_checked_on_the_text_too() -> None:
    """parse_budgets is given text directly by some callers: the limit holds there too."""
    text = "version: 1\n" + "#" * MAX_FILE_BYTES
    with pytest.raises(ConfigError, match="more than the 256 KiB a budgets file may hold"):
        parse_budgets(text, "budgets.yaml")


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A long name of one letter: the worst case for a backtracking glob.
    return write_run_folder(
        tmp_path_factory.mktemp("hostile-budgets") / "run", (("GET", "/" + "a" * 120),)
    )


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        ("deeply nested", "nested deeper than 20 levels"),
        ("a few megabytes", "larger than 256 KiB, more than a budgets file may hold"),
        ("alias bomb", "keys and values (an alias counts what it repeats)"),
    ],
)
def test_check_refuses_a_hostile_budgets_file_in_one_line(
    run_folder: Path, tmp_path: Path, shape: str, fragment: str
) -> None:
    """Guards: a deep file once ended in a RecursionError traceback with exit 1; a few MB
    took over 30 s to refuse."""
    budgets = tmp_path / "hostile.yaml"
    budgets.write_text(shapes.SHAPES[shape](), encoding="utf-8")
    r = paybench("check", str(run_folder), "--budgets", str(budgets), timeout=120)
    assert r.returncode == 2, (r.returncode, r.stderr)
    [line] = r.stderr.splitlines()
    assert line.startswith(f"paybench: error: {budgets}: ") and fragment in line, line


def test_a_device_as_budgets_file_is_refused_not_read_forever(run_folder: Path) -> None:
    r = paybench("check", str(run_folder), "--budgets", "/dev/zero", timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [
        "paybench: error: /dev/zero: not a regular file; name the budgets file itself"
    ]


def test_a_catastrophic_glob_is_judged_without_backtracking(
    run_folder: Path, tmp_path: Path
) -> None:
    """Guards: "*a*a*...*b" became a regex that backtracked for ages over a long name; the
    run is judged (the budget matches nothing: no samples) within the subprocess bound."""
    budgets = tmp_path / "glob.yaml"
    budgets.write_text(shapes.catastrophic_glob(), encoding="utf-8")
    r = paybench("check", str(run_folder), "--budgets", str(budgets), timeout=120)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "NO SAMPLES" in r.stdout


@given(
    selector=st.text(alphabet="ab?*[]", max_size=8).filter(lambda s: "*" in s or "?" in s),
    key=st.text(alphabet="ab[]", max_size=10),
)
@fuzz_settings(max_examples=1000)
def test_globs_match_as_fnmatch_does_with_literal_brackets(selector: str, key: str) -> None:
    literal = "".join({"[": "[[]", "]": "[]]"}.get(c, c) for c in selector)
    assert selector_matches(selector, key) == fnmatch.fnmatchcase(key, literal)
