"""Server budgets judged on literal samples (harness.core.server_eval)."""

from __future__ import annotations

from harness.core.budgets import parse_budgets
from harness.core.evaluate import format_verdict_table
from harness.core.format import DASH
from harness.core.model import Verdict
from harness.core.server_eval import (
    Sample,
    SourceData,
    Window,
    judge_server,
    server_timelines,
    with_server_results,
)
from harness.summary import budget_row

T0 = 1_764_650_000.0  # the steady state starts here
WINDOW = Window(T0, T0 + 10.0, 2.0)


def section(text: str):
    return parse_budgets(f"version: 1\n{text}", "budgets.yaml").server


def samples(rows: list[tuple[float, dict[str, float] | None]]) -> tuple[Sample, ...]:
    return tuple(
        Sample(T0 + t, values, None if values is not None else "ConnectError: refused")
        for t, values in rows
    )


def source(name: str, rows: list[tuple[float, dict[str, float] | None]]) -> SourceData:
    return SourceData(name, "prometheus", "http://127.0.0.1:9/metrics", samples(rows))


def judge(text: str, data: dict[str, SourceData] | None, builtin: bool = True):
    return judge_server(section(text), data, WINDOW, builtin_target=builtin)


CPU = 'server:\n  target_process:\n    cpu_percent: {avg: "< 70%", max: "< 90%"}\n'


def test_a_counter_is_judged_by_its_change_over_the_window_never_its_total() -> None:
    # 5,000 CPU seconds since boot; a burst before the steady state; then half a core.
    rows = [(-4.0, 4990.0), (-2.0, 4999.0)] + [(t, 5000.0 + 0.5 * t) for t in range(0, 11, 2)]
    data = {
        "target_process": source(
            "target_process", [(t, {"process_cpu_seconds_total": v}) for t, v in rows]
        )
    }
    avg, peak = judge(CPU, data)
    assert (avg.status, avg.measured, avg.limit) == ("pass", 50.0, 70.0)
    assert avg.request_key == "target_process (server)"
    assert round(avg.margin_pct, 3) == round((70 - 50) / 70 * 100, 3)
    assert (peak.status, peak.measured) == ("pass", 50.0)


def test_a_counter_reset_counts_from_zero() -> None:
    # The process restarted between 4 s and 6 s: its counter began again at 0.
    values = [100.0, 101.0, 102.0, 0.5, 1.5, 2.5]
    data = {
        "target_process": source(
            "target_process",
            [
                (t, {"process_cpu_seconds_total": v})
                for t, v in zip(range(0, 11, 2), values, strict=True)
            ],
        )
    }
    avg, _ = judge(CPU, data)
    assert avg.measured == 100.0 * 4.5 / 10.0


def test_a_gauge_by_its_average_max_and_percentile_over_the_window() -> None:
    text = (
        "server:\n  target_process:\n"
        '    memory_percent: {avg: "< 80%", max: "< 80%", p95: "< 80%", min: "> 1%"}\n'
    )
    total = 1000.0
    rss = [100.0, 100.0, 100.0, 900.0, 100.0, 100.0]  # one spike to 90 %
    data = {
        "target_process": source(
            "target_process",
            [
                (t, {"process_resident_memory_bytes": r, "node_memory_MemTotal_bytes": total})
                for t, r in zip(range(0, 11, 2), rss, strict=True)
            ],
        )
    }
    avg, peak, p95, low = judge(text, data)
    assert avg.status == "pass" and round(avg.measured, 6) == round(100 * 1400 / 6000, 6)
    assert (peak.status, peak.measured) == ("fail", 90.0)
    assert "memory_percent.max 90.0 % breaks memory_percent.max < 80.0 %" in peak.message
    assert (p95.status, p95.measured) == ("fail", 90.0)  # nearest rank of 6 samples: the top
    assert (low.status, low.measured) == ("pass", 10.0)


def test_the_hit_rate_is_the_ratio_of_the_changes() -> None:
    text = 'server:\n  target: {cache_hit_rate: "> 80%"}\n'
    data = {
        "target": source(
            "target",
            [
                (
                    t,
                    {
                        "payments_cache_hits_total": 1e6 + 7 * t,
                        "payments_cache_misses_total": 5e5 + 3 * t,
                    },
                )
                for t in range(0, 11, 2)
            ],
        )
    }
    (r,) = judge(text, data)
    assert (r.status, round(r.measured, 9)) == ("fail", 70.0)


