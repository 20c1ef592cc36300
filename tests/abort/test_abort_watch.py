"""Abort rules judged on synthetic live data (harness.core.abort), and the live-file watcher."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from harness.config import load_budgets
from harness.core import catalogue
from harness.core.abort import (
    AbortRule,
    AbortRules,
    AbortWatch,
    IntervalFigures,
    KeyFigures,
    abort_facts,
    p95_lower_bound,
    window_value,
    with_abort,
)
from harness.core.catalogue import REQUEST_KEYS
from harness.core.evaluate import exit_code, format_verdict_table
from harness.core.model import AGGREGATE_KEY, Verdict, request_key
from harness.core.stats import Histogram
from harness.errors import FormatError
from harness.lifecycle import AbortPlan, AbortWatcher
from harness.profiles import PROJECT_ROOT, available_profiles
from harness.runfolder import read_live

PLANS = request_key(*catalogue.PLANS)
INITIATE = request_key(*catalogue.INITIATE)
STATUS = request_key(*catalogue.STATUS)
FLOW = request_key(*catalogue.FLOW_CHECKOUT)
INTERVAL_S = 1.0
START = 1_000  # the first interval index of the synthetic runs (epoch 1000 s)


def rule(**kw: object) -> AbortRule:
    fields: dict[str, object] = {
        "key_path": "abort.run.error_rate",
        "selector": AGGREGATE_KEY,
        "metric": "error_rate",
        "op": ">",
        "limit": 50.0,
        "text": "> 50%",
        "window_s": 2.0,
        "windows": 3,
        "min_samples": 10,
        "grace_s": 0.0,
    }
    fields.update(kw)
    return AbortRule(**fields)  # type: ignore[arg-type]


def failing(share: float, count: int = 20, key: str = PLANS) -> dict[str, KeyFigures]:
    return {key: KeyFigures(count=count, failures=round(share * count), avg_ms=5.0, p95_ms=9.0)}


def feed(
    watch: AbortWatch, series: Sequence[Mapping[str, KeyFigures] | None], start: int = 0
) -> int | None:
    """Each interval in order (None: an interval the live file never reported); the offset
    of the interval at which a rule fired, or None."""
    for offset, keys in enumerate(series, start):
        if keys is None:
            continue
        fired = watch.observe(IntervalFigures(START + offset, keys), elapsed_s=float(offset))
        if fired is not None:
            return offset
    return None


def steady_watch(*rules: AbortRule, excluded: tuple[str, ...] = ()) -> AbortWatch:
    watch = AbortWatch(AbortRules(rules=rules, excluded=excluded), INTERVAL_S)
    watch.begin_steady(START * INTERVAL_S)
    return watch


# --- consecutive windows ----------------------------------------------------------------------


def test_fires_on_the_third_breaching_window_in_a_row() -> None:
    """Window 2 intervals, 3 windows: failing from interval 2 on, the windows ending at 3,
    4 and 5 are the first three wholly failed ones (the one ending at 2 is half failed: 40 %)."""
    watch = steady_watch(rule())
    series = [failing(0.0)] * 2 + [failing(0.8)] * 10
    assert feed(watch, series) == 5
    fired = watch.fired
    assert fired is not None
    assert fired.request_key == AGGREGATE_KEY
    assert fired.value == pytest.approx(80.0)
    assert fired.message == (
        "aborted at 5.0 s: error rate 80.0 % over 3 windows of 2.0 s (abort.run.error_rate: > 50%)"
    )
    facts = watch.facts()
    assert facts.aborted and facts.interval_index == START + 5 and facts.no_data == ()


def test_a_holding_window_starts_the_count_again() -> None:
    """Two breaching windows, one that holds, two more: never three in a row."""
    series = [failing(0.8)] * 3 + [failing(0.0)] * 2 + [failing(0.8)] * 3 + [failing(0.0)] * 3
    watch = steady_watch(rule())
    assert feed(watch, series) is None
    report = watch.reports()[0]
    assert report.breaching == 4 and report.judged == len(series) - 1 and report.no_data is None


def test_a_brief_spike_does_not_fire() -> None:
    """A spike of one interval at 100 % breaches one 2-interval window at most."""
    series = [failing(0.0)] * 4 + [failing(1.0)] + [failing(0.0)] * 6
    watch = steady_watch(rule())
    assert feed(watch, series) is None
    assert watch.reports()[0].breaching == 0  # 50 % is not over 50 %
    # The same spike fires a rule of one window at 50 % or more: the spike was seen.
    eager = steady_watch(rule(op=">=", windows=1))
    assert feed(eager, series) == 4


def test_a_window_that_misses_an_interval_is_not_judged() -> None:
    """An interval the live file never reported breaks the run of windows (no half window)."""
    series: list[Mapping[str, KeyFigures] | None] = [failing(0.9)] * 3 + [None] + [failing(0.9)] * 4
    watch = steady_watch(rule())
    # Windows ending at 1, 2 breach; 3 and 4 miss interval 3; then 5, 6, 7 breach.
    assert feed(watch, series) == 7


# --- the steady state, grace, samples ------------------------------------------------------------


def test_nothing_is_judged_before_the_steady_state_and_its_grace() -> None:
    """Cold-start failures before the grace ends never count, nor does a window reaching
    back into them."""
    watch = AbortWatch(AbortRules(rules=(rule(grace_s=3.0),)), INTERVAL_S)
    series = [failing(1.0)] * 6 + [failing(0.0)] * 6
    # The steady state begins only at interval 2 (the ramp before it fails entirely).
    assert feed(watch, series[:2]) is None
    watch.begin_steady((START + 2) * INTERVAL_S)
    assert feed(watch, series[2:], start=2) is None
    report = watch.reports()[0]
    # The first window may start at 2 + 3 = 5: it ends at 6 (half failed), the rest hold.
    assert report.full_windows == 6 and report.breaching == 0


def test_a_run_whose_steady_state_never_began_says_so() -> None:
    watch = AbortWatch(AbortRules(rules=(rule(),)), INTERVAL_S)
    assert feed(watch, [failing(1.0)] * 10) is None
    assert watch.facts().no_data == (
        "abort rule abort.run.error_rate (> 50%) watched nothing: the steady state never "
        "began (not every planned user ran)",
    )


def test_a_rule_with_too_few_samples_never_fires() -> None:
    """Every window fails entirely, but holds 8 requests of the 10 the rule needs."""
    watch = steady_watch(rule(min_samples=10))
    assert feed(watch, [failing(1.0, count=4)] * 20) is None
    report = watch.reports()[0]
    assert report.judged == 0 and report.most_samples == 8
    assert report.no_data == (
        "abort rule abort.run.error_rate (> 50%) watched nothing: no 2.0 s window held "
        "its 10 requests (at most 8)"
    )
    facts = watch.facts()
    assert not facts.aborted and facts.no_data == (report.no_data,)


def test_a_run_too_short_for_a_window_says_so() -> None:
    watch = steady_watch(rule(window_s=30.0, grace_s=10.0))
    assert feed(watch, [failing(1.0)] * 20) is None
    assert watch.reports()[0].no_data == (
        "abort rule abort.run.error_rate (> 50%) watched nothing: the run held no whole "
        "30.0 s window after the steady state began plus its grace of 10.0 s"
    )


def test_a_request_that_never_ran_says_so() -> None:
    watch = steady_watch(rule(selector=INITIATE, key_path="abort.x"))
    assert feed(watch, [failing(1.0)] * 5) is None
    assert watch.reports()[0].no_data == (
        f"abort rule abort.x (> 50%) watched nothing: no request {INITIATE!r} ran in its windows"
    )


# --- which requests a rule watches ------------------------------------------------------------


def test_the_run_leaves_out_journeys_and_opted_out_names() -> None:
    """A firewall answering one name with errors on purpose, and failed journeys, do not
    make the run's error rate."""
    flow = FLOW
    keys = {
        PLANS: KeyFigures(count=20, failures=0),
        STATUS: KeyFigures(count=200, failures=200),
        flow: KeyFigures(count=50, failures=50),
    }
    opted_out = steady_watch(rule(), excluded=("GET /api/payments/v2/status/*",))
    assert feed(opted_out, [keys] * 10) is None
    assert opted_out.reports()[0].breaching == 0
    watched = steady_watch(rule())
    assert feed(watched, [keys] * 10) == 3
    assert watched.fired is not None
    assert watched.fired.value == pytest.approx(100 * 200 / 220)  # the flow left out


