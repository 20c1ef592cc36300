"""The sources on real servers: Redis and redis_exporter, PostgreSQL, node_exporter,
Prometheus, a process, the reference target's /metrics; the scraper writing server.jsonl."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from harness.core.budgets import parse_budgets
from harness.core.server_budgets import SourceSpec
from harness.core.server_eval import Sample, SourceData, Window, judge_server
from harness.errors import ConfigError, TargetError
from harness.runfolder import SERVER_FILE
from harness.server.results import load_server_file
from harness.server.scraper import ServerScraping, resolve
from harness.server.sources import (
    PostgresSource,
    ProcessSource,
    PrometheusSource,
    PromQLSource,
    Source,
    family_names,
    open_source,
)
from harness.target.process import ReferenceTarget

BOUND_S = 30.0  # every wait below is for a condition, bounded by this


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {BOUND_S:g} s: {what}"
        time.sleep(0.05)


def section(text: str):
    return parse_budgets(f"version: 1\n{text}", "budgets.yaml").server


def scrape_twice(
    sources: dict[str, tuple[Source, frozenset[str]]], between: Callable[[], None]
) -> dict[str, SourceData]:
    """Each source scraped, ``between`` done, each scraped again: two samples 1 s apart
    in the judged window (the epochs are ours: the values are real)."""
    first = {name: s.scrape(w) for name, (s, w) in sources.items()}
    between()
    second = {name: s.scrape(w) for name, (s, w) in sources.items()}
    return {
        name: SourceData(
            name, s.spec.kind, s.where, (Sample(100.0, first[name]), Sample(101.0, second[name]))
        )
        for name, (s, _) in sources.items()
    }


WINDOW = Window(100.0, 101.0, 1.0)


def opened(spec_text: str, name: str, budgets: str) -> tuple[Source, frozenset[str], object]:
    sec = section(f"sources:\n  {name}: {spec_text}\nserver:\n  {name}: {budgets}\n")
    spec = sec.source(name)
    source = open_source(spec, target_url=None, target_pid=None, source_file="budgets.yaml")
    return source, resolve(sec, name, source, source.names(), "budgets.yaml"), sec


def test_redis_directly_and_through_redis_exporter_give_the_same_hit_rate(
    redis_server, redis_exporter
) -> None:
    budgets = '{cache_hit_rate: "> 80%", memory_percent: {max: "< 80%"}}'
    direct, d_wanted, d_sec = opened(f'{{kind: redis, url: "{redis_server.url}"}}', "r", budgets)
    exporter, e_wanted, e_sec = opened(
        f'{{kind: prometheus, url: "{redis_exporter.url}"}}', "r", budgets
    )
    client = redis.Redis.from_url(redis_server.url)
    client.set("paybench:plans", "cached")

    def traffic() -> None:
        for _ in range(30):
            assert client.get("paybench:plans") == b"cached"
        for i in range(10):
            assert client.get(f"paybench:absent:{i}") is None

    data = scrape_twice({"direct": (direct, d_wanted), "exporter": (exporter, e_wanted)}, traffic)
    (d_rate, d_memory) = judge_server(d_sec, {"r": data["direct"]}, WINDOW, builtin_target=False)
    (e_rate, e_memory) = judge_server(e_sec, {"r": data["exporter"]}, WINDOW, builtin_target=False)
    # The exporter's own scrape of INFO touches no key: both saw exactly our 30 hits, 10 misses.
    assert d_rate.measured == e_rate.measured == 75.0
    assert d_rate.status == "fail" and "cache_hit_rate 75.0 % breaks" in d_rate.message
    assert d_memory.status == e_memory.status == "pass"
    assert 0 < d_memory.measured < 80
    # The direct source speaks redis_exporter's names (the machine's memory only with the
    # exporter's --include-system-metrics).
    page = exporter._page()  # type: ignore[attr-defined]
    assert direct.names() - family_names(page) <= {"redis_total_system_memory_bytes"}
    client.close()
    direct.close()
    exporter.close()


def test_postgres_directly_query_time_and_connections(postgres_server) -> None:
    db, wanted, sec = opened(
        f'{{kind: postgres, url: "{postgres_server.url}"}}',
        "db",
        '{query_time_avg: "< 100ms", pool_usage_percent: {max: "< 80%"}}',
    )
    assert isinstance(db, PostgresSource) and db.has_statements
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:

        def queries() -> None:
            for i in range(50):
                conn.execute("SELECT pg_sleep(0.002), %s::int", (i,)).fetchone()

        data = scrape_twice({"db": (db, wanted)}, queries)
        query_time, pool = judge_server(sec, data, WINDOW, builtin_target=False)
    # 50 queries of at least 2 ms each, and nothing of paybench's own counted.
    assert query_time.status == "pass" and 2.0 <= query_time.measured < 100.0
    # Our connection and the source's own, of max_connections.
    values = data["db"].samples[1].values or {}
    assert values["pg_settings_max_connections"] == 100.0
    assert pool.status == "pass" and pool.measured >= 2.0
    db.close()


def test_node_exporter_gives_the_host_figures(node_exporter) -> None:
    node, wanted, sec = opened(
        f'{{kind: prometheus, url: "{node_exporter.url}"}}',
        "node",
        '{host_cpu_percent: "<= 100%", host_memory_percent: {max: "< 100%"}}',
    )
    first = node.scrape(wanted)

    def cpu_seconds(values: dict[str, float]) -> float:
        return sum(v for k, v in values.items() if k.startswith("node_cpu_seconds_total"))

    later: dict[str, float] = {}

    def advanced() -> bool:
        later.update(node.scrape(wanted))
        return cpu_seconds(later) > cpu_seconds(first)

    until(advanced, "node_cpu_seconds_total to advance")
    data = SourceData(
        "node", "prometheus", node.where, (Sample(100.0, first), Sample(101.0, later))
    )
    cpu, memory = judge_server(sec, {"node": data}, WINDOW, builtin_target=False)
    assert cpu.status == memory.status == "pass"
    assert 0.0 <= cpu.measured <= 100.0 and 0.0 < memory.measured < 100.0
    assert any('mode="idle"' in key for key in first)
    node.close()


def test_a_prometheus_server_by_range_queries(
    prometheus_server, node_exporter, tmp_path: Path
) -> None:
    prom = prometheus_server({"node": node_exporter.url})
    spec = section(
        f'sources:\n  p: {{kind: promql, url: "{prom.url}", match: \'{{job="node"}}\'}}\n'
        'server:\n  p: {host_memory_percent: "< 100%"}\n'
    ).source("p")
    source = PromQLSource(spec, "budgets.yaml")
    names: set[str] = set()

    def scraped() -> bool:
        names.update(source.names())
        return "node_memory_MemTotal_bytes" in names

    until(scraped, "Prometheus to have scraped node_exporter")
    wanted = frozenset({"node_memory_MemTotal_bytes", "node_memory_MemAvailable_bytes"})
    assert source.scrape(wanted)  # an instant query answers too
    end = time.time()
    rows = source.range_samples(wanted, end - 3.0, end, 1.0)
    assert rows and all(t <= end + 1 for t in rows)
    keys = {k for row in rows.values() for k in row}
    assert any(k.startswith("node_memory_MemTotal_bytes{") and 'job="node"' in k for k in keys)
    # Through the scraper: asked once the load is over, for the whole time it ran.
    sec = section(
        f'sources:\n  p: {{kind: promql, url: "{prom.url}", match: \'{{job="node"}}\'}}\n'
        'server:\n  p: {host_memory_percent: "< 100%"}\n'
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    scraping = ServerScraping(
        sec,
        source_file="budgets.yaml",
        interval_s=1.0,
        target_url="http://127.0.0.1:9",
        target_kind="external",
        run_dir=run_dir,
    )
    with scraping:
        started = time.time()
        until(
            lambda: len(source.range_samples(wanted, started, time.time(), 1.0)) >= 3,
            "three points of Prometheus during the load",
        )
        ended = time.time()
    _, data = load_server_file(run_dir / SERVER_FILE)
    assert len(data["p"].samples) >= 3
    (memory,) = judge_server(sec, data, Window(started, ended, 1.0), builtin_target=False)
    assert memory.status == "pass" and 0 < memory.measured < 100
    source.close()


def test_a_process_and_its_children(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = tmp_path / "app.pid"
        pid_file.write_text(f"{os.getpid()}\nmore lines, as in postmaster.pid\n")
        spec = section(
            f"sources:\n  me: {{kind: process, pid_file: {pid_file}}}\n"
            'server:\n  me: {cpu_percent: "< 1000%"}\n'
        ).source("me")
        alone = SourceSpec("me", "process", pid=os.getpid(), children=False)
        with_children = ProcessSource(spec)
        wanted = frozenset(with_children.names())
        assert with_children.scrape(wanted)["process_count"] >= 2
        assert ProcessSource(alone).scrape(wanted)["process_count"] == 1
        before = with_children.scrape(wanted)["process_cpu_seconds_total"]

        def burnt() -> bool:
            sum(i * i for i in range(20_000))
            return with_children.scrape(wanted)["process_cpu_seconds_total"] > before

        until(burnt, "our CPU seconds to grow")
        assert with_children.where == f"pid {os.getpid()}"
    finally:
        child.kill()
        child.wait()


def test_the_reference_targets_metrics_page_has_what_the_shipped_budgets_need() -> None:
    root = Path(__file__).resolve().parents[2]
    shipped = parse_budgets((root / "budgets.yaml").read_text(), "budgets.yaml", "smoke").server
    with ReferenceTarget() as target:
        spec = shipped.source("target")
        page = open_source(spec, target_url=target.url, target_pid=None, source_file="b.yaml")
        assert isinstance(page, PrometheusSource) and page.where == target.url + "/metrics"
        wanted = resolve(shipped, "target", page, page.names(), "budgets.yaml")
        assert "payments_completed_total" in wanted
        typo = section(
            "server:\n  target:\n    expr: {'rate(payments_cache_hit_total)': \"< 1\"}\n"
        )
        with pytest.raises(ConfigError) as caught:
            resolve(typo, "target", page, page.names(), "budgets.yaml")
        page.close()
    assert caught.value.message.startswith(
        "budgets.yaml: server.target.expr.\"rate(payments_cache_hit_total)\": source 'target' "
        f"({target.url}/metrics) has no payments_cache_hit_total, which "
    )
    assert "closest names it has: payments_cache_hits_total" in caught.value.message


def test_the_scraper_writes_server_jsonl_around_the_load(tmp_path: Path) -> None:
    sec = section(
        'server:\n  target: {cache_hit_rate: "> 80%"}\n'
        '  target_process: {cpu_percent: "< 100%", memory_percent: {max: "< 80%"}}\n'
    )
    with ReferenceTarget() as target:
        scraping = ServerScraping(
            sec,
            source_file="budgets.yaml",
            interval_s=0.2,
            target_url=target.url,
            target_kind="reference",
            run_dir=tmp_path,
        )
        with scraping:
            started = time.time()
            lines = lambda: (tmp_path / SERVER_FILE).read_bytes().count(b"\n")  # noqa: E731
            until(lambda: lines() >= 9, "a few scrapes of each source")
            # One miss fills the plan cache, the other 19 reads hit it.
            for _ in range(20):
                assert httpx.get(f"{target.url}/api/plans").status_code == 200
            until(lambda: lines() >= 15, "scrapes after the load")
            ended = time.time()
        process = next(j for j in scraping.jobs if j.name == "target_process")
        assert process.source.where == f"pid {target.pid}"
    interval, data = load_server_file(tmp_path / SERVER_FILE)
    assert interval == 0.2 and set(data) == {"target", "target_process"}
    assert data["target"].series == ("payments_cache_hits_total", "payments_cache_misses_total")
    assert all(s.values is not None for s in data["target_process"].samples)
    results = judge_server(sec, data, Window(started, ended, 0.2), builtin_target=True)
    assert [r.status for r in results] == ["pass", "pass", "pass"], [r.message for r in results]


def test_an_unreachable_source_is_named(tmp_path: Path) -> None:
    from harness.target.servers import free_port

    sec = section(
        f'sources:\n  r: {{kind: redis, url: "redis://127.0.0.1:{free_port()}/0", '
        "timeout: 500ms}\n"
        'server:\n  r: {cache_hit_rate: "> 80%"}\n'
    )
    scraping = ServerScraping(
        sec,
        source_file="budgets.yaml",
        interval_s=2.0,
        target_url="http://127.0.0.1:9",
        target_kind="external",
        run_dir=tmp_path,
    )
    with pytest.raises(TargetError) as caught, scraping:
        pass
    assert caught.value.message.startswith(
        "budgets.yaml: sources.r: redis source 'r' (redis://127.0.0.1:"
    )
    assert "did not answer: ConnectionError" in caught.value.message
    assert not (tmp_path / SERVER_FILE).exists()
