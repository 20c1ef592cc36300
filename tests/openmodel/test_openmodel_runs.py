"""Arrival-rate mode end to end: what the open model promises, on a target of known capacity.

Capacity is ``SLOTS / SERVICE_MS`` = 20 checkouts/s (conftest). Runs: 0.5x (light), 1.2x
(overload), a closed-loop run that keeps the slots busy, a generator saturated on purpose
(in stages), and ``paybench capacity --arrival-rate-steps`` on two configurations.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from harness.core import arrivals
from harness.core.model import RequestStats
from harness.recording import HDR_FILE, load_recording
from tests.e2e.helpers import only_run_dir, paybench
from tests.openmodel.conftest import (
    CAPACITY_PER_S,
    INITIATE,
    SERVICE_INITIATE,
    SERVICE_MS,
    Run,
    run_paybench,
    target_yaml,
)

pytestmark = pytest.mark.e2e

CAPACITY_BUDGETS = 'version: 1\nrequests:\n  "POST /api/payments/v2/initiate": {p95: "< 1500ms"}\n'


def _stats(run: Run, steady: bool = False) -> dict[str, RequestStats]:
    """Per key, the whole run, or (``steady``) from 2 s after the start to 1 s before the end."""
    rec = run.recording
    window = (rec.test_start_epoch + 2, rec.test_stop_epoch - 1) if steady else (None, None)
    return {f"{s.request_type} {s.name}": s for s in rec.request_stats(*window)}


def _arrivals(run: Run) -> dict[str, tuple[float, int]]:
    return {
        c.user_class: (c.intended_iterations, c.achieved_iterations)
        for c in run.recording.paced.user_classes
    }


def _served_per_s(run: Run) -> float:
    """Completed initiates per second over the whole intervals of the steady window."""
    served = _stats(run, steady=True)[INITIATE]
    return served.count / (len(served.interval_histograms) * run.recording.interval_s)


def _p95(s: RequestStats) -> float:
    value = s.percentile_ms(95)
    assert value is not None
    return value


def test_rate_accuracy_every_arrival_counted(light_run: Run) -> None:
    """The achieved rate is within 1 % of 10/s, counted arrival by arrival."""
    assert light_run.exit_code == 0, light_run.stdout[-2000:]
    rec = light_run.recording
    intended, on_time = _arrivals(light_run)[arrivals.DROPPED_CLASS]
    plans = _stats(light_run)["GET /api/plans"]
    # Every arrival that started made exactly one catalogue request, its first.
    assert plans.count + plans.cut_off == on_time == intended
    duration_s = rec.test_stop_epoch - rec.test_start_epoch
    rate = CAPACITY_PER_S / 2
    assert abs(on_time / duration_s - rate) <= 0.01 * rate, (on_time, duration_s)


def test_light_load_two_latencies_agree(light_run: Run) -> None:
    stats = _stats(light_run)
    payer, service = _p95(stats[INITIATE]), _p95(stats[SERVICE_INITIATE])
    assert payer >= service
    assert payer <= 1.05 * service, (payer, service)
    assert service >= SERVICE_MS  # the target's sleep, no queue to speak of
    report = (light_run.run_dir / "report.html").read_text(encoding="utf-8")
    assert SERVICE_INITIATE.split(" ", 1)[1] in report  # both latencies in the report


def test_overload_queue_grows_far_above_closed_loop(overload_run: Run, closed_run: Run) -> None:
    open_initiate = _stats(overload_run, steady=True)[INITIATE]
    closed_initiate = _stats(closed_run, steady=True)[INITIATE]
    for run in (overload_run, closed_run):
        # The same throughput: both keep the slots busy.
        assert _served_per_s(run) >= 0.85 * CAPACITY_PER_S, _served_per_s(run)
    # The queue grows: each interval's mean is above the one before it but for noise,
    # and the last is several times the first.
    series = overload_run.recording.entry(INITIATE).intervals
    means = [s / c / 1e6 for s, c in zip(series.sum_ns, series.count, strict=True) if c]
    assert means[-2] > 4 * means[0], means
    assert sum(b > a for a, b in itertools.pairwise(means)) >= len(means) - 3, means
    # 12 s at 1.2x against 6 s closed: the open queue grew for longer, and grows on.
    ratio = _p95(open_initiate) / _p95(closed_initiate)
    assert ratio > 2.0, (_p95(open_initiate), _p95(closed_initiate))
    # Nothing was dropped or late: the API fell behind, not the generator.
    assert overload_run.exit_code == 0, overload_run.stdout[-2000:]
    assert overload_run.summary["verdict"]["reasons"] == []


def test_open_model_capacity_within_10_percent(tmp_path: Path) -> None:
    """``paybench capacity --arrival-rate-steps``: 4 slots and 6 slots of 200 ms (20/s and
    30/s), one run after the other (at once, two targets' databases share the disk). The
    1.3x step is not carried: the run stops there, the 2x step never runs."""
    for slots in (4, 6):
        where = tmp_path / f"slots{slots}"
        where.mkdir()
        (where / "budgets.yaml").write_text(CAPACITY_BUDGETS, encoding="utf-8")
        (where / "target.yaml").write_text(target_yaml(slots, 200.0), encoding="utf-8")
        capacity = slots * 1000.0 / 200.0
        steps = ",".join(f"{share * capacity:g}/s" for share in (0.6, 0.93, 1.3, 2.0))
        r = paybench(
            "capacity", "--arrival-rate-steps", steps, "--step-time", "4s",
            "--budgets", str(where / "budgets.yaml"), "--target-config",
            str(where / "target.yaml"), "--out", str(where / "reports"), timeout=240,
        )  # fmt: skip
        stdout, stderr = r.stdout, r.stderr
        assert r.returncode == 0, stderr[-3000:]
        assert "Traceback" not in stdout + stderr
        answer = re.search(r"carries ([\d.]+) checkouts/s .* at most ([\d.]+) checkouts/s", stdout)
        assert answer, stdout
        carried, most = float(answer.group(1)), float(answer.group(2))
        assert abs(carried - capacity) <= 0.1 * capacity, stdout
        assert abs(most - capacity) <= 0.1 * capacity, stdout
        assert "saturated" in stdout  # the steps went past the knee
        run_dir = only_run_dir(where / "reports")
        table = (run_dir / "arrival_capacity.txt").read_text(encoding="utf-8")
        assert f"stopped after {1.3 * capacity:g}/s" in table, table
        rows = table.split("\n\n")[0].splitlines()[1:]
        assert [r.split()[0] for r in rows] == steps.replace("/s", "").split(",")[:3], table
        # Stopped during the fourth step's first seconds, not at its end (4 x 4 s + 2 s).
        rec = load_recording(run_dir / HDR_FILE)
        assert rec.test_stop_epoch - rec.test_start_epoch < 3 * 4 + 3.5, table
        # The report: capacity.html and capacity.md named by the output, with
        # the answer's rate and a row per step that ran.
        html, md = run_dir / "capacity.html", run_dir / "capacity.md"
        assert f"capacity report: {html}, {md}" in stdout, stdout
        for page in (html, md):
            text = page.read_text(encoding="utf-8")
            assert f"carries {carried:g} checkouts/s" in text, page
            assert "service-time p95" in text and "saturated" in text, page
        step_rows = re.findall(r"^\| [\d.]+ \| ", md.read_text(encoding="utf-8"), re.MULTILINE)
        assert len(step_rows) == 3, md  # the fourth step was stopped in its first seconds


def test_saturated_generator_is_unreliable(tmp_path: Path) -> None:
    """One journey at a time cannot carry 5-10 arrivals/s: dropped, UNRELIABLE (exit 3).
    Stages without --run-time: the stages' 5 s are the run, their arrivals counted."""
    stages = "2s:5/s,3s:10/s"
    run = run_paybench(
        tmp_path, "--arrival-stages", stages, "--max-in-flight", "1", run_time_s=None
    )
    rec = run.recording
    expected = arrivals.intended_count(
        arrivals.parse_stages(stages), rec.test_stop_epoch - rec.test_start_epoch
    )
    assert abs(_arrivals(run)[arrivals.DROPPED_CLASS][0] - expected) <= 1
    assert run.exit_code == 3, run.stdout[-2000:]
    intended, on_time = _arrivals(run)[arrivals.DROPPED_CLASS]
    dropped = round(intended) - on_time
    assert dropped > 0.5 * intended
    verdict = run.summary["verdict"]
    assert verdict["outcome"] == "UNRELIABLE"
    share = f"{100 * dropped / intended:.1f} %"
    assert any("arrivals dropped" in r and share in r for r in verdict["reasons"])
    assert share in run.stdout
