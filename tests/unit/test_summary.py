"""harness.summary: the judged run as summary.json (versioned), and its reader.

A literal run folder is read and judged by the real `read_run` and `evaluate`; the file is
written by `write_summary` and read back by `load_summary`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from harness.core.budgets import parse_budgets
from harness.core.evaluate import evaluate, exit_code
from harness.core.model import RunResult, Verdict
from harness.errors import EXIT_INTERRUPTED, EXIT_USAGE, FormatError
from harness.results import read_run
from harness.runfolder import SUMMARY_FILE
from harness.summary import (
    SUMMARY_FORMAT,
    SUMMARY_VERSION,
    build_summary,
    load_summary,
    write_summary,
)
from tests.unit.folders import (
    FLOW,
    INITIATE,
    PLANS,
    RUN_ID,
    Requests,
    paybench_folder,
    write_recording,
    write_run_json,
)

ROOT = Path(__file__).resolve().parents[2]
PLAIN_LOCUST = ROOT / "tests" / "fixtures" / "plain_locust"

# 25 plans a second from 2 s to 10 s, 10 to 99 ms; one failed. Initiate: 2 requests, both
# failed; one checkout flow; one plans request in the ramp.
REQUESTS = (
    Requests(PLANS, 1, (7.0,)),
    *(
        Requests(
            PLANS,
            n,
            tuple(float(10 + (k * 7 + n * 3) % 90) for k in range(25)),
            failures=1 if n == 5 else 0,
        )
        for n in range(2, 10)
    ),
    Requests(INITIATE, 4, (200.0, 300.0), failures=2),
    Requests(FLOW, 5, (900.0,)),
)

BUDGETS = parse_budgets(
    """
version: 1
requests:
  "GET /api/plans":
    p95: "< 100ms"
    avg: "< 50ms"
  "POST /api/payments/v2/initiate":
    error_rate: "< 1%"
  "GET /api/subscriptions/current":
    p95: "< 1s"
run:
  error_rate: "< 5%"
  rps: ">= 10"
