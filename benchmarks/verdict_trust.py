"""Benchmark: can the nightly's regression gate be trusted? False alarms, detection, holding.

Three parts, each printing its figures (docs/performance.md keeps them):

1. ``calibrate``: the reference target's calibrated step. Two targets with the same seed,
   one with ``latency_factor.checkout`` set, answer the same sequence of initiates from one
   client; the ratio of what the client measured, request by request (the seeded model
   draws the same service times for both), and of the p95.
2. ``real``: noise-only nightly-style runs against the reference target, all recorded in
   one fresh history and judged by ``paybench run`` as the nightly is: the real CLI, the
   profile ``nightly`` with its budgets (budgets.yaml), shortened to ``--run-time`` with
   every user spawned at once (``--users N --spawn-rate N``, default 100) so that a short
   run has a steady state and enough initiates for its own interval to resolve the allowed
   rise (a 45 s run of 100 users has about 900).
   Every FAIL of a regression budget is a false alarm. Also counted: what the earlier
   rule (the baseline runs' prediction interval alone) would have said of the same runs.
3. ``synthetic``: many nightly histories made up from what the real runs measured: the
   pooled initiate latencies (the per-run sampling distribution, drawn at the nightly's
   real sample size: the steady-state rate per user of the real runs, times the nightly's
   users and the steady state of a real 5-minute nightly) and the run-to-run spread of the
   runs' level (the 95 % upper confidence bound of its standard deviation, after the
   sampling noise is taken out).
   Each trial is one history: 5 runs to build the baseline, a few more noise-only nights,
   then a step of +10 %, +15 % or +25 % in every initiate latency, and nights without an
   accept. Every run is judged by the real ``HistoryStore.baseline_for`` and ``evaluate``
   on real HDR histograms, and recorded with ``add_run``.

Run (the real runs take about 15 minutes on 2 busy cores; the synthetic part about as
long at the default trial count):

    .venv/bin/python benchmarks/verdict_trust.py [--real-runs 52] [--run-time 45s] [--users 100]
        [--trials 200] [--out DIR]
    .venv/bin/python benchmarks/verdict_trust.py --real-runs 0 --model-from DIR/history.sqlite
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.config import load_budgets
from harness.core import stats
from harness.core.catalogue import INITIATE
from harness.core.evaluate import evaluate
from harness.core.model import (
    AGGREGATE_KEY,
    Budgets,
    RegressionBudget,
    RequestStats,
    RunMeta,
    RunResult,
    request_key,
)
from harness.profiles import load_profile, parse_duration
from harness.store import HistoryStore

ROOT = Path(__file__).resolve().parents[1]
PROFILE = "nightly"
KEY = request_key(*INITIATE)
INTERVAL_S = 2.0  # the plugin's interval
EARLIER_BASELINE_RUNS = 5  # the baseline the earlier rule had (budgets.yaml then)


# -- 1. the calibrated step -------------------------------------------------------------------


def calibrate(factor: float, requests: int) -> dict[str, float]:
    """Client-side latencies of the same initiates against factor 1 and ``factor``.

    Both targets run at once and the client alternates between them, so that the two
    halves of each pair meet the same load on the machine; the seeded model draws the same
    service times for the i-th initiate of each.
    """
    import httpx

    from harness.target.process import ReferenceTarget

    measured: dict[float, list[float]] = {1.0: [], factor: []}
    with (
        ReferenceTarget(overrides={"latency_factor.checkout": 1.0}) as plain,
        ReferenceTarget(overrides={"latency_factor.checkout": factor}) as stepped,
        httpx.Client(base_url=plain.url, timeout=30.0) as plain_http,
        httpx.Client(base_url=stepped.url, timeout=30.0) as stepped_http,
    ):
        clients = ((1.0, plain_http), (factor, stepped_http))
        for _, http in clients:
            http.get("/api/plans")  # the plan cache filled, as in a run
        for i in range(requests):
            for f, http in clients if i % 2 == 0 else clients[::-1]:
                started = time.perf_counter()
                r = http.post(
                    "/api/payments/v2/initiate",
                    json={"plan_id": "basic-monthly", "user_id": f"u{i}"},
                )
                measured[f].append((time.perf_counter() - started) * 1000.0)
                if r.status_code != 201:
                    raise SystemExit(f"calibration: initiate answered {r.status_code}")
    base, step = np.array(measured[1.0]), np.array(measured[factor])
    return {
        "factor": factor,
        "requests": requests,
        "median_ms": float(np.median(base)),
        "p95_ms": float(np.percentile(base, 95)),
        "paired_ratio_median": float(np.median(step / base)),
        "p95_ratio": float(np.percentile(step, 95) / np.percentile(base, 95)),
        "p50_ratio": float(np.median(step) / np.median(base)),
    }


# -- 2. real noise-only runs ------------------------------------------------------------------


def _regression_row(summary: dict[str, Any]) -> dict[str, Any] | None:
    for row in summary["verdict"]["budgets"]:
        if row["request"] == KEY and row["metric"] == "p95" and row["budget"].startswith("+"):
            return row
    return None


def _earlier_rule(values: Sequence[float], value: float, ci_low: float | None) -> bool:
    """The rule before the candidate's own interval counted: the prediction interval alone."""
    base = statistics.median(values)
    if value <= base * 1.10:
        return False
    if len(values) >= stats.MIN_PREDICTION_RUNS:
        return bool(stats.above_baseline(values, value).above)
    return ci_low is not None and ci_low > base


