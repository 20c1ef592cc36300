"""The run report: report.html, summary.md and junit.xml in the run folder.

``build_report_context`` (pure) turns a judged run into a ReportContext; the renderers turn
that into text; ``write_reports`` is the only function here that touches the disk. The
three files are derived from the run's data, so a re-render (``paybench report RUN_DIR``)
replaces them and nothing else in the (write-once) run folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.model import Budgets, RunResult, Verdict
from harness.errors import ConfigError
from harness.report.charts import Chart, render_charts
from harness.report.context import ReportContext, build_report_context
from harness.report.junit import render_junit
from harness.report.render import render_html, render_markdown
from harness.runfolder import JUNIT_XML, REPORT_HTML, SUMMARY_MD, write_atomic

__all__ = [
    "Chart",
    "ReportContext",
    "ReportFiles",
    "build_report_context",
    "render_charts",
    "render_html",
    "render_junit",
    "render_markdown",
    "write_reports",
]


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    junit: Path


def write_reports(
    run_dir: Path, result: RunResult, verdict: Verdict, budgets: Budgets | None = None
) -> ReportFiles:
    """Render and write report.html, summary.md and junit.xml into ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder; the reports go into an existing one")
    ctx = build_report_context(result, verdict, budgets)
    files = ReportFiles(
        html=run_dir / REPORT_HTML, markdown=run_dir / SUMMARY_MD, junit=run_dir / JUNIT_XML
    )
    charts = render_charts(ctx)
    if budgets is not None and budgets.server is not None and budgets.server.budgets:
        # The server metrics over time (harness.server reads the run folder's server.jsonl).
        from harness.report.server_charts import server_charts
        from harness.server.results import run_timelines

        charts = (*charts, *server_charts(ctx, *run_timelines(run_dir, budgets)))
    write_atomic(files.html, render_html(ctx, charts))
    write_atomic(files.markdown, render_markdown(ctx))
    write_atomic(files.junit, render_junit(ctx))
    return files
