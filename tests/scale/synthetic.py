"""Seeded synthetic run folders of any length, for the scale tests and the benchmarks.

``build_run(run_dir, duration_s=...)`` writes what ``paybench run`` leaves in a run folder
and ``paybench check`` / ``paybench report`` read: ``run.json`` (through the same writer
as a real run), ``paybench.hdr.json`` (the plugin's format, through the plugin's own
writer: version 2, a line per interval, whole-run and per-interval HdrHistograms of
nanoseconds from ``harness.core.stats``, cut-offs, failure rows, users, generator CPU, the
paced health prober; ``format_version=1`` writes the older single document) and the copy
of ``budgets.yaml``.
``build_profile_run`` takes users, spawn rate, run time and load shape from a shipped
profile (``locustfiles/profiles/<name>.conf``).

The load: the catalogue's 14 request keys at the per-user rates of a small model of the
scenarios with a profile's knobs (``scenario_shapes``; the health prober at a fixed pace
whatever the users), Poisson counts per interval,
lognormal latencies that drift slowly, have rare slow spells and grow a little with the
user count, and failures drawn per interval at each key's error rate. Everything is drawn
with numpy from ``seed`` (each key from a generator of its own) and vectorised over
intervals, an hour of intervals at a time, so that a day-long soak of 50 million requests
builds in about a minute in bounded memory; only the histograms' compression is a loop.

Benchmarks import this file by path: ``sys.path.insert(0, ROOT)`` and
``from tests.scale.synthetic import build_run``.
"""

from __future__ import annotations

import math
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness import __version__
from harness.core import catalogue, stats
from harness.core.model import request_key
from harness.core.stats import histogram as histogram_module
from harness.locust_run import LocustPlan, build_command
from harness.profiles import DEFAULT_LOCUSTFILE, LOCUSTFILES, PROJECT_ROOT, load_profile
from harness.recording import FORMAT_VERSION, ROW_COLUMNS, RecordingWriter, format_header
from harness.runfolder import HDR_FILE, RunRecord, write_json_atomically, write_run_record

PROJECT_BUDGETS = PROJECT_ROOT / "budgets.yaml"
# 2025-11-26 09:00:00.37 UTC: a run starts at no interval boundary, as real ones do.
START_EPOCH = 1_764_147_600.37
HOST = "http://127.0.0.1:8321"
TICK_DELAY_S = 0.05  # the plugin samples users and CPU just after each interval boundary


@dataclass(frozen=True)
class RequestShape:
    """One request key of the synthetic load.

    ``rps_per_user`` scales with the users running; ``fixed_rps`` does not (the health
    prober is one user whatever the load).
    """

    request_type: str
    name: str
    median_ms: float
    sigma: float
    rps_per_user: float = 0.0
    fixed_rps: float = 0.0
    error_rate: float = 0.0
    message: str = ""

    @property
    def key(self) -> str:
        return request_key(self.request_type, self.name)


def _http_failure(expected: int, route: str) -> str:
    # Shaped like the scenarios' failure messages, as Locust groups them.
    return (
        f"CatchResponseError(\"expected {expected}, got 500: {{'detail': 'error injected by "
        f"the target model on route '{route}' (error_rate)'}}\")"
    )


