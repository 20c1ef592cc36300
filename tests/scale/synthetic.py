"""Seeded synthetic run folders of any length, for the scale tests and the benchmarks.

``build_run(run_dir, duration_s=...)`` writes what ``paybench run`` leaves in a run folder
and ``paybench check`` / ``paybench report`` read: ``run.json`` (through the same writer
as a real run), ``paybench.hdr.json`` (the plugin's format, version 1: whole-run and
per-interval HdrHistograms of nanoseconds from ``harness.core.stats``, cut-offs, failure
rows, users, generator CPU, the paced health prober) and the copy of ``budgets.yaml``.
``build_profile_run`` takes users, spawn rate, run time and load shape from a shipped
profile (``locustfiles/profiles/<name>.conf``).

The load: the catalogue's 14 request keys at the per-user rates of a small model of the
scenarios with a profile's knobs (``scenario_shapes``; the health prober at a fixed pace
whatever the users), Poisson counts per interval,
lognormal latencies that drift slowly, have rare slow spells and grow a little with the
user count, and failures drawn per interval at each key's error rate. Everything is drawn
with numpy from ``seed`` and vectorised over intervals, so a 4 h recording (7,200
intervals x 14 keys) builds in seconds; only the interval histograms' encoding is a loop.

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
from harness.locust_run import LocustPlan, build_command
from harness.profiles import DEFAULT_LOCUSTFILE, LOCUSTFILES, PROJECT_ROOT, load_profile
from harness.recording import format_header
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
) -> SyntheticRun:
    """Write a complete synthetic run folder at ``run_dir`` (created; must not exist).

    ``warmup_s`` only goes into the returned ``steady_start_epoch`` (the budgets file
    decides the warm-up that ``paybench check`` applies): pass the one it sets.
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

    entries: list[dict[str, Any]] = []
    paced_entries: list[dict[str, Any]] = []
    failure_rows: list[dict[str, Any]] = []
    histograms = requests = failures = 0
    non_empty: dict[str, int] = {}
    for shape_ in sorted(shapes, key=lambda s: (s.request_type, s.name)):
        expected = (shape_.rps_per_user * running + shape_.fixed_rps) * overlap_s
        counts = rng.poisson(expected).astype(np.int64)
        n = int(counts.sum())
        fails = rng.binomial(counts, shape_.error_rate) if shape_.error_rate else 0 * counts
        owner = np.repeat(np.arange(index.size), counts)
        mu = math.log(shape_.median_ms) + np.log(drift[owner])
        ns = stats.ms_to_ns_array(np.exp(mu + shape_.sigma * rng.standard_normal(n)))
        cut_off = int(rng.integers(0, 3)) if shape_.rps_per_user else 0
        entry, written = _entry(shape_, index, counts, fails, ns, cut_off)
        entries.append(entry)
        histograms += written
        non_empty[shape_.key] = int(np.count_nonzero(counts))
        if shape_.request_type != "FLOW":
            requests += n
            failures += int(fails.sum())
        if shape_.key in HEALTH_KEYS:
            # The prober keeps its pace: latency from the intended start is the latency.
            paced_entries.append(entry)
        if int(fails.sum()):
            failed_at = lo[np.nonzero(fails)[0]]
            failure_rows.append(
                {
                    "type": shape_.request_type,
                    "name": shape_.name,
                    "message": shape_.message,
                    "count": int(fails.sum()),
                    "first_epoch": float(failed_at[0]) + 0.4 * interval_s,
                    "last_epoch": float(failed_at[-1]) + 0.6 * interval_s,
                }
            )

    spawned_epoch = start_epoch + min(duration_s, spawn_time_s(users, spawn_rate, shape))
    ticks = (index[:-1] + 1) * interval_s + TICK_DELAY_S
    tick_users = timeline(ticks - start_epoch)
    cpu = 12.0 + 30.0 * tick_users / max(1.0, float(running.max()))
    cpu += rng.normal(0.0, 2.0, ticks.size)
    pacing_s = next((1 / s.fixed_rps for s in shapes if s.key in HEALTH_KEYS and s.fixed_rps), 5)
    health_rounds = duration_s / pacing_s
    doc = {
        **format_header(interval_s),
        "test_start_epoch": start_epoch,
        "spawning_complete_epoch": spawned_epoch,
        "spawning_complete_epochs": [spawned_epoch],
        "test_stop_epoch": stop_epoch,
        "mode": "local",
        "workers": [],
        "users": [
            {"epoch": start_epoch, "users": 0},
            {
                "epoch": spawned_epoch,
                "users": int(timeline(np.array([spawned_epoch - start_epoch]))[0]),
            },
            *({"epoch": float(t), "users": int(u)} for t, u in zip(ticks, tick_users, strict=True)),
        ],
        "warnings": [],
        "entries": entries,
        "failures": failure_rows,
        "generator": {
            "cpu": [
                {"epoch": float(t), "process": "local", "cpu_pct": round(float(c), 1)}
                for t, c in zip(ticks, cpu, strict=True)
            ],
            "max_cpu_pct": round(float(cpu.max()), 1) if cpu.size else None,
        },
        "paced": {
            "user_classes": [
                {
                    "user_class": "HealthProber",
                    "pacing_s": pacing_s,
                    "users": 1,
                    "intended_iterations": math.floor(health_rounds) + 1.0,
                    "achieved_iterations": math.floor(health_rounds) + 1,
                }
            ],
            "entries": paced_entries,
        },
    }
    write_json_atomically(run_dir / HDR_FILE, doc)
    shutil.copyfile(budgets, run_dir / "budgets.yaml")
    _write_run_json(
        run_dir, profile, users, spawn_rate, duration_s, start_epoch, stop_epoch, budgets
    )
    return SyntheticRun(
        run_dir=run_dir,
        interval_s=interval_s,
        duration_s=duration_s,
        intervals=int(index.size),
        histograms=histograms,
        requests=requests,
        failures=failures,
        steady_start_epoch=min(spawned_epoch + warmup_s, stop_epoch),
        stop_epoch=stop_epoch,
        non_empty_intervals=non_empty,
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
    )


