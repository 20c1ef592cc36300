"""budgets.yaml ``abort:``: what the rules mean per profile, and every mistake in one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.config import load_budgets
from harness.core.abort import AbortRules
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.model import AGGREGATE_KEY
from harness.errors import ConfigError
from harness.profiles import PROJECT_ROOT, available_profiles

PROFILES = available_profiles()
INITIATE = "POST /api/payments/v2/initiate"
BASE = """\
version: 1
requests:
  "POST /api/payments/v2/initiate": {p95: "< 3s", error_rate: "< 1%"}
  "GET /api/plans": {avg: "< 300ms"}
run: {error_rate: "< 1%"}
"""


def rules_of(text: str, profile: str | None = None) -> AbortRules | None:
    budgets = parse_budgets(
        BASE + text, "budgets.yaml", profile, known_keys=REQUEST_KEYS, known_profiles=PROFILES
    )
    return budgets.abort


def test_the_shipped_nightly_and_prerelease_profiles_abort_on_a_gross_breach() -> None:
    """Error rate over 50 % for 3 windows; initiate's p95 over 5x its budget for 3 windows;
    the other profiles have none."""
    for profile in PROFILES:
        budgets = load_budgets(
            PROJECT_ROOT / "budgets.yaml",
            profile=profile,
            known_keys=REQUEST_KEYS,
            known_profiles=PROFILES,
        )
        rules = budgets.abort.rules if budgets.abort else ()
        if profile not in ("nightly", "prerelease"):
            assert rules == (), profile
            continue
        by_metric = {(r.selector, r.metric): r for r in rules}
        assert set(by_metric) == {(AGGREGATE_KEY, "error_rate"), (INITIATE, "p95")}
        error, p95 = by_metric[(AGGREGATE_KEY, "error_rate")], by_metric[(INITIATE, "p95")]
        assert (error.op, error.limit, error.windows) == (">", 50.0, 3)
        p95_budget = next(
            b for b in budgets.budgets if b.selector == INITIATE and b.metric == "p95"
        )
        assert (p95.op, p95.limit, p95.windows) == (">", 5 * p95_budget.limit, 3)
        assert p95.key_path == f'profiles.{profile}.abort.requests."{INITIATE}".p95'
        assert all(r.min_samples >= 20 and r.window_s > 0 for r in rules)


def test_settings_come_from_the_rule_then_the_profile_then_the_defaults() -> None:
    text = """\
abort:
  window: 10s
  min_samples: 40
  run:
    error_rate: "> 50%"
  requests:
    "POST /api/payments/v2/initiate":
      p95: {when: "> 5x budget", windows: 5}
profiles:
  soak:
    abort:
      grace: 1m
      min_samples: 100
"""
    defaults = rules_of(text)
    assert defaults is not None
    p95, error = defaults.rules  # request rules first, then the run's
    assert (p95.window_s, p95.windows, p95.min_samples, p95.grace_s) == (10.0, 5, 40, 0.0)
    assert p95.limit == 15_000.0 and p95.budget_factor == 5.0
    assert p95.key_path == f'abort.requests."{INITIATE}".p95'
    assert (error.window_s, error.windows, error.min_samples) == (10.0, 3, 40)
    soak = rules_of(text, "soak")
    assert soak is not None
    assert [(r.min_samples, r.grace_s, r.windows) for r in soak.rules] == [
        (100, 60.0, 5),
        (100, 60.0, 3),
    ]


def test_profiles_drop_rules_and_opt_names_out() -> None:
    text = """\
abort:
  run:
    error_rate: "> 50%"
  requests:
    "POST /api/payments/v2/initiate": {error_rate: "> 90%", avg: "> 10s"}
    "GET /api/plans": off
profiles:
  smoke:
    abort: off
  soak:
    abort:
      run: off
      requests:
        "POST /api/payments/v2/initiate": {avg: off}
  spike:
    abort:
      requests:
        "GET /api/plans": {error_rate: "> 95%"}
