"""Request names are shown as written in every chart: `$`, `^`, `_`, `\\` and `{}` are text.

Locust keeps templated paths as names (``/cost/$x^$``); matplotlib read a `$...$` pair as
maths, and an unbalanced one as an error that lost the whole report after the load test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree, html

from harness.core.capacity import CHECKOUT_KEY, BrokenBudget, Step, StopDecision, analyse
from harness.core.model import AGGREGATE_KEY, Budget, Budgets
from harness.report.capacity import build_capacity_context, capacity_charts
from harness.report.trend import write_trend_report
from harness.store import RequestMetrics, RunRow
from tests.e2e.helpers import paybench
from tests.hostile.runfolders import BUDGETS, write_run_folder

# (request type, name): maths delimiters, sub- and superscripts, a backslash command, braces.
NAMES = (
    ("GET", "/cost/$x^$"),
    ("GET", "/sum/$$"),
    ("POST", r"/a_b^c\alpha{id}"),
    ("GET", r"/{x}_$\frac{1}{2}$"),
)
KEYS = tuple(f"{t} {n}" for t, n in NAMES)


def svg_texts(page: str) -> list[str]:
    """The text of every SVG <text> element of an HTML page, as a reader sees it."""
    doc = html.fromstring(page)
    return ["".join(t.itertext()) for t in doc.iter("{*}text", "text")]


def test_report_of_a_run_with_maths_in_its_names_shows_them_literally(tmp_path: Path) -> None:
    """Guards: request names holding $, ^, _, \\ and {} once crashed the report (mathtext);
    they render, and appear in the charts' titles and legends as written."""
    folder = write_run_folder(tmp_path / "run", NAMES)
    checked = paybench("check", str(folder), "--budgets", str(folder / BUDGETS), timeout=180)
    assert checked.returncode in (0, 1), checked.stderr
    assert "Traceback" not in checked.stderr
    texts = svg_texts((folder / "report.html").read_text(encoding="utf-8"))
    for key in KEYS:
        assert key in texts, key  # a latency chart's title
        assert f"{key} (n=80)" in texts, key  # the distribution chart's legend
    rerendered = paybench("report", str(folder), timeout=180)
    assert rerendered.returncode == 0, rerendered.stderr


def capacity_steps(key: str, broken: tuple[BrokenBudget, ...] = ()) -> list[Step]:
    """Three literal steps of a stepped run; the last breaks ``broken`` when given."""
    return [
        Step(
            users=u,
            duration_s=3.0,
            throughput_rps=6.0 * u,
            checkout_rps=float(u),
            percentiles_ms={
                CHECKOUT_KEY: {"p50": 20.0, "p95": 40.0 + u, "p99": 50.0 + u},
                key: {"p50": 5.0, "p95": 9.0 + u, "p99": 12.0 + u},
                AGGREGATE_KEY: {"p50": 10.0, "p95": 40.0 + u, "p99": 50.0 + u},
            },
            error_rate_pct=0.0,
            budgets_held=not (broken and u == 30),
            broken=broken if u == 30 else (),
            mean_ms=20.0,
            start_s=3.0 * i,
        )
        for i, u in enumerate((10, 20, 30))
    ]


def test_capacity_charts_show_maths_in_names_literally() -> None:
    """Guards: the capacity charts share the report's settings, maths parsing off."""
    key = "GET /cost/$x^$"
    budgets = Budgets(
        source="budgets.yaml",
        budgets=(Budget(f'requests."{key}".p95', key, "p95", "<", 80.0, "< 80ms"),),
    )
    analysis = analyse(
        capacity_steps(key), expected_peak_rps=30.0, stop=StopDecision("max users", 30, "")
    )
    charts = capacity_charts(build_capacity_context(analysis, budgets=budgets))
    latency = next(c for c in charts if c.id == "chart-capacity-latency")
    assert latency.svg is not None
    texts = ["".join(t.itertext()) for t in etree.fromstring(latency.svg).iter("{*}text")]
    assert key in texts
    assert f"budget < 80ms ({key})" in texts


def _run_row(i: int) -> RunRow:
    return RunRow(
        run_id=f"20250301T0{i}0000Z-a1b2c3",
        started_at=f"2025-03-01T0{i}:00:00Z",
        profile="nightly",
        users=10,
        target="reference",
        host="http://127.0.0.1:1",
        scenario_version="1",
        git_commit=None,
        paybench_version="0.1.0",
        outcome="PASS",
        incomplete=False,
        duration_s=60.0,
        requests=3000,
        failures=0,
        error_rate_pct=0.0,
        rps=50.0,
        p95_ms=100.0,
    )


def _metrics(run_id: str, key: str, p95: float) -> RequestMetrics:
    return RequestMetrics(
        run_id=run_id,
        request_key=key,
        count=3000,
        failures=0,
        duration_s=60.0,
        rps=50.0,
        error_rate_pct=0.0,
        avg_ms=p95 / 2,
        min_ms=1.0,
        max_ms=p95 * 3,
        p50_ms=p95 / 2,
        p90_ms=p95 * 0.9,
        p95_ms=p95,
        p99_ms=p95 * 1.5,
        p99_9_ms=p95 * 2,
    )


@pytest.mark.parametrize("key", KEYS)
def test_trend_chart_titles_show_maths_in_names_literally(tmp_path: Path, key: str) -> None:
    """Guards: a trend chart is titled with its request name, maths parsing off."""
    runs = [_run_row(i) for i in range(6)]
    metrics = [_metrics(r.run_id, key, 100.0 + i) for i, r in enumerate(runs)]
    html_path, _md = write_trend_report(tmp_path, runs, metrics)
    assert key in svg_texts(html_path.read_text(encoding="utf-8"))
