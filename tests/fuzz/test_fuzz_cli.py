"""Fuzz through the CLI: a sample of damaged run folders, as `check`, `report` and `history
import` see them. Each ends in exit code 2 with one line on stderr naming the folder, or
is judged (0, 1, or 3 for a run that cannot be trusted) with the verdict on stdout; never
a traceback, never "paybench: error" with another code. Charts are drawn here too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from harness.cli import main
from tests.fuzz.mutate import fuzz_settings, mutated_json
from tests.hostile.runfolders import (
    BUDGETS,
    HDR,
    RUN,
    SUMMARY,
    judged_run_folder,
    recording_doc,
    run_json_doc,
)

NAMES = (("GET", "/cost/$x^$"), ("POST", "/api/pay`ments``"))
OUTCOMES = ("PASS", "FAIL", "UNRELIABLE", "INCOMPLETE")


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return judged_run_folder(tmp_path_factory.mktemp("fuzz-cli") / "judged", NAMES)


def _check_outcome(args: list[str], folder: Path, ok: str | tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, args, env={"COLUMNS": "120"})
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("paybench: error: ") and str(folder) in lines[0], lines
        return
    assert result.exception is None or isinstance(result.exception, SystemExit), result.stderr
    assert "paybench: error" not in result.stderr, (result.exit_code, result.stderr)
    assert result.exit_code in (0, 1, 3), (result.exit_code, result.stdout, result.stderr)
    assert result.stdout.startswith(ok), result.stdout


@given(
    data=st.data(),
    damaged=st.sampled_from([HDR, RUN, SUMMARY]),
    command=st.sampled_from(["check", "report", "history import"]),
)
@fuzz_settings(max_examples=15)
def test_a_damaged_run_folder_through_the_cli(
    judged: Path, tmp_path_factory: pytest.TempPathFactory, data, damaged: str, command: str
) -> None:
    folder = tmp_path_factory.getbasetemp() / "fuzz-cli-run"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(judged, folder)
    valid = {
        HDR: recording_doc(NAMES),
        RUN: run_json_doc(),
        SUMMARY: json.loads((judged / SUMMARY).read_text(encoding="utf-8")),
    }[damaged]
    (folder / damaged).write_bytes(mutated_json(data, valid))
    if command == "check":
        args = ["check", str(folder), "--budgets", str(folder / BUDGETS)]
        _check_outcome(args, folder, OUTCOMES)
    elif command == "report":
        _check_outcome(["report", str(folder)], folder, "wrote ")
    else:
        history = folder.parent / "fuzz-cli-history"
        shutil.rmtree(history, ignore_errors=True)
        args = ["history", "import", str(folder), "--history", str(history / "h.sqlite")]
        _check_outcome(args, folder, "imported: ")
