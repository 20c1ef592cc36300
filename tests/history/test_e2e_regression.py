"""A real regression end to end: a dozen short runs against the reference target, later ones with
the target's slowdown on. The trend report marks the change at the right run, `paybench
compare` calls it significant, and `paybench run` with a regression budget exits 1 naming
it. Real CLI, real Locust, loopback only; each run is a few seconds (about 3 minutes in all).
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
RUNS = 12
SLOW_FROM = 7  # runs 1-7 as built, runs 8-12 with the target 3x slower
BUDGETS = """\
version: 1
steady_state:
  warmup: 0s
baseline:
  runs: 5
regressions:
  requests:
    "GET /api/payments/v2/status/[merchant_order_id]":
      p95: "+50% significant"
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


def test_a_slowdown_is_found_by_trend_compare_and_the_regression_budget(tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    out = tmp_path / "reports"
    history = out / "history.sqlite"
    results = []
    for i in range(RUNS):
        args = [
            "run",
            "--profile",
            "smoke",
            "--out",
            str(out),
            "--budgets",
            str(budgets),
            "--run-time",
            "6s",
            "--users",
            "4",
        ]
        if i >= SLOW_FROM:
            args += ["--target-slowdown", "3"]
        results.append(paybench(*args))
    run_dirs = sorted((out / "runs").iterdir())
    assert len(run_dirs) == RUNS
    outcomes = [_outcome(d) for d in run_dirs]
    # A run whose load generator was saturated is UNRELIABLE (exit 3): it is no baseline
    # and no point of the trend. On a busy machine one may happen; the rest must hold.
    reliable = [i for i, o in enumerate(outcomes) if o != "UNRELIABLE"]
    for i, r in enumerate(results):
        if i not in reliable:
            assert r.returncode == 3 and "saturated" in r.stdout, r.stdout[-2000:]
    assert sum(i < SLOW_FROM for i in reliable) >= 3, outcomes

    # The normal runs: the regression budget holds (or has no baseline yet, for the first).
    for i in (i for i in reliable if i < SLOW_FROM):
        r = results[i]
        assert r.returncode == 0, f"run {i + 1}:\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"
    # The first slow run: exit 1, naming the budget and the baseline it broke against.
    first_slow = next(i for i in reliable if i >= SLOW_FROM)
    r = results[first_slow]
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-2000:]
    assert STATUS in r.stdout
    assert re.search(r"p95 vs base.*FAIL", r.stdout), r.stdout[-3000:]
    assert "last 5 comparable runs" in r.stdout
    assert "Traceback" not in r.stderr

    # The trend report (reliable runs only) marks the change at the first slow run.
    trend_dir = tmp_path / "trend"
    r = paybench(
        "trend",
        "--history",
        str(history),
        "--profile",
        "smoke",
        "--last",
        "30",
        "--out",
        str(trend_dir),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    md = (trend_dir / "trend.md").read_text(encoding="utf-8")
    html = (trend_dir / "trend.html").read_text(encoding="utf-8")
    slow_id = run_dirs[first_slow].name
    number = reliable.index(first_slow) + 1
    status_md = re.escape(r"GET /api/payments/v2/status/\[merchant\_order\_id\]")
    assert re.search(rf"\| {number} \| `{slow_id}` \| {status_md} \| p95 \|", md), md
    assert f'data-run="{slow_id}" data-metric="p95"' in html

    # compare: the last normal run against the last slow one, significant and worse.
    base = run_dirs[max(i for i in reliable if i < SLOW_FROM)].name
    candidate = run_dirs[max(reliable)].name
    r = paybench("compare", base, candidate, "--history", str(history))
    assert r.returncode == 0, r.stdout + r.stderr
    row = next(
        (line for line in r.stdout.splitlines() if line.startswith(STATUS) and " p95 " in line),
        None,
    )
    assert row is not None, r.stdout
    assert "yes, worse" in row, row

    # Run folders work as well as run ids.
    r = paybench("compare", str(run_dirs[0]), str(run_dirs[1]))
    assert r.returncode == 0, r.stdout + r.stderr
