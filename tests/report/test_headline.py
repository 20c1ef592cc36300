"""The CLI and every report say the same thing about a verdict, in the same number format."""

from __future__ import annotations

import html
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.evaluate import evaluate, format_verdict_table, verdict_rows
from harness.core.model import Budgets, RunResult, Verdict
from harness.report import write_reports
from tests.evaluate.literal_runs import request, run

FIXTURES = Path(__file__).parent.parent / "fixtures"

# p95 of 1..100 ms is 95 ms with a 95 % interval of about 90-100 ms: "< 99ms" holds but is
# marginal; the regression budgets have no baseline yet, so they are skipped.
HOLDING = """version: 1
requests:
  "GET /api/plans": {avg: "< 300ms", p95: "< 99ms"}
run: {error_rate: "< 2%"}
regressions:
  requests:
    "GET /api/plans": {p95: "+10% significant"}
  run: {error_rate: "+0.5 points"}
"""
BREAKING = HOLDING.replace('p95: "< 99ms"', 'p95: "< 96ms", max: "< 50ms"')


def judged(text: str) -> tuple[RunResult, Verdict, Budgets]:
    budgets = parse_budgets(text, "budgets.yaml", known_keys=REQUEST_KEYS)
    result = run(request("GET /api/plans", np.arange(1, 101.0), failures=1))
    return result, evaluate(result, budgets), budgets


class BudgetTable(HTMLParser):
    """The cells of each row of report.html's budget table."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._in_section = self._in_body = self._in_cell = False

    def handle_starttag(self, tag, attrs):
        if tag == "section":
            self._in_section = dict(attrs).get("id") == "budgets"
        elif self._in_section and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self._in_cell = True
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "td":
            self._in_cell = False
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


def html_headline(page: str) -> str:
    outcome = re.search(r'<div class="outcome">(.*?)</div>', page, re.S)
    headline = re.search(r'<p class="headline">(.*?)</p>', page, re.S)
    assert outcome and headline
    return f"{html.unescape(outcome.group(1))}: {html.unescape(headline.group(1))}"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (HOLDING, "PASS: all 3 budgets hold (1 marginal, 2 skipped)"),
        (BREAKING, "FAIL: 1 of 6 budgets broken (1 marginal, 2 skipped)"),
    ],
    ids=["pass", "fail"],
)
def test_cli_headline_and_report_headlines_agree_on_counts_and_numbers(
    tmp_path: Path, text: str, line: str
) -> None:
    """Regression: the CLI said "all 14 budgets hold (2 skipped)" where report.html said "all 16
    budgets hold", and the two printed the same values as ``0.42%`` and ``0.42 %``."""
    result, verdict, budgets = judged(text)
    printed = format_verdict_table(verdict, width=200)  # what `paybench run` prints
    assert printed[0] == line

    files = write_reports(tmp_path, result, verdict, budgets)
    page = files.html.read_text(encoding="utf-8")
    assert html_headline(page) == line
    assert files.markdown.read_text(encoding="utf-8").splitlines()[0] == f"## paybench {line}"
    assert f"<system-out>{html.escape(line, quote=False)}" in files.junit.read_text("utf-8")

    # measured, margin and interval: one formatter, so the same text in the CLI and the page.
    table = BudgetTable()
    table.feed(page)
    page_cells = [(r[2], r[4], r[5]) for r in table.rows]
    cli_cells = [(r[2], r[4], r[5]) for r in verdict_rows(verdict)]
    assert page_cells == cli_cells
    assert ("1.00 %", "+50.0 %", "\u2013") in cli_cells  # the error rate: a space, a dash


def test_paybench_check_prints_the_headline_that_report_html_shows(tmp_path: Path) -> None:
    """Through the real CLI on a run folder: its first line is the report's headline."""
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURES / "plain_locust", run_dir)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        'version: 1\nrequests:\n  "GET /api/plans": {avg: "< 300ms", p95: "< 450ms"}\n'
        'run: {error_rate: "< 1%"}\n'
        'regressions:\n  requests:\n    "GET /api/plans": {p95: "+10% significant"}\n',
        encoding="utf-8",
    )

    r = CliRunner().invoke(main, ["check", str(run_dir), "--budgets", str(budgets)])

    assert r.exit_code == 0, r.output
    first = r.output.splitlines()[0]
    assert first == "PASS: all 3 budgets hold (1 skipped)"
    assert html_headline((run_dir / "report.html").read_text(encoding="utf-8")) == first
