"""ReportContext -> report.html and summary.md text, through the package's Jinja2 templates."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from harness.report.charts import Chart
from harness.report.context import ReportContext
from harness.report.format import (
    DASH,
    fmt_count,
    fmt_ms,
    fmt_number,
    fmt_pct,
    fmt_rps,
    fmt_seconds,
    md_text,
    shorten,
)

# summary.md caps: a CI step summary or a pull-request comment stays under ~60 lines.
MD_MAX_REASONS = 3
MD_MAX_BROKEN = 8
MD_MAX_MARGINAL = 5
MD_MAX_REQUESTS = 16  # paybench's own scenarios name 15
MD_MAX_NAME_CHARS = 60


def md_code(text: str) -> str:
    """A Markdown code span that survives a table cell (``|`` escaped, as GFM allows)."""
    one_line = shorten(" ".join(str(text).split()), MD_MAX_NAME_CHARS).replace("|", "\\|")
    fence = "``" if "`" in one_line else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


@cache
def environment() -> Environment:
    """The templates' environment: HTML autoescaped, Markdown escaped by its own filters."""
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2"), default_for_string=True, default=False
        ),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ms=fmt_ms,
        count=fmt_count,
        rps=fmt_rps,
        pct=fmt_pct,
        seconds=fmt_seconds,
        number=fmt_number,
        md=md_text,
        code=md_code,
    )
    return env


def render_html(ctx: ReportContext, charts: Sequence[Chart]) -> str:
    """The self-contained report page; ``charts`` from ``charts.render_charts(ctx)``."""
    return environment().get_template("report.html.j2").render(ctx=ctx, charts=list(charts))


def _cap(items: Sequence, limit: int) -> tuple[list, int]:
    """At most ``limit`` items; when cut, one slot goes to the "…and N more" line."""
    if len(items) <= limit:
        return list(items), 0
    return list(items[: limit - 1]), len(items) - (limit - 1)


def render_markdown(ctx: ReportContext) -> str:
    """summary.md: verdict, broken and marginal budgets, the request table, a link."""
    reasons, reasons_omitted = _cap(ctx.reasons, MD_MAX_REASONS)
    broken, broken_omitted = _cap(ctx.broken, MD_MAX_BROKEN)
    marginal, marginal_omitted = _cap(ctx.marginal, MD_MAX_MARGINAL)
    # The busiest names first when the table must be cut.
    requests = list(ctx.requests)
    if len(requests) > MD_MAX_REQUESTS:
        requests.sort(key=lambda r: -r.count)
    rows, rows_omitted = _cap(requests, MD_MAX_REQUESTS)
    facts = {f.label: f.value for f in ctx.facts}
    parts = [md_text(f"{facts.get('Users', DASH)} users"), md_text(facts.get("Duration", DASH))]
    if ctx.total.failures:
        parts.append(f"{fmt_count(ctx.total.failures)} failed requests")
    if (commit := facts.get("Git commit")) and commit != DASH:
        parts.append(f"commit {md_code(commit[:12])}")
    return (
        environment()
        .get_template("summary.md.j2")
        .render(
            ctx=ctx,
            facts_line=" · ".join(parts),
            reasons=reasons,
            reasons_omitted=reasons_omitted,
            broken=broken,
            broken_omitted=broken_omitted,
            marginal=marginal,
            marginal_omitted=marginal_omitted,
            rows=[*rows, ctx.total],
            rows_omitted=rows_omitted,
        )
    )
