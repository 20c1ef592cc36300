"""The trend report: context from literal stored rows, and the written trend.html/trend.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.commands.trend import trend_report
from harness.core.model import AGGREGATE_KEY, Budget, Budgets, RegressionBudget
from harness.errors import ConfigError
from harness.report.trend import build_trend_context, write_trend_report
from harness.store import HistoryStore, RequestMetrics, RunRow
from tests.history.historydata import INITIATE, make_run, nightly_id, nightly_start

EVIL = 'GET /api/<script>alert("x")</script>|pipe'


def _row(i: int, **kw: object) -> RunRow:
    fields = {
        "run_id": nightly_id(i),
        "started_at": nightly_start(i),
        "profile": "nightly",
        "users": 10,
        "target": "reference",
        "host": "http://127.0.0.1:1",
        "scenario_version": "1",
        "git_commit": f"c{i:04d}",
        "paybench_version": "0.1.0",
        "outcome": "PASS",
        "incomplete": False,
        "duration_s": 60.0,
        "requests": 3000,
        "failures": 0,
        "error_rate_pct": 0.0,
        "rps": 50.0,
        "p95_ms": 100.0,
    }
    fields.update(kw)
    return RunRow(**fields)  # type: ignore[arg-type]


def _metrics(run_id: str, key: str, p95: float, error_rate: float = 0.0) -> RequestMetrics:
    return RequestMetrics(
        run_id=run_id,
        request_key=key,
        count=3000,
        failures=int(30 * error_rate),
        duration_s=60.0,
        rps=50.0,
        error_rate_pct=error_rate,
        avg_ms=p95 / 2,
        min_ms=1.0,
        max_ms=p95 * 3,
        p50_ms=p95 / 2,
        p90_ms=p95 * 0.9,
        p95_ms=p95,
        p99_ms=p95 * 1.5,
        p99_9_ms=p95 * 2,
    )


# p95 of the payment request: 20 runs around 200 ms, +25 % from run index 14 on; the
# plans request stays flat. Literal values (3 % noise, rounded) so the test reads as data.
P95 = [
    201.0,
    196.0,
    204.0,
    199.0,
    203.0,
    195.0,
    200.0,
    206.0,
    198.0,
    202.0,
    197.0,
    203.0,
    199.0,
    201.0,
    249.0,
    255.0,
    246.0,
    252.0,
    250.0,
    247.0,
]
PLANS_P95 = [60.0, 61.0, 59.0, 60.5, 59.5] * 4

BUDGETS = Budgets(
    source="budgets.yaml",
    budgets=(
        Budget(
            'requests."POST /api/payments/v2/initiate".p95', INITIATE, "p95", "<", 300.0, "< 300ms"
        ),
        Budget('requests."GET /api/*".p95', "GET /api/*", "p95", "<", 100.0, "< 100ms"),
    ),
    regressions=(
        RegressionBudget(
            'regressions.requests."POST /api/payments/v2/initiate".p95',
            INITIATE,
            "p95",
            10.0,
            True,
            True,
            "+10% significant",
        ),
    ),
)


def _data() -> tuple[list[RunRow], list[RequestMetrics]]:
    runs = [_row(i) for i in range(20)]
    metrics = []
    for i, r in enumerate(runs):
        metrics.append(_metrics(r.run_id, INITIATE, P95[i]))
        metrics.append(_metrics(r.run_id, EVIL, PLANS_P95[i]))
        metrics.append(_metrics(r.run_id, AGGREGATE_KEY, P95[i] * 0.8))
    return runs, metrics


def test_context_marks_the_step_and_measures_budget_use() -> None:
    runs, metrics = _data()
    ctx = build_trend_context(runs, metrics, BUDGETS, baseline_runs=5)

    assert [rt.request_key for rt in ctx.requests] == [AGGREGATE_KEY, INITIATE, EVIL]
    initiate = ctx.requests[1].metric("p95")
    assert initiate is not None
    [mark] = initiate.change_points
    assert (mark.index, mark.run_number, mark.run_id) == (14, 15, nightly_id(14))
    assert mark.worse and mark.change == pytest.approx(24.7, abs=0.05)
    assert mark.p_value < 0.001
    assert ctx.requests[2].metric("p95").change_points == ()
    # Latest (247) vs the median of the 5 runs before it (250): no significant change.
    assert initiate.latest == 247.0 and initiate.baseline == 250.0 and initiate.baseline_n == 5
    assert initiate.change == pytest.approx(-1.2)
    assert initiate.significant is False
    absolute, regression = initiate.budgets
    assert absolute.text == "< 300ms" and absolute.used_pct == pytest.approx(247 / 3)
    assert absolute.limit == 300.0 and initiate.budget_line == 300.0
    assert regression.regression and regression.used_pct == pytest.approx(-12.0)
    assert initiate.summary == "p95 at 82 % of its budget, rising"
    # The glob budget covers the plans-like name; the aggregate has no budget.
    assert ctx.requests[2].metric("p95").budgets[0].text == "< 100ms"
    assert ctx.requests[0].metric("p95").budgets == ()


def test_latest_run_significance_uses_the_prediction_interval() -> None:
    runs, metrics = _data()
    runs.append(_row(20))
    metrics.append(_metrics(nightly_id(20), INITIATE, 320.0))  # far above the last 5
    ctx = build_trend_context(runs, metrics, BUDGETS, baseline_runs=5)
    t = ctx.requests[1].metric("p95")
    assert t is not None
    assert t.significant and t.significant_worse and t.p_value < 0.001
    assert t.change == pytest.approx(28.0)
    assert t.budgets[0].used_pct == pytest.approx(320 / 3)
    assert t.budgets[1].used_pct == pytest.approx(280.0)  # +28 % of the +10 % allowed
    assert t.summary == "p95 at 280 % of its regression budget, rising"
    # A name missing from the latest run has no latest value.
    plans = ctx.requests[2].metric("p95")
    assert plans.latest is None and plans.significant is None


def test_written_report_escapes_names_and_marks_the_change(tmp_path: Path) -> None:
    runs, metrics = _data()
    html_path, md_path = write_trend_report(tmp_path / "trend", runs, metrics, BUDGETS)

    html = html_path.read_text(encoding="utf-8")
    md = md_path.read_text(encoding="utf-8")
    assert (html_path.name, md_path.name) == ("trend.html", "trend.md")
    # Request names are text, never markup, in the page and in the charts.
    assert "<script>" not in html
    assert "&lt;script&gt;alert(" in html
    # Self-contained: nothing fetched from anywhere.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html and "@import" not in html
    # The change point: a row naming the run, the chart's vertical mark, the caption.
    row = re.search(
        rf'<tr class="change-point worse" data-run="{nightly_id(14)}" data-metric="p95">', html
    )
    assert row, "change-point row missing"
    assert 'id="change-point-p95-15"' in html
    assert "p95 +24.7 % at run 15" in html
    assert html.count("<svg") == 3
    # Markdown: names escaped for tables, the change point listed with its run.
    assert "\\|pipe" in md and "<script>" not in md and "&lt;script" in md
    assert f"| 15 | `{nightly_id(14)}` | POST /api/payments/v2/initiate | p95 |" in md
    assert "p95 at 82 % of its budget, rising" in md


def test_no_change_point_is_said_plainly(tmp_path: Path) -> None:
    runs = [_row(i) for i in range(8)]
    metrics = [_metrics(r.run_id, INITIATE, 200.0 + (i % 3)) for i, r in enumerate(runs)]
    html_path, md_path = write_trend_report(tmp_path, runs, metrics)
    assert "No change point in any series" in html_path.read_text(encoding="utf-8")
    assert "No change point: every metric stayed at one level" in md_path.read_text()


def test_trend_command_reads_the_history_and_leaves_out_other_settings(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(path)
    for i in range(16):
        scale = {INITIATE: 1.4 if i >= 10 else 1.0}
        store.add_run(
            make_run(nightly_id(i), seed=i, started_at=nightly_start(i), scale=scale), None
        )
    store.add_run(
        make_run("20251101T200000Z-other1", seed=90, started_at=nightly_start(16), users=50), None
    )
    store.add_run(
        make_run("20251101T210000Z-other2", seed=91, started_at=nightly_start(17), incomplete=True),
        None,
    )
    store.add_run(
        make_run(nightly_id(30), seed=30, started_at=nightly_start(18), scale={INITIATE: 1.4}), None
    )

    _, md_path = trend_report(out_dir=tmp_path / "out", history=path, last=30)

    md = md_path.read_text()
    assert "17 runs of profile **nightly**" in md
    assert f"| 11 | `{nightly_id(10)}` | POST /api/payments/v2/initiate | p95 |" in md
    assert "20251101T200000Z-other1: 50 users" in md
    assert "20251101T210000Z-other2: INCOMPLETE" in md
    with pytest.raises(ConfigError, match=r"no runs of profile 'soak' .*profiles there: nightly"):
        trend_report(out_dir=tmp_path / "out", history=path, profile="soak")
    with pytest.raises(ConfigError, match="no history here yet"):
        trend_report(out_dir=tmp_path / "out", history=tmp_path / "missing.sqlite")