def test_a_glob_judges_each_name_on_its_own() -> None:
    """50 % of all webhooks failing is one kind failing entirely: the kind breaches."""
    completed = "POST /api/payments/v2/webhook [completed]"
    forged = "POST /api/payments/v2/webhook [forged]"
    keys = {completed: KeyFigures(count=20, failures=20), forged: KeyFigures(count=20)}
    watch = steady_watch(rule(selector="POST /api/payments/v2/webhook [*]", limit=60.0))
    assert feed(watch, [keys] * 6) == 3
    assert watch.fired is not None and watch.fired.request_key == completed


# --- exact values, and the p95 bound -------------------------------------------------------------


def test_error_rate_and_avg_are_exact_over_the_window() -> None:
    figures = [KeyFigures(10, 1, 2.0, 3.0), KeyFigures(30, 3, 6.0, 9.0)]
    assert window_value("error_rate", figures) == (40, 10.0)
    assert window_value("avg", figures) == (40, pytest.approx((10 * 2.0 + 30 * 6.0) / 40))


def _interval_figures(samples_ms: Sequence[float]) -> tuple[KeyFigures, Histogram]:
    h = Histogram()
    h.record_ms_array(list(samples_ms))
    p95 = h.percentile_ms(95)
    return KeyFigures(count=h.count, p95_ms=p95), h