def test_redis_without_maxmemory_is_judged_against_the_machine() -> None:
    text = (
        'sources:\n  redis: {kind: prometheus, url: "http://127.0.0.1:9121/metrics"}\n'
        'server:\n  redis: {memory_percent: "< 80%"}\n'
    )
    data = {
        "redis": source(
            "redis",
            [
                (
                    t,
                    {
                        "redis_memory_used_bytes": 50.0,
                        "redis_memory_max_bytes": 0.0,
                        "redis_total_system_memory_bytes": 1000.0,
                    },
                )
                for t in range(0, 11, 2)
            ],
        )
    }
    (r,) = judge(text, data)
    assert r.measured == 5.0


def test_a_source_that_stops_answering_gives_no_data_and_fails() -> None:
    rows: list[tuple[float, dict[str, float] | None]] = [
        (0.0, {"process_cpu_seconds_total": 1.0}),
        (2.0, {"process_cpu_seconds_total": 2.0}),
        (4.0, None),
        (6.0, None),
        (8.0, None),
        (10.0, None),
    ]
    avg, peak = judge(CPU, {"target_process": source("target_process", rows)})
    assert avg.status == peak.status == "no data"
    assert not avg.passed and avg.measured is None
    assert avg.message.startswith("no data: source 'target_process' (http://127.0.0.1:9/metrics)")
    assert (
        "stopped answering 4.0 s into the steady state (ConnectError: refused) and did not "
        "answer again"
    ) in avg.message


def test_one_missed_scrape_is_not_a_stop() -> None:
    rows: list[tuple[float, dict[str, float] | None]] = [
        (t, None if t == 4 else {"process_cpu_seconds_total": 0.2 * t}) for t in range(0, 11, 2)
    ]
    avg, _ = judge(CPU, {"target_process": source("target_process", rows)})
    assert (avg.status, round(avg.measured, 9)) == ("pass", 20.0)


def test_a_source_that_never_answered_in_the_window() -> None:
    rows: list[tuple[float, dict[str, float] | None]] = [(t, None) for t in range(-2, 13, 2)]
    avg, _ = judge(CPU, {"target_process": source("target_process", rows)})
    assert avg.status == "no data"
    assert "did not answer from 2.0 s before the steady state" in avg.message


def test_a_ratio_with_nothing_to_divide_by_has_no_value() -> None:
    text = 'server:\n  target: {emails_per_completed_payment: ">= 0.99"}\n'
    data = {
        "target": source(
            "target",
            [
                (t, {"payments_emails_sent_total": 3.0, "payments_completed_total": 3.0})
                for t in range(0, 11, 2)
            ],
        )
    }
    (r,) = judge(text, data)
    assert r.status == "no samples"
    assert "did not change or is zero" in r.message


def test_the_run_statistic_spans_the_whole_run() -> None:
    # The last email of the steady state went out just after it ended.
    text = 'server:\n  target: {emails_per_completed_payment: {avg: ">= 0.99", run: ">= 0.99"}}\n'
    rows = [
        (-5.0, 0.0, 0.0),
        *((float(t), t, t) for t in range(0, 10, 2)),
        (10.0, 10, 9),
        (12.0, 10, 10),
    ]
    data = {
        "target": source(
            "target",
            [
                (t, {"payments_completed_total": done, "payments_emails_sent_total": sent})
                for t, done, sent in rows
            ],
        )
    }
    steady, run = judge(text, data)
    assert (steady.status, steady.measured) == ("fail", 0.9)
    assert (run.status, run.measured) == ("pass", 1.0)


def test_built_in_sources_are_skipped_against_another_host() -> None:
    results = judge(CPU, {}, builtin=False)
    assert [r.status for r in results] == ["skipped", "skipped"]
    assert results[0].passed
    assert "exists only when paybench starts the target; with --host, declare " in (
        results[0].message
    )
    assert "sources.target_process" in results[0].message
    (old,) = judge('server:\n  target: {cache_hit_rate: "> 80%"}\n', None)
    assert old.status == "skipped" and "no server.jsonl" in old.message


