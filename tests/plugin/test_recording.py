"""harness.recording: paybench.hdr.json written from payloads, read back, and refused.

No Locust here: payloads are built from literal latencies, merged by the same Aggregator
the plugin uses, written with the same atomic writer, and read with load_recording.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core import stats
from harness.core.model import AGGREGATE_KEY
from harness.errors import FormatError
from harness.recording import (
    HDR_FILE,
    Aggregator,
    CpuSample,
    GeneratorFacts,
    PacedInfo,
    PacedUserClass,
    generator_unreliable_reasons,
    load_recording,
)
from harness.runfolder import write_json_atomically

INTERVAL_S = 2.0
START = 1000.0  # interval 500 is [1000, 1002)


def row(request_type, name, index, values_ms, failures=0, cut_off=0, encode=True):
    ns = stats.ms_to_ns_array(values_ms)
    h = stats.histogram_from_ms(values_ms)
    return [
        request_type,
        name,
        index,
        len(values_ms),
        failures,
        cut_off,
        int(ns.sum()),
        int(ns.min()) if len(values_ms) else None,
        int(ns.max()) if len(values_ms) else None,
        h.encode() if encode else h,
    ]


def payload(process, entries, failures=(), cpu=(), paced=(), paced_classes=None):
    return {
        "process": process,
        "sent_epoch": START + 7,
        "entries": list(entries),
        "paced": list(paced),
        "failures": [list(f) for f in failures],
        "cpu": [list(c) for c in cpu],
        "paced_classes": paced_classes or {},
    }


META = {
    "test_start_epoch": START,
    "spawning_complete_epoch": START + 1.0,
    "spawning_complete_epochs": [START + 1.0],
    "test_stop_epoch": START + 5.5,
    "mode": "master",
    "workers": ["worker-0", "worker-1"],
    "users": [
        {"epoch": START, "users": 0},
        {"epoch": START + 1.0, "users": 4},
        {"epoch": START + 5.6, "users": 0},
    ],
    "warnings": [],
}


@pytest.fixture
def recording(tmp_path: Path):
    agg = Aggregator(INTERVAL_S)
    # Two workers; the same key and interval arrive from both, in two reports from one.
    agg.apply(
        payload(
            "worker-0",
            [
                row("GET", "/a", 500, [1.0, 2.0, 3.0], failures=1),
                row("FLOW", "checkout", 501, [100.0]),
            ],
            failures=[("GET", "/a", "HTTPError('500')", 1, START + 0.5, START + 0.5)],
            cpu=[(START + 2.0, 35.0), (START + 4.0, 97.5)],
        )
    )
    agg.apply(payload("worker-0", [row("GET", "/a", 501, [4.0]), row("POST", "/b", 501, [7.0])]))
    agg.apply(
        payload(
            "worker-1",
            [row("GET", "/a", 501, [5.0], encode=False), row("GET", "/a", 502, [], cut_off=2)],
            failures=[("GET", "/a", "HTTPError('500')", 2, START + 0.2, START + 3.0)],
            cpu=[(START + 2.0, 20.0)],
        )
    )
    path = tmp_path / HDR_FILE
    write_json_atomically(path, agg.document(META))
    return load_recording(path)


def test_whole_run_per_key_counts_and_exact_latencies(recording):
    by_key = {s.key: s for s in recording.request_stats()}
    assert set(by_key) == {"GET /a", "POST /b", "FLOW checkout"}
    a = by_key["GET /a"]
    assert (a.count, a.failures, a.cut_off) == (5, 1, 2)
    assert a.avg_ms == pytest.approx(3.0)
    assert (a.min_ms, a.max_ms) == (1.0, 5.0)
    assert a.percentile_ms(50) == pytest.approx(3.0, rel=1e-3)
    assert a.duration_s == 5.5
    assert a.source == "paybench"
    assert len(a.interval_histograms) == 3
    assert recording.keys == ("FLOW checkout", "GET /a", "POST /b")


def test_aggregate_excludes_flows_and_merges_intervals_by_index(recording):
    total = recording.aggregate()
    assert total.name == AGGREGATE_KEY and total.request_type == ""
    assert (total.count, total.failures, total.cut_off) == (6, 1, 2)
    assert total.max_ms == 7.0  # the 100 ms flow is not a request
    assert [h.count for h in total.interval_histograms] == [3, 3, 0]
    assert total.percentile_ms(100) == pytest.approx(7.0, rel=1e-3)


def test_window_takes_intervals_whose_middle_lies_inside(recording):
    # [1001.5, 1003.5): only interval 501 (middle 1003) lies inside.
    a = {s.key: s for s in recording.request_stats(START + 1.5, START + 3.5)}["GET /a"]
    assert (a.count, a.cut_off) == (2, 0)
    assert a.duration_s == 2.0
    assert a.avg_ms == pytest.approx(4.5)
    assert len(a.interval_histograms) == 1


def test_window_reaching_the_stop_keeps_the_cut_offs(recording):
    a = {s.key: s for s in recording.request_stats(START + 1.5, START + 5.5)}["GET /a"]
    assert (a.count, a.cut_off) == (2, 2)
    assert a.duration_s == 4.0


def test_times_users_timeline_failures(recording):
    assert recording.interval_s == INTERVAL_S
    assert recording.test_start_epoch == START
    assert recording.spawning_complete_epoch == START + 1.0
    assert recording.test_stop_epoch == START + 5.5
    timeline = recording.timeline()
    assert [p.start_s for p in timeline] == [0.0, 2.0, 4.0]
    assert [p.requests for p in timeline] == [3, 3, 0]
    assert [p.users for p in timeline] == [4, 4, 4]
    assert timeline[1].percentiles_ms["FLOW checkout"]["p50"] == pytest.approx(100.0, rel=1e-3)
    [failure] = recording.failures()
    assert (failure.request_key, failure.message, failure.count) == (
        "GET /a",
        "HTTPError('500')",
        3,
    )
    assert (failure.first_seen_s, failure.last_seen_s) == pytest.approx((0.2, 3.0))


def test_generator_cpu_is_kept_per_process(recording):
    assert recording.max_cpu_pct == 97.5
    assert {s.process for s in recording.cpu} == {"worker-0", "worker-1"}
    reasons = generator_unreliable_reasons(recording)
    assert len(reasons) == 1
    assert reasons[0].startswith("load generator process worker-0 was saturated (CPU 98 % > 90 %)")
    # Outside the window the saturated sample does not count.
    assert generator_unreliable_reasons(recording, START, START + 3.0) == ()


def test_paced_users_shortfall_is_unreliable():
    slow = PacedUserClass(
        "Checkout", 0.5, users=10, intended_iterations=200.0, achieved_iterations=120
    )
    fine = PacedUserClass("Webhook", 1.0, users=2, intended_iterations=20.0, achieved_iterations=19)
    facts = GeneratorFacts(paced=PacedInfo(user_classes=(slow, fine)))
    assert slow.shortfall_pct == 40.0
    assert fine.shortfall_pct == pytest.approx(5.0)
    assert generator_unreliable_reasons(facts) == (
        "paced users Checkout achieved 60.0 % of the intended 20.00 iterations/s "
        "(shortfall 40.0 % > 10 %): the load was not the load asked for",
    )
    assert facts.paced.shortfall_pct == pytest.approx(100 * (1 - 139 / 220))


def test_a_reliable_generator_has_no_reasons():
    facts = GeneratorFacts(cpu=(CpuSample(1.0, "local", 62.0), CpuSample(3.0, "local", 90.0)))
    assert generator_unreliable_reasons(facts) == ()


# -- CPU demand: a generator starved by other processes ------------------------------------


STARVED_WORKER_1 = (
    "load generator process worker-1 was saturated: it was runnable 97 % of the time "
    "(>= 90 %) but got 52 % of a core: the generator was starved by other processes, and "
    "latencies include its own queueing; give it a core that nothing else uses, or use "
    "fewer users"
)


def test_a_starved_generator_is_unreliable_though_its_cpu_share_is_low():
    """A process runnable almost all of an interval but given half a core (other processes
    took the rest) is saturated: its CPU % alone would call it reliable."""
    facts = GeneratorFacts(
        cpu=(
            CpuSample(1002.0, "worker-0", 48.0, runnable_pct=51.0),
            CpuSample(1002.0, "worker-1", 52.0, runnable_pct=97.0),
            CpuSample(1004.0, "worker-1", 49.0, runnable_pct=93.5),
        )
    )
    # One reason per process, with the figures of its most runnable interval.
    assert generator_unreliable_reasons(facts) == (STARVED_WORKER_1,)


def test_the_runnable_threshold_is_inclusive():
    at = GeneratorFacts(cpu=(CpuSample(1.0, "local", 45.0, runnable_pct=90.0),))
    below = GeneratorFacts(cpu=(CpuSample(1.0, "local", 45.0, runnable_pct=89.9),))
    assert len(generator_unreliable_reasons(at)) == 1
    assert generator_unreliable_reasons(below) == ()
    assert generator_unreliable_reasons(at, runnable_threshold_pct=95.0) == ()


def test_a_light_generator_waiting_for_a_core_at_each_wake_up_is_reliable():
    """No false "saturated" on a busy machine: a generator that is idle most of the time
    waits on the run queue when it wakes, which adds to its runnable share, but only a
    little (figures measured with two CPU burners on two cores)."""
    facts = GeneratorFacts(
        cpu=(
            CpuSample(1002.0, "local", 3.0, runnable_pct=9.9),
            CpuSample(1004.0, "local", 26.4, runnable_pct=72.3),
            CpuSample(1006.0, "local", 35.9, runnable_pct=61.6),
        )
    )
    assert generator_unreliable_reasons(facts) == ()


def test_samples_without_runnable_pct_are_judged_on_cpu_alone():
    """Old recordings and kernels without schedstat: CPU % decides, as before."""
    quiet = GeneratorFacts(cpu=(CpuSample(1.0, "local", 52.0), CpuSample(3.0, "local", 90.0)))
    busy = GeneratorFacts(cpu=(CpuSample(1.0, "local", 52.0), CpuSample(3.0, "local", 91.0)))
    assert generator_unreliable_reasons(quiet) == ()
    (reason,) = generator_unreliable_reasons(busy)
    assert reason.startswith("load generator process local was saturated (CPU 91 % > 90 %)")


def test_a_process_that_got_its_core_is_named_once_by_its_cpu():
    facts = GeneratorFacts(
        cpu=(
            CpuSample(1.0, "local", 55.0, runnable_pct=98.0),  # starved in this interval
            CpuSample(3.0, "local", 97.0, runnable_pct=99.8),  # had the core in this one
        )
    )
    assert generator_unreliable_reasons(facts) == (
        "load generator process local was saturated (CPU 97 % > 90 %): latencies include "
        "the generator's own queueing; use more --workers or fewer users",
    )


def test_runnable_pct_round_trips_and_older_workers_rows_still_merge(tmp_path: Path):
    agg = Aggregator(INTERVAL_S)
    agg.apply(payload("worker-1", [], cpu=[(START + 2.0, 52.0, 97.0), (START + 4.0, 50.0, None)]))
    agg.apply(payload("worker-0", [], cpu=[(START + 2.0, 20.0)]))  # an older worker's rows
    doc = agg.document(META)
    assert doc["generator"]["cpu"] == [
        {"epoch": START + 2.0, "process": "worker-1", "cpu_pct": 52.0, "runnable_pct": 97.0},
        {"epoch": START + 2.0, "process": "worker-0", "cpu_pct": 20.0},
        {"epoch": START + 4.0, "process": "worker-1", "cpu_pct": 50.0},
    ]
    write_json_atomically(tmp_path / HDR_FILE, doc)
    rec = load_recording(tmp_path / HDR_FILE)
    assert rec.cpu == (
        CpuSample(START + 2.0, "worker-1", 52.0, 97.0),
        CpuSample(START + 2.0, "worker-0", 20.0, None),
        CpuSample(START + 4.0, "worker-1", 50.0, None),
    )
    assert generator_unreliable_reasons(rec) == (STARVED_WORKER_1,)
    # Outside the window the starved interval does not count.
    assert generator_unreliable_reasons(rec, START + 3.0, START + 5.0) == ()


def test_a_recording_written_before_runnable_pct_loads_as_before(tmp_path: Path):
    doc = _minimal(generator={"cpu": [{"epoch": 1.0, "process": "local", "cpu_pct": 52.0}]})
    rec = load_recording(_write(tmp_path, doc))
    assert rec.cpu == (CpuSample(1.0, "local", 52.0, None),)
    assert generator_unreliable_reasons(rec) == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [(-1, "-1 is negative"), ("97", "expected a number, got the text '97'")],
)
def test_a_damaged_runnable_pct_is_refused_naming_its_key_path(tmp_path: Path, value, message):
    sample = {"epoch": 1.0, "process": "local", "cpu_pct": 5.0, "runnable_pct": value}
    path = _write(tmp_path, _minimal(generator={"cpu": [sample]}))
    with pytest.raises(FormatError) as e:
        load_recording(path)
    assert e.value.message == (
        f"{path}: generator.cpu[0].runnable_pct: {message}; the file is damaged or was edited"
    )


def test_paced_entries_round_trip(tmp_path: Path):
    agg = Aggregator(INTERVAL_S)
    agg.apply(
        payload(
            "local",
            [row("GET", "/a", 500, [10.0, 10.0])],
            paced=[row("GET", "/a", 500, [10.0, 250.0])],
            paced_classes={"Checkout": [0.1, 3, 30.0, 12]},
        )
    )
    agg.apply(payload("worker-9", [], paced_classes={"Checkout": [0.1, 1, 10.0, 10]}))
    write_json_atomically(tmp_path / HDR_FILE, agg.document(META))
    rec = load_recording(tmp_path / HDR_FILE)
    [paced_class] = rec.paced.user_classes
    assert (
        paced_class.users,
        paced_class.intended_iterations,
        paced_class.achieved_iterations,
    ) == (
        4,
        40.0,
        22,
    )
    [paced] = rec.paced_request_stats()
    assert paced.percentile_ms(100) == pytest.approx(250.0, rel=1e-3)
    assert rec.request_stats()[0].percentile_ms(100) == pytest.approx(10.0, rel=1e-3)


# -- refusing files ------------------------------------------------------------------------------


def _write(tmp_path: Path, doc) -> Path:
    path = tmp_path / HDR_FILE
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def _minimal(**overrides):
    doc = {
        "format": "paybench-histograms",
        "format_version": 1,
        "unit": "ns",
        "significant_figures": 3,
        "interval_s": 2.0,
        "entries": [],
    }
    doc.update(overrides)
    return doc


def test_a_newer_format_version_is_refused_with_the_fix(tmp_path: Path):
    path = _write(tmp_path, _minimal(format_version=3))
    with pytest.raises(FormatError) as e:
        load_recording(path)
    assert e.value.message == (
        f"{path}: format version 3 is newer than this paybench understands (2); upgrade paybench"
    )


def test_unreadable_json_names_the_file(tmp_path: Path):
    path = _write(tmp_path, '{"format": "paybench-histograms", ')
    with pytest.raises(FormatError, match=rf"^{path}: not a readable paybench recording"):
        load_recording(path)


def test_missing_file_names_the_file(tmp_path: Path):
    with pytest.raises(FormatError, match=rf"^{tmp_path / 'nope.json'}: cannot read"):
        load_recording(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"format": "something-else"}, "not a paybench recording"),
        (_minimal(format_version="1"), "format_version must be an integer"),
        (_minimal(unit="us"), "histograms in unit 'us'"),
        (_minimal(interval_s=0), "interval_s: 0 must be greater than zero; the file is damaged"),
        (
            _minimal(
                entries=[
                    {
                        "type": "GET",
                        "name": "/a",
                        "count": 1,
                        "failures": 0,
                        "histogram": "not-a-histogram",
                    }
                ]
            ),
            r"entries\[0\]\.histogram: not an HdrHistogram V2 encoding",
        ),
    ],
)
def test_damaged_or_foreign_files_are_refused(tmp_path: Path, doc, message):
    with pytest.raises(FormatError, match=message):
        load_recording(_write(tmp_path, doc)).request_stats()


def test_atomic_write_leaves_no_temporary_file(tmp_path: Path):
    target = tmp_path / "out" / HDR_FILE
    write_json_atomically(target, {"a": 1})
    write_json_atomically(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == [HDR_FILE]
