"""harness.plugin inside real Locust processes, against loopback servers these tests start.

Every run is headless, a few seconds long and bounded by a timeout; traffic stays on
127.0.0.1. The server counts each request as soon as its headers arrive, so the count
paybench reports (completed + cut off at stop) must equal what the server saw, exactly.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from harness.core import stats
from harness.recording import HDR_FILE, LIVE_FILE, generator_unreliable_reasons, load_recording
from tests.cpu_load import HAS_SCHEDSTAT, cpu_burners, needs_schedstat

from .conftest import (
    HERE,
    ROOT,
    locust_command,
    locust_env,
    run_locust,
    stop_process,
    terminate_group,
    wait_for,
)

BASIC = HERE / "locustfile_basic.py"
LIGHT = HERE / "locustfile_light.py"
PACED = HERE / "locustfile_paced.py"
REFERENCE = HERE / "locustfile_reference.py"


def _pooled_raw_samples(raw_dir: Path) -> dict[str, np.ndarray]:
    """Every response time the locustfile saw, per request key, from every process."""
    by_key: dict[str, list[float]] = {}
    files = sorted(raw_dir.glob("samples-*.txt"))
    for path in files:
        for line in path.read_text().splitlines():
            request_type, name, ms, _ = line.split("\t")
            by_key.setdefault(f"{request_type} {name}", []).append(float(ms))
    return {k: np.array(v) for k, v in by_key.items()}


def _assert_same_samples(recording, raw: dict[str, np.ndarray]) -> None:
    by_key = {s.key: s for s in recording.request_stats()}
    assert set(by_key) == set(raw)
    for key, samples in raw.items():
        recorded = by_key[key]
        assert recorded.count == samples.size
        # Bucket for bucket the same histogram as the pooled raw samples: lossless.
        assert recorded.histogram == stats.histogram_from_ms(samples)
        ordered = np.sort(samples)
        for percent in (50.0, 90.0, 99.0, 99.9):
            exact = ordered[max(int(percent * samples.size / 100 + 0.5), 1) - 1]
            assert abs(recorded.percentile_ms(percent) - exact) / exact < 1 / 1024


def test_single_process_counts_every_request_including_those_cut_off(
    loopback_factory, tmp_path: Path
):
    # 150 ms answers: at stop, most of the 20 users are waiting for one.
    server = loopback_factory("--latency-median-ms", "150", "--latency-sigma", "0.3")
    run_dir = tmp_path / "run"
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    run_locust(
        locust_command(BASIC, server.url, run_dir, users=20, run_time="4s"),
        cwd=tmp_path,
        env=locust_env(RAW_SAMPLES_DIR=str(raw_dir)),
    )
    rec = load_recording(run_dir / HDR_FILE)
    stats_by_key = rec.request_stats()
    completed = sum(s.count for s in stats_by_key)
    cut_off = sum(s.cut_off for s in stats_by_key)
    assert cut_off > 0
    assert completed + cut_off == server.served()
    _assert_same_samples(rec, _pooled_raw_samples(raw_dir))
    assert rec.test_start_epoch < rec.spawning_complete_epoch < rec.test_stop_epoch
    assert 3.0 < rec.test_stop_epoch - rec.test_start_epoch < 6.0
    assert rec.aggregate().cut_off == cut_off
    # Live progress: one JSON line per interval, the harness tails it.
    lines = [json.loads(x) for x in (run_dir / LIVE_FILE).read_text().splitlines()]
    assert len(lines) >= 1
    assert lines[-1]["users"] in (0, 20)
    assert lines[-1]["requests"] <= completed
    assert set(lines[-1]["per_request"]) <= {"GET /api/plans", "GET /api/status/[id]"}
    assert [c.process for c in rec.cpu] and {c.process for c in rec.cpu} == {"local"}


def test_two_processes_merge_losslessly_and_count_completely(loopback_factory, tmp_path: Path):
    server = loopback_factory("--latency-median-ms", "20", "--latency-sigma", "0.8")
    run_dir = tmp_path / "run"
    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    run_locust(
        locust_command(BASIC, server.url, run_dir, users=20, run_time="5s", processes=2),
        cwd=tmp_path,
        env=locust_env(RAW_SAMPLES_DIR=str(raw_dir)),
    )
    rec = load_recording(run_dir / HDR_FILE)
    raw = _pooled_raw_samples(raw_dir)
    assert len(list(raw_dir.glob("samples-*.txt"))) == 2  # both workers sent requests
    _assert_same_samples(rec, raw)
    stats_by_key = rec.request_stats()
    assert sum(s.count + s.cut_off for s in stats_by_key) == server.served()
    assert rec.workers == ("worker-0", "worker-1")
    assert {c.process for c in rec.cpu} == {"master", "worker-0", "worker-1"}
    if HAS_SCHEDSTAT:  # the workers' CPU demand reaches the master's file too
        assert all(c.runnable_pct is not None for c in rec.cpu), rec.cpu
    assert rec.warnings == ()
    # Interval histograms add up to the whole run, key by key.
    for s in stats_by_key:
        assert stats.merge_histograms(s.interval_histograms) == s.histogram


@pytest.mark.parametrize("burners", [0, pytest.param(2, marks=needs_schedstat)])
def test_saturated_generator_is_flagged(loopback_factory, tmp_path: Path, burners: int):
    """A CPU-bound generator is unreliable whether it got a whole core or, with other
    processes competing for the CPU, about half of one (starved: its CPU % alone reads
    ~60 %, yet its event loop falls behind just the same)."""
    server = loopback_factory()
    run_dir = tmp_path / "run"
    # Each task spins the CPU 30 ms before its request: the Locust process runs flat out.
    # The directory comes from the environment variable this time.
    with cpu_burners(burners):
        run_locust(
            locust_command(BASIC, server.url, None, users=5, run_time="5s"),
            cwd=tmp_path,
            env=locust_env(BURN_CPU_MS="30", PAYBENCH_DIR=str(run_dir)),
        )
    rec = load_recording(run_dir / HDR_FILE)
    if HAS_SCHEDSTAT:
        assert max(s.runnable_pct for s in rec.generator_facts().cpu) >= 90, rec.cpu
    reasons = generator_unreliable_reasons(rec)
    assert reasons and reasons[0].startswith("load generator process local was saturated")


@pytest.mark.parametrize("burners", [0, 2])
def test_a_light_generator_on_a_busy_machine_is_not_flagged(
    loopback_factory, tmp_path: Path, burners: int
):
    """No false "saturated": a generator that waits most of the time stays reliable while
    other processes keep every core busy (it waits for a core when it wakes, briefly)."""
    server = loopback_factory()
    run_dir = tmp_path / "run"
    with cpu_burners(burners):
        run_locust(
            locust_command(LIGHT, server.url, run_dir, users=3, run_time="5s"),
            cwd=tmp_path,
            env=locust_env(),
        )
    rec = load_recording(run_dir / HDR_FILE)
    assert server.served() > 0
    samples = rec.generator_facts().cpu
    assert samples and {s.process for s in samples} == {"local"}
    if HAS_SCHEDSTAT:
        assert all(s.runnable_pct is not None for s in samples), samples
    assert generator_unreliable_reasons(rec) == ()


def test_paced_users_record_latency_from_the_intended_start(loopback_factory, tmp_path: Path):
    server = loopback_factory("--latency-median-ms", "150", "--latency-sigma", "0.1")
    run_dir = tmp_path / "run"
    run_locust(
        locust_command(PACED, server.url, run_dir, users=6, run_time="5s"),
        cwd=tmp_path,
        env=locust_env(),
    )
    rec = load_recording(run_dir / HDR_FILE)
    classes = {c.user_class: c for c in rec.paced.user_classes}
    assert set(classes) == {"SlowPaced", "FastPaced", "DeclaredPaced"}
    assert (classes["SlowPaced"].pacing_s, classes["FastPaced"].pacing_s) == (0.1, 0.5)
    assert classes["DeclaredPaced"].pacing_s == 0.25
    # ~0.3 s per iteration against 0.1 s intended: about a third of the schedule.
    assert classes["SlowPaced"].shortfall_pct > 40
    assert classes["FastPaced"].shortfall_pct < 10
    assert classes["DeclaredPaced"].shortfall_pct < 10
    reasons = generator_unreliable_reasons(rec)
    assert len(reasons) == 1 and reasons[0].startswith("paced users SlowPaced achieved")
    measured = {s.key: s for s in rec.request_stats()}
    from_intended = {s.key: s for s in rec.paced_request_stats()}
    slow = "GET /slow/initiate"
    # Falling behind a schedule shows in the latency from the intended start, not in the
    # latency Locust measures (coordinated omission).
    assert from_intended[slow].percentile_ms(90) > 3 * measured[slow].percentile_ms(90)
    fast = "GET /fast/plans"
    assert from_intended[fast].percentile_ms(50) < measured[fast].percentile_ms(50) + 50


def test_sigterm_still_writes_a_complete_recording(loopback_factory, tmp_path: Path):
    server = loopback_factory("--latency-median-ms", "50", "--latency-sigma", "0.3")
    run_dir = tmp_path / "run"
    cmd = locust_command(BASIC, server.url, run_dir, users=10, run_time="60s")
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=locust_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        # Stop it once it has reported progress (a live line), as Ctrl-C in CI would.
        wait_for(lambda: (run_dir / LIVE_FILE).exists(), 30, "the first progress line")
        terminate_group(proc, signal.SIGTERM)
        proc.wait(30)
    finally:
        stop_process(proc)
    rec = load_recording(run_dir / HDR_FILE)
    # Stopped by the signal, before its 60 s run time (however slow the machine).
    assert rec.test_stop_epoch - rec.test_start_epoch < 60
    assert sum(s.count + s.cut_off for s in rec.request_stats()) == server.served()


def test_without_a_directory_nothing_is_recorded(loopback_factory, tmp_path: Path):
    server = loopback_factory()
    run_locust(
        locust_command(BASIC, server.url, None, users=2, run_time="2s"),
        cwd=tmp_path,
        env=locust_env(),
    )
    assert server.served() > 0
    assert list(tmp_path.iterdir()) == []


def test_pacing_is_recognised_for_locust_functions_and_declared_classes(tmp_path: Path):
    # In a subprocess: importing the plugin imports Locust, which patches the interpreter.
    code = (
        "from locust import User, between, constant_pacing, constant_throughput\n"
        "from harness.plugin import pacing_of\n"
        "class A(User): wait_time = constant_pacing(0.25)\n"
        "class B(User): wait_time = constant_throughput(4)\n"
        "class C(User):\n    paybench_pacing_s = 1.5\n    wait_time = between(0, 1)\n"
        "class D(User): wait_time = between(0, 1)\n"
        "print([pacing_of(c) for c in (A, B, C, D)])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[0.25, 0.25, 1.5, None]"


def _target_served(url: str) -> tuple[int, int]:
    """(requests served, requests in flight) from the reference target's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    served = sum(
        int(float(m.group(1)))
        for m in re.finditer(r"^paybench_target_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )
    in_flight = re.search(r"^paybench_target_requests_in_flight (\S+)$", text, re.M)
    return served, int(float(in_flight.group(1))) if in_flight else 0


@pytest.mark.parametrize("processes", [0, 2])
def test_count_equals_what_the_reference_target_served(tmp_path: Path, processes: int):
    from harness.target.process import ReferenceTarget

    with ReferenceTarget() as target:
        before, _ = _target_served(target.url)
        run_dir = tmp_path / "run"
        run_locust(
            locust_command(
                REFERENCE, target.url, run_dir, users=10, run_time="4s", processes=processes
            ),
            cwd=tmp_path,
            env=locust_env(),
        )
        # Requests cut off at stop are still being served: wait until none are in flight.
        served = wait_for(
            lambda: (lambda s: s[0] if s[1] == 0 else None)(_target_served(target.url)),
            20,
            "the reference target to finish the requests cut off at stop",
        )
    rec = load_recording(run_dir / HDR_FILE)
    assert sum(s.count + s.cut_off for s in rec.request_stats()) == served - before
