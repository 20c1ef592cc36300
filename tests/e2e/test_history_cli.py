"""`paybench history list|import|export` on a real run folder, as a CI artefact would arrive."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import only_run_dir, paybench

pytestmark = pytest.mark.e2e


def test_import_twice_changes_nothing_then_list_and_export(tmp_path: Path) -> None:
    out = tmp_path / "ci"
    r = paybench("run", "--run-time", "4s", "--out", str(out), "--no-history")
    assert r.returncode == 0, r.stdout + r.stderr
    artefact = tmp_path / "artefact"
    shutil.copytree(only_run_dir(out), artefact)  # copied to "another machine"
    history = tmp_path / "here" / "history.sqlite"

    first = paybench("history", "import", str(artefact), "--history", str(history))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("imported: ")
    again = paybench("history", "import", str(artefact), "--history", str(history))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("already in the history: ")

    listed = paybench("history", "list", "--history", str(history))
    assert listed.returncode == 0, listed.stderr
    runs, _, server = listed.stdout.strip().partition("\n\n")
    rows = runs.splitlines()
    assert len(rows) == 2 and rows[0].startswith("run id")  # header and the one run
    # then the run's server metrics (the shipped budgets judge the built-in target's)
    assert server.startswith("server metrics (steady state"), listed.stdout
    assert "cache_hit_rate" in server and len(server.splitlines()) == 3, server
    assert artefact.name not in rows[1]  # the run id comes from run.json, not the folder name
    assert "smoke" in rows[1] and "PASS" in rows[1]

    exported = paybench("history", "export", "--format", "jsonl", "--history", str(history))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    keys = {line["request"] for line in lines}
    assert "POST /api/payments/v2/initiate" in keys
    assert all(line["profile"] == "smoke" for line in lines)


def test_list_of_a_missing_history_says_so(tmp_path: Path) -> None:
    r = paybench("history", "list", "--history", str(tmp_path / "none.sqlite"), timeout=30)
    assert r.returncode == 2
    assert "none.sqlite" in r.stderr and "Traceback" not in r.stderr
