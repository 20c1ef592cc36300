"""Server metrics in the history: stored from the verdict, listed, compared and trended
through the CLI (`paybench history list`, `compare`, `trend`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from click.testing import CliRunner

from harness.cli import main
from harness.core.budgets import parse_budgets
from harness.core.evaluate import margin_pct
from harness.core.format import DASH
from harness.core.model import BudgetResult, Verdict
from harness.store import HistoryStore
from tests.history.historydata import make_run

BUDGETS = (
    "version: 1\n"
    "server:\n"
    '  target_process: {cpu_percent: "< 70%"}\n'
    '  target: {cache_hit_rate: "> 80%"}\n'
)
# CPU % of the API process per run: a step from about 20 % to about 40 % at run 9.
CPU = [20.0, 21.0, 19.0, 20.5, 20.0, 19.5, 21.0, 20.0, 40.0, 41.0, 39.0, 40.5, 40.0, 39.5]
HIT_RATE = 95.0


def run_id(i: int) -> str:
    return f"202511{i + 1:02d}T020000Z-{i:06x}"


def verdict(cpu: float) -> Verdict:
    section = parse_budgets(BUDGETS, "budgets.yaml").server
    assert section is not None
    results = []
    for b, value in zip(section.budgets, (cpu, HIT_RATE), strict=True):
        status = "pass" if (value < b.limit if b.op == "<" else value > b.limit) else "fail"
        results.append(
            BudgetResult(
                b,
                f"{b.selector} (server)",
                status,
                value,
                b.limit,
                margin_pct(b.op, value, b.limit),
            )
        )
    return Verdict("PASS", tuple(results))


def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(path)
    for i, cpu in enumerate(CPU):
        run = make_run(run_id(i), seed=i, started_at=f"2025-11-{i + 1:02d}T02:00:00Z")
        store.add_run(run, verdict(cpu))
    return path


def cli(*args: str) -> list[str]:
    r = CliRunner().invoke(main, list(args), env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output.splitlines()


def test_the_history_keeps_each_runs_server_metrics_and_lists_them(tmp_path: Path) -> None:
    path = history(tmp_path)
    stored = HistoryStore(path).get_run(run_id(8))
    assert [(m.source, m.metric, m.unit, m.value) for m in stored.server] == [
        ("target_process", "cpu_percent", "%", 40.0),
        ("target", "cache_hit_rate", "%", 95.0),
    ]
    series = HistoryStore(path).server_series("nightly", "target_process", "cpu_percent")
    assert series.values == tuple(CPU)
    lines = cli("history", "list", "--history", str(path))
    at = lines.index("server metrics (steady state; .run: the whole run):")
    header = lines[at + 1].split()
    assert header[:3] == ["run", "id", "target_process"]
    row = next(line for line in lines[at:] if line.startswith(run_id(8)))
    assert row.split()[1:] == ["40.0", "%", "95.0", "%"]


def test_compare_shows_the_server_metrics_of_both_runs(tmp_path: Path) -> None:
    path = history(tmp_path)
    lines = cli("compare", run_id(7), run_id(8), "--history", str(path))
    at = lines.index("server metrics (one value per run: no interval, no significance)")
    cpu = next(line for line in lines[at:] if "cpu_percent" in line)
    assert cpu.split() == [
        "target_process", "(server)", "cpu_percent", "20.0", "%", "40.0", "%", "+100.0", "%",
        "worse",
    ]  # fmt: skip
    hit = next(line for line in lines[at:] if "cache_hit_rate" in line)
    assert hit.split()[-1] == DASH  # unchanged


def test_the_trend_report_marks_the_step_of_a_server_metric(tmp_path: Path) -> None:
    path = history(tmp_path)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS, encoding="utf-8")
    out = tmp_path / "trend"
    cli("trend", "--history", str(path), "--budgets", str(budgets), "--out", str(out))
    md = (out / "trend.md").read_text(encoding="utf-8")
    html = (out / "trend.html").read_text(encoding="utf-8")
    assert "target\\_process (server)" in md and "target_process (server)" in html
    # The change point at run 9 (to a worse level, nobody accepted it).
    step = next(line for line in md.splitlines() if "cpu_percent" in line and run_id(8) in line)
    assert "(worse)" in step and "**not accepted**" in step
    row = next(line for line in md.splitlines() if line.startswith("| target\\_process (server)"))
    assert "< 70%" in row  # the budget's use
    assert "<svg" in html


def test_a_schema_3_history_gets_its_server_metrics_from_the_kept_verdicts(tmp_path: Path) -> None:
    path = history(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE server_metrics")
        conn.execute("PRAGMA user_version = 3")
    conn.close()
    again = HistoryStore(path)
    assert again.schema_version == 4
    assert again.server_series("nightly", "target_process", "cpu_percent").values == tuple(CPU)