# (request key, median ms, lognormal sigma, error rate, failure message): medians within
# the checklist's budgets with a wide margin, the checkout flows as long as PhonePe's
# real timing makes them.
LATENCIES: tuple[tuple[tuple[str, str], float, float, float, str], ...] = (
    (catalogue.PLANS, 40.0, 0.5, 0.002, _http_failure(200, "plans")),
    (catalogue.INITIATE, 380.0, 0.35, 0.002, _http_failure(201, "initiate")),
    (catalogue.STATUS, 120.0, 0.4, 0.002, _http_failure(200, "status")),
    (catalogue.SUBSCRIPTION, 60.0, 0.4, 0.001, _http_failure(200, "subscriptions")),
    (catalogue.WEBHOOK_COMPLETED, 70.0, 0.4, 0.001, _http_failure(200, "webhook")),
    (catalogue.WEBHOOK_FAILED, 75.0, 0.4, 0.0, ""),
    (catalogue.WEBHOOK_DUPLICATE, 30.0, 0.4, 0.0, ""),
    (catalogue.WEBHOOK_FORGED, 4.0, 0.3, 0.0, ""),
    (catalogue.HEALTH, 2.5, 0.3, 0.0, ""),
    (catalogue.HEALTH_DATABASE, 4.0, 0.3, 0.0, ""),
    (catalogue.HEALTH_REDIS, 3.0, 0.3, 0.0, ""),
    (catalogue.HEALTH_PAYMENTS, 5.0, 0.3, 0.0, ""),
    (catalogue.FLOW_CHECKOUT, 31_000.0, 0.3, 0.001,
     "payment still PENDING after PhonePe's polling schedule"),
    (catalogue.FLOW_CHECKOUT_FAILED, 31_000.0, 0.3, 0.0, ""),
)  # fmt: skip
HEALTH_KEYS = frozenset(
    request_key(*k)
    for k in (
        catalogue.HEALTH,
        catalogue.HEALTH_DATABASE,
        catalogue.HEALTH_REDIS,
        catalogue.HEALTH_PAYMENTS,
    )
)


def _scenario_rules() -> Any:
    # The locustfiles' pure helpers are top-level modules (Locust puts their folder on
    # sys.path); the shapes' arithmetic lives there.
    if str(LOCUSTFILES) not in sys.path:
        sys.path.insert(0, str(LOCUSTFILES))
    import scenario_rules

    return scenario_rules


def scenario_shapes(settings: Mapping[str, str] | None = None) -> tuple[RequestShape, ...]:
    """The 14 keys at the rates the scenarios send them with a profile's knobs.

    ``settings`` are a profile's ``key = value`` lines (``harness.profiles.read_conf``);
    the scenarios' defaults fill the rest. A checkout user thinks, then plans, initiate,
    status checks on PhonePe's schedule (times ``time-scale``) until the first check after
    the payer's delay, and the subscription of a completed order; the shares of failed,
    duplicate and forged callbacks are the knobs'; senders and the health prober (a fixed
    count, one round every ``health-interval``) add no journeys of their own.
    """
    rules = _scenario_rules()
    knobs = rules.ScenarioConfig()
    given = settings or {}

    def knob(name: str, default: float) -> float:
        return float(given.get(name, default))

    time_scale = knob("time-scale", knobs.time_scale)
    think_s = knob("think-time", knobs.think_time_s)
    failed = knob("failed-fraction", knobs.failed_fraction)
    duplicate = knob("duplicate-fraction", knobs.duplicate_fraction)
    forged = knob("forged-fraction", knobs.forged_fraction)
    health_interval_s = knob("health-interval", knobs.health_interval_s)
    checkout = knob("checkout-weight", knobs.checkout_weight)
    webhook = knob("webhook-weight", knobs.webhook_weight)
    schedule = np.array(rules.polling_schedule(time_scale))
    # The payer's delay is uniform in 0.5..1.5 of its setting: average over that draw.
    delays_s = knob("payer-delay", knobs.payer_delay_s) * time_scale * np.linspace(0.5, 1.5, 21)
    seen = np.searchsorted(schedule, delays_s)  # the first check after the callback
    checks = float(np.mean(np.minimum(seen, schedule.size - 1) + 1))
    journey_s = float(np.mean(schedule[np.minimum(seen, schedule.size - 1)]))
    journeys = checkout / (checkout + webhook) / (think_s + journey_s)  # per user per second
    per_journey = {
        catalogue.PLANS: 1.0,
        catalogue.INITIATE: 1.0,
        catalogue.STATUS: checks,
        catalogue.SUBSCRIPTION: 1.0 - failed,
        catalogue.WEBHOOK_COMPLETED: 1.0 - failed,
        catalogue.WEBHOOK_FAILED: failed,
        catalogue.WEBHOOK_DUPLICATE: duplicate,
        catalogue.WEBHOOK_FORGED: forged,
        catalogue.FLOW_CHECKOUT: 1.0 - failed,
        catalogue.FLOW_CHECKOUT_FAILED: failed,
    }
    shapes = []
    for key, median_ms, sigma, error_rate, message in LATENCIES:
        fixed = request_key(*key) in HEALTH_KEYS
        shapes.append(
            RequestShape(
                *key,
                median_ms=median_ms,
                sigma=sigma,
                rps_per_user=0.0 if fixed else journeys * per_journey[key],
                fixed_rps=1.0 / health_interval_s if fixed else 0.0,
                error_rate=error_rate,
                message=message,
            )
        )
    return tuple(shapes)


