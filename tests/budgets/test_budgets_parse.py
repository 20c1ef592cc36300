"""budgets.yaml -> Budgets: the format's meaning (the corpus covers the refusals)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.config import load_budgets
from harness.core.budgets import (
    format_key_path,
    is_glob,
    match_keys,
    parse_budgets,
    selector_matches,
)
from harness.core.catalogue import (
    FLOW_CHECKOUT,
    HEALTH,
    HEALTH_DATABASE,
    HEALTH_PAYMENTS,
    HEALTH_REDIS,
    INITIATE,
    PLANS,
    REQUEST_KEYS,
    STATUS,
    WEBHOOK_COMPLETED,
    WEBHOOK_DUPLICATE,
    WEBHOOK_FAILED,
    WEBHOOK_FORGED,
)
from harness.core.hosts import check_host
from harness.core.model import AGGREGATE_KEY, Budgets, request_key
from harness.errors import ConfigError
from harness.profiles import PROJECT_ROOT, available_profiles

SHIPPED = PROJECT_ROOT / "budgets.yaml"
PROFILES = available_profiles()


def key(entry: tuple[str, str]) -> str:
    return request_key(*entry)


def parse(text: str, profile: str | None = None, **kwargs: object) -> Budgets:
    return parse_budgets(text, "b.yaml", profile, **kwargs)  # type: ignore[arg-type]


def limits(budgets: Budgets) -> dict[tuple[str, str], tuple[str, float]]:
    return {(b.selector, b.metric): (b.op, b.limit) for b in budgets.budgets}


# --- the shipped budgets.yaml --------------------------------------------------------------


@pytest.mark.parametrize("profile", [None, *PROFILES])
def test_shipped_budgets_parse_against_the_catalogue(profile: str | None) -> None:
    budgets = load_budgets(SHIPPED, profile, REQUEST_KEYS, known_profiles=PROFILES)
    assert budgets.profile == profile
    assert budgets.budgets
    for b in (*budgets.budgets, *budgets.regressions):
        assert b.selector == AGGREGATE_KEY or match_keys(b.selector, REQUEST_KEYS), b.key_path


def test_shipped_budgets_hold_the_production_checklist_for_every_profile() -> None:
    for profile in [None, *PROFILES]:
        got = limits(load_budgets(SHIPPED, profile, REQUEST_KEYS))
        checklist = {
            key(INITIATE): 2000.0,
            key(STATUS): 1000.0,
            key(PLANS): 300.0,
        }
        for name, limit in checklist.items():
            assert got[(name, "avg")] == ("<", limit), (profile, name)
        webhook_avg = [sel for (sel, m) in got if m == "avg" and got[(sel, m)] == ("<", 500.0)]
        webhooks = {
            key(k) for k in (WEBHOOK_COMPLETED, WEBHOOK_FAILED, WEBHOOK_DUPLICATE, WEBHOOK_FORGED)
        }
        covered = {k for sel in webhook_avg for k in match_keys(sel, REQUEST_KEYS)}
        assert covered == webhooks, profile
        health_avg = [sel for (sel, m) in got if m == "avg" and got[(sel, m)] == ("<", 100.0)]
        covered = {k for sel in health_avg for k in match_keys(sel, REQUEST_KEYS)}
        assert covered == {
            key(k) for k in (HEALTH, HEALTH_DATABASE, HEALTH_REDIS, HEALTH_PAYMENTS)
        }, profile
        assert (key(FLOW_CHECKOUT), "error_rate") in got
        assert (AGGREGATE_KEY, "error_rate") in got


def test_shipped_profiles_differ_where_documented() -> None:
    default = load_budgets(SHIPPED, None, REQUEST_KEYS)
    smoke = load_budgets(SHIPPED, "smoke", REQUEST_KEYS)
    nightly = load_budgets(SHIPPED, "nightly", REQUEST_KEYS)
    soak = load_budgets(SHIPPED, "soak", REQUEST_KEYS)
    assert (default.warmup_s, smoke.warmup_s, soak.warmup_s) == (2.0, 1.0, 30.0)
    assert {b.metric for b in smoke.budgets} == {"avg", "error_rate"}
    assert (AGGREGATE_KEY, "rps") in limits(default)
    assert (AGGREGATE_KEY, "rps") not in limits(smoke)
    assert default.regressions == ()
    regs = {(r.selector, r.metric): r for r in nightly.regressions}
    p95 = regs[(key(INITIATE), "p95")]
    assert (p95.max_increase, p95.relative, p95.significant_only) == (10.0, True, True)
    errors = regs[(AGGREGATE_KEY, "error_rate")]
    assert (errors.max_increase, errors.relative, errors.significant_only) == (0.5, False, False)
    assert limits(soak)[(AGGREGATE_KEY, "error_rate")] == ("<", 0.5)
    assert limits(soak)[(key(INITIATE), "p99.9")] == ("<", 8000.0)
    assert default.allowed_hosts == ()
    assert default.baseline_runs == 5


def test_every_shipped_budget_line_says_where_it_comes_from() -> None:
    budget_line = re.compile(r'^\s+(avg|min|max|median|p[\d.]+|error_rate|rps|count):\s*"')
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if budget_line.match(line):
            commented = "#" in line or lines[number - 1].strip().startswith("#")
            assert commented, f"budgets.yaml line {number + 1} has no comment: {line.strip()}"


# --- selectors -----------------------------------------------------------------------------


def test_brackets_are_literal_and_only_star_and_question_mark_are_wildcards() -> None:
    status = key(STATUS)
    assert not is_glob(status)
    assert selector_matches(status, status)
    # fnmatch would read [merchant_order_id] as a character class and match "d", not this.
    assert not selector_matches(status, "GET /api/payments/v2/status/d")
    webhooks = match_keys("POST /api/payments/v2/webhook [*]", REQUEST_KEYS)
    assert webhooks == [
        key(k) for k in (WEBHOOK_COMPLETED, WEBHOOK_FAILED, WEBHOOK_DUPLICATE, WEBHOOK_FORGED)
    ]
    assert match_keys("GET /api/health*", REQUEST_KEYS) == [
        key(HEALTH),
        key(HEALTH_DATABASE),
        key(HEALTH_REDIS),
    ]
    assert match_keys("GET /api/plan?", REQUEST_KEYS) == [key(PLANS)]
    assert match_keys("*", [*REQUEST_KEYS, AGGREGATE_KEY]) == list(REQUEST_KEYS)


def test_key_path_quotes_names_but_not_percentiles() -> None:
    assert format_key_path(["requests", "GET /api/plans", "p99.9"]) == (
        'requests."GET /api/plans".p99.9'
    )
    assert format_key_path(["profiles", "smoke", "run", "error_rate"]) == (
        "profiles.smoke.run.error_rate"
    )
    assert format_key_path(["requests", 'say "hi"']) == 'requests."say \\"hi\\""'


# --- limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metric", "text", "op", "limit"),
    [
        ("avg", "< 2s", "<", 2000.0),
        ("avg", "<2s", "<", 2000.0),
        ("p95", "<= 800ms", "<=", 800.0),
        ("p99.9", "< 0.5 s", "<", 500.0),
        ("median", "> 1ms", ">", 1.0),
        ("max", "< 1.5s", "<", 1500.0),
        ("error_rate", "< 1%", "<", 1.0),
        ("error_rate", "<= 0%", "<=", 0.0),
        ("error_rate", "> 0%", ">", 0.0),
        ("rps", ">= 5", ">=", 5.0),
        ("rps", ">= 0.5", ">=", 0.5),
        ("count", ">= 100", ">=", 100.0),
    ],
)
def test_limit_is_converted_to_the_metric_unit(
    metric: str, text: str, op: str, limit: float
) -> None:
    budgets = parse(f'version: 1\nrun:\n  {metric}: "{text}"\n')
    (b,) = budgets.budgets
    assert (b.selector, b.metric, b.op, b.limit, b.text) == (AGGREGATE_KEY, metric, op, limit, text)
    assert b.key_path == f"run.{metric}"


def test_percentile_names_are_canonical() -> None:
    budgets = parse('version: 1\nrun:\n  p95.0: "< 1s"\n  p99.90: "< 2s"\n  p50: "< 1s"\n')
    assert [b.metric for b in budgets.budgets] == ["p95", "p99.9", "p50"]


def test_requests_come_first_then_the_run_in_written_order() -> None:
    text = """
