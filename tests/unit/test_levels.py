"""Which runs are a baseline (``harness.core.levels``): regressions never, noise always."""

from __future__ import annotations

from harness.core.levels import LevelRun, eligible, select_baseline
from harness.core.model import BaselineDecision

GATE = ("POST /api/payments/v2/initiate", "p95")


def history(kinds: str) -> list[LevelRun]:
    """One run a character: ``.`` plain, ``r`` rose (not significantly), ``X`` broke."""
    runs = []
    for i, kind in enumerate(kinds):
        runs.append(
            LevelRun(
                f"r{i}",
                i,
                regressions=frozenset({GATE}) if kind == "X" else frozenset(),
                rising=frozenset({GATE}) if kind == "r" else frozenset(),
            )
        )
    return runs


def ids(runs: list[LevelRun]) -> list[str]:
    return [r.run_id for r in runs]


def test_a_rise_a_plain_run_followed_was_noise_and_counts_again() -> None:
    assert ids(eligible(history("..r.."), None)) == ["r0", "r1", "r2", "r3", "r4"]
    assert ids(eligible(history(".rr."), None)) == ["r0", "r1", "r2", "r3"]


def test_the_latest_rises_and_the_rises_that_led_into_a_regression_stay_out() -> None:
    assert ids(eligible(history("...rr"), None)) == ["r0", "r1", "r2"]
    assert ids(eligible(history("..rXX."), None)) == ["r0", "r1", "r5"]
    chosen = select_baseline(history("....rr"), [], n=10)
    assert chosen.run_ids == ("r0", "r1", "r2", "r3")
    assert chosen.rising == {GATE: ("r4", "r5")}


def test_a_regression_stays_out_and_open_until_accepted() -> None:
    runs = history("...XX")
    chosen = select_baseline(runs, [], n=10)
    assert chosen.run_ids == ("r0", "r1", "r2") and chosen.open == {GATE: ("r3", "r4")}
    accept = BaselineDecision(1, "accept", "r4", "r3", "new fraud check", "2026-12-02T07:00Z", 4)
    after = select_baseline([*runs, *history("......")[5:]], [accept], n=10)
    assert after.run_ids == ("r3", "r4", "r5") and after.open == {}