DEFAULT_SHAPES = scenario_shapes()  # the scenarios' defaults: PhonePe's real timing


def with_error_rates(
    shapes: Sequence[RequestShape], rates: Mapping[str, float], message: str | None = None
) -> tuple[RequestShape, ...]:
    """``shapes`` with the error rate of the keys in ``rates`` replaced."""
    unknown = set(rates) - {s.key for s in shapes}
    if unknown:
        raise ValueError(f"no such request key among the shapes: {sorted(unknown)}")
    out = []
    for s in shapes:
        if s.key in rates:
            text = message or s.message or _http_failure(200, s.name)
            s = RequestShape(
                s.request_type, s.name, s.median_ms, s.sigma, s.rps_per_user, s.fixed_rps,
                rates[s.key], text,
            )  # fmt: skip
        out.append(s)
    return tuple(out)


@dataclass(frozen=True)
class SyntheticRun:
    """What `build_run` wrote, for assertions and benchmark tables."""

    run_dir: Path
    interval_s: float
    duration_s: float
    intervals: int  # interval indices the run touches
    histograms: int  # interval histograms written (non-empty ones only, as the plugin does)
    requests: int  # completed requests, flows excluded
    failures: int  # failed requests, flows excluded
    steady_start_epoch: float  # spawning complete plus the warm-up the budgets will apply
    stop_epoch: float
    non_empty_intervals: dict[str, int]  # key -> non-empty intervals in the whole run


def users_timeline(
    users: int, spawn_rate: float | None, shape: str | None, run_time_s: float
) -> Callable[[np.ndarray], np.ndarray]:
    """Users running at each time (seconds since start), as Locust would have them."""
    if shape in ("spike", "stress"):
        rules = _scenario_rules()
        tick = rules.spike_tick if shape == "spike" else rules.ramp_tick

        def shaped(t_s: np.ndarray) -> np.ndarray:
            return np.array(
                [(tick(float(t), users, run_time_s) or (0, 0))[0] for t in t_s], dtype=np.float64
            )

        return shaped
    rate = spawn_rate or 1.0  # Locust's default: one user per second

    def ramp(t_s: np.ndarray) -> np.ndarray:
        return np.minimum(float(users), np.floor(np.maximum(t_s, 0.0) * rate) + 1.0)

    return ramp


def spawn_time_s(users: int, spawn_rate: float | None, shape: str | None) -> float:
    """Seconds from the start until Locust fires spawning_complete (the first time)."""
    if shape in ("spike", "stress"):
        return 1.0  # the first tick's users, reached within a second
    return max(0.0, (users - 1) / (spawn_rate or 1.0))


