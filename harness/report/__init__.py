"""The run report: report.html, summary.md and junit.xml in the run folder.

``build_report_context`` (pure) turns a judged run into a ReportContext; the renderers turn
that into text; ``write_reports`` is the only function here that touches the disk. The
three files are derived from the run's data, so a re-render (``paybench report RUN_DIR``)
replaces them and nothing else in the (write-once) run folder.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.core.model import Budgets, RunResult, Verdict
from harness.errors import ConfigError
from harness.report.charts import Chart, render_charts
from harness.report.context import ReportContext, build_report_context
from harness.report.junit import render_junit
from harness.report.render import render_html, render_markdown

HTML_FILE = "report.html"
MARKDOWN_FILE = "summary.md"
JUNIT_FILE = "junit.xml"

__all__ = [
    "HTML_FILE",
    "JUNIT_FILE",
    "MARKDOWN_FILE",
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


def _write_text(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(
    run_dir: Path, result: RunResult, verdict: Verdict, budgets: Budgets | None = None
) -> ReportFiles:
    """Render and write report.html, summary.md and junit.xml into ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder; the reports go into an existing one")
    ctx = build_report_context(result, verdict, budgets)
    files = ReportFiles(
        html=run_dir / HTML_FILE, markdown=run_dir / MARKDOWN_FILE, junit=run_dir / JUNIT_FILE
    )
    _write_text(files.html, render_html(ctx, render_charts(ctx)))
    _write_text(files.markdown, render_markdown(ctx))
    _write_text(files.junit, render_junit(ctx))
    return files
