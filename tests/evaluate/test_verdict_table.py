"""The verdict table the CLI prints: golden lines for one literal run, wide and narrow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.evaluate import (
    TABLE_HEADER,
    evaluate,
    format_verdict_table,
    outcome_line,
    verdict_rows,
)
from harness.core.format import DASH
from harness.core.model import Baseline, Verdict
from tests.evaluate.literal_runs import request, run

BUDGETS = """version: 1
requests:
  "GET /api/plans": {avg: "< 300ms", p95: "< 90ms"}
  "GET /api/health*": {p95: "< 39ms"}
  "GET /api/subscriptions/current": {avg: "< 1s"}
run: {error_rate: "< 1%", rps: ">= 5"}
regressions:
  requests:
    "GET /api/plans": {p95: "+10% significant"}
  run: {error_rate: "+0.5 points"}
"""
BASELINE = Baseline(
    "median of the last 5 runs of profile nightly",
    ("r1", "r2", "r3", "r4", "r5"),
    {"GET /api/plans": {"p95": (80.0, 82.0, 81.0, 79.0, 80.5)}},
)


def verdict() -> Verdict:
    budgets = parse_budgets(BUDGETS, "budgets.yaml", known_keys=REQUEST_KEYS)
    result = run(
        request("GET /api/plans", np.arange(1, 101.0), failures=1),
        request("GET /api/health", np.arange(1, 41.0)),
    )
    return evaluate(result, budgets, BASELINE)


GOLDEN = Path(__file__).parent / "golden"


def golden(name: str, lines: list[str]) -> list[str]:
    """The golden file's lines; ``PAYBENCH_UPDATE_GOLDEN=1`` writes ``lines`` there first."""
    if os.environ.get("PAYBENCH_UPDATE_GOLDEN"):
        (GOLDEN / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return (GOLDEN / name).read_text(encoding="utf-8").splitlines()


def test_wide_table_has_one_line_per_result_with_the_request_first() -> None:
    lines = format_verdict_table(verdict(), width=140)
    assert lines == golden("verdict_140.txt", lines)


def test_narrow_table_puts_each_request_name_on_its_own_line() -> None:
    lines = format_verdict_table(verdict(), width=100)
    assert lines == golden("verdict_100.txt", lines)
    assert all(len(line) <= 100 for line in lines)


def test_rows_carry_the_columns_of_the_header() -> None:
    rows = verdict_rows(verdict())
    assert all(len(row) == len(TABLE_HEADER) for row in rows)
    subscription = "GET /api/subscriptions/current"
    assert rows[3] == [subscription, "avg", DASH, "< 1s", DASH, DASH, "NO SAMPLES"]


def test_outcome_lines() -> None:
    assert outcome_line(Verdict("PASS", ())) == "PASS: no budgets were set"
    unreliable = Verdict("UNRELIABLE", (), ("generator CPU at 97 %",))
    assert outcome_line(unreliable) == (
        "UNRELIABLE: the run is an unreliable measurement and cannot be judged; "
        "no budgets were set"
    )
    assert format_verdict_table(unreliable)[1:] == ["why: generator CPU at 97 %"]
    assert outcome_line(Verdict("INCOMPLETE", (), ("interrupted after 4 s",))) == (
        "INCOMPLETE: the run did not finish; no budgets were set"
    )
    assert format_verdict_table(Verdict("PASS", ())) == ["PASS: no budgets were set"]
