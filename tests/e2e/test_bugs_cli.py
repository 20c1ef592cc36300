"""A paybench bug in any command: one line saying so and where the traceback is, exit 3.

Each case makes one internal function raise an exception paybench does not expect (the
rest of the command is the real one) and runs the command through the CLI in process.
"""

from __future__ import annotations

import json
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.runfolder import RUN_FILE, TRACEBACK_FILE
from harness.store import HistoryStore
from tests.e2e.helpers import ROOT
from tests.history.historydata import make_run, nightly_id, nightly_start

PLAIN = ROOT / "tests" / "fixtures" / "plain_locust"
BOOM = "boom: an invariant paybench relies on did not hold"


def _boom(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError(BOOM)


@pytest.fixture(autouse=True)
def _keep_sigterm() -> Iterator[None]:
    # `run` and `capacity` turn SIGTERM into Ctrl-C for their process: here, pytest's.
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture
def tmpdir_for_tracebacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _folder(tmp_path: Path, name: str = "run") -> Path:
    folder = tmp_path / name
    shutil.copytree(PLAIN, folder)
    return folder


def _history(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(path)
    for i in range(3):
        store.add_run(make_run(nightly_id(i), seed=i, started_at=nightly_start(i)), None)
    return path


def _invoke(args: list[str]) -> tuple[str, Path]:
    """Run the CLI; its one error line and the traceback file it names."""
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 3, result.output
    # Progress lines may come first; the error is one line, and the last.
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("paybench: error: ")]
    assert len(lines) == 1 and result.stderr.rstrip("\n").endswith(lines[0]), result.stderr
    assert "Traceback" not in result.stderr
    prefix = (
        f"paybench: error: internal error (RuntimeError: {BOOM}); this is a paybench bug, "
        "please report it; the traceback is in "
    )
    assert lines[0].startswith(prefix), lines[0]
    path = Path(lines[0][len(prefix) :])
    text = path.read_text(encoding="utf-8")
    assert text.startswith("Traceback (most recent call last):") and f"RuntimeError: {BOOM}" in text
    return lines[0], path


@pytest.mark.parametrize("command", ["run", "capacity"])
def test_a_bug_during_a_run_leaves_its_traceback_in_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Regression: an unexpected exception in a command ended in a traceback and exit 1,
    which CI reads as a broken budget."""
    monkeypatch.setattr("harness.lifecycle.target_url", _boom)
    out = tmp_path / "reports"
    args = [command, "--out", str(out)]
    if command == "capacity":
        args += ["--step-time", "3s"]
    _line, path = _invoke(args)
    (run_dir,) = (out / "runs").iterdir()
    assert path == run_dir / TRACEBACK_FILE
    run_json = json.loads((run_dir / RUN_FILE).read_text())
    assert run_json["status"] == "failed"
    assert run_json["incomplete_reason"] == "internal error (RuntimeError); see the traceback"


@pytest.mark.parametrize("command", ["check", "report"])  # both judge with check.verdict_of
def test_a_bug_judging_a_run_folder_leaves_its_traceback_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    folder = _folder(tmp_path)
    monkeypatch.setattr("harness.commands.check.evaluate", _boom)
    _line, path = _invoke([command, str(folder), "--budgets", str(folder / "budgets.yaml")])
    assert path == folder / TRACEBACK_FILE


@pytest.mark.parametrize(
    ("command", "where"),
    [
        ("list", "harness.store.HistoryStore.list_runs"),
        ("import", "harness.store.HistoryStore.import_run_dir"),
        ("export", "harness.store.HistoryStore.export"),
        ("compare", "harness.commands.compare.compare_runs"),
        ("trend", "harness.commands.trend.trend_report"),
    ],
)
def test_a_bug_without_a_run_folder_leaves_its_traceback_in_a_temporary_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmpdir_for_tracebacks: Path,
    command: str,
    where: str,
) -> None:
    history = _history(tmp_path)
    args = {
        "list": ["history", "list"],
        "import": ["history", "import", str(_folder(tmp_path))],
        "export": ["history", "export"],
        "compare": ["compare", str(_folder(tmp_path, "a")), str(_folder(tmp_path, "b"))],
        "trend": ["trend", "--out", str(tmp_path / "trend")],
    }[command] + ["--history", str(history)]
    monkeypatch.setattr(where, _boom)
    _line, path = _invoke(args)
    assert path.parent == tmpdir_for_tracebacks
    assert path.name.startswith("paybench-traceback-") and path.suffix == ".txt"
