"""``summary.json``: the judged run, in a versioned, human-readable format.

Format history (``format_version``):
1: first version. Every summary.json has carried ``format`` and ``format_version`` since:
   a file without a positive whole version is damaged, not older. Added since, readable
   by every version-1 reader: the budget status ``inconclusive`` (a regression budget the
   run has too few samples to judge), the budget status ``no data`` (a server budget whose
   source stopped answering or gave no samples in the window: broken) and ``verdict.notes``
   (what the history says beside the budgets, such as a new level nobody accepted; an
   empty list when nothing), and ``abort`` (null for a run no abort rule watched; else
   ``aborted``, and for an aborted run the rule, request, value and message:
   harness.core.abort.AbortFacts).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness.core import metrics as registry
from harness.core.abort import abort_facts
from harness.core.model import BudgetResult, RequestStats, RunResult, Verdict
from harness.errors import FormatError
from harness.inputs import load_json, show
from harness.runfolder import SUMMARY_FILE, write_json_atomically

SUMMARY_FORMAT = "paybench-summary"
SUMMARY_VERSION = 1

# The percentiles the history keeps, under the same names (p50_ms ... p99_9_ms).
PERCENTILES = tuple(
    (str(registry.metric(registry.percentile_name(p)).column), p)
    for p in registry.STORED_PERCENTILES
)


def _round(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(v, digits)


def request_row(r: RequestStats) -> dict[str, Any]:
    row: dict[str, Any] = {
        "key": r.key,
        "type": r.request_type,
        "name": r.name,
        "count": r.count,
        "failures": r.failures,
        "cut_off": r.cut_off,
        "error_rate_pct": _round(r.error_rate_pct),
        "rps": _round(r.rps),
        "avg_ms": _round(r.avg_ms),
        "min_ms": _round(r.min_ms),
        "max_ms": _round(r.max_ms),
    }
    for column, p in PERCENTILES:
        row[column] = _round(r.percentile_ms(p))
    row["source"] = r.source
    return row


def budget_row(b: BudgetResult) -> dict[str, Any]:
    return {
        "key_path": b.budget.key_path,
        "request": b.request_key,
        "metric": b.budget.metric,
        "budget": b.budget.text,
        "status": b.status,
        "measured": _round(b.measured),
        "limit": b.limit,
        "margin_pct": _round(b.margin_pct, 2),
        "ci_low": _round(b.ci_low),
        "ci_high": _round(b.ci_high),
        "marginal": b.marginal,
        "baseline": b.baseline,
        "message": b.message,
    }


def build_summary(result: RunResult, verdict: Verdict, exit_code: int) -> dict[str, Any]:
    return {
        "format": SUMMARY_FORMAT,
        "format_version": SUMMARY_VERSION,
        "run": asdict(result.meta),
        "verdict": {
            "outcome": verdict.outcome,
            "exit_code": exit_code,
            "reasons": list(verdict.reasons),
            "notes": list(verdict.notes),
            "budgets": [budget_row(b) for b in verdict.results],
        },
        "measurement": "paybench-hdr" if result.exact else "locust-csv",
        "incomplete": result.incomplete,
        "incomplete_reason": result.incomplete_reason,
        "unreliable_reasons": list(result.unreliable_reasons),
        "steady_state": {
            "start_s": _round(result.steady_start_s),
            "end_s": _round(result.steady_end_s),
        },
        "total": request_row(result.total),
        "whole_run": request_row(result.whole_run) if result.whole_run else None,
        "requests": [request_row(r) for r in result.requests],
        "ramp": [request_row(r) for r in result.ramp],
        "locust": [request_row(r) for r in result.locust_requests],
        "abort": facts.to_json() if (facts := abort_facts(result.meta.extra)) else None,
    }


def write_summary(run_dir: Path, result: RunResult, verdict: Verdict, exit_code: int) -> Path:
    data = build_summary(result, verdict, exit_code)
    return write_json_atomically(
        run_dir / SUMMARY_FILE, data, indent=2, default=str, allow_nan=True
    )


def load_summary(path: Path) -> dict[str, Any]:
    data = load_json(path)
    if not isinstance(data, dict) or data.get("format") != SUMMARY_FORMAT:
        raise FormatError(f"{path}: not a paybench summary.json")
    version = data.get("format_version")
    # Every summary.json paybench wrote carries its version: one without is damaged, and
    # must not be told to upgrade paybench (nor read as version 1).
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(
            f"{path}: format_version must be a positive integer, got {show(version)}; "
            "the file is damaged or was edited"
        )
    if version > SUMMARY_VERSION:
        raise FormatError(
            f"{path}: format version {version} is newer than this paybench understands "
            f"({SUMMARY_VERSION}); upgrade paybench"
        )
    return data
