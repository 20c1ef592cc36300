"""A real regression end to end, and what the nightly does about it until somebody decides.

Short runs against the reference target, later ones with the target's slowdown on: the
regression budget fails the first slow runs (exit 1, naming it) and keeps failing them
until `paybench baseline accept` takes the new level; the nights after it pass; `paybench
baseline pin` of a run from before the step makes the next slow run fail again.
`paybench history list` and the trend report show the decisions, the trend report marks
the change at the right run, `paybench compare` calls it significant. A second regression
budget, too fine for runs this short, is inconclusive in every judged run, says how many
samples it would need, and fails none. Real CLI, real Locust, loopback only; each run is a
few seconds (about 3 minutes in all).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STATUS = "GET /api/payments/v2/status/[merchant_order_id]"
PLANS = "GET /api/plans"
NORMAL, SLOW, AFTER_ACCEPT, AFTER_PIN = 4, 2, 1, 1
BUDGETS = """\
version: 1
steady_state:
  warmup: 0s
baseline:
  runs: 5
regressions:
  requests:
    "GET /api/payments/v2/status/[merchant_order_id]":
      p95: "+100% significant"
    "GET /api/plans":
      p95: "+1% significant"
"""


def paybench(*args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120"},
    )


def _outcome(run_dir: Path) -> str:
    return json.loads((run_dir / "summary.json").read_text())["verdict"]["outcome"]


def _verdict(run_dir: Path) -> dict[str, object]:
    verdict: dict[str, object] = json.loads((run_dir / "summary.json").read_text())["verdict"]
    return verdict


def _row(run_dir: Path, request: str) -> dict[str, str]:
    rows = _verdict(run_dir)["budgets"]
    assert isinstance(rows, list)
    return next(r for r in rows if r["request"] == request and r["budget"].startswith("+"))


class Nights:
    """Runs recorded in one history, in order; a saturated one is run again (at most twice):
    an UNRELIABLE run is no baseline and no night of the gate, on a busy machine it can
    happen, and the flow needs each of its nights judged."""

    def __init__(self, tmp_path: Path) -> None:
        self.budgets = tmp_path / "budgets.yaml"
        self.budgets.write_text(BUDGETS)
        self.out = tmp_path / "reports"
        self.history = self.out / "history.sqlite"
        self.dirs: list[Path] = []
        self.results: list[subprocess.CompletedProcess[str]] = []

    def run(self, slow: bool) -> subprocess.CompletedProcess[str]:
        for _attempt in range(3):
            args = ["run", "--profile", "smoke", "--out", str(self.out)]
            args += ["--budgets", str(self.budgets), "--run-time", "6s", "--users", "4"]
            if slow:
                args += ["--target-slowdown", "3"]
            r = paybench(*args)
            run_dir = max((self.out / "runs").iterdir(), key=lambda p: p.name)
            assert "Traceback" not in r.stderr, r.stderr[-3000:]
            if r.returncode == 3:
                assert "saturated" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
                continue
            self.dirs.append(run_dir)
            self.results.append(r)
            return r
        raise AssertionError("three saturated runs in a row: the machine is overloaded")


def _says(r: subprocess.CompletedProcess[str]) -> str:
    return f"exit {r.returncode}\n{r.stdout[-4000:]}\n{r.stderr[-2000:]}"


def test_a_regression_fails_until_accepted_and_a_pin_brings_it_back(tmp_path: Path) -> None:
    nights = Nights(tmp_path)
    for i in range(NORMAL):
        r = nights.run(slow=False)
        assert r.returncode == 0, f"normal run {i + 1}: {_says(r)}"

    # The step: every slow night fails, the first as broken, the next as not accepted.
    for i in range(SLOW):
        r = nights.run(slow=True)
        assert r.returncode == 1, f"slow run {i + 1}: {_says(r)}"
        assert STATUS in r.stdout and re.search(r"p95 vs base.*FAIL", r.stdout), _says(r)
        if i > 0:
            message = _row(nights.dirs[-1], STATUS)["message"]
            assert "has not been accepted" in message, message
            assert f"paybench baseline accept {nights.dirs[NORMAL].name}" in message, message
    first_slow = nights.dirs[NORMAL]
    assert f"the last {NORMAL} comparable runs" in nights.results[NORMAL].stdout

    # The too-fine budget: inconclusive once the baseline has its spread, never a failure.
    for run_dir in nights.dirs[3:]:
        plans = _row(run_dir, PLANS)
        assert plans["status"] == "inconclusive", plans
        assert re.search(
            r"cannot detect a 1 % change with [\d,]+ samples; about [\d,]+ are "
            r"needed, a run of about \S+",
            plans["message"],
        ), plans["message"]
    md = (nights.dirs[3] / "summary.md").read_text(encoding="utf-8")
    assert "inconclusive" in md.splitlines()[0] and "cannot detect a 1 % change" in md, md

    # Accept the new level: the slow nights after it pass.
    r = paybench(
        "baseline",
        "accept",
        nights.dirs[-1].name,
        "--reason",
        "slower on purpose",
        "--history",
        str(nights.history),
    )
    assert r.returncode == 0, _says(r)
    assert f"from {first_slow.name}" in r.stdout, r.stdout
    for i in range(AFTER_ACCEPT):
        r = nights.run(slow=True)
        assert r.returncode == 0, f"slow run {i + 1} after the accept: {_says(r)}"
        assert _row(nights.dirs[-1], STATUS)["status"] == "pass"

    # Pin a run from before the step: the slow level fails again.
    before_step = nights.dirs[NORMAL - 1].name
    r = paybench("baseline", "pin", before_step, "--history", str(nights.history))
    assert r.returncode == 0, _says(r)
    for i in range(AFTER_PIN):
        r = nights.run(slow=True)
        assert r.returncode == 1, f"slow run {i + 1} after the pin: {_says(r)}"
        assert _row(nights.dirs[-1], STATUS)["status"] == "fail"

    # history list: the regression, the accepted level, the pin, with the reason.
    r = paybench("history", "list", "--history", str(nights.history))
    assert r.returncode == 0, _says(r)
    assert "accepted level" in r.stdout and "pinned" in r.stdout, r.stdout
    assert "slower on purpose" in r.stdout, r.stdout
    assert f"{before_step} is the baseline" in r.stdout, r.stdout

    # The trend report: the change at the first slow run, and the accepted level.
    trend_dir = tmp_path / "trend"
    r = paybench(
        "trend",
        "--history",
        str(nights.history),
        "--profile",
        "smoke",
        "--last",
        "30",
        "--out",
        str(trend_dir),
    )
    assert r.returncode == 0, _says(r)
    md = (trend_dir / "trend.md").read_text(encoding="utf-8")
    html = (trend_dir / "trend.html").read_text(encoding="utf-8")
    status_md = re.escape(r"GET /api/payments/v2/status/\[merchant\_order\_id\]")
    assert re.search(rf"\| {NORMAL + 1} \| `{first_slow.name}` \| {status_md} \| p95 \|", md), md
    assert f'data-run="{first_slow.name}" data-metric="p95"' in html
    assert "Accepted levels" in html and "slower on purpose" in html

    # compare: the last normal run against the last slow one, significant and worse.
    r = paybench("compare", before_step, nights.dirs[-1].name, "--history", str(nights.history))
    assert r.returncode == 0, _says(r)
    row = next(
        (line for line in r.stdout.splitlines() if line.startswith(STATUS) and " p95 " in line),
        None,
    )
    assert row is not None and "yes, worse" in row, r.stdout
    # Run folders work as well as run ids.
    r = paybench("compare", str(nights.dirs[0]), str(nights.dirs[1]))
    assert r.returncode == 0, _says(r)