version: 1
run:
  error_rate: "< 1%"
requests:
  "GET /api/plans": {p95: "< 450ms", avg: "< 300ms"}
  "POST /api/payments/v2/initiate": {avg: "< 2s"}
"""
    budgets = parse(text, known_keys=REQUEST_KEYS)
    assert [(b.selector, b.metric) for b in budgets.budgets] == [
        (key(PLANS), "p95"),
        (key(PLANS), "avg"),
        (key(INITIATE), "avg"),
        (AGGREGATE_KEY, "error_rate"),
    ]
    assert budgets.budgets[0].key_path == 'requests."GET /api/plans".p95'


def test_without_known_keys_any_method_name_is_accepted() -> None:
    budgets = parse('version: 1\nrequests:\n  "GET /custom/thing":\n    avg: "< 1s"\n')
    assert budgets.budgets[0].selector == "GET /custom/thing"


# --- sections ------------------------------------------------------------------------------


def test_settings_sections() -> None:
    text = """
version: 1
steady_state: {warmup: 500ms}
hosts:
  allow: [Staging.Example.Invalid., "[::2]", staging.example.invalid]
capacity: {expected_peak_rps: 80}
baseline: {runs: 7}
run: {error_rate: "< 1%"}
"""
    budgets = parse(text)
    assert budgets.warmup_s == 0.5
    assert budgets.allowed_hosts == ("staging.example.invalid", "::2")
    assert budgets.expected_peak_rps == 80.0
    assert budgets.baseline_runs == 7
    assert budgets.source == "b.yaml"


def test_defaults_when_sections_are_absent() -> None:
    budgets = parse('version: 1\nrun: {error_rate: "< 1%"}\n')
    assert (budgets.warmup_s, budgets.allowed_hosts, budgets.baseline_runs) == (0.0, (), 5)
    assert budgets.expected_peak_rps is None
    assert budgets.regressions == ()


@pytest.mark.parametrize(
    ("text", "increase", "relative", "significant"),
    [
        ("+10% significant", 10.0, True, True),
        ("+10%", 10.0, True, False),
        ("+50ms", 50.0, False, False),
        ("+0.2s significant", 200.0, False, True),
        ("+0% significant", 0.0, True, True),
    ],
)
def test_regression_budgets(text: str, increase: float, relative: bool, significant: bool) -> None:
    budgets = parse(
        "version: 1\nregressions:\n  requests:\n"
        f'    "POST /api/payments/v2/initiate": {{p95: "{text}"}}\n',
        known_keys=REQUEST_KEYS,
    )
    (r,) = budgets.regressions
    assert (r.metric, r.max_increase, r.relative, r.significant_only) == (
        "p95",
        increase,
        relative,
        significant,
    )
    assert r.key_path == 'regressions.requests."POST /api/payments/v2/initiate".p95'
    assert budgets.budgets == ()


def test_error_rate_regression_is_in_points() -> None:
    budgets = parse('version: 1\nregressions:\n  run: {error_rate: "+0.5 points"}\n')
    (r,) = budgets.regressions
    assert (r.selector, r.max_increase, r.relative) == (AGGREGATE_KEY, 0.5, False)


def test_regression_of_zero_without_significant_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"regressions\.run\.p95: '\+0%' fails on any noise"):
        parse('version: 1\nregressions:\n  run: {p95: "+0%"}\n')


# --- profiles ------------------------------------------------------------------------------

PROFILED = """
version: 1
steady_state: {warmup: 2s}
capacity: {expected_peak_rps: 80}
requests:
  "GET /api/plans": {avg: "< 300ms", p95: "< 450ms"}
  "GET /api/health*": {avg: "< 100ms"}
