"""docs/ci/nightly.sh end to end: the real script, the real CLI, the built-in target on loopback.

Three nights as a CI would run them, each on a "fresh machine" (its own output folder),
each restoring the history from the previous night's artefact folder: a pass that starts
the history, a broken budget (exit 1, the job fails), and a target that cannot be judged
(exit 3: reported "not judged", the job passes unless PAYBENCH_FAIL_NOT_JUDGED=1). The run
is shortened with PAYBENCH_RUN_TIME, which the script honours.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "ci" / "nightly.sh"


def night(
    tmp: Path, name: str, previous: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """One night of the CI job: returns the script's result, its artefact and step summary."""
    artefact, summary = tmp / name / "artefact", tmp / name / "step-summary.md"
    summary.parent.mkdir(parents=True)
    result = subprocess.run(
        ["sh", str(SCRIPT), "--spawn-rate", "40", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={
            **os.environ,
            "COLUMNS": "120",
            "PAYBENCH": f"{sys.executable} -m harness",
            "PAYBENCH_PREVIOUS": str(previous),
            "PAYBENCH_ARTEFACT": str(artefact),
            "PAYBENCH_OUT": str(tmp / name / "reports"),
            "PAYBENCH_RUN_TIME": "15s",
            "GITHUB_STEP_SUMMARY": str(summary),
            **env,
        },
    )
    return result, artefact, summary


def runs_in(history: Path) -> int:
    with sqlite3.connect(history) as conn:
        count = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    conn.close()
    return int(count)


def test_three_nights_restore_fail_and_report_not_judged(tmp_path: Path) -> None:
    first, artefact1, summary1 = night(tmp_path, "night1", tmp_path / "no-artefact-yet")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "no previous history in" in first.stdout
    assert "paybench nightly: PASS: every budget holds" in first.stdout
    assert summary1.read_text().startswith("## paybench PASS: ")
    assert runs_in(artefact1 / "history.sqlite") == 1
    (run1,) = (artefact1 / "runs").iterdir()
    assert (run1 / "summary.json").is_file() and (run1 / "report.html").is_file()

    # Night 2, on another machine: the history comes from night 1's artefact; a budget breaks.
    second, artefact2, summary2 = night(
        tmp_path, "night2", artefact1, "--target-error-rate", "0.5"
    )
    assert second.returncode == 1, second.stdout[-3000:] + second.stderr[-3000:]
    assert f"history restored from {artefact1}/history.sqlite" in second.stdout
    assert "the last 1 comparable run" in second.stdout  # judged against night 1
    assert "paybench nightly: FAIL: a budget or regression budget is broken" in second.stdout
    assert summary2.read_text().startswith("## paybench FAIL: ")
    assert runs_in(artefact2 / "history.sqlite") == 2

    # Night 3: the target is unhealthy, nothing can be judged; the history stays as it was.
    third, artefact3, summary3 = night(
        tmp_path, "night3", artefact2, "--target-set", "down=[database]"
    )
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert "paybench nightly: not judged (exit 3): " in third.stdout
    assert "database" in third.stdout.split("not judged (exit 3): ", 1)[1].splitlines()[0]
    assert "**paybench nightly: not judged (exit 3): " in summary3.read_text()
    assert runs_in(artefact3 / "history.sqlite") == 2
    assert "Traceback" not in third.stderr

    strict, _, _ = night(
        tmp_path,
        "night3-strict",
        artefact2,
        "--target-set",
        "down=[database]",
        PAYBENCH_FAIL_NOT_JUDGED="1",
    )
    assert strict.returncode == 3, strict.stdout[-2000:] + strict.stderr[-2000:]