"""
    defaults = rules_of(text)
    assert defaults is not None and defaults.excluded == ("GET /api/plans",)
    assert not defaults.watches("GET /api/plans") and defaults.watches(INITIATE)
    assert rules_of(text, "smoke") == AbortRules()
    soak = rules_of(text, "soak")
    assert soak is not None
    assert [(r.selector, r.metric) for r in soak.rules] == [(INITIATE, "error_rate")]
    spike = rules_of(text, "spike")
    assert spike is not None and spike.excluded == ()  # the profile watches it again
    assert [(r.selector, r.limit) for r in spike.rules if r.selector == "GET /api/plans"] == [
        ("GET /api/plans", 95.0)
    ]
    # A profile without a section gets the defaults; a file without abort: has no rules.
    assert rules_of(text, "nightly") == defaults
    assert rules_of("") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'abort: {run: {error_rate: "< 50%"}}',
            "budgets.yaml: abort.run.error_rate: '< 50%' says what holds, as a budget does; "
            'an abort rule says when to stop the run: write > or >=, e.g. error_rate: "> 50%"',
        ),
        (
            'abort: {run: {p99: "> 5s"}}',
            "budgets.yaml: abort.run.p99: no abort rule on p99; the live progress carries each "
            "interval's count, failures, avg and p95: abort rules judge error_rate, avg, p95",
        ),
        (
            'abort: {run: {p95: "> 5x budget"}}',
            "budgets.yaml: abort.run.p95: '> 5x budget': the defaults have no p95 budget under "
            "run: to be a multiple of; add the budget, or write the limit itself, e.g. "
            'p95: "> 15s"',
        ),
        (
            'abort: {requests: {"GET /api/plans": {p95: "> 2x budget"}}}',
            "budgets.yaml: abort.requests.\"GET /api/plans\".p95: '> 2x budget': the defaults "
            "have no p95 budget under requests: 'GET /api/plans' to be a multiple of",
        ),
        (
            'abort: {requests: {"POST /api/payments/v2/initiate": {p95: "> 2x budget"}}}\n'
            "profiles:\n  soak:\n    requests:\n"
            '      "POST /api/payments/v2/initiate": {p95: off}\n',
            "budgets.yaml: abort.requests.\"POST /api/payments/v2/initiate\".p95: '> 2x budget': "
            "profile 'soak' has no p95 budget",
        ),
        (
            'abort: {window: 2, run: {error_rate: "> 5%"}}',
            "budgets.yaml: abort.window: expected a window with a unit, got the number 2; "
            "write e.g. window: 30s",
        ),
        (
            'abort: {windows: 0, run: {error_rate: "> 5%"}}',
            "budgets.yaml: abort.windows: expected a whole number of 1 or more, got the number 0",
        ),
        (
            'abort: {run: {error_rate: {when: "> 5%", min_samples: 2.5}}}',
            "budgets.yaml: abort.run.error_rate.min_samples: expected a whole number of 1 or "
            "more, got the number 2.5",
        ),
        (
            "abort: {run: {error_rate: {windows: 3}}}",
            "budgets.yaml: abort.run.error_rate.when: missing; write the threshold, e.g. "
            'when: "> 50%"',
        ),
        (
            'abort: {run: {error_rate: {when: "> 5%", window: 30s, within: 10s}}}',
            "budgets.yaml: abort.run.error_rate.within: unknown key 'within'; did you mean "
            "'when'? allowed here: when, window, windows, min_samples, grace",
        ),
        (
            'abort: {run: {error_rate: {when: "> 5s"}}}',
            "budgets.yaml: abort.run.error_rate.when: unknown unit 's' in '> 5s'",
        ),
        (
            "abort: off",
            "budgets.yaml: abort: off is for profiles; leave abort: out to have no abort rules",
        ),
        (
            'abort: {requests: {"GET /api/plan": {avg: "> 1s"}}}',
            "budgets.yaml: abort.requests.\"GET /api/plan\": no request is named 'GET /api/plan'; "
            "did you mean 'GET /api/plans'?",
        ),
        (
            'abort: {run: {error_rate: "> 5%"}}\nprofiles:\n  soak:\n    abort:\n'
            "      run: {avg: off}\n",
            "budgets.yaml: profiles.soak.abort.run.avg: off drops nothing: no default abort "
            "rule on avg here; remove it",
        ),
        (
            'abort: {run: {error_rate: "> 5%"}}\nprofiles:\n  soak:\n    abort: {stop: now}\n',
            "budgets.yaml: profiles.soak.abort.stop: unknown key 'stop'",
        ),
    ],
)
def test_every_mistake_names_the_key_path(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        rules_of(text + "\n")
    assert caught.value.message.startswith(message), caught.value.message
    assert "\n" not in caught.value.message


def test_a_mistake_in_an_abort_rule_exits_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_text(BASE + 'abort: {run: {error_rate: "< 50%"}}\n', encoding="utf-8")
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, ["run", "--budgets", str(path), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines == [
        f"paybench: error: {path}: abort.run.error_rate: '< 50%' says what holds, as a budget "
        'does; an abort rule says when to stop the run: write > or >=, e.g. error_rate: "> 50%"'
    ]
    assert not out.exists()  # refused before anything ran or was written


DOC = (PROJECT_ROOT / "docs" / "budgets.md").read_text(encoding="utf-8")
SECTION = DOC.split("## Abort rules", 1)[1].split("\n## ", 1)[0]


def test_the_documented_messages_are_the_real_ones() -> None:
    """The error lines of docs/budgets.md's Abort rules section, against the shipped file
    with the rule each one names added."""
    shown = re.findall(r"^budgets\.yaml: .*$", SECTION, re.M)
    assert len(shown) == 3
    shipped = (PROJECT_ROOT / "budgets.yaml").read_text(encoding="utf-8")
    made = []
    for extra in (
        'abort: {run: {error_rate: "< 50%"}}',
        'abort: {run: {p99: "> 5s"}}',
        'abort: {requests: {"GET /api/subscriptions/current": {p95: "> 5x budget"}}}',
    ):
        with pytest.raises(ConfigError) as caught:
            parse_budgets(
                shipped + extra + "\n",
                "budgets.yaml",
                "smoke",
                known_keys=REQUEST_KEYS,
                known_profiles=PROFILES,
            )
        made.append(caught.value.message)
    assert made == shown
