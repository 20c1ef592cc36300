"""Regressions and accepted levels in the history: the store, the trend, the list, the reports.

Real SQLite files, runs with real histograms of seeded latencies (``historydata``), judged
by the real ``evaluate`` and recorded with ``add_run``, as ``paybench run`` does.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from harness.commands.history import show
from harness.commands.trend import trend_report, unaccepted_level_notes
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.evaluate import evaluate
from harness.core.model import Baseline, Budgets, OpenRegression, RunResult, Verdict
from harness.errors import ConfigError
from harness.report.context import build_report_context
from harness.report.junit import render_junit
from harness.report.render import render_markdown
from harness.runfolder import BASELINE_FILE, load_baseline, write_baseline
from harness.store import SCHEMA_VERSION, HistoryStore
from tests.history.historydata import INITIATE, make_run, nightly_id, nightly_start

GATE = parse_budgets(
    f'version: 1\nregressions: {{requests: {{"{INITIATE}": {{p95: "+10% significant"}}}}}}\n',
    "budgets.yaml",
    known_keys=REQUEST_KEYS,
)


def nightly(i: int, scale: float = 1.0) -> RunResult:
    return make_run(
        nightly_id(i), seed=i, started_at=nightly_start(i), scale={INITIATE: scale}
    )


def judge(store: HistoryStore, run: RunResult, budgets: Budgets = GATE) -> Verdict:
    """What ``paybench run`` does with a run and the history: baseline, verdict, record."""
    verdict = evaluate(run, budgets, store.baseline_for(run, n=budgets.baseline_runs))
    store.add_run(run, verdict)
    return verdict


def fill(store: HistoryStore, scales: list[float]) -> list[Verdict]:
    return [judge(store, nightly(i, scale)) for i, scale in enumerate(scales)]


# --- regressions are no baseline ----------------------------------------------------------


def test_a_regression_is_recorded_left_out_of_the_baseline_and_held_open(tmp_path: Path) -> None:
    """Guards against a lasting regression becoming its own baseline: the runs that broke a
    regression budget never serve as one, and the next run is told where it began."""
    store = HistoryStore(tmp_path / "history.sqlite")
    verdicts = fill(store, [1.0] * 5 + [1.3, 1.3])
    assert [v.outcome for v in verdicts] == ["PASS"] * 5 + ["FAIL"] * 2
    assert [r.regression for r in store.list_runs()] == [False] * 5 + [True] * 2

    base = store.baseline_for(nightly(7, 1.3))
    assert base is not None
    assert base.run_ids == tuple(nightly_id(i) for i in range(5))
    assert "2 regression runs left out" in base.description
    opened = base.open_regressions[INITIATE]["p95"]
    assert opened.since_run_id == nightly_id(5)
    p95s = tuple(nightly(i, 1.3).find(INITIATE).percentile_ms(95.0) for i in (5, 6))
    assert opened.values == p95s

    # Night after night the step keeps failing: nothing accepted it.
    assert [judge(store, nightly(i, 1.3)).outcome for i in range(7, 10)] == ["FAIL"] * 3


def test_accept_makes_the_regressions_level_the_baseline(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    fill(store, [1.0] * 5 + [1.3, 1.3, 1.3])
    decision, covered = store.decide("accept", nightly_id(6)[:-1], "fraud check adds latency")
    assert (decision.kind, decision.run_id, decision.from_run_id, covered) == (
        "accept",
        nightly_id(6),
        nightly_id(5),
        3,
    )
    assert decision.reason == "fraud check adds latency"
    assert decision.decided_at.endswith("Z") and decision.recorded_through == 8
    assert store.decisions() == [decision]

    base = store.baseline_for(nightly(8, 1.3))
    assert base is not None and base.open_regressions == {}
    assert base.run_ids == tuple(nightly_id(i) for i in (5, 6, 7))
    assert f"level accepted {decision.decided_at[:10]}" in base.description
    assert "fraud check adds latency" in base.description
    assert [judge(store, nightly(i, 1.3)).outcome for i in range(8, 11)] == ["PASS"] * 3


def test_a_pin_fixes_the_baseline_at_the_pinned_runs_level(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    fill(store, [1.0] * 5 + [1.3, 1.3])
    decision, _ = store.decide("pin", nightly_id(6))
    assert (decision.kind, decision.from_run_id, decision.reason) == ("pin", nightly_id(6), None)
    # The pinned run broke a regression budget: its level is that regression's runs.
    base = store.baseline_for(nightly(7, 1.3))
    assert base is not None and base.run_ids == (nightly_id(5), nightly_id(6))
    assert base.description.startswith(
        f"the pinned run {nightly_id(6)} and 1 comparable run of its level ("
    )
    assert all(judge(store, nightly(i, 1.3)).outcome == "PASS" for i in range(7, 12))
    base = store.baseline_for(nightly(12, 1.3))
    assert base is not None  # filled up to 5 by the first runs after the pin, then fixed
    assert base.run_ids == tuple(nightly_id(i) for i in range(5, 10))
    # Pinned to a run from before the step, the stepped level breaks the budget again.
    store.decide("pin", nightly_id(4))
    base = store.baseline_for(nightly(12, 1.3))
    assert base is not None and base.run_ids == tuple(nightly_id(i) for i in range(5))
    assert judge(store, nightly(12, 1.3)).outcome == "FAIL"


def test_a_decision_names_a_judged_run_of_the_history(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    fill(store, [1.0, 1.0])
    store.add_run(make_run("x-unreliable", seed=9), Verdict("UNRELIABLE", (), ("CPU",)))
    with pytest.raises(ConfigError, match=r"run x-unreliable is UNRELIABLE: .* cannot be pinned"):
        store.decide("pin", "x-unreliable")
    with pytest.raises(ConfigError, match=r"no run 'nope' in .*paybench history list"):
        store.decide("accept", "nope", "why")


def test_a_schema_2_history_is_migrated_and_finds_its_regressions(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(path)
    fill(store, [1.0] * 5 + [1.3])
    # What a schema-2 file holds: the same runs and verdicts, without the new tables.
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE regressions")
        conn.execute("DROP TABLE baseline_decisions")
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    again = HistoryStore(path)
    assert again.schema_version == SCHEMA_VERSION == 4
    assert [r.regression for r in again.list_runs()] == [False] * 5 + [True]
    assert again.get_run(nightly_id(5)).outcome == "FAIL"
    base = again.baseline_for(nightly(6, 1.3))
    assert base is not None and nightly_id(5) not in base.run_ids


# --- the trend, the list, the note ----------------------------------------------------------


def test_a_new_level_nobody_accepted_is_named_until_someone_does(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    # +8 %: under the allowed +10 %, so the gate passes, but the level moved for good.
    fill(store, [1.0] * 12 + [1.08] * 8)
    candidate = nightly(20, 1.08)
    notes = unaccepted_level_notes(store, candidate, GATE)
    assert len(notes) == 1
    assert notes[0].startswith(f"p95 of {INITIATE} moved to a new level at run ")
    assert "that nobody has accepted" in notes[0]
    run_id = notes[0].split(" at run ", 1)[1].split(" ", 1)[0]
    assert run_id in {nightly_id(i) for i in range(11, 14)}  # at the step, within a run
    assert f"`paybench baseline accept {run_id} --reason TEXT`" in notes[0]

    # The trend report shows it unaccepted ...
    out = tmp_path / "trend"
    _, md = trend_report(out_dir=out, history=store.path, profile="nightly", last=30)
    text = md.read_text()
    assert "to a worse level that nobody has accepted" in text
    assert "| **not accepted** |" in text
    assert "None: no `paybench baseline accept` or `pin` on these runs." in text

    # ... until it is accepted: then the level shows and the note is gone.
    store.decide("accept", run_id, "a heavier checkout page")
    assert unaccepted_level_notes(store, candidate, GATE) == ()
    _, md = trend_report(out_dir=tmp_path / "trend2", history=store.path, profile="nightly")
    text = md.read_text()
    assert "**not accepted**" not in text and "nobody has accepted" not in text
    assert "accepted " in text and ": a heavier checkout page |" in text
    html = (tmp_path / "trend2" / "trend.html").read_text()
    assert 'data-kind="accept"' in html and "accepted-level-" in html

    lines = show(history=store.path).lines
    assert lines[0].split()[:8] == [
        "run", "id", "started", "(UTC)", "profile", "users", "scenario", "outcome",
    ]  # fmt: skip
    assert "level" in lines[0]
    assert any("accepted level" in line and run_id in line for line in lines)
    assert lines[-2] == "accepted levels (paybench baseline accept|pin), oldest first:"
    assert lines[-1].startswith("  accepted ") and "a heavier checkout page" in lines[-1]


def test_a_history_without_decisions_lists_as_before(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    fill(store, [1.0, 1.0])
    lines = show(history=store.path).lines
    assert len(lines) == 3 and "accepted levels" not in "\n".join(lines)


# --- what the run folder and the reports keep -----------------------------------------------


def test_baseline_json_keeps_the_open_regressions_and_the_notes(tmp_path: Path) -> None:
    baseline = Baseline(
        "the last 2 comparable runs",
        ("a", "b"),
        {INITIATE: {"p95": (10.0, 12.5)}},
        open_regressions={INITIATE: {"p95": OpenRegression("c", (14.0, 14.5))}},
        rising={INITIATE: {"p95": (13.9,)}},
        notes=("p95 moved",),
    )
    write_baseline(tmp_path, baseline)
    doc = json.loads((tmp_path / BASELINE_FILE).read_text())
    assert doc["format_version"] == 2
    assert doc["open_regressions"] == [
        {"request": INITIATE, "metric": "p95", "since": "c", "values": [14.0, 14.5]}
    ]
    assert doc["rising"] == [{"request": INITIATE, "metric": "p95", "values": [13.9]}]
    assert load_baseline(tmp_path) == baseline
    # Version 1 had none of them: it reads as a baseline without.
    del doc["open_regressions"], doc["rising"], doc["notes"]
    (tmp_path / BASELINE_FILE).write_text(json.dumps({**doc, "format_version": 1}))
    old = load_baseline(tmp_path)
    assert old is not None and (old.open_regressions, old.rising, old.notes) == ({}, {}, ())


def test_the_summary_shows_inconclusive_budgets_and_the_historys_notes() -> None:
    # 60 samples: far too few to tell a 10 % change in a p95.
    run = make_run(nightly_id(30), seed=30, intervals=3, per_interval=20)
    base = Baseline(
        "the last 5 comparable runs",
        tuple("abcde"),
        {INITIATE: {"p95": (560.0, 565.0, 570.0, 575.0, 580.0)}},
        notes=("p95 of POST /api/payments/v2/initiate moved to a new level at run R",),
    )
    verdict = evaluate(run, GATE, base)
    assert verdict.results[0].status == "inconclusive" and verdict.outcome == "PASS"
    assert verdict.notes == base.notes
    ctx = build_report_context(run, verdict, GATE)
    md = render_markdown(ctx)
    assert "**Inconclusive budgets** (too few samples to tell; neither broken nor a pass)" in md
    assert "cannot detect a 10 % change with 60 samples; about" in md
    assert "**History**" in md and "moved to a new level at run R" in md
    assert "**Marginal budgets**" not in md
    junit = render_junit(ctx)
    assert 'skipped="1"' in junit and "<skipped message=" in junit
    assert "cannot detect a 10 %" in junit


def test_a_run_an_abort_rule_stopped_is_never_a_baseline(tmp_path: Path) -> None:
    """An aborted run measured a system in gross breach for part of its time: it is no
    baseline of the runs after it, and its level cannot be accepted or pinned."""
    store = HistoryStore(tmp_path / "history.sqlite")
    fill(store, [1.0] * 4)
    run = nightly(4)
    aborted = dataclasses.replace(
        run, meta=dataclasses.replace(run.meta, extra={"abort": {"aborted": True}})
    )
    judge(store, aborted)
    base = store.baseline_for(nightly(5))
    assert base is not None and base.run_ids == tuple(nightly_id(i) for i in range(4))
    with pytest.raises(ConfigError, match="is aborted"):
        store.decide("pin", nightly_id(4))