def build_run(
    run_dir: Path,
    *,
    duration_s: float,
    interval_s: float = 2.0,
    profile: str | None = None,
    users: int = 100,
    spawn_rate: float | None = 10.0,
    shape: str | None = None,
    warmup_s: float = 2.0,
    shapes: Sequence[RequestShape] = DEFAULT_SHAPES,
    seed: int = 1,
    budgets: Path = PROJECT_BUDGETS,
    start_epoch: float = START_EPOCH,
    format_version: int = FORMAT_VERSION,
) -> SyntheticRun:
    """Write a complete synthetic run folder at ``run_dir`` (created; must not exist).

    ``warmup_s`` only goes into the returned ``steady_start_epoch`` (the budgets file
    decides the warm-up that ``paybench check`` applies): pass the one it sets.
    ``format_version`` 1 writes the older one-document recording (read as before).
    """
    run_dir.mkdir(parents=True, exist_ok=False)
    rng = np.random.default_rng(seed)
    stop_epoch = start_epoch + duration_s
    first = math.floor(start_epoch / interval_s)
    last = math.floor(stop_epoch / interval_s)  # cut-offs are counted where the run stopped
    index = np.arange(first, last + 1, dtype=np.int64)
    lo = np.maximum(index * interval_s, start_epoch)
    hi = np.minimum((index + 1) * interval_s, stop_epoch)
    overlap_s = np.maximum(hi - lo, 0.0)
    mid_s = (lo + hi) / 2 - start_epoch
    timeline = users_timeline(users, spawn_rate, shape, duration_s)
    running = timeline(mid_s)
    load = running / max(1.0, float(running.max()))
    # Latency: a slow wave (+-5 % over 40 min), rare slow spells (x1.6 in 0.5 % of the
    # intervals) and a little queueing as the users grow.
    drift = (
        1.0
        + 0.05 * np.sin(2 * np.pi * mid_s / 2400.0)
        + 0.6 * (rng.random(index.size) < 0.005)
        + 0.3 * load**2
    )

    keys = sorted(shapes, key=lambda s: (s.request_type, s.name))
    draws = [_Draws.of(s, i, seed, running, overlap_s) for i, s in enumerate(keys)]
    # The prober keeps its pace: its latency from the intended start is the latency.
    paced = [i for i, s in enumerate(keys) if s.key in HEALTH_KEYS]
    sink_type = _LinesSink if format_version >= 2 else _DocumentSink
    sink = sink_type(run_dir / HDR_FILE, interval_s, first, keys, paced)
    for block in range(0, index.size, BLOCK_INTERVALS):
        part = slice(block, min(index.size, block + BLOCK_INTERVALS))
        sink.block([d.block(part, drift[part]) for d in draws])

    spawned_epoch = start_epoch + min(duration_s, spawn_time_s(users, spawn_rate, shape))
    ticks = (index[:-1] + 1) * interval_s + TICK_DELAY_S
    tick_users = timeline(ticks - start_epoch)
    cpu = 12.0 + 30.0 * tick_users / max(1.0, float(running.max()))
    cpu += rng.normal(0.0, 2.0, ticks.size)
    pacing_s = next((1 / s.fixed_rps for s in shapes if s.key in HEALTH_KEYS and s.fixed_rps), 5)
    health_rounds = duration_s / pacing_s
    failure_rows = [row for d in draws if (row := d.failure_row(lo, interval_s)) is not None]
    sink.finish(
        meta={
            "test_start_epoch": start_epoch,
            "spawning_complete_epoch": spawned_epoch,
            "spawning_complete_epochs": [spawned_epoch],
            "test_stop_epoch": stop_epoch,
            "mode": "local",
            "workers": [],
            "warnings": [],
        },
        users=[
            {"epoch": start_epoch, "users": 0},
            {
                "epoch": spawned_epoch,
                "users": int(timeline(np.array([spawned_epoch - start_epoch]))[0]),
            },
            *({"epoch": float(t), "users": int(u)} for t, u in zip(ticks, tick_users, strict=True)),
        ],
        cpu=[
            {"epoch": float(t), "process": "local", "cpu_pct": round(float(c), 1)}
            for t, c in zip(ticks, cpu, strict=True)
        ],
        failures=failure_rows,
        paced_classes=[
            {
                "user_class": "HealthProber",
                "pacing_s": pacing_s,
                "users": 1,
                "intended_iterations": math.floor(health_rounds) + 1.0,
                "achieved_iterations": math.floor(health_rounds) + 1,
            }
        ],
        whole=[d.whole_row() for d in draws],
    )
    shutil.copyfile(budgets, run_dir / "budgets.yaml")
    _write_run_json(
        run_dir, profile, users, spawn_rate, duration_s, start_epoch, stop_epoch, budgets
    )
    return SyntheticRun(
        run_dir=run_dir,
        interval_s=interval_s,
        duration_s=duration_s,
        intervals=int(index.size),
        histograms=sink.histograms,
        requests=sum(d.total for d in draws if d.shape.request_type != "FLOW"),
        failures=sum(d.total_failures for d in draws if d.shape.request_type != "FLOW"),
        steady_start_epoch=min(spawned_epoch + warmup_s, stop_epoch),
        stop_epoch=stop_epoch,
        non_empty_intervals={d.shape.key: int(np.count_nonzero(d.counts)) for d in draws},
    )