def test_the_p95_bound_never_exceeds_the_windows_merged_p95() -> None:
    """Seeded random windows of intervals of every size and shape: the bound from the
    intervals' p95s is at or below the p95 of their merged histogram (the judge's), so a
    p95 rule never fires on a window whose p95 holds."""
    rng = random.Random(1)
    bounded = 0
    for _ in range(300):
        figures, merged = [], Histogram()
        for _ in range(rng.randint(1, 8)):
            n = rng.choice([1, 2, 5, 19, 20, 21, 60, 400])
            scale = rng.choice([1.0, 10.0, 300.0])
            f, h = _interval_figures([rng.lognormvariate(0, 1) * scale for _ in range(n)])
            figures.append(f)
            merged.add(h)
        bound = p95_lower_bound(figures)
        true_p95 = merged.percentile_ms(95)
        assert true_p95 is not None
        if bound is not None:
            bounded += 1
            assert bound <= true_p95, (bound, true_p95, figures)
    assert bounded > 250  # the bound says something on most windows


def test_averaging_interval_p95s_would_fire_where_the_window_holds() -> None:
    """One slow interval of 40 requests and a fast one of 1,960: the mean of the two p95s
    (505 ms) is over a 300 ms limit, the window's own p95 (2 % of requests slow) is not.
    The rule holds."""
    slow, h_slow = _interval_figures([1000.0] * 40)
    fast, h_fast = _interval_figures([10.0] * 1960)
    merged = Histogram()
    merged.add(h_slow)
    merged.add(h_fast)
    assert slow.p95_ms is not None and fast.p95_ms is not None
    assert (slow.p95_ms + fast.p95_ms) / 2 > 300
    assert (merged.percentile_ms(95) or 0) < 300
    bound = p95_lower_bound([slow, fast])
    assert bound is not None and bound < 300
    watch = steady_watch(rule(metric="p95", limit=300.0, windows=1, min_samples=1))
    assert feed(watch, [{PLANS: slow}, {PLANS: fast}] * 3) is None
    # Slow enough for long enough, it fires.
    assert feed(steady_watch(rule(metric="p95", limit=300.0)), [{PLANS: slow}] * 6) == 3


# --- the verdict --------------------------------------------------------------------------------


def _aborted_extra() -> dict[str, object]:
    watch = steady_watch(rule())
    assert feed(watch, [failing(0.9)] * 5) is not None
    return {"abort": json.loads(json.dumps(watch.facts().to_json()))}


def test_an_aborted_run_fails_with_the_abort_first() -> None:
    extra = _aborted_extra()
    facts = abort_facts(extra)
    assert facts is not None and facts.aborted and facts.value == pytest.approx(90.0)
    verdict = with_abort(Verdict("PASS", ()), extra)
    assert verdict.outcome == "FAIL" and exit_code(verdict) == 1
    assert verdict.reasons[0].startswith("aborted at 3.0 s: error rate 90.0 % over 3 windows")
    (row,) = verdict.broken
    assert row.budget.key_path == "abort.run.error_rate" and row.budget.text == "abort > 50%"
    lines = format_verdict_table(verdict)
    assert lines[0] == "FAIL: 1 of 1 budget broken"
    assert lines[1] == f"why: {verdict.reasons[0]}"
    # An incomplete run stays incomplete; a run no rule watched is left as it is.
    assert with_abort(Verdict("INCOMPLETE", ()), extra).outcome == "INCOMPLETE"
    assert with_abort(Verdict("PASS", ()), {}) == Verdict("PASS", ())


def test_a_rule_that_watched_nothing_is_named_in_the_verdict() -> None:
    watch = steady_watch(rule(min_samples=1000))
    feed(watch, [failing(1.0)] * 5)
    verdict = with_abort(Verdict("PASS", ()), {"abort": watch.facts().to_json()})
    assert verdict.outcome == "PASS"
    assert verdict.reasons == (watch.reports()[0].no_data,)


