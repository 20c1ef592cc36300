"""report.html in a real browser (headless Chromium), and `paybench report` on a real run.

Two reports are opened: one rendered from the literal sample run, and the one a real
``paybench run --profile smoke`` wrote. A screenshot (and a print to PDF) of each is saved
in the test's tmp_path; the paths are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report import write_reports
from tests.report.cdp_browser import Chromium, find_chromium
from tests.report.sample_runs import SCRIPT, make_sample

ROOT = Path(__file__).resolve().parents[2]
LAPTOP = (1366, 768)
SMOKE_TIMEOUT_S = 300
REPORT_FILES = ("report.html", "summary.md", "junit.xml")

# What the page looks like to a reader: each chart's box, and the page's own size.
CHARTS_JS = """JSON.stringify({
  page: {width: document.documentElement.scrollWidth, height: document.documentElement.scrollHeight,
         viewport: window.innerWidth},
  verdict: (() => {
    const v = document.querySelector('#verdict .outcome'), r = v.getBoundingClientRect();
    return {text: v.textContent, top: r.top, size: parseFloat(getComputedStyle(v).fontSize)};
  })(),
  charts: [...document.querySelectorAll('figure.chart')].map(f => {
    const r = f.getBoundingClientRect(), s = getComputedStyle(f);
    const svg = f.querySelector('svg'), sr = svg ? svg.getBoundingClientRect() : null;
    return {id: f.id, left: r.left + scrollX, right: r.right + scrollX, top: r.top + scrollY,
            width: r.width, height: r.height,
            visible: s.visibility === 'visible' && s.display !== 'none',
            svg: sr ? {width: sr.width, height: sr.height} : null,
            note: f.querySelector('.nodata') ? f.querySelector('.nodata').textContent : null};
  }),
  text: document.body.innerText,
  scripts: document.scripts.length,
})"""


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed (apt-get install chromium; make test does it)")
    return path


def open_report(chromium_path: str, html: Path, out_dir: Path) -> dict:
    """Open ``html`` at a laptop's size; screenshot and PDF into ``out_dir``; what was seen."""
    profile = out_dir / "chromium-profile"
    profile.mkdir()
    browser = Chromium(chromium_path, profile)
    try:
        session = browser.open_page(html.as_uri(), *LAPTOP)
        seen = json.loads(browser.evaluate(session, CHARTS_JS))
        seen["errors"] = browser.console_errors(session)
        seen["urls"] = browser.requested_urls(session)
        seen["screenshot"] = browser.screenshot(session, out_dir / "report.png")
        seen["pdf"] = browser.print_pdf(session, out_dir / "report.pdf")
    finally:
        browser.close()
    print(f"\nscreenshot: {seen['screenshot']}\nprinted: {seen['pdf']}")
    return seen


def check_page(seen: dict, html: Path) -> None:
    assert seen["errors"] == [], seen["errors"]
    # Self-contained: the only request is the page itself.
    assert all(u == html.as_uri() or u.startswith("data:") for u in seen["urls"]), seen["urls"]
    assert seen["scripts"] == 0
    # Verdict first and large, inside the first screen.
    assert seen["verdict"]["text"] in ("PASS", "FAIL", "UNRELIABLE", "INCOMPLETE")
    assert seen["verdict"]["top"] < LAPTOP[1] / 2 and seen["verdict"]["size"] >= 40
    # Readable on a laptop: nothing wider than the window.
    assert seen["page"]["width"] <= seen["page"]["viewport"], seen["page"]
    assert seen["charts"], "the report has charts"
    for chart in seen["charts"]:
        assert chart["visible"], chart
        assert chart["width"] > 100 and chart["height"] > 50, chart
        assert 0 <= chart["left"] and chart["right"] <= seen["page"]["width"], chart
        assert chart["top"] + chart["height"] <= seen["page"]["height"], chart
        if chart["note"] is None:
            assert chart["svg"]["width"] > 100 and chart["svg"]["height"] > 50, chart
    png = seen["screenshot"].read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert seen["pdf"].read_bytes().startswith(b"%PDF")


@pytest.mark.browser
def test_report_of_literal_data_in_chromium(chromium_path, tmp_path):
    files = write_reports(tmp_path, *make_sample())
    seen = open_report(chromium_path, files.html, tmp_path)
    check_page(seen, files.html)
    assert len(seen["charts"]) == 10 and all(c["note"] is None for c in seen["charts"])
    assert SCRIPT in seen["text"]  # the failure message reads as text, and runs nothing
    assert "FAIL" in seen["text"] and "1 of 7 budgets broken" in seen["text"]


# --- a real smoke run ----------------------------------------------------------------


@pytest.fixture(scope="session")
def smoke_run_dir(tmp_path_factory) -> Path:
    """A run folder written by the real CLI: ``paybench run --profile smoke --out <tmp>``."""
    out = tmp_path_factory.mktemp("smoke")
    command = [sys.executable, "-m", "harness", "run", "--profile", "smoke", "--out", str(out)]
    done = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT_S,
        check=False,
    )
    runs = sorted((out / "runs").glob("*/report.html")) if (out / "runs").is_dir() else []
    if not runs:
        pytest.fail(
            f"`{' '.join(command[1:])}` wrote no report.html (exit {done.returncode}):\n"
            f"{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        )
    return runs[0].parent


@pytest.mark.e2e
@pytest.mark.browser
def test_report_of_a_real_smoke_run_in_chromium(chromium_path, smoke_run_dir, tmp_path):
    html = tmp_path / "report.html"
    shutil.copy(smoke_run_dir / "report.html", html)  # the screenshot sits beside its page
    seen = open_report(chromium_path, html, tmp_path)
    check_page(seen, html)
    ids = [c["id"] for c in seen["charts"]]
    assert {"chart-throughput", "chart-errors", "chart-distribution", "chart-flow"} <= set(ids)
    drawn = [c for c in seen["charts"] if c["note"] is None]
    # A smoke run has a timeline and requests: those charts are drawn, not "no data".
    assert {"chart-throughput", "chart-errors", "chart-distribution"} <= {c["id"] for c in drawn}
    assert any(i.startswith("chart-latency-") for i in ids)


@pytest.mark.e2e
def test_paybench_report_rebuilds_the_same_files(smoke_run_dir, tmp_path):
    run_dir = tmp_path / smoke_run_dir.name
    shutil.copytree(smoke_run_dir, run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for name in REPORT_FILES:
        (run_dir / name).unlink()
    done = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    assert sorted(after) == sorted(before)
    for name in REPORT_FILES:
        assert after[name] == before[name], f"{name} differs after `paybench report`"
    assert after == before  # and nothing else in the run folder changed