def build_profile_run(
    run_dir: Path,
    profile: str,
    *,
    interval_s: float = 2.0,
    warmup_s: float = 2.0,
    error_rates: Mapping[str, float] | None = None,
    seed: int = 1,
    budgets: Path = PROJECT_BUDGETS,
    format_version: int = FORMAT_VERSION,
) -> SyntheticRun:
    """`build_run` with the users, spawn rate, run time, shape and scenario knobs of a
    shipped profile; ``error_rates`` (request key -> share failed) replace the defaults'."""
    p = load_profile(profile)
    if p.run_time_s is None or p.users is None:
        raise ValueError(f"profile {profile} sets no run-time or users: nothing to synthesise")
    shapes = with_error_rates(scenario_shapes(p.settings), dict(error_rates or {}))
    return build_run(
        run_dir,
        duration_s=p.run_time_s,
        interval_s=interval_s,
        profile=profile,
        users=p.users,
        spawn_rate=p.spawn_rate,
        shape=p.shape,
        warmup_s=warmup_s,
        shapes=shapes,
        seed=seed,
        budgets=budgets,
        format_version=format_version,
    )


# Intervals drawn, encoded and written at a time: an hour of 2 s intervals. A day-long
# soak of 50 million requests is never in memory at once.
BLOCK_INTERVALS = 1800
LAYOUT_LEN = stats.bucket_layout().counts_len


@dataclass(frozen=True, eq=False)
class _Rows:
    """One key's non-empty intervals of one block (and the cut-offs of the stop interval)."""

    positions: np.ndarray  # into the run's intervals
    counts: np.ndarray
    failures: np.ndarray
    cut_off: np.ndarray
    sums: np.ndarray
    mins: np.ndarray  # -1: none
    maxs: np.ndarray
    histograms: list[str]


