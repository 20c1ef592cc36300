"""The malformed budgets corpus through the CLI: exit 2, one line naming the file, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main

CORPUS = sorted((Path(__file__).parents[1] / "budgets" / "corpus").glob("*.yaml"))


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_budgets_file_exits_2_with_one_line(path: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, ["run", "--budgets", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"paybench: error: {path}: ")
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists()  # refused before anything ran or was written


def test_missing_budgets_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(main, ["run", "--budgets", str(missing)])
    assert result.exit_code == 2
    assert str(missing) in result.output and "docs/budgets.md" in result.output
