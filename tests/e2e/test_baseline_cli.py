"""`paybench baseline accept|pin` end to end: a calibrated step, failing nights, a decision,
passing nights. The real CLI, real Locust, the built-in target on loopback; each night a
few seconds of the nightly profile with every user spawned at once.

The step is `--target-set latency_factor.checkout=2`: every initiate takes twice as long,
end to end. The budget is the initiate's average, whose interval is narrow enough after a
few seconds to tell a doubling from noise (a p95 needs minutes: see the inconclusive test).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.helpers import load_summary, paybench

pytestmark = pytest.mark.e2e

INITIATE = "POST /api/payments/v2/initiate"
BUDGETS = f"""\
version: 1
steady_state:
  warmup: 1s
baseline:
  runs: 5
regressions:
  requests:
    "{INITIATE}":
      avg: "+20% significant"
"""
STEP = ("--target-set", "latency_factor.checkout=2")


def _night(out: Path, budgets: Path, *args: str, run_time: str = "8s") -> tuple[int, str, Path]:
    r = paybench(
        "run",
        "--profile",
        "nightly",
        "--run-time",
        run_time,
        "--spawn-rate",
        "40",
        "--budgets",
        str(budgets),
        "--out",
        str(out),
        *args,
    )
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    run_dir = max((out / "runs").iterdir(), key=lambda p: p.name)
    return r.returncode, r.stdout, run_dir


def _regression(run_dir: Path) -> dict:
    rows = load_summary(run_dir)["verdict"]["budgets"]
    return next(r for r in rows if r["request"] == INITIATE and r["budget"].startswith("+"))


def test_a_step_fails_until_accepted_then_a_pin_holds_runs_to_the_pinned_level(
    tmp_path: Path,
) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    out = tmp_path / "reports"
    history = out / "history.sqlite"

    # Four nights as built: the first has no baseline yet, the others hold (a rise could
    # not be told from noise before 3 baseline runs: never a failure).
    normal = [_night(out, budgets) for _ in range(4)]
    assert [code for code, _, _ in normal] == [0] * 4, [s[-2000:] for _, s, _ in normal]
    assert _regression(normal[0][2])["status"] == "skipped"

    # The step: both nights fail, the second still on the regression that began the first.
    stepped = [_night(out, budgets, *STEP) for _ in range(2)]
    assert [code for code, _, _ in stepped] == [1, 1], [s[-3000:] for _, s, _ in stepped]
    first_step = stepped[0][2].name
    for _, stdout, run_dir in stepped:
        assert re.search(r"avg vs base\s.*FAIL", stdout), stdout[-3000:]
        assert _regression(run_dir)["status"] == "fail"
    held = _regression(stepped[1][2])["message"]
    assert f"the regression since {first_step} (1 run) has not been accepted" in held
    assert f"`paybench baseline accept {first_step} --reason TEXT`" in held
    assert f"paybench baseline accept {first_step} --reason" in " ".join(stepped[1][1].split())

    # Accepted by a prefix of the second failing run: the level starts where the step did.
    reason = ("--reason", "checkout now signs twice", "--history", str(history))
    r = paybench("baseline", "accept", stepped[1][2].name[:-2], *reason)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(
        f"accepted the level from {first_step}, where the regression of {stepped[1][2].name} "
        f"began in {history}: checkout now signs twice"
    )
    listed = paybench("history", "list", "--history", str(history))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(first_step))
    assert "accepted level" in row
    assert "accepted regression" in listed.stdout
    assert listed.stdout.rstrip().endswith(
        f"the level from {first_step} (named {stepped[1][2].name}): checkout now signs twice"
    )

    # Passing nights at the accepted level.
    code, stdout, run_dir = _night(out, budgets, *STEP)
    assert code == 0, stdout[-3000:]
    assert "level accepted" in _regression(run_dir)["message"]

    # Pinned to the last night before the step, the new level fails again ...
    pinned = normal[3][2].name
    r = paybench("baseline", "pin", pinned, "--history", str(history))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"pinned {pinned} as the baseline in {history}")
    code, stdout, run_dir = _night(out, budgets, *STEP)
    assert code == 1, stdout[-3000:]
    assert f"the pinned run {pinned} and 3 comparable runs of its level" in (
        _regression(run_dir)["message"]
    )

    # ... and pinned to a night of the new level, it passes.
    r = paybench("baseline", "pin", stepped[0][2].name, "--history", str(history))
    assert r.returncode == 0, r.stderr
    code, stdout, _ = _night(out, budgets, *STEP)
    assert code == 0, stdout[-3000:]


def test_a_decision_on_a_missing_history_or_run_is_one_line_exit_2(tmp_path: Path) -> None:
    r = paybench("baseline", "pin", "nope", "--history", str(tmp_path / "none.sqlite"), timeout=60)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr.startswith("paybench: error: ") and "none.sqlite" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = paybench("baseline", "accept", "x", "--history", str(tmp_path / "h.sqlite"), timeout=60)
    assert r.returncode == 2 and "--reason" in r.stderr  # click: the reason is required


def test_too_few_samples_for_the_nightly_p95_budget_says_inconclusive(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    # The nightly's own budgets: 15 s is the shortest run in which every name they budget
    # (the health checks every 5 s among them) has samples in the steady state.
    args = ("run", "--profile", "nightly", "--run-time", "15s", "--spawn-rate", "40")
    runs = [paybench(*args, "--out", str(out)) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], [r.stdout[-2000:] for r in runs]
    stdout = runs[1].stdout
    assert re.search(r"p95 vs base\s.*INCONCLUSIVE", stdout), stdout[-3000:]
    found = re.search(
        r"cannot detect a 10 % change with (\d+) samples; about ([\d,]+) are needed, a run "
        r"of about ([\d.]+ s|\d+ min \d+ s)",
        " ".join(stdout.split()),
    )
    assert found, stdout[-3000:]
    assert int(found.group(2).replace(",", "")) > int(found.group(1))
    assert "1 inconclusive" in stdout.splitlines()[0]
    run_dir = max((out / "runs").iterdir(), key=lambda p: p.name)
    md = (run_dir / "summary.md").read_text()
    assert "**Inconclusive budgets**" in md and "cannot detect a 10 % change" in md
