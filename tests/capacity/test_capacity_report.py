"""capacity.html and capacity.md from a literal analysis."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.core.capacity import CHECKOUT_KEY, BrokenBudget, Step, StopDecision, analyse
from harness.core.model import AGGREGATE_KEY, Budget, Budgets
from harness.report.capacity import (
    build_capacity_context,
    capacity_charts,
    render_capacity_html,
    render_capacity_markdown,
    write_capacity_reports,
)

STATUS_KEY = "GET /api/payments/v2/status/[merchant_order_id]"
ODD_KEY = "GET /odd|<script>alert(1)</script>"

BUDGETS = Budgets(
    source="budgets.yaml",
    budgets=(
        Budget(
            key_path='requests."POST /api/payments/v2/initiate".p95',
            selector=CHECKOUT_KEY,
            metric="p95",
            op="<",
            limit=200.0,
            text="< 200ms",
        ),
        Budget(
            key_path='requests."GET /api/payments/v2/status/*".p95',
            selector="GET /api/payments/v2/status/*",
            metric="p95",
            op="<",
            limit=150.0,
            text="< 150ms",
        ),
    ),
    expected_peak_rps=70.0,
)


def _step(users: int, checkouts: float, p95_initiate: float, broken: bool = False) -> Step:
    b = (
        BrokenBudget(
            "p95 of payment initiation",
            'requests."POST /api/payments/v2/initiate".p95',
            p95_initiate,
            "ms",
            "< 200ms",
            100.0 * (200.0 - p95_initiate) / 200.0,
        ),
    )
    return Step(
        users=users,
        duration_s=3.0,
        throughput_rps=6 * checkouts,
        checkout_rps=checkouts,
        percentiles_ms={
            CHECKOUT_KEY: {"p50": p95_initiate / 2, "p95": p95_initiate, "p99": p95_initiate * 1.2},
            STATUS_KEY: {"p50": 10.0, "p95": 20.0, "p99": 30.0},
            ODD_KEY: {"p50": 1.0, "p95": 2.0, "p99": 3.0},
            AGGREGATE_KEY: {"p50": 10.0, "p95": p95_initiate, "p99": p95_initiate},
        },
        error_rate_pct=0.0,
        budgets_held=not broken,
        broken=b if broken else (),
        mean_ms=p95_initiate / 2,
        start_s=4.0 * users / 10,
    )


STEPS = [
    _step(10, 10.0, 55.0),
    _step(20, 19.5, 58.0),
    _step(30, 24.0, 120.0),
    _step(40, 24.5, 190.0),
    _step(50, 24.2, 260.0, broken=True),
]
ANALYSIS = analyse(
    STEPS,
    expected_peak_rps=70.0,
    stop=StopDecision("budgets broken", 50, "p95 of payment initiation 260 ms (budget < 200ms)"),
)
FACTS = (("Run", "20250101T000000Z-abcdef"), ("Host", "http://127.0.0.1:8000"))


def test_the_context_marks_capacity_knee_and_first_break() -> None:
    ctx = build_capacity_context(ANALYSIS, budgets=BUDGETS, facts=FACTS)
    marks = {s.users: s.marks for s in ctx.steps}
    assert marks[40] == ("capacity",)
    assert marks[30] == ("knee",)  # 24.0 is within 5 % of the highest, 24.5
    assert marks[50] == ("first break",)
    assert ctx.capacity_rate == pytest.approx(24.5)
    assert ctx.capacity_requests_rps == pytest.approx(147.0)
    assert ctx.headroom == pytest.approx(147.0 / 70.0)
    assert ctx.first_broken == ("p95 of payment initiation 260 ms (budget < 200ms)",)
    assert ctx.steps[0].p95_ms == 55.0  # the checkout's latency, the basis request
    # both p95 budgets are drawn, the status one found through its glob
    budgets = {s.request_key: s.budget_ms for s in ctx.latency}
    assert budgets == {CHECKOUT_KEY: 200.0, STATUS_KEY: 150.0}
    assert ctx.fit is not None and len(ctx.fit.curve_users) == len(ctx.fit.curve_rate)
    assert ctx.percentile_keys[0] == CHECKOUT_KEY


def test_html_is_self_contained_escaped_and_deterministic() -> None:
    ctx = build_capacity_context(ANALYSIS, budgets=BUDGETS, facts=FACTS)
    html = render_capacity_html(ctx, capacity_charts(ctx))
    assert html == render_capacity_html(ctx, capacity_charts(ctx))
    assert ANALYSIS.sentence.startswith("One instance holds the budgets up to about 24 checkouts/s")
    assert f'id="sentence">{ANALYSIS.sentence}</p>' in html.replace("&lt;", "<")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html
    assert html.count("<svg") == 2
    # nothing is fetched: no external script, stylesheet, image or font
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and not re.search(r"url\((?!#)", html)  # only #clip ids
    parser = HTMLParser()
    parser.feed(html)  # well-formed enough to parse
    rows = re.findall(r"<tr class=\"[^\"]*\">\s*<td class=\"num\">(\d+)</td>", html)
    assert rows == ["10", "20", "30", "40", "50"]


def test_markdown_has_the_answer_and_one_row_per_step() -> None:
    ctx = build_capacity_context(ANALYSIS, budgets=BUDGETS, facts=FACTS)
    md = render_capacity_markdown(ctx)
    assert "| Capacity (every budget held) | 24.5 checkouts/s at 40 users |" in md
    assert (
        "| Headroom | 2.1x the expected peak of 70.0 requests/s "
        "(147 requests/s served at the capacity) |" in md
    )
    assert "| Saturation (knee) | 24.2 checkouts/s from 30 users on |" in md
    table = [ln for ln in md.splitlines() if re.match(r"^\| \d+ \|", ln)]
    assert len(table) == len(STEPS)
    assert "| **first break** broken: p95 of payment initiation 260 ms (budget " in table[-1]


def test_a_run_without_fit_or_capacity_still_renders() -> None:
    only = analyse([_step(10, 5.0, 300.0, broken=True)])
    ctx = build_capacity_context(only, budgets=None)
    html = render_capacity_html(ctx, capacity_charts(ctx))
    md = render_capacity_markdown(ctx)
    assert ctx.fit is None and ctx.capacity_rate is None
    assert "the first step already broke a budget" in html
    assert "none: the first step broke a budget" in md


def test_write_capacity_reports_writes_both_files(tmp_path: Path) -> None:
    html, md = write_capacity_reports(tmp_path, ANALYSIS, budgets=BUDGETS, facts=FACTS)
    assert html == tmp_path / "capacity.html" and md == tmp_path / "capacity.md"
    assert ANALYSIS.sentence.split(";")[0] in md.read_text(encoding="utf-8")
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_a_capacity_not_reached_is_shown_as_a_lower_bound() -> None:
    rising = analyse(
        [_step(10, 10.0, 50.0), _step(20, 20.0, 52.0), _step(30, 30.0, 55.0)],
        expected_peak_rps=100.0,
    )
    ctx = build_capacity_context(rising, budgets=BUDGETS, title="run x")
    md = render_capacity_markdown(ctx)
    html = render_capacity_html(ctx, capacity_charts(ctx))
    assert ctx.lower_bound
    assert "| Capacity (every budget held) | at least 30.0 checkouts/s at 30 users |" in md
    assert "| Headroom | at least 1.8x the expected peak of 100 requests/s" in md
    assert md.startswith("## run x\n")
    assert "≥ 30.0 checkouts/s" in html and "≥ 1.8x" in html