@pytest.mark.parametrize(
    ("abort", "field"),
    [
        ([], "run.json: extra.abort: expected an object"),
        ({"aborted": "yes"}, "extra.abort.aborted: expected true or false"),
        ({"aborted": True, "no_data": []}, "extra.abort.metric: expected a text"),
        ({"aborted": False, "no_data": [1]}, "extra.abort.no_data: expected a list of texts"),
    ],
)
def test_a_damaged_abort_record_is_refused_naming_the_field(abort: object, field: str) -> None:
    with pytest.raises(FormatError, match="the file is damaged or was edited") as caught:
        abort_facts({"abort": abort})
    assert field in caught.value.message


# --- the shipped rules, and the live file -------------------------------------------------------


def test_the_shipped_nightly_rules_stop_a_target_failing_80_percent() -> None:
    """budgets.yaml's nightly rules at the default 2 s interval: 40 users' worth of requests
    (100 per interval), 80 % failing from 60 s into the steady state on. A window must be
    more than 5/8 failed to be over 50 %, so the first breach closes 20 s into the failure
    (10 intervals of the 15), the third two intervals later: 24 s.
    Run: .venv/bin/python -m pytest -q tests/abort/test_abort_watch.py -k shipped"""
    budgets = load_budgets(
        PROJECT_ROOT / "budgets.yaml",
        profile="nightly",
        known_keys=REQUEST_KEYS,
        known_profiles=available_profiles(),
    )
    assert budgets.abort is not None
    watch = AbortWatch(budgets.abort, interval_s=2.0)
    watch.begin_steady(START * 2.0)
    healthy, broken = failing(0.0, count=100), failing(0.8, count=100)
    fired = feed(watch, [healthy] * 30 + [broken] * 30)
    assert fired is not None and (fired - 30 + 1) * 2.0 == 24.0
    # A spike of every request failing for 3 intervals (6 s) stays far below: 20 %.
    spike = AbortWatch(budgets.abort, interval_s=2.0)
    spike.begin_steady(START * 2.0)
    assert feed(spike, [healthy] * 30 + [failing(1.0, count=100)] * 3 + [healthy] * 30) is None
    assert spike.reports()[1].breaching == 0


def test_the_watcher_reads_the_live_file_as_the_plugin_writes_it(tmp_path: Path) -> None:
    """Live lines as harness.plugin writes them: the interval length from the line, the
    steady state from the planned users, each key's newest complete interval."""
    live = tmp_path / "paybench.live.jsonl"
    rows = [json.dumps({"format": "paybench-live", "format_version": 1})]
    for i in range(8):
        index = START + i
        users = 3 if i < 2 else 6
        share = 0.0 if i < 3 else 0.9
        rows.append(
            json.dumps(
                {
                    "epoch": (index + 1) * INTERVAL_S + 0.05,
                    "elapsed_s": i + 1.05,
                    "users": users,
                    "requests": 0,
                    "failures": 0,
                    "rps": 20.0,
                    "interval_index": index,
                    "interval_start_epoch": index * INTERVAL_S,
                    "per_request": {
                        PLANS: {
                            "count": 0,
                            "failures": 0,
                            "avg_ms": None,
                            "p95_ms": None,
                            "last": {
                                "count": 20,
                                "failures": round(20 * share),
                                "avg_ms": 5.0,
                                "p95_ms": 8.0,
                            },
                        }
                    },
                }
            )
        )
    live.write_text("\n".join(rows) + "\n", encoding="utf-8")
    lines, _ = read_live(live, 0)
    assert lines[0].interval_s == INTERVAL_S
    said: list[str] = []
    watcher = AbortWatcher(
        AbortPlan(AbortRules(rules=(rule(),)), warmup_s=1.0, steady_users=6), say=said.append
    )
    stops = [watcher.feed(line) for line in lines]
    # Steady from the line with 6 users (epoch 1003.05) plus 1 s: the first window starts
    # at interval 1005, ends at 1006; failing from 1003 on, it fires at 1008 ... beyond the
    # file: only two windows breached.
    assert stops == [False] * 8
    assert not watcher.fired
    assert watcher.facts()["abort"]["aborted"] is False
    assert said == []
    # Without the warm-up the windows from 1004 on count: the third closes at 1007.
    eager = AbortWatcher(AbortPlan(AbortRules(rules=(rule(),)), steady_users=6), say=said.append)
    assert [eager.feed(line) for line in lines] == [False] * 7 + [True]
    assert said and said[0].endswith("; stopping the run")
    assert eager.facts()["abort"]["aborted"] is True
    # The run's planned end (7.5 s after its start at 1000 s) falls inside interval 1007:
    # that interval is the stop's, and a run that ran its time is not aborted after it.
    ended = AbortWatcher(AbortPlan(AbortRules(rules=(rule(),)), steady_users=6, run_time_s=7.5))
    assert [ended.feed(line) for line in lines] == [False] * 8
    assert ended.facts()["abort"]["aborted"] is False
