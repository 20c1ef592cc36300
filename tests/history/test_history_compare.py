"""Comparison of two runs: refusal with reasons, --force, significance on literal data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.commands.compare import compare_refs
from harness.core.compare import (
    CHECKED_METADATA,
    compare_runs,
    format_comparison,
    metadata_differences,
)
from harness.core.model import AGGREGATE_KEY
from harness.errors import ConfigError
from harness.store import HistoryStore
from tests.history.historydata import INITIATE, PLANS, make_run, request_stats


def test_refuses_runs_whose_checked_metadata_differ() -> None:
    base = make_run("base-run", seed=1)
    cand = make_run("cand-run", seed=2, profile="smoke", users=20, scenario_version="2")

    with pytest.raises(ConfigError) as err:
        compare_runs(base, cand)

    assert err.value.message == (
        "refusing to compare base-run with cand-run: profile (nightly vs smoke), "
        "users (10 vs 20), scenario version (1 vs 2) differ; compare runs of the same "
        "settings, or pass --force"
    )
    assert err.value.exit_code == 2


def test_force_compares_and_records_the_differences() -> None:
    base = make_run("base-run", seed=1)
    cand = make_run("cand-run", seed=2, users=20)
    c = compare_runs(base, cand, force=True)
    assert c.forced
    assert [(d.field, d.base, d.candidate) for d in c.differences] == [("users", 10, 20)]
    lines = format_comparison(c)
    assert any(
        "WARNING: forced comparison" in line and "users (10 vs 20)" in line for line in lines
    )


def test_host_is_checked_only_between_external_targets() -> None:
    a = make_run("a", seed=1, host="http://127.0.0.1:5001")
    b = make_run("b", seed=2, host="http://127.0.0.1:5002")
    assert metadata_differences(a.meta, b.meta) == ()  # the reference target's port is random
    ext_a = replace(a.meta, target="external", host="https://staging-a.example.invalid")
    ext_b = replace(b.meta, target="external", host="https://staging-b.example.invalid")
    [diff] = metadata_differences(ext_a, ext_b)
    assert diff.field == "host"
    [kind] = metadata_differences(a.meta, ext_b)
    assert kind.field == "target"
    assert CHECKED_METADATA == ("profile", "users", "scenario_version", "target", "host")


def test_a_real_slowdown_is_significant_and_noise_is_not() -> None:
    base = make_run("base", seed=1)
    slower = make_run("slower", seed=2, scale={INITIATE: 1.25})

    c = compare_runs(base, slower)

    p95 = c.find(INITIATE, "p95")
    assert p95 is not None
    assert p95.change == pytest.approx(25.0, abs=10.0)
    assert p95.ci_low is not None and p95.ci_high is not None
    assert 0 < p95.ci_low < p95.change < p95.ci_high
    assert p95.significant and p95.regression
    assert p95.method.startswith("bootstrap over 10 and 10 intervals, t interval (18 df)")
    assert c.find(INITIATE, "avg").regression
    # The plans request did not change: its CI straddles zero.
    plans = c.find(PLANS, "p50")
    assert plans is not None and plans.significant is False
    assert plans.ci_low < 0 < plans.ci_high
    assert INITIATE in {r.request_key for r in c.regressions}
    assert PLANS not in {r.request_key for r in c.regressions}


def test_same_distribution_is_rarely_called_significant() -> None:
    # Pairs of runs drawn from one distribution: a 95 % interval should exclude zero about
    # once in twenty. Over 30 pairs x 4 latency metrics (120 intervals), expect 6; allow 12.
    flagged = 0
    for seed in range(30):
        c = compare_runs(make_run("a", seed=100 + seed), make_run("b", seed=200 + seed))
        flagged += sum(bool(c.find(INITIATE, m).significant) for m in ("p50", "p95", "p99", "avg"))
    assert flagged <= 12, flagged


def test_short_runs_fall_back_to_a_bootstrap_over_requests() -> None:
    base = make_run("base", seed=1, intervals=3, per_interval=200)
    slower = make_run("slower", seed=2, intervals=3, per_interval=200, scale=1.5)
    c = compare_runs(base, slower)
    p50 = c.find(INITIATE, "p50")
    assert p50 is not None and p50.significant and p50.regression
    assert p50.change == pytest.approx(50.0, abs=10.0)
    assert p50.method.startswith("Poisson bootstrap over requests (fewer than 5 intervals)")
    rps = c.find(AGGREGATE_KEY, "rps")
    assert rps is not None and rps.change == pytest.approx(0.0) and rps.significant is False


def test_error_rate_interval_is_newcombes() -> None:
    # Newcombe (1998), Table II, example (a): 56/70 vs 48/80, difference 0.2000, method 10
    # (hybrid score) interval 0.0524 to 0.3339.
    rng = np.random.default_rng(1)
    base = request_stats(PLANS, [rng.uniform(10, 20, 40), rng.uniform(10, 20, 40)], failures=48)
    cand = request_stats(PLANS, [rng.uniform(10, 20, 35), rng.uniform(10, 20, 35)], failures=56)
    run_a = replace(make_run("a", seed=1), requests=(base,), total=base)
    run_b = replace(make_run("b", seed=2), requests=(cand,), total=cand)
    c = compare_runs(run_a, run_b, metrics=("error_rate",))
    e = c.find(PLANS, "error_rate")
    assert e is not None
    assert (e.base, e.candidate) == (pytest.approx(60.0), pytest.approx(80.0))
    assert e.change_unit == "pts" and e.change == pytest.approx(20.0)
    assert e.ci_low == pytest.approx(5.24, abs=0.01)
    assert e.ci_high == pytest.approx(33.39, abs=0.01)
    assert e.significant and e.regression


def test_without_histograms_there_is_no_interval() -> None:
    base = make_run("a", seed=1)
    bare = tuple(replace(r, histogram=None, interval_histograms=()) for r in base.requests)
    no_hist = replace(base, requests=bare, total=replace(base.total, histogram=None))
    c = compare_runs(no_hist, make_run("b", seed=2))
    avg = c.find(PLANS, "avg")
    assert avg is not None and avg.change is not None and avg.significant is None
    assert "n/a" in "\n".join(format_comparison(c))


def test_format_comparison_table() -> None:
    c = compare_runs(make_run("base", seed=1), make_run("slower", seed=2, scale={INITIATE: 1.5}))
    lines = format_comparison(c)
    assert lines[0] == "base:      base"
    assert lines[1] == "candidate: slower"
    header = next(line for line in lines if line.startswith("request"))
    for column in ("metric", "base", "candidate", "change", "95 % CI", "significant"):
        assert column in header
    row = next(line for line in lines if line.startswith(INITIATE) and " p95 " in line)
    assert "yes, worse" in row and "ms" in row and "[+" in row
    assert lines[-1].endswith("significant regressions")
    assert any(line.startswith("intervals (95 %, seed 1): ") for line in lines)


def test_compare_run_ids_from_the_history(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    store = HistoryStore(path)
    store.add_run(make_run("20251101T020000Z-aaaaaa", seed=1), None)
    store.add_run(make_run("20251102T020000Z-bbbbbb", seed=2, scale={INITIATE: 1.3}), None)

    c = compare_refs(history=path, base="20251101", candidate="20251102T020000Z-bbbbbb")

    assert (c.base_run_id, c.candidate_run_id) == (
        "20251101T020000Z-aaaaaa",
        "20251102T020000Z-bbbbbb",
    )
    assert c.find(INITIATE, "p95").regression
    with pytest.raises(ConfigError, match="no run '20251105' in"):
        compare_refs(history=path, base="20251105", candidate="20251102")
