"""What the history stores is what regression budgets can be judged on (harness.core.metrics)."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from pathlib import Path

from harness.core import metrics as registry
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.evaluate import evaluate
from harness.core.model import AGGREGATE_KEY
from harness.store import HistoryStore, RequestMetrics
from tests.history.historydata import PLANS, make_run, nightly_id, nightly_start


def _budgets_on_every_regression_metric() -> str:
    lines = ["version: 1", "regressions:", "  requests:", '    "GET /api/plans":']
    lines += [f'      {n}: "+50%"' for n in registry.regression_names() if n != "error_rate"]
    lines += ["  run:", '    error_rate: "+5 points"']
    return "\n".join(lines) + "\n"


def test_every_metric_a_regression_budget_accepts_is_stored_and_judged(tmp_path: Path) -> None:
    """Regression: a regression budget the parser accepts must find its metric in the stored
    baseline runs and be judged; ``p75`` once was accepted and then skipped on every run."""
    text = _budgets_on_every_regression_metric()
    budgets = parse_budgets(text, "b.yaml", known_keys=REQUEST_KEYS)
    store = HistoryStore(tmp_path / "history.sqlite")
    for i in range(3):
        store.add_run(make_run(nightly_id(i), seed=i, started_at=nightly_start(i)), None)
    candidate = make_run(nightly_id(3), seed=3, started_at=nightly_start(3))

    baseline = store.baseline_for(candidate, n=budgets.baseline_runs)
    verdict = evaluate(candidate, budgets, baseline)

    assert baseline is not None and len(baseline.run_ids) == 3
    judged = {(r.request_key, r.budget.metric): r for r in verdict.results}
    expected = {(PLANS, n) for n in registry.regression_names() if n != "error_rate"}
    assert set(judged) == expected | {(AGGREGATE_KEY, "error_rate")}
    for (key, metric), r in judged.items():
        assert len(baseline.values[key][metric]) == 3, metric
        assert r.status in ("pass", "fail"), (metric, r.status, r.message)
        assert r.message.startswith(f"{metric} "), r.message


def test_every_stored_metric_has_its_column_in_the_schema(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    store.add_run(make_run("r1", seed=1), None)
    with sqlite3.connect(store.path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(request_metrics)")}
    stored = {m.column for m in registry.stored_metrics()}
    assert stored <= columns
    assert stored <= {f.name for f in fields(RequestMetrics)}


def test_stored_values_are_the_registry_measures_of_the_run(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    run = make_run("r1", seed=1)
    store.add_run(run, None)
    [plans] = [m for m in store.request_metrics(["r1"]) if m.request_key == PLANS]
    stats = run.find(PLANS)
    assert stats is not None
    for m in registry.stored_metrics():
        assert plans.value(m.name) == m.measure(stats), m.name
