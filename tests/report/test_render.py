"""report.html, summary.md and junit.xml as text: golden Markdown, XML validity, escaping."""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import tomllib
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lxml import etree

from harness.core.model import BudgetResult, FailureRecord, RequestStats, RunResult, Verdict
from harness.errors import ConfigError
from harness.report import (
    build_report_context,
    render_charts,
    render_html,
    render_junit,
    render_markdown,
    write_reports,
)
from tests.report.sample_runs import SCRIPT, budget, make_sample, stats_from

HERE = Path(__file__).parent
GOLDEN_MD = HERE / "golden" / "summary.md"
ROOT = HERE.parent.parent


def html_of(result: RunResult, verdict: Verdict, budgets=None) -> str:
    ctx = build_report_context(result, verdict, budgets)
    return render_html(ctx, render_charts(ctx))


class Page(HTMLParser):
    """The parts of a page that could fetch or run something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                self.links.append((tag, name, value or ""))

    def handle_data(self, data):
        self.text.append(data)


# --- report.html -----------------------------------------------------------------------


def test_a_failure_message_with_markup_shows_as_text(sample):
    page = html_of(*sample)
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    parsed = Page()
    parsed.feed(page)
    assert "script" not in parsed.tags
    assert SCRIPT in "".join(parsed.text)  # what a reader sees


def test_markup_in_names_profile_and_reasons_is_escaped_too(sample):
    result, verdict, budgets = sample
    evil = '"><img src=x onerror=alert(2)>'
    result = dataclasses.replace(
        result,
        meta=dataclasses.replace(result.meta, profile=evil, git_commit=evil),
        requests=(*result.requests, stats_from("GET", evil, [1000, 2000], 0, 50.0)),
        failures=(FailureRecord(f"GET {evil}", evil, 1),),
    )
    verdict = Verdict("UNRELIABLE", verdict.results, (evil,))
    page = html_of(result, verdict, budgets)
    parsed = Page()
    parsed.feed(page)
    assert "img" not in parsed.tags
    assert evil not in page


def test_the_page_fetches_nothing_and_runs_nothing(sample):
    page = html_of(*sample)
    parsed = Page()
    parsed.feed(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    assert "iframe" not in parsed.tags and "img" not in parsed.tags
    # Only in-page references (SVG clip paths and glyphs): nothing on another host or file.
    assert parsed.links, "the charts reference their own definitions"
    assert all(value.startswith("#") for _tag, _attr, value in parsed.links), parsed.links
    assert "@import" not in page
    assert re.findall(r"url\(\s*['\"]?([^#'\"\s])", page) == []  # clip-path="url(#id)" only


def test_the_page_shows_the_verdict_first_then_facts_budgets_requests_charts(sample):
    page = html_of(*sample)
    order = [
        page.index('<header class="verdict fail"'),
        page.index('<div class="outcome">FAIL</div>'),
        page.index("Broken budgets"),
        page.index('id="facts"'),
        page.index('id="budgets"'),
        page.index('id="requests"'),
        page.index('id="charts"'),
        page.index('id="failures"'),
        page.index('id="locust"'),
    ]
    assert order == sorted(order)
    assert page.count('<figure class="chart') == 10
    assert "<details>" in page and "Ramp-up" in page
    assert "@media print" in page


def test_an_empty_run_renders_with_no_data_notes():
    total = RequestStats("", "Aggregated", 0, 0, 0.0, None, None, None)
    result, _verdict, _budgets = make_sample()
    empty = RunResult(meta=result.meta, requests=(), total=total)
    page = html_of(empty, Verdict("INCOMPLETE", (), ("stopped before any request",)))
    assert page.count('class="nodata"') == 5
    assert "No data: the run recorded no intervals." in page
    assert "No budgets were set for this run." in page
    assert "No request failed." in page


# --- summary.md ------------------------------------------------------------------------


def test_summary_markdown_matches_the_golden_file(sample):
    text = render_markdown(build_report_context(*sample))
    if os.environ.get("PAYBENCH_UPDATE_GOLDEN"):
        GOLDEN_MD.parent.mkdir(exist_ok=True)
        GOLDEN_MD.write_text(text, encoding="utf-8")
    assert text == GOLDEN_MD.read_text(encoding="utf-8")


def many_names_run() -> tuple[RunResult, Verdict]:
    result, _verdict, _budgets = make_sample()
    requests = tuple(
        stats_from("GET", f"/api/item/{i}", [1000 * (i + 1)] * (i + 1), 0, 50.0) for i in range(40)
    )
    results = tuple(
        BudgetResult(
            budget(f"GET /api/item/{i}", "p95", "<", 5.0, "< 5ms"),
            f"GET /api/item/{i}",
            "fail" if i < 30 else "pass",
            float(i + 1),
            5.0,
            (5.0 - (i + 1)) / 5.0 * 100,
            marginal=i >= 25,
        )
        for i in range(40)
    )
    reasons = tuple(f"reason {i}" for i in range(6))
    return dataclasses.replace(result, requests=requests), Verdict("UNRELIABLE", results, reasons)


def test_summary_stays_short_with_many_names_and_says_what_it_left_out():
    result, verdict = many_names_run()
    text = render_markdown(build_report_context(result, verdict))
    lines = text.splitlines()
    assert len(lines) <= 60, len(lines)
    assert "- …and 4 more in the report" in lines  # reasons: 2 shown
    assert "- …and 23 more in the report" in lines  # broken: 7 of 30 shown
    assert "- …and 6 more in the report" in lines  # marginal: 4 of 10 shown
    assert "25 more request names are in the full report." in lines
    # The busiest names are the ones kept.
    assert "| `GET /api/item/39` |" in text and "| `GET /api/item/0` |" not in text
    assert "[report.html](report.html)" in lines[-1]


def test_markdown_escapes_what_would_break_a_table_or_become_html():
    result, _verdict, _budgets = make_sample()
    odd = stats_from("GET", "/api/a|b`c", [1500], 0, 50.0)
    results = (
        BudgetResult(budget("GET /api/a|b`c", "p95", "<", 1.0, "< 1ms"), "GET /api/a|b`c",
                     "fail", 1.5, 1.0, -50.0),
    )  # fmt: skip
    verdict = Verdict("UNRELIABLE", results, (SCRIPT + " | *loud*",))
    text = render_markdown(
        build_report_context(dataclasses.replace(result, requests=(odd,)), verdict)
    )
    assert "- &lt;script>alert(1)&lt;/script> \\| \\*loud\\*" in text
    assert "| `` GET /api/a\\|b`c `` | 1 |" in text
    assert SCRIPT not in text


# --- junit.xml -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(HERE / "junit.xsd")))


def validate(schema: etree.XMLSchema, text: str) -> etree._Element:
    doc = etree.fromstring(text.encode("utf-8"))
    assert schema.validate(doc), schema.error_log
    return doc


def test_junit_is_one_suite_with_one_case_per_budget(sample, schema):
    text = render_junit(build_report_context(*sample))
    doc = validate(schema, text)
    (suite,) = doc.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 7 == int(suite.get("tests")) == int(doc.get("tests"))
    assert suite.get("name") == "paybench.nightly" and suite.get("failures") == "1"
    assert suite.get("timestamp") == "2025-03-01T02:00:00"
    assert {c.get("classname") for c in cases} == {"paybench.nightly"}
    assert cases[0].get("name") == "GET /api/plans p95 < 300 ms"
    failed = [c for c in cases if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == [
        "GET /api/payments/v2/status/[merchant_order_id] p95 < 250 ms"
    ]
    failure = failed[0].find("failure")
    assert failure.get("message") == "measured 277 ms, limit < 250 ms, margin -10.9 %"
    assert failure.get("type") == "BudgetBroken"
    assert "95 % interval: 262 ms \u2013 291 ms" in failure.text
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["outcome"] == "FAIL" and props["run_id"] == "20250301T020000Z-a1b2c3"
    assert "marginal: POST /api/payments/v2/webhook [completed]" in suite.findtext("system-out")


def test_junit_for_an_unjudgeable_run_has_an_error_and_skips(schema):
    result, _verdict, _budgets = make_sample()
    b = budget("GET /api/plans", "p95", "<", 300.0, "< 300ms")
    results = (
        BudgetResult(b, "GET /api/plans", "skipped", 90.0, 0.0, None, message="no baseline yet"),
        BudgetResult(b, "GET /api/none", "no samples", None, 300.0, None, message="never ran"),
    )
    bad = "control \x01 char and \x1b[31m colour and " + SCRIPT
    verdict = Verdict("UNRELIABLE", results, (bad,))
    doc = validate(schema, render_junit(build_report_context(result, verdict)))
    suite = doc.find("testsuite")
    assert (
        suite.get("tests"),
        suite.get("failures"),
        suite.get("errors"),
        suite.get("skipped"),
    ) == (
        "3",
        "1",
        "1",
        "1",
    )
    skipped, none, judged = suite.findall("testcase")
    assert skipped.find("skipped").get("message") == "no baseline yet"
    assert none.find("failure").get("type") == "NoSamples"
    error = judged.find("error")
    assert judged.get("name") == "run can be judged" and error.get("type") == "UNRELIABLE"
    assert SCRIPT in error.get("message") and "\x01" not in error.get("message")


def test_junit_without_budgets_or_start_time_is_still_valid(schema):
    result, _verdict, _budgets = make_sample()
    result = dataclasses.replace(result, meta=dataclasses.replace(result.meta, started_at=None))
    doc = validate(schema, render_junit(build_report_context(result, Verdict("PASS", ()))))
    assert doc.find("testsuite").get("tests") == "0"
    assert doc.find("testsuite").get("timestamp") is None


def test_the_schema_rejects_what_ci_servers_would_not_read(schema):
    """Guards the guard: the XSD is not so loose that anything passes."""
    for broken in (
        '<testsuites><testsuite name="s" tests="x" failures="0" errors="0"/></testsuites>',
        '<testsuites><testsuite name="s" tests="1" failures="0" errors="0">'
        '<testcase classname="c" time="0"/></testsuite></testsuites>',
        '<testsuites><testsuite name="s" tests="1" failures="1" errors="0">'
        '<testcase name="n" classname="c" time="0"><failure/></testcase></testsuite></testsuites>',
    ):
        assert not schema.validate(etree.fromstring(broken))


# --- writing ---------------------------------------------------------------------------


def test_write_reports_writes_the_three_files_and_a_rerender_gives_the_same_bytes(sample, tmp_path):
    (tmp_path / "run.json").write_text("{}", encoding="utf-8")  # a run folder's own file
    files = write_reports(tmp_path, *sample)
    assert (files.html, files.markdown, files.junit) == (
        tmp_path / "report.html",
        tmp_path / "summary.md",
        tmp_path / "junit.xml",
    )
    first = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(first) == ["junit.xml", "report.html", "run.json", "summary.md"]
    ET.fromstring(first["junit.xml"])
    assert first["report.html"].startswith(b"<!DOCTYPE html>")
    write_reports(tmp_path, *make_sample())  # the same run, judged the same: same files
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == first
    assert oct(files.html.stat().st_mode & 0o777) == "0o644"


def test_write_reports_refuses_a_missing_run_folder(sample, tmp_path):
    with pytest.raises(ConfigError, match="no-such-run: no such run folder"):
        write_reports(tmp_path / "no-such-run", *sample)
    assert list(tmp_path.iterdir()) == []


def test_the_package_data_patterns_ship_every_template():
    """pyproject's package-data globs must cover the files the renderers load at run time."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["harness"]
    templates = ROOT / "harness" / "report" / "templates"
    files = [p.relative_to(ROOT / "harness").as_posix() for p in templates.iterdir()]
    assert files
    for name in files:
        # setuptools globs relative to the package; "**/" also matches no folder at all.
        assert any(
            fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(name, pattern.removeprefix("**/"))
            for pattern in patterns
        ), f"{name} is not covered by package-data {patterns}"