def test_a_declared_source_missing_from_the_data_fails() -> None:
    text = (
        'sources:\n  redis: {kind: redis, url: "redis://127.0.0.1:6379"}\n'
        'server:\n  redis: {cache_hit_rate: "> 80%"}\n'
    )
    (r,) = judge(text, {}, builtin=False)
    assert (r.status, r.message) == (
        "no data",
        "no data: source 'redis' was not scraped in this run",
    )


def test_server_results_join_the_verdict_table_and_summary() -> None:
    data = {
        "target_process": source(
            "target_process", [(t, {"process_cpu_seconds_total": 0.8 * t}) for t in range(0, 11, 2)]
        )
    }
    results = judge(CPU, data)
    verdict = with_server_results(Verdict("PASS", ()), results)
    assert verdict.outcome == "FAIL" and len(verdict.results) == 2
    lines = format_verdict_table(verdict)
    assert lines[0] == "FAIL: 1 of 2 budgets broken"
    row = next(line for line in lines if "cpu_percent " in line and "80.0 %" in line)
    assert row.split() == [
        "target_process",
        "(server)",
        "cpu_percent",
        "80.0",
        "%",
        "<",
        "70%",
        "-14.3",
        "%",
        DASH,
        "FAIL",
    ]
    assert budget_row(results[0])["key_path"] == "server.target_process.cpu_percent.avg"
    assert with_server_results(Verdict("UNRELIABLE", (), ("saturated",)), results).outcome == (
        "UNRELIABLE"
    )
    assert with_server_results(Verdict("PASS", ()), results[1:]).outcome == "PASS"


def test_the_timelines_for_the_report_are_the_judged_values_per_scrape() -> None:
    text = (
        "server:\n  target_process:\n"
        '    cpu_percent: {avg: "< 70%", max: "< 90%"}\n'
        '    memory_bytes: {max: "< 1GiB"}\n'
    )
    data = {
        "target_process": source(
            "target_process",
            [
                (0.0, {"process_cpu_seconds_total": 1.0, "process_resident_memory_bytes": 2**20}),
                (2.0, None),
                (4.0, {"process_cpu_seconds_total": 3.0, "process_resident_memory_bytes": 2**21}),
            ],
        )
    }
    cpu, memory = server_timelines(section(text), data)
    assert (cpu.source, cpu.quantity, cpu.unit) == ("target_process", "cpu_percent", "%")
    assert cpu.points == ((T0 + 4.0, 50.0),)  # two CPU seconds over the four between scrapes
    assert cpu.limits == (("< 70%", 70.0), ("max < 90%", 90.0))
    assert memory.points == ((T0, 1.0), (T0 + 4.0, 2.0))
    assert memory.limits == (("max < 1GiB", 1024.0),)
    # The failed scrape is a span without data, from the answer before to the one after.
    assert cpu.gaps == memory.gaps == ((T0, T0 + 4.0),)


def test_a_source_gone_to_the_end_is_a_gap_to_its_last_scrape_and_no_data_in_the_table() -> None:
    rows: list[tuple[float, dict[str, float] | None]] = [
        (0.0, {"process_cpu_seconds_total": 1.0}),
        (2.0, {"process_cpu_seconds_total": 2.0}),
        (4.0, None),
        (6.0, None),
        (12.0, None),
    ]
    data = {"target_process": source("target_process", rows)}
    (cpu,) = server_timelines(section(CPU), data)
    assert cpu.gaps == ((T0 + 2.0, T0 + 12.0),)
    results = judge(CPU, data)
    assert [r.status for r in results] == ["no data", "no data"]
    verdict = with_server_results(Verdict("PASS", ()), results)
    assert verdict.outcome == "FAIL"
    lines = format_verdict_table(verdict)
    assert lines[0] == "FAIL: 2 of 2 budgets broken"
    row = next(line for line in lines if "cpu_percent " in line and "< 70%" in line)
    assert row.endswith("NO DATA") and row.split()[3] == DASH
    assert budget_row(results[0])["status"] == "no data"


def test_two_answers_far_apart_are_a_gap_without_failed_scrapes() -> None:
    rows = [(t, {"process_cpu_seconds_total": 0.1 * t}) for t in (0.0, 2.0, 10.0, 12.0)]
    (cpu,) = server_timelines(section(CPU), {"target_process": source("target_process", rows)})
    assert cpu.gaps == ((T0 + 2.0, T0 + 10.0),)
