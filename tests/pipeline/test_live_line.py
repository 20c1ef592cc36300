"""The live progress line of `paybench run`: elapsed, remaining, users, req/s, worst budget."""

from __future__ import annotations

from harness.commands.run import live_line
from harness.core.budgets import parse_budgets
from harness.runfolder import LiveLine

BUDGETS = parse_budgets(
    """
version: 1
requests:
  "GET /api/health*":
    avg: "< 100ms"
  "GET /api/payments/v2/status/[merchant_order_id]":
    p95: "< 1s"
  "GET /api/plans":
    error_rate: "< 1%"
""",
    source="budgets.yaml",
)


def progress(per_request: dict) -> LiveLine:
    return LiveLine(
        elapsed_s=12.0, users=6, requests=480, failures=2, rps=41.5, per_request=per_request
    )


def test_the_budget_closest_to_its_limit_is_named() -> None:
    line = live_line(
        progress(
            {
                "GET /api/health": {"avg_ms": 4.0, "p95_ms": 9.0},
                "GET /api/health/redis": {"avg_ms": 61.0, "p95_ms": 80.0},
                "GET /api/payments/v2/status/[merchant_order_id]": {
                    "avg_ms": 30.0,
                    "p95_ms": 250.0,
                },
            }
        ),
        BUDGETS,
        run_time_s=30.0,
    )
    assert line == (
        "[   12s /   18s left] users    6 |     41.5 req/s | requests 480 | failures 2 | "
        "worst: GET /api/health/redis avg 61 ms (61% of < 100ms)"
    )


def test_no_budget_figure_yet_no_worst() -> None:
    line = live_line(
        progress({"GET /api/plans": {"avg_ms": None, "p95_ms": None}}), BUDGETS, run_time_s=None
    )
    assert line == "[   12s] users    6 |     41.5 req/s | requests 480 | failures 2"
