"""ReportContext -> report.html and summary.md text; the one Jinja environment of every report.

The capacity and trend reports render through ``environment()`` too, so that every template
is escaped, strict and trimmed the same way and writes numbers with the same filters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from harness.core import metrics as registry
from harness.core.format import (
    DASH,
    fmt_change,
    fmt_count,
    fmt_ms,
    fmt_number,
    fmt_p_value,
    fmt_pct,
    fmt_rps,
    fmt_seconds,
    fmt_sig,
    fmt_value,
    md_text,
    shorten,
)
from harness.report.charts import Chart
from harness.report.context import ReportContext

# summary.md caps: a CI step summary or a pull-request comment stays under ~60 lines.
MD_MAX_REASONS = 3
MD_MAX_BROKEN = 8
MD_MAX_MARGINAL = 5
MD_MAX_REQUESTS = 16  # paybench's own scenarios name 15
MD_MAX_NAME_CHARS = 60


def md_code(text: str, table: bool = True) -> str:
    """A Markdown code span that shows any text as written (CommonMark 6.1).

    The fence is a backtick run longer than any inside the text, padded with a space when
    the text holds a backtick, so no run inside can close it. In a table cell ``|`` is
    escaped, as GFM allows even inside code; elsewhere the backslash would show.
    """
    one_line = shorten(" ".join(str(text).split()), MD_MAX_NAME_CHARS)
    if table:
        one_line = one_line.replace("|", "\\|")
    if not one_line:
        return "` `"
    longest = max((len(run) for run in re.findall(r"`+", one_line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest else ""
    return f"{fence}{pad}{one_line}{pad}{fence}"


@cache
def environment() -> Environment:
    """The one Jinja environment of every report: run, capacity and trend, HTML and Markdown.

    HTML templates (``*.html.j2``) are autoescaped, so no text from a run is ever markup;
    Markdown templates (``*.md.j2``) escape through the ``md`` and ``code`` filters instead
    (an HTML entity would show as itself in a code span); anything else is escaped too.
    Block tags take their line with them (``trim_blocks``, ``lstrip_blocks``), so templates
    indent their logic freely. The filters are the formatters of ``harness.core.format``:
    every report writes a number the way the CLI does.
    """
    env = Environment(
        loader=PackageLoader("harness.report", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html", "html.j2", "xml"),
            disabled_extensions=("md", "md.j2"),
            default_for_string=True,
            default=True,
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
        value=fmt_value,
        change=fmt_change,
        p=fmt_p_value,
        sig=fmt_sig,
        unit=registry.unit_of,
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
