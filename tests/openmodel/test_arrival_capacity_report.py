"""The arrival-rate capacity report from literal RateSteps: context, pages, files."""

from __future__ import annotations

from pathlib import Path

from harness.core import arrivals
from harness.report.arrival_capacity import (
    ArrivalCapacityContext,
    ArrivalCounts,
    build_arrival_capacity_context,
)
from harness.report.arrival_capacity_render import (
    arrival_capacity_charts,
    render_arrival_capacity_html,
    render_arrival_capacity_markdown,
    write_arrival_capacity_reports,
)

STEPS = (
    arrivals.RateStep(10.0, 10.0, 105.0, True),
    arrivals.RateStep(18.0, 17.6, 130.0, True),  # 97.8 %: carried
    arrivals.RateStep(22.0, 19.4, 900.0, True),  # 88 %: saturated
    arrivals.RateStep(26.0, 19.5, 2600.0, False, "POST /api/payments/v2/initiate p95"),
)
SERVICE_P95 = (101.0, 104.0, 110.0)  # the last step's is unknown
NONE_LOST = ArrivalCounts(1500, 0, 0)


def _context(counts: ArrivalCounts | None = NONE_LOST) -> ArrivalCapacityContext:
    return build_arrival_capacity_context(
        arrivals.rate_capacity(STEPS),
        service_p95_ms=SERVICE_P95,
        counts=counts,
        stopped_after=STEPS[2],
        facts=(("run", "20261202T000000Z-abcdef"),),
    )


def test_the_answer_and_each_step_row() -> None:
    ctx = _context()
    assert (ctx.capacity_per_s, ctx.saturation_per_s) == (18.0, 19.5)
    assert (ctx.first_not_carried_per_s, ctx.first_not_carried_verdict) == (22.0, "saturated")
    assert not ctx.every_step_carried
    assert [s.verdict for s in ctx.steps] == ["carried", "carried", "saturated", "budget broken"]
    assert [s.marks for s in ctx.steps] == [
        (),
        ("capacity",),
        ("stopped here",),
        ("saturation",),
    ]
    assert [s.service_p95_ms for s in ctx.steps] == [101.0, 104.0, 110.0, None]
    assert ctx.steps[2].completed_pct is not None
    assert abs(ctx.steps[2].completed_pct - 100 * 19.4 / 22.0) < 1e-9
    assert ctx.steps[3].broken == "POST /api/payments/v2/initiate p95"
    # No arrival dropped or late over the run: every step's count is known, 0.
    assert ctx.counts_per_step
    assert [(s.dropped, s.late) for s in ctx.steps] == [(0, 0)] * 4
    assert ctx.stop_text is not None and ctx.stop_text.startswith("after 22/s (saturated)")


def test_dropped_over_the_run_is_not_spread_over_steps() -> None:
    ctx = _context(ArrivalCounts(1500, 12, 3))
    assert not ctx.counts_per_step
    assert all(s.dropped is None and s.late is None for s in ctx.steps)
    assert any("12 of 1500 arrivals were dropped and 3 started late" in n for n in ctx.notes)
    one = build_arrival_capacity_context(
        arrivals.rate_capacity(STEPS[:1]), counts=ArrivalCounts(40, 2, 1)
    )
    assert [(s.dropped, s.late) for s in one.steps] == [(2, 1)]  # one step: the run's counts


def test_no_rate_carried_and_no_steps() -> None:
    ctx = build_arrival_capacity_context(arrivals.rate_capacity(STEPS[3:]))
    assert ctx.capacity_per_s is None and ctx.first_not_carried_verdict == "budget broken"
    assert "none" in render_arrival_capacity_markdown(ctx)
    empty = build_arrival_capacity_context(arrivals.rate_capacity(()))
    assert empty.steps == () and not empty.has_service
    assert all(c.svg is None and c.note for c in arrival_capacity_charts(empty))


def test_pages_show_the_answer_the_table_and_both_charts(tmp_path: Path) -> None:
    ctx = _context()
    charts = arrival_capacity_charts(ctx)
    assert [c.id for c in charts] == ["chart-arrival-completed", "chart-arrival-latency"]
    assert all(c.svg and c.svg.startswith("<svg") for c in charts)
    assert "y = x" in (charts[0].svg or "")
    assert "service-time p95" in (charts[1].svg or "")
    html = render_arrival_capacity_html(ctx, charts)
    assert html == render_arrival_capacity_html(ctx, arrival_capacity_charts(ctx))
    assert "carries 18 checkouts/s" in html
    assert html.count("<tr class=") == 4 and "budget broken" in html
    md = render_arrival_capacity_markdown(ctx)
    assert "carries 18 checkouts/s" in md
    assert "| 22.0 | 19.4 | 900 | 110 | 0 | 0 | held | **stopped here** saturated |" in md
    files = write_arrival_capacity_reports(tmp_path, ctx)
    assert files == (tmp_path / "capacity.html", tmp_path / "capacity.md")
    assert files[1].read_text(encoding="utf-8") == md