run: {error_rate: "< 1%", rps: ">= 5"}
regressions:
  run: {error_rate: "+0.5 points"}
profiles:
  smoke:
    steady_state: {warmup: 1s}
    requests:
      "GET /api/plans": {p95: off, avg: "< 500ms", max: "< 2s"}
      "GET /api/health*": off
    run: {rps: off}
    regressions: {run: off}
  soak:
    capacity: {expected_peak_rps: 40}
    baseline: {runs: 3}
    run: off
    requests:
      "POST /api/payments/v2/initiate": {p99.9: "< 8s"}
"""


def test_profile_overrides_replace_add_and_drop() -> None:
    smoke = parse(PROFILED, "smoke", known_keys=REQUEST_KEYS)
    assert limits(smoke) == {
        (key(PLANS), "avg"): ("<", 500.0),
        (key(PLANS), "max"): ("<", 2000.0),
        (AGGREGATE_KEY, "error_rate"): ("<", 1.0),
    }
    # The replaced budget keeps its place; its key path names where it was written.
    assert smoke.budgets[0].key_path == 'profiles.smoke.requests."GET /api/plans".avg'
    assert smoke.warmup_s == 1.0
    assert smoke.expected_peak_rps == 80.0
    assert smoke.regressions == ()


def test_profile_can_drop_the_run_section_and_add_names() -> None:
    soak = parse(PROFILED, "soak", known_keys=REQUEST_KEYS)
    assert (AGGREGATE_KEY, "error_rate") not in limits(soak)
    assert limits(soak)[(key(INITIATE), "p99.9")] == ("<", 8000.0)
    assert (soak.expected_peak_rps, soak.baseline_runs, soak.warmup_s) == (40.0, 3, 2.0)
    assert len(soak.regressions) == 1


def test_a_profile_without_a_section_gets_the_defaults() -> None:
    default = parse(PROFILED)
    other = parse(PROFILED, "prerelease")
    assert other.budgets == default.budgets
    assert other.profile == "prerelease"
    assert default.profile is None


def test_a_bad_override_fails_whichever_profile_is_asked_for() -> None:
    bad = PROFILED.replace("{expected_peak_rps: 40}", "{expected_peak_rps: -40}")
    for profile in (None, "smoke"):
        with pytest.raises(
            ConfigError, match=r"b\.yaml: profiles\.soak\.capacity\.expected_peak_rps"
        ):
            parse(bad, profile)


def test_profile_names_are_checked_when_known() -> None:
    with pytest.raises(
        ConfigError, match=r"profiles\.smoek: no profile is named 'smoek'; did you mean 'smoke'\?"
    ):
        parse(PROFILED.replace("  smoke:", "  smoek:"), known_profiles=["smoke", "soak"])


def test_a_profile_that_drops_every_budget_is_refused_when_asked_for() -> None:
    text = """
