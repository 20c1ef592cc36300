"""budgets.yaml's sources: and server: sections (harness.core.server_budgets), parsed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.core import metrics as registry
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.server_budgets import (
    BUILTIN_SOURCES,
    FORMULAS,
    Gauge,
    Increase,
    Rate,
    Ratio,
    expression_text,
    parse_series_text,
    series_names,
    series_text,
)
from harness.errors import ConfigError
from harness.profiles import available_profiles

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "budgets.yaml"


def parse(text: str, profile: str | None = None):
    return parse_budgets(f"version: 1\n{text}", "budgets.yaml", profile, known_keys=REQUEST_KEYS)


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return caught.value.message


def test_a_server_section_reads_like_the_request_budgets() -> None:
    budgets = parse(
        "sources:\n"
        '  redis: {kind: redis, url: "redis://127.0.0.1:6379/0", password_env: REDIS_PW}\n'
        "server:\n"
        "  redis:\n"
        '    cache_hit_rate: "> 80%"\n'
        '    memory_percent: {max: "< 80%", p95: "< 70%"}\n'
        '    memory_bytes: {max: "< 1.5GiB"}\n'
        "  target_process:\n"
        '    cpu_percent: "< 70%"\n'
        "  target:\n"
        '    query_time_avg: "< 0.1s"\n'
        '    emails_per_completed_payment: {run: [">= 0.99", "<= 1.01"]}\n'
    )
    assert budgets.budgets == ()  # a file with server budgets only is a file with budgets
    rows = [
        (b.key_path, b.selector, b.metric, b.op, b.limit, b.unit) for b in budgets.server.budgets
    ]
    assert rows == [
        ("server.redis.cache_hit_rate", "redis", "cache_hit_rate", ">", 80.0, "%"),
        ("server.redis.memory_percent.max", "redis", "memory_percent.max", "<", 80.0, "%"),
        ("server.redis.memory_percent.p95", "redis", "memory_percent.p95", "<", 70.0, "%"),
        ("server.redis.memory_bytes.max", "redis", "memory_bytes.max", "<", 1536.0, "MiB"),
        ("server.target_process.cpu_percent", "target_process", "cpu_percent", "<", 70.0, "%"),
        ("server.target.query_time_avg", "target", "query_time_avg", "<", 100.0, "ms"),
        (
            "server.target.emails_per_completed_payment.run.0",
            "target",
            "emails_per_completed_payment.run",
            ">=",
            0.99,
            "",
        ),
        (
            "server.target.emails_per_completed_payment.run.1",
            "target",
            "emails_per_completed_payment.run",
            "<=",
            1.01,
            "",
        ),
    ]
    redis = budgets.server.source("redis")
    assert (redis.kind, redis.url, redis.password_env, redis.builtin) == (
        "redis",
        "redis://127.0.0.1:6379/0",
        "REDIS_PW",
        False,
    )
    # The built-in target's two sources exist without being declared.
    assert {s.name for s in budgets.server.sources} == {"redis", *BUILTIN_SOURCES}
    # A direct Redis source has only the Redis formula of each metric.
    (hit_rate,) = budgets.server.budgets[0].formulas
    assert series_names(hit_rate) == ("redis_keyspace_hits_total", "redis_keyspace_misses_total")


def test_raw_expressions_a_series_rate_delta_and_a_ratio_of_two() -> None:
    budgets = parse(
        "sources:\n"
        "  node: {kind: prometheus, url: http://127.0.0.1:9100/metrics}\n"
        "server:\n"
        "  node:\n"
        "    expr:\n"
        '      node_load1: {max: "< 4"}\n'
        '      \'rate(node_network_receive_errs_total{device!~"lo|veth.*"})\': "<= 0"\n'
        '      \'delta(a_total{x="1"}) / delta(b_total)\': "< 0.5"\n'
    )
    load, errors, ratio = budgets.server.budgets
    assert (load.metric, load.stat, load.limit) == ("node_load1{}.max", "max", 4.0)
    assert load.formulas == (Gauge(load.formulas[0].selector),)
    assert errors.metric == 'rate(node_network_receive_errs_total{device!~"lo|veth.*"})'
    assert isinstance(errors.formulas[0], Rate) and (errors.op, errors.limit) == ("<=", 0.0)
    (expr,) = ratio.formulas
    assert isinstance(expr, Ratio) and isinstance(expr.numerator, Increase)
    assert expression_text(expr) == 'delta(a_total{x="1"}) / delta(b_total{})'
    assert ratio.key_path == 'server.node.expr."delta(a_total{x=\\"1\\"}) / delta(b_total)"'
    # Every spelling the registry is asked for has its unit: a raw expression is a number.
    assert {registry.unit_of(b.metric) for b in budgets.server.budgets} == {""}


def test_profiles_override_per_source_and_metric_and_off_drops() -> None:
    text = (
        "server:\n"
        "  target:\n"
        '    cache_hit_rate: "> 80%"\n'
        '    pool_usage_percent: {avg: "< 80%", max: "< 95%"}\n'
        "  target_process:\n"
        '    cpu_percent: "< 70%"\n'
        "profiles:\n"
        "  soak:\n"
        "    server:\n"
        '      target: {cache_hit_rate: "> 90%", pool_usage_percent: off}\n'
        "  smoke:\n"
        "    server:\n"
        "      target_process: off\n"
        "      target: {pool_usage_percent: {max: off}}\n"
    )
    soak = {b.key_path: b.text for b in parse(text, "soak").server.budgets}
    assert soak == {
        "profiles.soak.server.target.cache_hit_rate": "> 90%",
        "server.target_process.cpu_percent": "< 70%",
    }
    smoke = {b.key_path for b in parse(text, "smoke").server.budgets}
    assert smoke == {"server.target.cache_hit_rate", "server.target.pool_usage_percent.avg"}
    assert len(parse(text).server.budgets) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'server:\n  target: {cache_hit_ratio: "> 80%"}\n',
            "budgets.yaml: server.target.cache_hit_ratio: unknown server metric "
            "'cache_hit_ratio'; did you mean 'cache_hit_rate'?",
        ),
        (
            'server:\n  target: {p95: "< 1s"}\n',
            "server.target.p95: unknown server metric 'p95'; p95 is a request metric",
        ),
        (
            'server:\n  redsi: {cache_hit_rate: "> 80%"}\n',
            "server.redsi: no source is named 'redsi'; declare it under sources: "
            "(known: target, target_process)",
        ),
        (
            'requests:\n  "GET /api/plans": {cpu_percent: "< 70%"}\n',
            "'cpu_percent' is a server metric; budget it under server.SOURCE",
        ),
        (
            'server:\n  target: {cache_hit_rate: "> 80"}\n',
            "no unit in '> 80'; cache_hit_rate is in percent",
        ),
        (
            'server:\n  target: {cache_hit_rate: "> 180%"}\n',
            "'> 180%' is above 100 %",
        ),
        (
            'server:\n  target: {query_time_avg: "< 100"}\n',
            "no unit in '< 100'; average query time is a time: add ms or s",
        ),
        (
            'server:\n  target: {emails_per_completed_payment: "> 1%"}\n',
            "unknown unit '%' in '> 1%'",
        ),
        (
            'server:\n  target: {cpu_percent: {mean: "< 70%"}}\n',
            "server.target.cpu_percent.mean: unknown statistic 'mean'",
        ),
        (
            "server:\n  target: {cpu_percent: off}\n",
            "server.target.cpu_percent: off is for profiles",
        ),
        (
            'sources:\n  db: {kind: postgres, url: "postgresql://u:secret@db/x"}\n'
            'server:\n  db: {query_time_avg: "< 100ms"}\n',
            "sources.db.url: the URL holds a password, which would be copied into the run "
            "folder; remove it and name the environment variable",
        ),
        (
            'sources:\n  db: {kind: postgress, url: "postgresql://db/x"}\n',
            "sources.db.kind: unknown kind the text 'postgress'; did you mean 'postgres'?",
        ),
        (
            'sources:\n  p: {kind: process, url: "http://127.0.0.1:9"}\n',
            "sources.p.url: a process source takes no url",
        ),
        (
            'sources:\n  r: {kind: redis, url: "redis://127.0.0.1", password_env: "s3cret!"}\n',
            "sources.r.password_env: 's3cret!' is not an environment variable name",
        ),
        (
            'sources:\n  r: {kind: redis, url: "redis://127.0.0.1"}\n'
            'server:\n  r: {host_cpu_percent: "< 70%"}\n',
            "server.r.host_cpu_percent: a redis source cannot give host_cpu_percent: it has "
            "no node_cpu_seconds_total",
        ),
        (
            "server:\n  target:\n    expr: {'rate(x_total': \"< 1\"}\n",
            "server.target.expr.\"rate(x_total\": unexpected end at character 13 of 'rate(x_total'",
        ),
        (
            "server:\n  target:\n    expr: {'avg(x_total)': \"< 1\"}\n",
            "unknown function 'avg' (rate and delta are known)",
        ),
        (
            'server:\n  target:\n    expr: {\'x{a=~"("}\': "< 1"}\n',
            "is not a regular expression",
        ),
    ],
)
def test_mistakes_are_one_line_naming_the_key_path(text: str, message: str) -> None:
    got = refused(text)
    assert message in got, got
    assert "\n" not in got


def test_request_and_server_limits_share_one_parser() -> None:
    """Review item: server_budgets re-implemented budgets._parse_limit; both now read the
    operator and number through budgets.split_limit and say the same of the same mistake."""
    from harness.core import budgets, server_budgets

    assert server_budgets.split_limit is budgets.split_limit
    for limit, message in (
        ("'<< 5%'", "unknown operator '<<' in '<< 5%'; use <, <=, > or >="),
        ("'5%'", "'5%' has no operator; start it with <, <=, > or >="),
        ("'< %'", "'< %' has no number after the operator"),
        ("''", "the budget is empty"),
        ("5", "5 has no operator; write the operator (and unit) in quotes"),
    ):
        server = refused(f"server:\n  target: {{cache_hit_rate: {limit}}}\n")
        request = refused(f"run: {{error_rate: {limit}}}\n")
        assert message in server and message in request, (server, request)
    # A server limit may be written with an exponent, but not an infinite one.
    assert "is negative or not finite" in refused('server:\n  target: {cpu_percent: "< 1e999%"}\n')


def test_a_raw_expression_of_a_direct_source_must_be_a_series_it_has() -> None:
    got = refused(
        'sources:\n  r: {kind: redis, url: "redis://127.0.0.1"}\n'
        "server:\n  r:\n    expr: {'rate(redis_keyspace_hit_total)': \"< 1\"}\n"
    )
    assert "it has no redis_keyspace_hit_total (closest: redis_keyspace_hits_total" in got


def test_series_text_is_canonical_and_reads_back() -> None:
    text = series_text("node_cpu_seconds_total", {"mode": "idle", "cpu": "0"})
    assert text == 'node_cpu_seconds_total{cpu="0",mode="idle"}'
    tricky = series_text("x", {"path": 'a"b\\c\nd'})
    assert parse_series_text(tricky) == ("x", {"path": 'a"b\\c\nd'})
    assert parse_series_text("process_cpu_seconds_total") == ("process_cpu_seconds_total", {})
    assert parse_series_text("not a series") is None


def test_every_named_metric_has_formulas_and_a_unit() -> None:
    assert set(FORMULAS) == set(registry.SERVER_NAMED)
    for name in FORMULAS:
        assert registry.metric(name).source == "server"
        assert registry.metric(f"{name}.p95").unit == registry.metric(name).unit
    # Server metrics stay out of the request budgets' help and the history.
    assert "cpu_percent" not in registry.METRICS_HELP
    assert not {m.name for m in registry.stored_metrics()} & set(FORMULAS)


# --- the shipped budgets.yaml -------------------------------------------------------------


def _uncommented(text: str) -> str:
    """The shipped file with its commented-out server budgets and sources switched on."""
    start = text.index("\n# sources:\n")
    end = text.index("\nprofiles:")
    lines = []
    for line in text[start:end].splitlines():
        m = re.match(r"^(\s*)# (\s*[A-Za-z_]+:.*|\s+password_env.*)$", line)
        lines.append(m.group(1) + m.group(2) if m else line)
    return text[:start] + "\n".join(lines) + text[end:]


def test_the_shipped_file_budgets_every_server_number_of_the_checklist() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    for profile in available_profiles():
        on = parse_budgets(text, "budgets.yaml", profile, REQUEST_KEYS, available_profiles())
        # With no setup, the built-in target's sources only.
        assert {b.selector for b in on.server.budgets} == set(BUILTIN_SOURCES), profile
    everything = parse_budgets(_uncommented(text), "budgets.yaml", "nightly", REQUEST_KEYS)
    judged = {(b.selector, b.quantity, b.op, b.limit) for b in everything.server.budgets}
    checklist = {
        ("target", "cache_hit_rate", ">", 80.0),  # Redis cache hit rate > 80 %
        ("redis", "cache_hit_rate", ">", 80.0),
        ("redis", "memory_percent", "<", 80.0),  # memory within limits
        ("db", "query_time_avg", "<", 100.0),  # query time < 100 ms average
        ("target", "query_time_avg", "<", 100.0),
        ("target", "pool_usage_percent", "<", 80.0),  # pool usage < 80 %
        ("db_host", "host_cpu_percent", "<", 70.0),  # database CPU < 70 %
        ("db_host", "host_memory_percent", "<", 80.0),  # database memory < 80 %
        ("target_process", "cpu_percent", "<", 70.0),  # server CPU < 70 %
        ("api_host", "host_cpu_percent", "<", 70.0),
        ("target_process", "memory_percent", "<", 80.0),  # server memory < 80 %
        ("api_host", "host_memory_percent", "<", 80.0),
        ("probe", "probe_duration_seconds{}", "<", 0.05),  # network latency < 50 ms
        ("api_host", "disk_io_time_avg", "<", 80.0),  # disk I/O < 80 ms average
        ("target", "emails_per_completed_payment", ">=", 0.99),  # one email per payment
        ("target", "emails_per_completed_payment", "<=", 1.01),
    }
    assert checklist <= judged, checklist - judged
