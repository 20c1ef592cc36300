"""`paybench run` and `paybench check` end to end: real CLI, real Locust, the reference target."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.cpu_load import cpu_burners, needs_schedstat
from tests.e2e.helpers import ROOT, load_summary, only_run_dir, paybench

pytestmark = pytest.mark.e2e


def test_smoke_profile_passes_and_writes_summary(out: Path) -> None:
    r = paybench("run", "--out", str(out), "--no-history")
    assert r.returncode == 0, r.stdout + r.stderr
    run_dir = only_run_dir(out)
    summary = load_summary(run_dir)
    assert summary["verdict"]["outcome"] == "PASS"
    assert summary["format_version"] == 1
    assert summary["run"]["profile"] == "smoke"
    assert summary["run"]["target"] == "reference"
    assert summary["run"]["host"].startswith("http://127.0.0.1:")
    assert summary["measurement"] == "paybench-hdr"
    # Regression: with no --profile the smoke profile's budget overrides (no tails) apply too.
    metrics = {b["metric"] for b in summary["verdict"]["budgets"]}
    assert "avg" in metrics and not metrics & {"p95", "p99"}, metrics
    keys = {row["key"] for row in summary["requests"]}
    assert "POST /api/payments/v2/initiate" in keys
    assert "FLOW checkout: initiate -> confirmed" in keys
    for row in summary["requests"]:
        assert row["count"] > 0 and row["p99_9_ms"] is not None, row
    # the verdict table and where the report is
    assert "PASS" in r.stdout
    assert f"report:     {run_dir / 'report.html'}" in r.stdout
    assert "Traceback" not in r.stderr
    for name in (
        "run.json",
        "locust_stats.csv",
        "paybench.hdr.json",
        "report.html",
        "summary.md",
        "junit.xml",
        "budgets.yaml",
    ):
        assert (run_dir / name).is_file(), name
    # live progress went to stderr while it ran
    assert re.search(r"users +\d+ \| +[\d.]+ req/s", r.stderr), r.stderr[-2000:]


def test_impossible_budget_exits_1_and_names_it(out: Path, tmp_path: Path) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        'version: 1\nrequests:\n  "GET /api/plans":\n    p95: "< 0.001ms"\n'
        '  "POST /api/payments/v2/initiate":\n    avg: "< 2s"\n'
    )
    r = paybench("run", "--budgets", str(budgets), "--out", str(out), "--no-history")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL" in r.stdout
    assert re.search(r"GET /api/plans\s+p95", r.stdout), r.stdout
    summary = load_summary(only_run_dir(out))
    broken = [b for b in summary["verdict"]["budgets"] if b["status"] != "pass"]
    assert [(b["request"], b["metric"]) for b in broken] == [("GET /api/plans", "p95")]


def test_slowed_down_target_breaks_the_checklist(out: Path) -> None:
    # 150x: every health route is far past 100 ms on any draw of a short run's samples.
    r = paybench("run", "--target-slowdown", "150", "--out", str(out), "--no-history")
    assert r.returncode == 1, r.stdout + r.stderr
    summary = load_summary(only_run_dir(out))
    broken = {
        (b["request"], b["metric"]) for b in summary["verdict"]["budgets"] if b["status"] == "fail"
    }
    assert ("GET /api/health", "avg") in broken, broken
    assert ("GET /api/plans", "avg") in broken, broken


def test_unreachable_host_exits_3(out: Path) -> None:
    from harness.locust_run import free_loopback_port

    url = f"http://127.0.0.1:{free_loopback_port()}"
    r = paybench("run", "--host", url, "--out", str(out), "--no-history", timeout=30)
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and url in lines[0] and "did not answer" in lines[0], r.stderr


def test_unhealthy_host_exits_3(out: Path) -> None:
    from harness.target.process import ReferenceTarget

    with ReferenceTarget(overrides={"down": ["database"]}) as target:
        r = paybench("run", "--host", target.url, "--out", str(out), "--no-history", timeout=30)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "unhealthy" in r.stderr and target.url in r.stderr
    assert "Traceback" not in r.stderr


def test_not_allowed_host_exits_2_before_any_request(out: Path) -> None:
    r = paybench("run", "--host", "http://staging.payments.invalid", "--out", str(out), timeout=30)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.count("\n") == 1
    assert "staging.payments.invalid" in r.stderr and "--allow-host" in r.stderr
    assert not (out / "runs").exists()  # nothing started, nothing written


def test_unknown_profile_exits_2(out: Path) -> None:
    r = paybench("run", "--profile", "smok", "--out", str(out), timeout=30)
    assert r.returncode == 2
    assert "profile 'smok' does not exist" in r.stderr and "smoke" in r.stderr


def test_check_judges_a_plain_locust_csv_folder(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(ROOT / "tests" / "fixtures" / "plain_locust", folder)
    r = paybench("check", str(folder), "--budgets", str(folder / "budgets.yaml"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Locust's CSV" in r.stdout  # says the figures are Locust's rounded ones
    assert (folder / "summary.json").is_file() and (folder / "report.html").is_file()
    summary = load_summary(folder)
    assert summary["measurement"] == "locust-csv"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "reports"


@pytest.mark.parametrize("burners", [0, pytest.param(2, marks=needs_schedstat)])
def test_a_saturated_generator_is_an_unreliable_measurement(
    out: Path, tmp_path: Path, burners: int
) -> None:
    """UNRELIABLE (exit 3) for a CPU-bound generator, also when other processes take half of
    its core (starved: its CPU % alone would read about 50 % and the run would pass)."""
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text('version: 1\nrequests:\n  "GET /api/plans":\n    avg: "< 300ms"\n')
    burner = Path(__file__).parent / "locustfile_cpu_burner.py"
    with cpu_burners(burners):
        r = paybench(
            "run",
            "--locustfile",
            str(burner),
            "--budgets",
            str(budgets),
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--run-time",
            "8s",
            "--out",
            str(out),
            "--no-history",
        )
    assert r.returncode == 3, r.stdout + r.stderr
    assert "UNRELIABLE: the run is an unreliable measurement" in r.stdout
    assert "load generator process local was saturated" in r.stdout, r.stdout
    summary = load_summary(only_run_dir(out))
    assert summary["verdict"]["outcome"] == "UNRELIABLE"
    assert summary["run"]["profile"] is None  # our profiles set our scenarios' options only


def test_report_rerenders_against_the_budgets_the_run_was_judged_with(
    out: Path, tmp_path: Path
) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text('version: 1\nrequests:\n  "GET /api/plans":\n    p95: "< 0.001ms"\n')
    r = paybench(
        "run", "--budgets", str(budgets), "--run-time", "4s", "--out", str(out), "--no-history"
    )
    assert r.returncode == 1, r.stdout + r.stderr
    run_dir = only_run_dir(out)
    before = (run_dir / "junit.xml").read_text()
    # Regression: `paybench report` once judged with ./budgets.yaml, not the run's own copy.
    r = paybench("report", str(run_dir), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (run_dir / "junit.xml").read_text() == before
    assert 'failures="1"' in before


def test_report_of_a_plain_locust_folder_needs_budgets(tmp_path: Path) -> None:
    folder = tmp_path / "plain"
    shutil.copytree(ROOT / "tests" / "fixtures" / "plain_locust", folder)
    (folder / "budgets.yaml").unlink()
    r = paybench("report", str(folder), timeout=60)
    assert r.returncode == 2
    assert "pass --budgets FILE" in r.stderr and "Traceback" not in r.stderr