class _Draws:
    """One key's load: counts per interval drawn up front, latencies a block at a time from
    a generator of its own (the same numbers whatever the block size)."""

    def __init__(
        self, shape: RequestShape, rng: np.random.Generator, counts: np.ndarray, cut_off: int
    ) -> None:
        self.shape = shape
        self.rng = rng
        self.counts = counts
        self.fails = rng.binomial(counts, shape.error_rate) if shape.error_rate else 0 * counts
        self.cut_off = cut_off
        self.whole = np.zeros(LAYOUT_LEN, dtype=np.int64)
        self.sum_ns = 0
        self.min_ns: int | None = None
        self.max_ns: int | None = None

    @classmethod
    def of(
        cls,
        shape: RequestShape,
        number: int,
        seed: int,
        running: np.ndarray,
        overlap_s: np.ndarray,
    ) -> _Draws:
        rng = np.random.default_rng([seed, number])
        expected = (shape.rps_per_user * running + shape.fixed_rps) * overlap_s
        counts = rng.poisson(expected).astype(np.int64)
        draws = cls(shape, rng, counts, 0)
        draws.cut_off = int(rng.integers(0, 3)) if shape.rps_per_user else 0
        return draws

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def total_failures(self) -> int:
        return int(self.fails.sum())

    def block(self, part: slice, drift: np.ndarray) -> _Rows:
        counts = self.counts[part]
        n = int(counts.sum())
        owner = np.repeat(np.arange(counts.size), counts)
        mu = math.log(self.shape.median_ms) + np.log(drift[owner])
        ns = stats.ms_to_ns_array(np.exp(mu + self.shape.sigma * self.rng.standard_normal(n)))
        used = np.flatnonzero(counts)
        starts = np.concatenate(([0], np.cumsum(counts)))[used]
        empty = np.zeros(0, dtype=np.int64)
        sums = np.add.reduceat(ns, starts) if ns.size else empty
        mins = np.minimum.reduceat(ns, starts) if ns.size else empty
        maxs = np.maximum.reduceat(ns, starts) if ns.size else empty
        # Every interval's histogram at once: (interval, bucket) pairs counted.
        buckets = histogram_module._indices_for(ns) if ns.size else empty
        pairs, counted = np.unique(owner * LAYOUT_LEN + buckets, return_counts=True)
        rows = pairs // LAYOUT_LEN
        offsets = np.searchsorted(rows, used, side="left")
        offsets = np.append(offsets, rows.size).astype(np.int64)
        histograms = histogram_module.HistogramRows(
            offsets, pairs % LAYOUT_LEN, counted.astype(np.int64)
        )
        np.add.at(self.whole, histograms.index, histograms.counts)
        if ns.size:
            self.sum_ns += int(ns.sum())
            low, high = int(ns.min()), int(ns.max())
            self.min_ns = low if self.min_ns is None else min(self.min_ns, low)
            self.max_ns = high if self.max_ns is None else max(self.max_ns, high)
        positions = used + part.start
        cut_off = np.zeros(used.size, dtype=np.int64)
        texts = histogram_module.encode_rows(histograms) if used.size else []
        if self.cut_off and part.stop == self.counts.size:
            # In flight at stop: counted in the interval where the run stopped, no latency.
            stop = self.counts.size - 1
            if used.size and positions[-1] == stop:
                cut_off[-1] = self.cut_off
            else:
                positions = np.append(positions, stop)
                cut_off = np.append(cut_off, self.cut_off)
                sums, mins, maxs = np.append(sums, 0), np.append(mins, -1), np.append(maxs, -1)
                texts = [*texts, stats.encode_histogram(stats.Histogram())]
        return _Rows(
            positions,
            counts[positions - part.start],
            self.fails[positions],
            cut_off,
            sums,
            mins,
            maxs,
            texts,
        )

    def whole_row(self) -> list[Any]:
        used = np.flatnonzero(self.whole)
        rows = histogram_module.HistogramRows(
            np.array([0, used.size], dtype=np.int64), used, self.whole[used]
        )
        return [
            self.total,
            self.total_failures,
            self.cut_off,
            self.sum_ns,
            self.min_ns,
            self.max_ns,
            histogram_module.encode_rows(rows)[0],
        ]

    def failure_row(self, lo: np.ndarray, interval_s: float) -> dict[str, Any] | None:
        if not self.total_failures:
            return None
        failed_at = lo[np.nonzero(self.fails)[0]]
        return {
            "type": self.shape.request_type,
            "name": self.shape.name,
            "message": self.shape.message,
            "count": self.total_failures,
            "first_epoch": float(failed_at[0]) + 0.4 * interval_s,
            "last_epoch": float(failed_at[-1]) + 0.6 * interval_s,
        }


class _Sink:
    histograms = 0  # interval histograms written

    def block(self, rows: Sequence[_Rows]) -> None:
        raise NotImplementedError

    def finish(self, **parts: Any) -> None:
        raise NotImplementedError


class _LinesSink(_Sink):
    """Version 2, through the plugin's own writer: a line per interval, as the run goes."""

    def __init__(
        self,
        path: Path,
        interval_s: float,
        first: int,
        keys: Sequence[RequestShape],
        paced: Sequence[int],
    ) -> None:
        self.writer = RecordingWriter(path, interval_s)
        self.first = first
        self.ids = [self.writer.key("entries", s.request_type, s.name) for s in keys]
        self.paced = {
            i: self.writer.key("paced", keys[i].request_type, keys[i].name) for i in paced
        }

    def block(self, rows: Sequence[_Rows]) -> None:
        lines: dict[int, list[list[Any]]] = {}
        for i, r in enumerate(rows):
            ids = [self.ids[i], *([self.paced[i]] if i in self.paced else [])]
            for j, position in enumerate(r.positions.tolist()):
                values = _row_values(r, j)
                for key in ids:
                    lines.setdefault(position, []).append([key, *values])
            self.histograms += len(r.positions)
        for position in sorted(lines):
            self.writer.interval(self.first + position, lines[position])

    def finish(self, **parts: Any) -> None:
        self.writer.samples(parts["users"], parts["cpu"])
        whole = [[self.ids[i], *row] for i, row in enumerate(parts["whole"])]
        whole += [[self.paced[i], *parts["whole"][i]] for i in sorted(self.paced)]
        self.writer.finish(
            {
                **parts["meta"],
                "whole": whole,
                "failures": parts["failures"],
                "generator": {
                    "max_cpu_pct": max((c["cpu_pct"] for c in parts["cpu"]), default=None)
                },
                "paced": {"user_classes": parts["paced_classes"]},
            }
        )


