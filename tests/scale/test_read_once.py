"""What makes a long run cheap to judge gives the answers the plain way gives.

- Judging reads a recording lazily (`load_recording(path, lazy=True)`): each interval is
  decoded once, checked as a window first reads it; the windows, the aggregate and the
  timeline are those of an eager read, and a damaged interval no window reads is still
  refused, with the same line.
- The report merges a recording's timeline (one `PercentileTable`) in one step: the same
  lines as merging its points one by one.
- The block bootstrap sums its resamples only over the buckets where their percentile can
  be: the same bucket as summing over all of them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from harness.core.stats import intervals as intervals_module
from harness.core.stats.histogram import TablePercentiles
from harness.errors import FormatError
from harness.recording import HDR_FILE, Recording, load_recording
from harness.report import context
from tests.scale.cases import run_id
from tests.scale.synthetic import build_profile_run


@pytest.fixture(scope="module")
def prerelease(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-minute pre-release recording (901 intervals of 14 names), read only."""
    root = tmp_path_factory.mktemp("read-once")
    run = build_profile_run(root / "runs" / run_id("prerelease"), "prerelease", seed=5)
    return run.run_dir / HDR_FILE


def _judged(rec: Recording) -> tuple:
    assert rec.test_start_epoch is not None and rec.test_stop_epoch is not None
    assert rec.spawning_complete_epoch is not None
    steady = rec.spawning_complete_epoch + 5.0
    # In the order results.read_run asks: the ramp, the steady state, the timeline.
    return (
        rec.request_stats(rec.test_start_epoch, steady),
        rec.request_stats(steady, rec.test_stop_epoch),
        rec.aggregate(steady, rec.test_stop_epoch),
        rec.timeline(),
    )


def _same_stats(a: tuple, b: tuple) -> None:
    for x, y in zip(a, b, strict=True):
        assert (x.key, x.count, x.failures, x.cut_off, x.avg_ms) == (
            y.key,
            y.count,
            y.failures,
            y.cut_off,
            y.avg_ms,
        )
        assert x.histogram == y.histogram
        assert len(x.interval_histograms) == len(y.interval_histograms)
        assert all(
            h == k for h, k in zip(x.interval_histograms, y.interval_histograms, strict=True)
        )


def test_a_lazy_read_judges_as_an_eager_one(prerelease: Path) -> None:
    eager, lazy = load_recording(prerelease), load_recording(prerelease, lazy=True)
    assert not all(e.intervals.checked for e in lazy.entries)  # nothing decoded yet
    (ramp_e, steady_e, total_e, timeline_e) = _judged(eager)
    (ramp_l, steady_l, total_l, timeline_l) = _judged(lazy)
    _same_stats(ramp_e, ramp_l)
    _same_stats(steady_e, steady_l)
    _same_stats((total_e,), (total_l,))
    assert len(steady_e[0].interval_histograms) == 200  # pooled: the long-run path
    assert all(e.intervals.checked for e in (*lazy.entries, *lazy.paced.entries))
    assert [(p.start_s, p.users, p.requests, p.failures) for p in timeline_e] == [
        (p.start_s, p.users, p.requests, p.failures) for p in timeline_l
    ]
    assert [dict(p.percentiles_ms) for p in timeline_e] == [
        dict(p.percentiles_ms) for p in timeline_l
    ]


def test_a_damaged_interval_no_window_reads_is_refused_all_the_same(
    prerelease: Path, tmp_path: Path
) -> None:
    """The last interval line of the busiest name gets another key's histogram: the
    steady state ends before it, the check of the rest (the timeline's) refuses it."""
    lines = prerelease.read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    at = max(i for i, d in enumerate(docs) if "interval" in d and len(d["rows"]) > 1)
    rows = docs[at]["rows"]
    busiest = max(range(len(rows)), key=lambda j: rows[j][1])
    other = min(range(len(rows)), key=lambda j: rows[j][1])
    rows[busiest][7] = rows[other][7]
    lines[at] = json.dumps(docs[at])
    damaged = tmp_path / HDR_FILE
    damaged.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = f"{damaged}: line {at + 1}: rows[{busiest}].histogram: holds "
    with pytest.raises(FormatError) as eager:
        load_recording(damaged)
    assert eager.value.message.startswith(expected), eager.value.message
    lazy = load_recording(damaged, lazy=True)
    assert lazy.test_start_epoch is not None and lazy.spawning_complete_epoch is not None
    lazy.request_stats(lazy.spawning_complete_epoch, lazy.spawning_complete_epoch + 60.0)
    with pytest.raises(FormatError) as later:
        lazy.timeline()
    assert later.value.message == eager.value.message


def test_the_report_merges_a_recordings_timeline_as_point_by_point(prerelease: Path) -> None:
    rec = load_recording(prerelease)
    points = rec.timeline()
    assert isinstance(points[0].percentiles_ms, TablePercentiles)
    # Points that are not views of one table take the point-by-point path.
    copies = [
        dataclasses.replace(p, percentiles_ms={k: dict(v) for k, v in p.percentiles_ms.items()})
        for p in points
    ]
    keys = [e.key for e in rec.entries]
    for order in (keys, keys[5:9], []):  # extra names come after, as the points show them
        fast = context._timeline(points, order)
        slow = context._timeline(copies, order)
        assert fast.intervals_per_point == slow.intervals_per_point == 3  # 901 / 400 up
        assert fast == slow


@pytest.mark.parametrize("percent", [0.0, 50.0, 95.0, 99.0, 99.9, 100.0])
def test_the_bootstrap_sums_only_the_buckets_its_percentile_can_be_in(percent: float) -> None:
    rng = np.random.default_rng(11)
    for trial in range(20):
        rows = int(rng.integers(2, 60))
        columns = int(rng.integers(1, 400))
        # Rows of a few samples (where rounding puts ranks outside the rows' own range)
        # and rows of thousands.
        scale = 3 if trial % 2 else 3000
        counts = rng.poisson(rng.random((rows, columns)) * scale / columns * 4).astype(float)
        counts[:, 0] += 1  # no empty row
        weights = rng.poisson(1.0, (300, rows)).astype(float)
        weights[:, 0] += 1
        fast = intervals_module._resampled_percentile_columns(counts, weights, percent)
        totals = weights @ counts.sum(axis=1)
        targets = np.maximum(np.floor(percent * totals / 100.0 + 0.5), 1.0)
        plain = (np.cumsum(weights @ counts, axis=1) < targets[:, None]).sum(axis=1)
        assert fast.tolist() == plain.tolist(), (trial, percent)


def test_a_resample_whose_rank_falls_outside_the_band_is_summed_over_every_bucket() -> None:
    """Two rows of three and six samples at p90: the rows' own p90 are buckets 1 and 2, so
    the band is buckets 0 to 3; the rounding of the rank puts two of the four resamples'
    p90 in bucket 4, above it (found by a search over small matrices, kept literally). The
    fallback sums those over every bucket and gives the plain answer."""
    counts = np.array([[2.0, 1.0, 0.0, 0.0, 0.0], [1.0, 2.0, 2.0, 0.0, 1.0]])
    weights = np.array([[2.0, 3.0], [1.0, 0.0], [1.0, 2.0], [4.0, 2.0]])
    fast = intervals_module._resampled_percentile_columns(counts, weights, 90.0)
    targets = np.maximum(np.floor(90.0 * (weights @ counts.sum(axis=1)) / 100.0 + 0.5), 1.0)
    plain = (np.cumsum(weights @ counts, axis=1) < targets[:, None]).sum(axis=1)
    assert fast.tolist() == plain.tolist()