def _entry(
    shape: RequestShape,
    index: np.ndarray,
    counts: np.ndarray,
    fails: np.ndarray,
    ns: np.ndarray,
    cut_off: int,
) -> tuple[dict[str, Any], int]:
    """One key's entry: whole-run figures and the non-empty intervals (plus the stop one)."""
    used = np.nonzero(counts)[0]
    bounds = np.concatenate(([0], np.cumsum(counts)))
    starts = bounds[used]
    sums = np.add.reduceat(ns, starts) if ns.size else np.zeros(0, np.int64)
    mins = np.minimum.reduceat(ns, starts) if ns.size else np.zeros(0, np.int64)
    maxs = np.maximum.reduceat(ns, starts) if ns.size else np.zeros(0, np.int64)
    intervals = []
    for j, i in enumerate(used):
        h = stats.Histogram()
        h.record_ns_array(ns[bounds[i] : bounds[i + 1]])
        intervals.append(
            {
                "index": int(index[i]),
                "count": int(counts[i]),
                "failures": int(fails[i]),
                "cut_off": 0,
                "sum_ns": int(sums[j]),
                "min_ns": int(mins[j]),
                "max_ns": int(maxs[j]),
                "histogram": stats.encode_histogram(h),
            }
        )
    if cut_off:
        # In flight at stop: counted in the interval where the run stopped, with no latency.
        if intervals and intervals[-1]["index"] == int(index[-1]):
            intervals[-1]["cut_off"] = cut_off
        else:
            intervals.append(
                {
                    "index": int(index[-1]),
                    "count": 0,
                    "failures": 0,
                    "cut_off": cut_off,
                    "sum_ns": 0,
                    "min_ns": None,
                    "max_ns": None,
                    "histogram": stats.encode_histogram(stats.Histogram()),
                }
            )
    whole = stats.Histogram()
    whole.record_ns_array(ns)
    entry = {
        "type": shape.request_type,
        "name": shape.name,
        "count": int(ns.size),
        "failures": int(fails.sum()),
        "cut_off": cut_off,
        "sum_ns": int(ns.sum()),
        "min_ns": int(ns.min()) if ns.size else None,
        "max_ns": int(ns.max()) if ns.size else None,
        "histogram": stats.encode_histogram(whole),
        "intervals": intervals,
    }
    return entry, len(intervals)


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