def real_runs(out: Path, runs: int, run_time: str, users: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(runs):
        started = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "run",
                "--profile",
                PROFILE,
                "--run-time",
                run_time,
                "--users",
                str(users),
                "--spawn-rate",
                str(users),
                "--out",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=parse_duration(run_time, "--run-time") + 180,
        )
        if proc.returncode == 2:
            raise SystemExit(f"run {i + 1}: exit 2: {proc.stderr.strip()}")
        run_dir = max((out / "runs").iterdir(), key=lambda p: p.name)
        summary = json.loads((run_dir / "summary.json").read_text())
        row = _regression_row(summary) or {}
        baseline_file = run_dir / "baseline.json"
        values = []
        if baseline_file.exists():
            values = json.loads(baseline_file.read_text())["values"].get(KEY, {}).get("p95", [])
        earlier = None
        if values and row.get("measured") is not None:
            earlier = _earlier_rule(values, row["measured"], row.get("ci_low"))
        initiate = next((r for r in summary["requests"] if r["key"] == KEY), {})
        rows.append(
            {
                "run_id": run_dir.name,
                "exit_code": proc.returncode,
                "outcome": summary["verdict"]["outcome"],
                "status": row.get("status"),
                "p95_ms": row.get("measured"),
                "samples": initiate.get("count"),
                "earlier_rule_fails": earlier,
                "message": row.get("message", ""),
                "seconds": round(time.monotonic() - started, 1),
            }
        )
        print(
            f"  real run {i + 1:2d}/{runs}: exit {proc.returncode} {rows[-1]['outcome']:<10} "
            f"initiate p95 {rows[-1]['p95_ms']} ms ({rows[-1]['samples']} samples): "
            f"{rows[-1]['status']}",
            flush=True,
        )
    return rows


# -- the model the synthetic runs are drawn from --------------------------------------------