version: 1
run: {error_rate: "< 1%"}
profiles:
  smoke:
    run: off
"""
    assert parse(text).budgets
    with pytest.raises(
        ConfigError, match=r"b\.yaml: profiles\.smoke: no budgets for profile 'smoke'; add budgets"
    ):
        parse(text, "smoke")


def test_anchors_and_aliases_share_overrides() -> None:
    text = """
version: 1
requests:
  "GET /api/plans": {avg: "< 300ms", p95: "< 450ms"}
  "GET /api/health": {avg: "< 100ms", p95: "< 150ms"}
profiles:
  smoke:
    requests:
      "GET /api/plans": &no-tail {p95: off}
      "GET /api/health": *no-tail
"""
    smoke = parse(text, "smoke", known_keys=REQUEST_KEYS)
    assert [b.metric for b in smoke.budgets] == ["avg", "avg"]


def test_duplicate_keys_are_refused_even_in_flow_style() -> None:
    with pytest.raises(ConfigError, match=r"run\.avg: duplicate key 'avg' \(lines 2 and 2\)"):
        parse('version: 1\nrun: {avg: "< 1s", avg: "< 2s"}\n')


def test_read_errors_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "budgets.yaml"
    path.write_bytes(b'\xef\xbb\xbfversion: 1\nrun: {error_rate: "< 1%"}\n')  # BOM is fine
    assert load_budgets(path).source == str(path)


# --- documented examples are tests -----------------------------------------------------------

DOC = PROJECT_ROOT / "docs" / "budgets.md"
DOC_EXAMPLES = re.findall(r"```yaml\n(version: 1\n.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_documentation_has_examples() -> None:
    assert len(DOC_EXAMPLES) >= 5


@pytest.mark.parametrize(
    "text", DOC_EXAMPLES, ids=[f"example-{i}" for i in range(len(DOC_EXAMPLES))]
)
def test_documented_examples_parse_for_every_profile(text: str) -> None:
    for profile in [None, *PROFILES]:
        parse(text, profile, known_keys=REQUEST_KEYS, known_profiles=PROFILES)


@pytest.mark.parametrize(
    "text",
    [
        'requests:\n  "POST /api/payments/v2/initiate":\n    p100.5: "< 5s"\n',
        'requests:\n  "GET /api/plans":\n    avg: "=< 300ms"\n',
        'requests:\n  "GET /api/plan":\n    avg: "< 300ms"\n',
        'requests:\n  "GET /api/plans": {avg: "< 1s"}\nprofiles:\n  smoke:\n    hosts: {}\n',
        "version: 2\n",
    ],
)
def test_documented_error_messages_are_the_real_ones(text: str) -> None:
    if not text.startswith("version"):
        text = "version: 1\n" + text
    with pytest.raises(ConfigError) as caught:
        parse_budgets(text, "budgets.yaml", known_keys=REQUEST_KEYS)
    assert caught.value.message in DOC.read_text(encoding="utf-8")


def test_documented_host_message_is_the_real_one() -> None:
    with pytest.raises(ConfigError) as caught:
        check_host("https://staging.example.invalid", allowed=())
    assert caught.value.message in DOC.read_text(encoding="utf-8")