""",
    source="budgets.yaml",
)


def judged(run_dir: Path) -> tuple[RunResult, Verdict]:
    result = read_run(run_dir, BUDGETS.warmup_s)
    return result, evaluate(result, BUDGETS)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    run_dir = paybench_folder(tmp_path_factory.mktemp("run"), REQUESTS)
    result, verdict = judged(run_dir)
    path = write_summary(run_dir, result, verdict, exit_code(verdict))
    return json.loads(path.read_text()), path


def rows_by_path(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key_path"]: row for row in summary["verdict"]["budgets"]}


def test_the_file_is_versioned_and_in_the_run_folder(written: tuple[dict, Path]) -> None:
    summary, path = written
    assert path.name == SUMMARY_FILE
    assert (summary["format"], summary["format_version"]) == ("paybench-summary", 1)
    assert (SUMMARY_FORMAT, SUMMARY_VERSION) == ("paybench-summary", 1)
    assert list(summary) == [
        "format",
        "format_version",
        "run",
        "verdict",
        "measurement",
        "incomplete",
        "incomplete_reason",
        "unreliable_reasons",
        "steady_state",
        "total",
        "whole_run",
        "requests",
        "ramp",
        "locust",
        "abort",
    ]
    assert summary["abort"] is None  # no abort rule watched the run
    # Written for people too: indented, one key a line.
    assert path.read_text().startswith('{\n  "format": "paybench-summary",\n')


def test_the_run_and_its_window(written: tuple[dict, Path]) -> None:
    summary, _ = written
    run = summary["run"]
    assert (run["run_id"], run["profile"], run["users"], run["target"]) == (
        RUN_ID,
        "smoke",
        4,
        "reference",
    )
    assert run["extra"] == {"target_overrides": {}}
    assert summary["measurement"] == "paybench-hdr"
    assert summary["steady_state"] == {"start_s": 2.0, "end_s": 10.0}
    assert (summary["incomplete"], summary["incomplete_reason"]) == (False, None)
    assert summary["unreliable_reasons"] == []


def test_the_verdict_and_its_exit_code(written: tuple[dict, Path]) -> None:
    verdict = written[0]["verdict"]
    assert (verdict["outcome"], verdict["exit_code"], verdict["reasons"]) == ("FAIL", 1, [])


def test_every_budget_result_has_a_row(written: tuple[dict, Path]) -> None:
    rows = rows_by_path(written[0])
    assert {path: (row["request"], row["metric"], row["status"]) for path, row in rows.items()} == {
        'requests."GET /api/plans".p95': ("GET /api/plans", "p95", "pass"),
        'requests."GET /api/plans".avg': ("GET /api/plans", "avg", "fail"),
        'requests."POST /api/payments/v2/initiate".error_rate': (
            "POST /api/payments/v2/initiate",
            "error_rate",
            "fail",
        ),
        'requests."GET /api/subscriptions/current".p95': (
            "GET /api/subscriptions/current",
            "p95",
            "no samples",
        ),
        "run.error_rate": ("Aggregated", "error_rate", "pass"),
        "run.rps": ("Aggregated", "rps", "pass"),
    }
    avg = rows['requests."GET /api/plans".avg']
    assert avg == {
        "key_path": 'requests."GET /api/plans".avg',
        "request": "GET /api/plans",
        "metric": "avg",
        "budget": "< 50ms",
        "status": "fail",
        "measured": 55.15,  # exact: the mean of the 200 literal latencies
        "limit": 50.0,
        "margin_pct": -10.3,
        "ci_low": avg["ci_low"],
        "ci_high": avg["ci_high"],
        "marginal": False,
        "baseline": None,
        "message": "avg 55.1 ms breaks avg < 50.0 ms",
    }
    never = rows['requests."GET /api/subscriptions/current".p95']
    assert (never["measured"], never["limit"], never["margin_pct"]) == (None, 1000.0, None)
    assert never["message"] == "no samples: 'GET /api/subscriptions/current' never ran in this run"
    assert rows["run.rps"]["measured"] == 25.25  # 202 requests (no flow) over 8 s


def test_latency_budgets_carry_their_confidence_interval(written: tuple[dict, Path]) -> None:
    rows = rows_by_path(written[0])
    for path in ('requests."GET /api/plans".p95', 'requests."GET /api/plans".avg'):
        row = rows[path]
        assert row["ci_low"] < row["measured"] < row["ci_high"], path
    # The interval of the p95 lies below its limit: a clear pass, not a marginal one.
    p95 = rows['requests."GET /api/plans".p95']
    assert (p95["ci_high"] < p95["limit"], p95["marginal"]) == (True, False)
    for path in ("run.error_rate", "run.rps"):
        assert (rows[path]["ci_low"], rows[path]["ci_high"]) == (None, None), path


def test_the_requests_total_whole_run_and_ramp(written: tuple[dict, Path]) -> None:
    summary = written[0]
    requests = {row["key"]: row for row in summary["requests"]}
    plans = requests["GET /api/plans"]
    assert (plans["count"], plans["failures"], plans["error_rate_pct"], plans["rps"]) == (
        200,
        1,
        0.5,
        25.0,
    )
    assert (plans["min_ms"], plans["avg_ms"], plans["max_ms"]) == (10.0, 55.15, 99.0)
    assert plans["p95_ms"] == pytest.approx(94.0, rel=1e-3)
    assert {"p50_ms", "p90_ms", "p95_ms", "p99_ms", "p99_9_ms"} <= set(plans)
    assert requests["FLOW checkout: initiate -> confirmed"]["count"] == 1
    assert (summary["total"]["key"], summary["total"]["count"]) == ("Aggregated", 202)
    assert summary["whole_run"]["count"] == 203  # the ramp's request too
    ramp = {row["key"]: row["count"] for row in summary["ramp"]}
    assert ramp == {
        "FLOW checkout: initiate -> confirmed": 0,
        "GET /api/plans": 1,
        "POST /api/payments/v2/initiate": 0,
    }
    assert summary["locust"] == []  # no Locust CSV in this folder


def test_the_file_reads_back_as_written(written: tuple[dict, Path]) -> None:
    summary, path = written
    assert load_summary(path) == summary


def test_build_summary_is_what_write_summary_writes(tmp_path: Path) -> None:
    run_dir = paybench_folder(tmp_path / "run", REQUESTS)
    result, verdict = judged(run_dir)
    built = build_summary(result, verdict, exit_code(verdict))
    path = write_summary(run_dir, result, verdict, exit_code(verdict))
    assert load_summary(path) == json.loads(json.dumps(built))


def test_an_interrupted_run_keeps_its_exit_code_and_why(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    write_run_json(run_dir, status="incomplete", incomplete_reason="interrupted (Ctrl-C)")
    write_recording(run_dir, REQUESTS)
    result, verdict = judged(run_dir)
    summary = load_summary(write_summary(run_dir, result, verdict, EXIT_INTERRUPTED))
    assert (summary["verdict"]["outcome"], summary["verdict"]["exit_code"]) == (
        "INCOMPLETE",
        130,
    )
    assert summary["verdict"]["reasons"] == ["interrupted (Ctrl-C)"]
    assert (summary["incomplete"], summary["incomplete_reason"]) == (
        True,
        "interrupted (Ctrl-C)",
    )


def test_a_plain_locust_folder_says_it_was_measured_by_locust(tmp_path: Path) -> None:
    run_dir = tmp_path / "plain"
    shutil.copytree(PLAIN_LOCUST, run_dir)
    result, verdict = judged(run_dir)
    summary = load_summary(write_summary(run_dir, result, verdict, exit_code(verdict)))
    assert summary["measurement"] == "locust-csv"
    assert summary["whole_run"] is None
    assert {row["source"] for row in summary["requests"]} == {"locust"}
    assert summary["locust"] == summary["requests"]
    # Without histograms there is no confidence interval, for any budget.
    assert all(
        (row["ci_low"], row["ci_high"]) == (None, None) for row in summary["verdict"]["budgets"]
    )
    initiate = next(r for r in summary["requests"] if r["key"] == "POST /api/payments/v2/initiate")
    assert (initiate["p95_ms"], initiate["p90_ms"]) == (120.0, 100.0)


# -- the reader ------------------------------------------------------------------------------


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / SUMMARY_FILE
    path.write_text(json.dumps(doc))
    return path


def refusal(path: Path) -> str:
    with pytest.raises(FormatError) as info:
        load_summary(path)
    assert info.value.exit_code == EXIT_USAGE
    return info.value.message


def test_a_newer_version_is_refused_with_upgrade_paybench(tmp_path: Path) -> None:
    path = write(tmp_path, {"format": "paybench-summary", "format_version": 2, "verdict": {}})
    assert refusal(path) == (
        f"{path}: format version 2 is newer than this paybench understands (1); upgrade paybench"
    )


@pytest.mark.parametrize(
    ("doc", "shown"),
    [
        ({"format": "paybench-summary"}, "null"),
        ({"format": "paybench-summary", "format_version": None}, "null"),
        ({"format": "paybench-summary", "format_version": 0}, "0"),
        ({"format": "paybench-summary", "format_version": "2"}, "the text '2'"),
        ({"format": "paybench-summary", "format_version": True}, "true"),
    ],
    ids=["absent", "null", "zero", "a text", "a boolean"],
)
def test_a_version_that_is_not_one_is_a_damaged_file(
    tmp_path: Path, doc: dict[str, Any], shown: str
) -> None:
    """Guards: summary.json has carried its version since the first one, so a file without
    a usable one is damaged; it is never told to "upgrade paybench", nor read as version 1."""
    path = write(tmp_path, doc)
    assert refusal(path) == (
        f"{path}: format_version must be a positive integer, got {shown}; "
        "the file is damaged or was edited"
    )


@pytest.mark.parametrize(
    "doc",
    [{"format_version": 1}, {"format": "paybench-run", "format_version": 1}, [1, 2]],
    ids=["no format", "another format", "not an object"],
)
def test_a_file_that_is_not_a_summary(tmp_path: Path, doc: Any) -> None:
    path = write(tmp_path, doc)
    assert refusal(path) == f"{path}: not a paybench summary.json"


def test_a_summary_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / SUMMARY_FILE
    path.write_text('{"format": "paybench-summary", ')
    message = refusal(path)
    assert message.startswith(f"{path}: ") and "\n" not in message
