"""Regression budgets on server metrics (budgets.yaml ``regressions.server``): the parser's
one-line errors, and the judging against the history's baseline on stored values, night
after night, through the real HistoryStore (baseline, open regression, accept)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.budgets import parse_budgets
from harness.core.model import Verdict
from harness.core.server_regressions import Measured, ServerRegressionBudget, judge_all
from harness.errors import ConfigError
from harness.store import HistoryStore
from tests.history.historydata import make_run, nightly_id, nightly_start

SERVER = """\
version: 1
server:
  target_process: {cpu_percent: "< 1000%"}
regressions:
  server:
    target_process:
      cpu_ms_per_request: "+10% significant"
    target:
      cache_hit_rate: "-5 points significant"
"""


def regressions(
    text: str = SERVER, profile: str | None = None
) -> tuple[ServerRegressionBudget, ...]:
    section = parse_budgets(text, "budgets.yaml", profile).server
    assert section is not None
    return section.regressions


def test_server_regression_budgets_parse_with_their_direction() -> None:
    cpu, hit = regressions()
    assert cpu.key_path == "regressions.server.target_process.cpu_ms_per_request"
    assert (cpu.selector, cpu.metric, cpu.max_increase, cpu.relative) == (
        "target_process",
        "cpu_ms_per_request",
        10.0,
        True,
    )
    assert cpu.significant_only and not cpu.higher_is_better
    assert (hit.metric, hit.max_increase, hit.relative, hit.higher_is_better) == (
        "cache_hit_rate",
        5.0,
        False,
        True,
    )
    # A profile drops one and changes the other.
    text = SERVER + (
        "profiles:\n  smoke:\n    regressions:\n      server:\n"
        "        target: {cache_hit_rate: off}\n"
        '        target_process: {cpu_ms_per_request: "+25%"}\n'
    )
    (only,) = regressions(text, "smoke")
    assert only.key_path == "profiles.smoke.regressions.server.target_process.cpu_ms_per_request"
    assert (only.max_increase, only.significant_only) == (25.0, False)
    assert len(regressions(text, "nightly")) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '    target: {cache_hit_rate: "+5 points"}',
            "budgets.yaml: regressions.server.target.cache_hit_rate: '+5 points': cache_hit_rate "
            "is better higher, so a regression is a fall; write the fall allowed with a minus "
            'sign, e.g. cache_hit_rate: "-5 points significant"',
        ),
        (
            '    target_process: {cpu_percent: "+10%"}',
            "budgets.yaml: regressions.server.target_process.cpu_percent: '+10%': cpu_percent is "
            "a percentage, which moves in percentage points; write e.g. cpu_percent: "
            '"+5 points significant" (+10% of a percentage would be ambiguous)',
        ),
        (
            '    target_process: {cpu_s_per_request: "+10%"}',
            "budgets.yaml: regressions.server.target_process.cpu_s_per_request: no regression "
            "budget for 'cpu_s_per_request'; did you mean 'cpu_ms_per_request'? use ",
        ),
        (
            '    target_process: {cpu_percent.max: "+5 points"}',
            'budgets.yaml: regressions.server.target_process."cpu_percent.max": no regression '
            "budget for 'cpu_percent.max'; a run has one value of a server metric for the "
            "history, the steady state's: write cpu_percent; use ",
        ),
        (
            '    redis_cache: {cache_hit_rate: "-5 points"}',
            "budgets.yaml: regressions.server.redis_cache: no source is named 'redis_cache'; "
            "declare it under sources: (known: target, target_process)",
        ),
        (
            '    target_process: {cpu_ms_per_request: "+10% signif"}',
            "budgets.yaml: regressions.server.target_process.cpu_ms_per_request: unknown word "
            "'signif' in '+10% signif'; did you mean 'significant'? the only word allowed "
            "after the change is 'significant'",
        ),
        (
            '    target_process: {cpu_ms_per_request: "+0%"}',
            "budgets.yaml: regressions.server.target_process.cpu_ms_per_request: '+0%' fails on "
            'any noise; allow a change or add significant, e.g. cpu_ms_per_request: "+10% '
            'significant"',
        ),
        (
            "    target_process: {cpu_ms_per_request: off}",
            "budgets.yaml: regressions.server.target_process.cpu_ms_per_request: off is for "
            "profiles; use off in profiles.<name> to drop a default",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_the_key(body: str, message: str) -> None:
    text = "version: 1\nregressions:\n  server:\n" + body + "\n"
    with pytest.raises(ConfigError) as e:
        parse_budgets(text, "budgets.yaml")
    assert e.value.message.startswith(message), e.value.message
    assert "\n" not in e.value.message


def test_the_cost_metric_is_not_an_absolute_server_budget() -> None:
    text = 'version: 1\nserver:\n  target_process: {cpu_ms_per_request: "< 5ms"}\n'
    with pytest.raises(ConfigError) as e:
        parse_budgets(text, "budgets.yaml")
    assert e.value.message.startswith(
        "budgets.yaml: server.target_process.cpu_ms_per_request: unknown server metric "
        "'cpu_ms_per_request'; cpu_ms_per_request depends on the machine, so it is judged "
        'against earlier runs only (regressions.server.target_process.cpu_ms_per_request: "+10% '
        'significant")'
    ), e.value.message


class Nights:
    """Nights judged and recorded one after another in one history, as `paybench run` does."""

    def __init__(self, tmp_path: Path) -> None:
        self.store = HistoryStore(tmp_path / "history.sqlite")
        self.budgets = regressions()
        self.count = 0
        self.ids: list[str] = []

    def night(self, cpu_ms: float, hit_rate: float) -> dict[str, tuple[str, str]]:
        i = self.count
        self.count += 1
        run = make_run(nightly_id(i), seed=i, started_at=nightly_start(i))
        baseline = self.store.baseline_for(run, n=5)
        measured = {
            self.budgets[0].key_path: Measured(cpu_ms),
            self.budgets[1].key_path: Measured(hit_rate),
        }
        results = judge_all(self.budgets, measured, baseline)
        outcome = "FAIL" if any(not r.passed for r in results) else "PASS"
        assert self.store.add_run(run, Verdict(outcome, results))
        self.ids.append(run.meta.run_id)
        return {r.budget.metric: (r.status, r.message) for r in results}


# CPU ms per request of noise-only nights (about 3 % apart), then a step of +40 %.
CPU_MS = [2.00, 2.06, 1.95, 2.03, 1.98, 2.04]
HIT = [96.0, 95.5, 96.2, 95.8, 96.1, 95.9]


def test_a_step_fails_keeps_failing_until_accepted_and_noise_never_does(tmp_path: Path) -> None:
    nights = Nights(tmp_path)
    first = nights.night(CPU_MS[0], HIT[0])
    assert first["cpu_ms_per_request"][0] == "skipped"
    assert "no baseline yet" in first["cpu_ms_per_request"][1]
    for cpu, hit in zip(CPU_MS[1:], HIT[1:], strict=True):
        said = nights.night(cpu, hit)
        assert said["cpu_ms_per_request"][0] == "pass", said
        assert said["cache_hit_rate"][0] == "pass", said
    # Values come back from the store: the baseline holds the stored ones.
    baseline = nights.store.baseline_for(make_run("x", seed=99, started_at="2025-12-01T00:00:00Z"))
    assert baseline is not None
    assert baseline.values["target_process (server)"]["cpu_ms_per_request"] == tuple(CPU_MS[1:])

    # The step: broken, beyond the spread of the baseline runs.
    said = nights.night(2.8, 96.0)
    status, message = said["cpu_ms_per_request"]
    assert status == "fail", message
    assert message.startswith("cpu_ms_per_request 2.80 ms vs baseline 2.03 ms (the last 5"), message
    assert "+37.9 %, allowed +10 % if significant; above the 95 % prediction interval" in message
    assert said["cache_hit_rate"][0] == "pass"
    step = nights.ids[-1]
    # It keeps failing: the regression is open, and no night of it joins the baseline.
    status, message = nights.night(2.75, 96.0)["cpu_ms_per_request"]
    assert status == "fail", message
    assert f"`paybench baseline accept {step} --reason TEXT` accepts it" in message
    # One night back is not enough to end it.
    status, message = nights.night(2.02, 96.0)["cpu_ms_per_request"]
    assert status == "fail" and "not both back" in message, message

    # Accepting the new level: the same level passes from then on.
    nights.store.decide("accept", nights.ids[-2], reason="a heavier fraud check")
    said = nights.night(2.78, 96.0)
    assert said["cpu_ms_per_request"][0] in ("pass", "inconclusive"), said
    assert "level accepted" in said["cpu_ms_per_request"][1]


def test_a_fall_of_a_metric_better_higher_breaks_its_budget(tmp_path: Path) -> None:
    nights = Nights(tmp_path)
    for cpu, hit in zip(CPU_MS, HIT, strict=True):
        nights.night(cpu, hit)
    # Up is better: a rise of the hit rate is no regression, however large.
    assert nights.night(2.0, 99.9)["cache_hit_rate"][0] == "pass"
    status, message = nights.night(2.0, 70.0)["cache_hit_rate"]
    assert status == "fail", message
    assert "cache_hit_rate 70.0 % vs baseline" in message, message
    assert "allowed -5 points if significant; below the 95 % prediction interval" in message