@dataclass(frozen=True)
class Model:
    """What the real runs measured, to draw nightly runs from.

    A latency's log is ``log_mean`` + the run's level + its interval's level + a residual:
    the run's level varies between runs with sd ``between_sd`` (what a run does not share
    with the next: the target process, the machine's load), the interval's within a run
    with sd ``interval_sd``, and the residual is drawn from ``residuals``, the real
    latencies' logs about their own interval's mean (the per-run sampling distribution).
    """

    residuals: np.ndarray
    log_mean: float
    between_sd: float  # used: the point estimate
    between_sd_upper: float  # its 95 % upper confidence bound
    interval_sd: float
    rate_per_s: float  # initiates per second of steady state (median over runs)
    samples: int  # initiates in the steady state of a real nightly
    intervals: int
    runs: int
    real_samples: int  # median initiates of a real (short) run
    real_intervals: int
    real_p95_cv: float  # the p95's spread between the real runs
    lag1: float  # correlation of consecutive real runs' levels


def model_from_history(history: Path, budgets: Budgets) -> Model:
    """One-way random effects (runs, and intervals within runs) on the logs of latencies.

    Method of moments: the within-interval variance of the logs gives the sampling part;
    the spread of interval means within a run beyond it, ``interval_sd``; the spread of the
    runs' means beyond what their intervals explain, ``between_sd``, with the chi-square
    upper bound of that spread (k - 1 degrees of freedom) for ``between_sd_upper``.
    """
    from scipy.stats import chi2

    store = HistoryStore(history, create=False)
    rows = [r for r in store.list_runs(profile=PROFILE) if r.outcome in ("PASS", "FAIL")]
    layout = stats.bucket_layout()
    runs: list[list[np.ndarray]] = []
    rates, counts, p95s, interval_counts = [], [], [], []
    for row in rows:
        run = store.get_run(row.run_id).result
        found = run.find(KEY)
        if found is None or found.histogram is None or found.count < 10:
            continue
        intervals = []
        for h in found.interval_histograms:
            if h.count >= 3:
                index, c = h.buckets()
                ms = np.repeat(layout.mid_ns[index] / stats.NS_PER_MS, c.astype(np.int64))
                intervals.append(np.log(ms))
        if len(intervals) >= 2:
            runs.append(intervals)
            # Per user: the real runs may have more users than the nightly they model.
            rates.append(found.count / found.duration_s / (run.meta.users or 1))
            counts.append(found.count)
            p95s.append(found.percentile_ms(95.0))
            interval_counts.append(len(found.interval_histograms))
    if len(runs) < 3:
        raise SystemExit(f"{history}: fewer than 3 judged {PROFILE} runs to build the model from")
    sizes = np.array([iv.size for r in runs for iv in r], dtype=np.float64)
    within = sum(float(((iv - iv.mean()) ** 2).sum()) for r in runs for iv in r)
    sampling = within / float((sizes - 1).sum())  # variance of one log latency
    means = [np.array([iv.mean() for iv in r]) for r in runs]
    between_intervals = sum(float(((m - m.mean()) ** 2).sum()) for m in means)
    spread_intervals = between_intervals / sum(m.size - 1 for m in means)
    interval_var = max(0.0, spread_intervals - sampling * float(np.mean(1.0 / sizes)))
    levels = np.array([m.mean() for m in means])
    explained = float(np.mean([spread_intervals / m.size for m in means]))
    k = levels.size
    spread_runs = float(levels.var(ddof=1))
    upper = spread_runs * (k - 1) / float(chi2.ppf(0.05, k - 1))
    residuals = np.concatenate(
        [(iv - iv.mean()) * math.sqrt(iv.size / (iv.size - 1)) for r in runs for iv in r]
    )
    profile = load_profile(PROFILE)
    users, spawn_rate = profile.users or 1, profile.spawn_rate or 1.0
    steady_s = (profile.run_time_s or 300.0) - users / spawn_rate - budgets.warmup_s
    rate = float(np.median(rates)) * users
    lag1 = float(np.corrcoef(levels[:-1], levels[1:])[0, 1]) if k > 3 else math.nan
    return Model(
        residuals=residuals,
        log_mean=float(levels.mean()),
        between_sd=math.sqrt(max(0.0, spread_runs - explained)),
        between_sd_upper=math.sqrt(max(0.0, upper - explained)),
        interval_sd=math.sqrt(interval_var),
        rate_per_s=rate,
        samples=round(rate * steady_s),
        intervals=max(1, int(steady_s // INTERVAL_S)),
        runs=k,
        real_samples=int(np.median(counts)),
        real_intervals=int(np.median(interval_counts)),
        real_p95_cv=float(np.std(p95s, ddof=1) / np.mean(p95s)),
        lag1=lag1,
    )


def draw_latencies(
    model: Model,
    rng: np.random.Generator,
    samples: int,
    intervals: int,
    between_sd: float,
    factor: float = 1.0,
) -> list[np.ndarray]:
    """One run's latencies (ms), interval by interval, as the model says."""
    run_level = between_sd * rng.standard_normal()
    chunks = []
    for size in np.diff(np.linspace(0, samples, intervals + 1).round().astype(int)):
        level = model.log_mean + run_level + model.interval_sd * rng.standard_normal()
        chunks.append(np.exp(level + rng.choice(model.residuals, size)) * factor)
    return chunks


def model_p95_cv(model: Model, samples: int, intervals: int, between_sd: float) -> float:
    """The spread of the p95 between runs of this size that the model draws."""
    rng = np.random.default_rng(11)
    p95s = [
        stats.histogram_from_ms(
            np.concatenate(draw_latencies(model, rng, samples, intervals, between_sd))
        ).percentile_ms(95.0)
        for _ in range(400)
    ]
    return float(np.std(p95s, ddof=1) / np.mean(p95s))


# -- 3. synthetic nightly histories ----------------------------------------------------------


def _request(name: str, chunks: list[np.ndarray]) -> RequestStats:
    hists = tuple(stats.histogram_from_ms(c) for c in chunks)
    values = np.concatenate(chunks)
    rtype, rname = (INITIATE[0], INITIATE[1]) if name == KEY else ("", AGGREGATE_KEY)
    return RequestStats(
        request_type=rtype,
        name=rname,
        count=int(values.size),
        failures=0,
        duration_s=len(chunks) * INTERVAL_S,
        avg_ms=float(values.mean()),
        min_ms=float(values.min()),
        max_ms=float(values.max()),
        histogram=stats.merge_histograms(hists),
        interval_histograms=hists,
    )


def synthetic_run(
    model: Model,
    rng: np.random.Generator,
    trial: int,
    night: int,
    factor: float,
    between_sd: float,
) -> RunResult:
    chunks = draw_latencies(model, rng, model.samples, model.intervals, between_sd, factor)
    initiate = _request(KEY, chunks)
    total = _request(AGGREGATE_KEY, chunks)
    day = f"2026{1 + night // 28:02d}{1 + night % 28:02d}"
    profile = load_profile(PROFILE)
    meta = RunMeta(
        run_id=f"{day}T020000Z-{trial:06x}",
        profile=PROFILE,
        host="http://127.0.0.1:8000",
        target="reference",
        users=profile.users,
        spawn_rate=profile.spawn_rate,
        run_time_s=profile.run_time_s,
        workers=0,
        started_at=f"{day[:4]}-{day[4:6]}-{day[6:]}T02:00:00Z",
        ended_at=None,
        locust_version="2.47.0",
        paybench_version="synthetic",
        git_commit=None,
        scenario_version="1",
    )
    steady_start = (profile.users or 1) / (profile.spawn_rate or 1.0) + 2.0
    return RunResult(
        meta=meta,
        requests=(initiate,),
        total=total,
        steady_start_s=steady_start,
        steady_end_s=steady_start + model.intervals * INTERVAL_S,
    )


@dataclass
class Trial:
    """One history: its noise-only nights, then, per step, the nights after the step."""

    noise: list[str]  # status of each noise night judged with a full baseline
    build: list[str]  # status of the nights judged while the baseline fills
    earlier_noise: list[bool]
    steps: dict[float, list[bool]]  # step -> failed, night by night after it
    earlier_steps: dict[float, list[bool]]


def _judge_night(
    store: HistoryStore, run: RunResult, budgets: Budgets, earlier: list[float]
) -> tuple[str, bool]:
    """The run judged and recorded as `paybench run` does; and what the earlier rule says."""
    verdict = evaluate(run, budgets, store.baseline_for(run, n=budgets.baseline_runs))
    # Stored without the interval histograms: the baseline reads the stored metrics only,
    # and encoding 140 histograms a night would take longer than judging it.
    stored = dataclasses.replace(
        run,
        requests=tuple(dataclasses.replace(r, interval_histograms=()) for r in run.requests),
        total=dataclasses.replace(run.total, interval_histograms=()),
    )
    store.add_run(stored, verdict)
    r = verdict.results[0]
    old = False
    if earlier and r.measured is not None:
        old = _earlier_rule(earlier[-EARLIER_BASELINE_RUNS:], r.measured, r.ci_low)
    if r.measured is not None:
        earlier.append(r.measured)
    return r.status, old


def run_trial(
    model: Model,
    budgets: Budgets,
    trial: int,
    factors: Sequence[float],
    noise: int,
    nights: int,
    seed: int,
    between_sd: float,
) -> Trial:
    """One history: the baseline filled and ``noise`` more nights; then, from a copy of that
    history for each step, ``nights`` nights with every latency times the step."""
    rng = np.random.default_rng([seed, trial, round(between_sd * 1e5)])
    folder = Path(tempfile.mkdtemp(prefix="verdict-trust-", dir=_scratch()))
    build = budgets.baseline_runs
    try:
        store = HistoryStore(folder / "history.sqlite")
        out = Trial([], [], [], {}, {})
        earlier: list[float] = []  # every run's p95, failures included: the earlier baseline
        for night in range(build + noise):
            run = synthetic_run(model, rng, trial, night, 1.0, between_sd)
            status, old = _judge_night(store, run, budgets, earlier)
            if night >= build:
                out.noise.append(status)
                out.earlier_noise.append(old)
            elif night > 0:
                out.build.append(status)
        for factor in factors:
            branch = folder / f"step-{factor}"
            branch.mkdir()
            for f in folder.glob("history.sqlite*"):
                shutil.copy(f, branch / f.name)
            stepped = HistoryStore(branch / "history.sqlite")
            step_rng = np.random.default_rng(
                [seed, trial, round(between_sd * 1e5), round(factor * 1e3)]
            )
            was = list(earlier)
            out.steps[factor], out.earlier_steps[factor] = [], []
            for night in range(build + noise, build + noise + nights):
                run = synthetic_run(model, step_rng, trial, night, factor, between_sd)
                status, old = _judge_night(stepped, run, budgets, was)
                out.steps[factor].append(status == "fail")
                out.earlier_steps[factor].append(old)
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _scratch() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def _rate(k: int, n: int) -> str:
    low, high = stats.wilson_interval(k, n)
    return f"{k}/{n} ({100 * k / n:.1f} %, 95 % CI {100 * low:.1f}-{100 * high:.1f} %)"


def summarize(factor: float, trials: Sequence[Trial]) -> dict[str, Any]:
    n = len(trials)
    steps = [t.steps[factor] for t in trials]
    earlier_steps = [t.earlier_steps[factor] for t in trials]
    by_two = sum(1 for s in steps if any(s[:2]))
    first = [next((i + 1 for i, f in enumerate(s) if f), None) for s in steps]
    held = 0
    for s, f in zip(steps, first, strict=True):
        if f is not None and all(s[f - 1 :]):
            held += 1
    earlier_by_two = sum(1 for s in earlier_steps if any(s[:2]))
    earlier_held = sum(1 for s in earlier_steps if s and all(s))
    firsts = [f for f in first if f is not None]
    return {
        "step": f"+{round((factor - 1) * 100)} %",
        "trials": n,
        "fails_by_night_2": _rate(by_two, n),
        "first_fail_median": statistics.median(firsts) if firsts else None,
        "never_failed": sum(1 for f in first if f is None),
        "kept_failing_to_the_last_night": _rate(held, n),
        "share_of_nights_failing": round(
            sum(sum(s) for s in steps) / max(1, sum(len(s) for s in steps)), 4
        ),
        "earlier_rule_fails_by_night_2": _rate(earlier_by_two, n),
        "earlier_rule_fails_every_night": _rate(earlier_held, n),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="kept; default: a temp folder")
    parser.add_argument("--real-runs", type=int, default=52)
    parser.add_argument("--run-time", default="45s")
    parser.add_argument(
        "--users",
        type=int,
        default=100,
        help="users of each real run, all spawned at once: enough initiates in a short run "
        "for its own interval to resolve the allowed rise",
    )
    parser.add_argument("--model-from", type=Path, default=None, help="a history to model")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--steps", default="1.10,1.15,1.25")
    parser.add_argument(
        "--spreads", default="", help="more run-to-run spreads to try, e.g. 0.01,0.02"
    )
    parser.add_argument("--sensitivity-trials", type=int, default=50)
    parser.add_argument("--noise-nights", type=int, default=3)
    parser.add_argument("--nights", type=int, default=6, help="nights after the step")
    parser.add_argument("--calibrate-requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="verdict-trust-out-"))
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {}
    budgets_path = ROOT / "budgets.yaml"
    nightly = load_budgets(budgets_path, profile=PROFILE)
    gate = [rb for rb in nightly.regressions if rb.selector == KEY and rb.metric == "p95"]
    if not gate:
        raise SystemExit(f"{budgets_path}: profile {PROFILE} has no p95 regression budget on {KEY}")
    only_gate = dataclasses.replace(nightly, budgets=(), regressions=tuple(gate))
    rb: RegressionBudget = gate[0]
    print(f"the gate: {KEY} p95 {rb.text}, baseline of {nightly.baseline_runs} runs")

    if args.calibrate_requests:
        print(f"\n1. calibrated step: latency_factor.checkout=1.15, {args.calibrate_requests} "
              "sequential initiates against each target")
        report["calibration"] = cal = calibrate(1.15, args.calibrate_requests)
        print(
            f"  median {cal['median_ms']:.1f} ms, p95 {cal['p95_ms']:.1f} ms at factor 1; "
            f"request by request x{cal['paired_ratio_median']:.4f} (median), "
            f"p50 x{cal['p50_ratio']:.4f}, p95 x{cal['p95_ratio']:.4f}"
        )

    history = args.model_from or out / "history.sqlite"
    if args.real_runs:
        print(
            f"\n2. {args.real_runs} noise-only runs: paybench run --profile {PROFILE} "
            f"--run-time {args.run_time} --users {args.users} --spawn-rate {args.users} "
            f"(history {out / 'history.sqlite'})"
        )
        rows = real_runs(out, args.real_runs, args.run_time, args.users)
        report["real"] = rows
        judged = [r for r in rows if r["status"] not in (None, "skipped", "no samples")]
        judged = [r for r in judged if r["outcome"] in ("PASS", "FAIL")]
        fails = sum(1 for r in judged if r["status"] == "fail")
        inconclusive = sum(1 for r in judged if r["status"] == "inconclusive")
        earlier = sum(1 for r in judged if r["earlier_rule_fails"])
        samples = [r["samples"] for r in judged if r["samples"]]
        codes = sorted({r["exit_code"] for r in rows})
        by_code = ", ".join(f"{c}: {sum(1 for r in rows if r['exit_code'] == c)}" for c in codes)
        print(
            f"  judged {len(judged)} (exit codes {by_code}); "
            f"false alarms (the p95 regression budget broken): {fails}; inconclusive: "
            f"{inconclusive}; passed: {len(judged) - fails - inconclusive}; the earlier rule "
            f"would have failed {earlier}; initiate samples a run: median "
            f"{statistics.median(samples) if samples else 0}"
        )

    if args.trials == 0:
        (out / "verdict_trust.json").write_text(json.dumps(report, indent=2, default=str))
        print(f"\nfigures: {out / 'verdict_trust.json'}")
        return 0
    print(f"\n3. synthetic nightly histories, modelled on {history}")
    model = model_from_history(history, nightly)
    consistency = model_p95_cv(model, model.real_samples, model.real_intervals, model.between_sd)
    report["model"] = {
        k: v for k, v in dataclasses.asdict(model).items() if k != "residuals"
    } | {"pooled_samples": int(model.residuals.size), "model_p95_cv_real_size": consistency}
    print(
        f"  from {model.runs} real runs ({model.residuals.size} initiate latencies): run-to-run "
        f"spread of the level {100 * model.between_sd:.1f} % (95 % upper bound "
        f"{100 * model.between_sd_upper:.1f} %), between 2-s intervals of a run "
        f"{100 * model.interval_sd:.1f} %, consecutive runs' levels correlated "
        f"{model.lag1:.2f}; check: the p95 of runs of {model.real_samples} samples spreads "
        f"{100 * model.real_p95_cv:.1f} % between the real runs, {100 * consistency:.1f} % "
        "in the model"
    )
    alone = model_p95_cv(model, model.samples, model.intervals, 0.0)
    spread_cv = model_p95_cv(model, model.samples, model.intervals, model.between_sd)
    report["model"] |= {"nightly_p95_cv_sampling": alone, "nightly_p95_cv": spread_cv}
    print(
        f"  a real nightly: {model.rate_per_s:.2f} initiates/s of steady state, so "
        f"{model.samples} in {model.intervals} intervals; the p95 of such runs spreads "
        f"{100 * alone:.1f} % from sampling alone, {100 * spread_cv:.1f} % with the "
        "run-to-run spread"
    )
    spreads = [model.between_sd, *(float(x) for x in args.spreads.split(",") if x)]
    report["synthetic"] = []
    started = time.monotonic()
    for spread in spreads:
        results = []
        all_noise: list[str] = []
        all_build: list[str] = []
        earlier_noise = 0
        label = f"run-to-run spread {100 * spread:.1f} %"
        trials_n = args.trials if spread == model.between_sd else args.sensitivity_trials
        if trials_n == 0:
            continue
        factors = [float(f) for f in args.steps.split(",")]
        trials = [
            run_trial(
                model, only_gate, t, factors, args.noise_nights, args.nights, args.seed, spread
            )
            for t in range(trials_n)
        ]
        for t in trials:
            all_noise.extend(t.noise)
            all_build.extend(t.build)
            earlier_noise += sum(t.earlier_noise)
        for factor in factors:
            results.append(summary := summarize(factor, trials))
            print(f"  {label}, step {summary['step']}: {json.dumps(summary)}", flush=True)
        fails = all_noise.count("fail")
        noise = {
            "spread": spread,
            "judged_full_baseline": len(all_noise),
            "false_alarms": fails,
            "inconclusive": all_noise.count("inconclusive"),
            "build_nights_judged": len(all_build),
            "build_false_alarms": all_build.count("fail"),
            "earlier_rule_false_alarms": earlier_noise,
        }
        report["synthetic"].append({"spread": spread, "steps": results, "noise": noise})
        print(
            f"  {label}, noise only, full baseline: false alarms "
            f"{_rate(fails, len(all_noise))}; inconclusive {all_noise.count('inconclusive')}; "
            f"while the baseline fills: {_rate(all_build.count('fail'), len(all_build))}; "
            f"the earlier rule on the same nights: {_rate(earlier_noise, len(all_noise))}",
            flush=True,
        )
    print(f"  synthetic part: {time.monotonic() - started:.0f} s")
    (out / "verdict_trust.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"\nfigures: {out / 'verdict_trust.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