class _DocumentSink(_Sink):
    """Version 1: one JSON document, held until the end (the format before streaming)."""

    def __init__(
        self,
        path: Path,
        interval_s: float,
        first: int,
        keys: Sequence[RequestShape],
        paced: Sequence[int],
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.first = first
        self.keys = keys
        self.paced = list(paced)
        self.intervals: list[list[dict[str, Any]]] = [[] for _ in keys]

    def block(self, rows: Sequence[_Rows]) -> None:
        for i, r in enumerate(rows):
            for j, position in enumerate(r.positions.tolist()):
                values = dict(zip(ROW_COLUMNS[1:], _row_values(r, j), strict=True))
                self.intervals[i].append({"index": self.first + position, **values})
            self.histograms += len(r.positions)

    def finish(self, **parts: Any) -> None:
        entries = [
            {
                "type": shape.request_type,
                "name": shape.name,
                **dict(zip(ROW_COLUMNS[1:], parts["whole"][i], strict=True)),
                "intervals": self.intervals[i],
            }
            for i, shape in enumerate(self.keys)
        ]
        cpu = parts["cpu"]
        doc = {
            **format_header(self.interval_s, version=1),
            **parts["meta"],
            "users": parts["users"],
            "entries": entries,
            "failures": parts["failures"],
            "generator": {
                "cpu": cpu,
                "max_cpu_pct": max((c["cpu_pct"] for c in cpu), default=None),
            },
            "paced": {
                "user_classes": parts["paced_classes"],
                "entries": [entries[i] for i in self.paced],
            },
        }
        write_json_atomically(self.path, doc)


def _row_values(rows: _Rows, j: int) -> list[Any]:
    """count, failures, cut_off, sum_ns, min_ns, max_ns, histogram of one row."""
    low, high = int(rows.mins[j]), int(rows.maxs[j])
    return [
        int(rows.counts[j]),
        int(rows.failures[j]),
        int(rows.cut_off[j]),
        int(rows.sums[j]),
        None if low < 0 else low,
        None if high < 0 else high,
        rows.histograms[j],
    ]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _write_run_json(
    run_dir: Path,
    profile: str | None,
    users: int,
    spawn_rate: float | None,
    duration_s: float,
    start_epoch: float,
    stop_epoch: float,
    budgets: Path,
) -> None:
    """run.json as `paybench run` writes it: the same metadata, through the same writer."""
    run_id = run_dir.name
    plan = LocustPlan(
        locustfile=DEFAULT_LOCUSTFILE,
        host=HOST,
        run_dir=run_dir,
        config=load_profile(profile).path if profile else None,
        stop_timeout_s=10.0,
    )
    record = RunRecord(
        run_id=run_id,
        kind="run",
        profile=profile,
        users=users,
        spawn_rate=spawn_rate,
        run_time_s=duration_s,
        workers=0,
        locust_version="2.47.0",
        paybench_version=__version__,
        git_commit="0123456789abcdef0123456789abcdef01234567",
        scenario_version=catalogue.SCENARIO_VERSION,
        locustfile=str(DEFAULT_LOCUSTFILE),
        budgets=str(budgets),
        host=HOST,
        target="reference",
        status="finished",
        started_at=_iso(start_epoch),
        ended_at=_iso(stop_epoch),
        locust_command=tuple(build_command(plan)),
        locust_exit_code=0,
        extra={"target_overrides": {}, "target_config": None, "synthetic": True},
    )
    write_run_record(run_dir, record)
