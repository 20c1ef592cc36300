"""``paybench capacity``: a stepped Locust run that stops by itself, cut into steps, answered.

The IO edge of capacity planning (the analysis is ``harness.core.capacity``, pure):

1. Validate the options and budgets.yaml; refuse a host that may not be loaded.
2. Start the reference target when no host is given; preflight the health endpoints.
3. Run ``locust -f locustfiles/payments.py --shape steps ...`` into a new run folder.
   While it runs, every completed step is judged on the live progress lines
   (``paybench.live.jsonl``: exact counts, per-interval p95 and averages) and
   ``capacity.stop_decision`` says whether to go on. When it says stop, Locust gets one
   SIGINT (from outside: the shape itself only knows the plan), stops its users and writes
   its outputs and the exact histograms as on Ctrl-C.
4. From the exact histograms (``paybench.hdr.json``) each step's steady part is measured
   again and judged by ``evaluate`` against budgets.yaml; ``capacity.analyse`` answers;
   capacity.html and capacity.md are written into the run folder.

Only progress lines go to the ``progress`` callback: nothing here prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.config import load_budgets
from harness.core import catalogue
from harness.core.capacity import (
    CHECKOUT_KEY,
    CapacityAnalysis,
    Step,
    StepWindow,
    StopDecision,
    StopRules,
    analyse,
    choose_basis,
    settle_time_s,
    step_from_stats,
    step_windows,
    steps_plan,
    stop_decision,
)
from harness.core.evaluate import evaluate
from harness.core.hosts import check_host
from harness.core.model import AGGREGATE_KEY, Budgets, RequestStats, RunMeta, RunResult
from harness.errors import (
    EXIT_BUDGET_BROKEN,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNJUDGEABLE,
    ConfigError,
    TargetError,
)
from harness.locust_run import (
    LOG_FILE,
    LocustPlan,
    create_run_dir,
    finish_run_json,
    log_tail,
    new_run_id,
    run_locust,
    write_run_json,
)
from harness.pipeline import preflight, target_url
from harness.profiles import DEFAULT_LOCUSTFILE
from harness.recording import CPU_SATURATED_PCT, HDR_FILE, LIVE_FILE, load_recording

PROFILE = "capacity"
BUDGETS_SNAPSHOT = "budgets.yaml"
# The scenario knobs of a capacity run unless the caller sets others: PhonePe's timing 50
# times faster (as the smoke profile). The time scale shrinks the payer's delay and the
# polling schedule together, so the requests per checkout stay those of real time while a
# journey (about 1-2 s) ends well within a step and the steps settle quickly.
SCENARIO_DEFAULTS: Mapping[str, str] = {"time-scale": "0.02"}
MIN_STEP_TIME_S = 3.0
# Budgets judged on the live lines: the figures those lines carry (p95 and avg per interval).
LIVE_METRICS = ("avg", "p95", "error_rate", "rps")
# A step is too short to judge a request count: that budget is about whole runs.
STEP_EXCLUDED_METRICS = ("count",)
_POLL_S = 0.25


@dataclass(frozen=True)
class CapacityResult:
    """What ``paybench capacity`` found; the CLI prints ``sentence`` and the paths."""

    run_dir: Path
    analysis: CapacityAnalysis
    report_paths: tuple[Path, ...]
    host: str
    target: str  # "reference" or "external"
    planned_users: tuple[int, ...]
    interrupted: bool = False
    incomplete_reason: str | None = None

    @property
    def sentence(self) -> str:
        return self.analysis.sentence

    @property
    def exit_code(self) -> int:
        """0: answered. 1: the capacity lies below the expected peak, or there is none (the
        first step broke a budget). 3: the steps never reached the expected peak, nor a
        break or a knee, so the question stays open (raise --max-users). 130: interrupted
        (what was measured is reported)."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        a = self.analysis
        if a.capacity.held is None:
            return EXIT_BUDGET_BROKEN
        if a.headroom is not None and a.headroom < 1.0:
            return EXIT_UNJUDGEABLE if a.is_lower_bound else EXIT_BUDGET_BROKEN
        return EXIT_OK


def recording_interval_s(step_time_s: float) -> float:
    """Interval histograms short enough that a step's steady part holds several."""
    return min(2.0, max(0.5, step_time_s / 8.0))


def run_capacity(
    *,
    host: str | None,
    budgets_path: Path,
    start_users: int,
    step_users: int,
    step_time_s: float,
    max_users: int,
    expected_peak_rps: float | None,
    out: Path,
    target_config: Path | None = None,
    target_overrides: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    scenario_options: Mapping[str, str] | None = None,
    stop_rules: StopRules | None = None,
    allow_hosts: Sequence[str] = (),
) -> CapacityResult:
    """Run a stepped load until the capacity is found, and answer (see the module doc).

    ``scenario_options`` are Locust options of locustfiles/payments.py without their
    dashes (``{"think-time": "0.2"}``), over ``SCENARIO_DEFAULTS``. Raises ConfigError on
    a bad option, budgets file or host, TargetError when the target or Locust fails.
    """
    say = progress or (lambda _line: None)
    _check_options(start_users, step_users, step_time_s, max_users, expected_peak_rps)
    budgets = load_budgets(budgets_path, profile=None, known_keys=catalogue.REQUEST_KEYS)
    peak = expected_peak_rps if expected_peak_rps is not None else budgets.expected_peak_rps
    if host:
        check_host(host, budgets.allowed_hosts, allow_hosts)
    counts = steps_plan(start_users, step_users, max_users)
    rules = stop_rules or StopRules(max_users=max_users)
    interval_s = recording_interval_s(step_time_s)
    knobs = {**SCENARIO_DEFAULTS, **(scenario_options or {})}

    run_id = new_run_id()
    run_dir = create_run_dir(out, run_id)
    meta: dict[str, Any] = {
        "run_id": run_id,
        "profile": PROFILE,
        "users": max_users,
        "spawn_rate": None,
        "run_time_s": len(counts) * step_time_s,
        "workers": 0,
        "paybench_version": __version__,
        "scenario_version": catalogue.SCENARIO_VERSION,
        "locustfile": str(DEFAULT_LOCUSTFILE),
        "budgets": str(budgets_path),
        "capacity": {
            "start_users": start_users,
            "step_users": step_users,
            "step_time_s": step_time_s,
            "max_users": max_users,
            "steps": list(counts),
            "expected_peak_rps": peak,
            "scenario_options": knobs,
        },
    }
    (run_dir / BUDGETS_SNAPSHOT).write_bytes(budgets_path.read_bytes())
    say(
        f"capacity run {run_id}: {len(counts)} steps of {step_time_s:g} s, "
        f"{counts[0]} to {counts[-1]} users"
    )
    with target_url(host, target_config, target_overrides or {}) as (url, kind):
        meta.update(host=url, target=kind)
        if kind == "reference":
            meta["extra"] = {
                "target_overrides": dict(target_overrides or {}),
                "target_config": str(target_config) if target_config else None,
            }
        write_run_json(run_dir, {**meta, "status": "preflight"})
        preflight(url)  # the same health check as `paybench run`
        plan = LocustPlan(
            locustfile=DEFAULT_LOCUSTFILE,
            host=url,
            run_dir=run_dir,
            extra_args=_shape_args(counts, start_users, step_users, step_time_s, interval_s)
            + _knob_args(knobs),
        )
        write_run_json(run_dir, {**meta, "status": "running"})
        monitor = _LiveMonitor(run_dir, counts, step_time_s, interval_s, budgets, rules, say)
        run = _run_until_stopped(plan, monitor, deadline_s=len(counts) * step_time_s)

    incomplete_reason = None
    if run.interrupted:
        incomplete_reason = "interrupted (Ctrl-C); the steps measured until then are kept"
    elif run.returncode not in (0, None):
        incomplete_reason = f"Locust exited with code {run.returncode}"
    finish_run_json(
        run_dir,
        meta,
        run,
        incomplete_reason,
        stop=None if run.stop is None else dataclasses.asdict(run.stop),
    )
    if not (run_dir / HDR_FILE).exists():
        tail = " | ".join(log_tail(run_dir, 3))
        raise TargetError(
            f"Locust wrote no {HDR_FILE} ({incomplete_reason or 'no measurement'}); "
            f"see {run_dir / LOG_FILE}: {tail}"
        )
    steps, notes = measure_steps(run_dir, counts, step_time_s, budgets)
    stop = run.stop
    if stop is None and not run.interrupted and steps:
        stop = StopDecision("max users", steps[-1].users, f"ran every step up to {counts[-1]}")
    analysis = analyse(steps, expected_peak_rps=peak, stop=stop)
    if notes:
        analysis = dataclasses.replace(analysis, notes=analysis.notes + notes)
    # Imported here: matplotlib loads only once there is something to draw.
    from harness.report.capacity import write_capacity_reports

    facts = _facts(
        run_id, url, kind, budgets_path, counts, step_time_s, knobs, run, target_overrides
    )
    title = f"paybench capacity · run {run_id} · {url}"
    paths = write_capacity_reports(run_dir, analysis, budgets=budgets, facts=facts, title=title)
    say(analysis.sentence)
    return CapacityResult(
        run_dir=run_dir,
        analysis=analysis,
        report_paths=paths,
        host=url,
        target=kind,
        planned_users=counts,
        interrupted=run.interrupted,
        incomplete_reason=incomplete_reason,
    )


def _check_options(
    start_users: int,
    step_users: int,
    step_time_s: float,
    max_users: int,
    expected_peak_rps: float | None,
) -> None:
    if start_users < 1:
        raise ConfigError(f"--start-users {start_users}: must be 1 or more")
    if step_users < 1:
        raise ConfigError(f"--step-users {step_users}: must be 1 or more")
    if max_users < start_users:
        raise ConfigError(
            f"--max-users {max_users} is below --start-users {start_users}; raise --max-users"
        )
    if not step_time_s >= MIN_STEP_TIME_S or math.isinf(step_time_s):
        raise ConfigError(
            f"--step-time {step_time_s:g}s: a step needs at least {MIN_STEP_TIME_S:g} s "
            "(the users are reached within about 2 s and must settle before it is measured)"
        )
    if expected_peak_rps is not None and not expected_peak_rps > 0:
        raise ConfigError(
            f"--expected-peak-rps {expected_peak_rps:g}: must be above 0 (requests/s of the "
            "whole traffic at the expected peak)"
        )


def _shape_args(
    counts: Sequence[int], start: int, step: int, step_time_s: float, interval_s: float
) -> tuple[str, ...]:
    return (
        "--shape",
        "steps",
        "--step-start-users",
        str(start),
        "--step-users",
        str(step),
        "--step-time",
        f"{step_time_s:g}",
        "--step-max-users",
        str(counts[-1]),
        "--paybench-interval",
        f"{interval_s:g}",
    )


def _knob_args(knobs: Mapping[str, str]) -> tuple[str, ...]:
    args: list[str] = []
    for name, value in sorted(knobs.items()):
        args += [f"--{name.lstrip('-')}", str(value)]
    return tuple(args)


# --------------------------------------------------------------------------- exact steps


def step_budgets(budgets: Budgets) -> Budgets:
    """The budgets a single step is judged on: no request counts, no regressions."""
    kept = tuple(b for b in budgets.budgets if b.metric not in STEP_EXCLUDED_METRICS)
    return dataclasses.replace(budgets, budgets=kept, regressions=())


def measure_steps(
    run_dir: Path, counts: Sequence[int], step_time_s: float, budgets: Budgets
) -> tuple[list[Step], tuple[str, ...]]:
    """Every complete step from the exact histograms, judged; and notes for the reader."""
    rec = load_recording(run_dir / HDR_FILE)
    origin = rec.test_start_epoch
    if origin is None:
        raise TargetError(f"{run_dir / HDR_FILE}: the run never started; see {run_dir / LOG_FILE}")
    windows = step_windows(
        origin_epoch=origin,
        counts=counts,
        step_time_s=step_time_s,
        interval_s=rec.interval_s,
        stop_epoch=rec.test_stop_epoch,
        users=[(u.epoch, u.users) for u in rec.users],
        min_steady_s=_min_steady_s(step_time_s),
    )
    judged = step_budgets(budgets)
    steps, notes = [], []
    for w in windows:
        requests = rec.request_stats(w.start_epoch, w.end_epoch)
        total = rec.aggregate(w.start_epoch, w.end_epoch)
        verdict = evaluate(_step_result(run_dir.name, w, requests, total), judged)
        steps.append(
            step_from_stats(
                users=w.users, requests=requests, verdict=verdict, start_s=w.start_epoch - origin
            )
        )
        cpu = rec.generator_facts(w.start_epoch, w.end_epoch).max_cpu_pct
        if cpu is not None and cpu >= CPU_SATURATED_PCT:
            notes.append(
                f"the load generator was at {cpu:.0f} % CPU at {w.users} users: from there "
                "on the knee may be Locust's, not the target's"
            )
    return steps, tuple(notes[:1])


def _min_steady_s(step_time_s: float) -> float:
    """A step cut short by the stop counts only if half of its steady part ran."""
    return max(1.0, 0.5 * (step_time_s - settle_time_s(step_time_s)))


def _step_result(
    run_id: str, w: StepWindow, requests: Sequence[RequestStats], total: RequestStats
) -> RunResult:
    meta = RunMeta(
        run_id=run_id,
        profile=PROFILE,
        host="",
        target="unknown",
        users=w.users,
        spawn_rate=None,
        run_time_s=None,
        workers=0,
        started_at=None,
        ended_at=None,
        locust_version=None,
        paybench_version=__version__,
        git_commit=None,
    )
    return RunResult(
        meta=meta,
        requests=tuple(requests),
        total=total,
        steady_start_s=0.0,
        steady_end_s=w.end_epoch - w.start_epoch,
    )


# --------------------------------------------------------------------------- live steps


class _LiveMonitor:
    """Judges each step as its steady part completes, from the live progress lines.

    A live line carries, per request key, the exact count, failures, average and p95 of
    the newest complete interval (``per_request.<key>.last``). A step's figures are those
    of the intervals inside its steady part: counts and averages exact, the p95 the
    count-weighted mean of the intervals' p95 (close enough to decide whether to go on;
    the report measures every step again from the exact histograms).
    """

    def __init__(
        self,
        run_dir: Path,
        counts: Sequence[int],
        step_time_s: float,
        interval_s: float,
        budgets: Budgets,
        rules: StopRules,
        say: Callable[[str], None],
    ) -> None:
        self.path = run_dir / LIVE_FILE
        self.counts = tuple(counts)
        self.step_time_s = step_time_s
        self.interval_s = interval_s
        kept = tuple(b for b in budgets.budgets if b.metric in LIVE_METRICS)
        self.budgets = dataclasses.replace(budgets, budgets=kept, regressions=())
        self.rules = rules
        self.say = say
        self.offset = 0
        self.origin: float | None = None
        self.users: list[tuple[float, int]] = []
        self.intervals: dict[int, dict[str, dict[str, Any]]] = {}
        self.steps: list[Step] = []
        self.decision: StopDecision | None = None

    def poll(self) -> StopDecision | None:
        """Read new lines; judge the steps they complete; the stop decision, once made."""
        for line in self._new_lines():
            if not isinstance(line, dict) or not isinstance(line.get("epoch"), float | int):
                continue  # not a progress line of this plugin version
            if self.origin is None:
                self.origin = float(line["epoch"]) - float(line.get("elapsed_s", 0.0))
            self.users.append((float(line["epoch"]), int(line.get("users", 0))))
            index = line.get("interval_index")
            if isinstance(index, int):
                self.intervals[index] = {
                    key: figures.get("last") or {} for key, figures in _per_request(line).items()
                }
            self._judge_completed(float(line["epoch"]))
        return self.decision

    def _new_lines(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        lines = []
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break  # still being written
            self.offset += len(raw)
            with contextlib.suppress(ValueError):
                lines.append(json.loads(raw))
        return lines

    def _judge_completed(self, now_epoch: float) -> None:
        if self.origin is None or self.decision is not None:
            return
        windows = step_windows(
            origin_epoch=self.origin,
            counts=self.counts,
            step_time_s=self.step_time_s,
            interval_s=self.interval_s,
            users=self.users,
            stop_epoch=now_epoch,
            min_steady_s=_min_steady_s(self.step_time_s),
        )
        for w in windows[len(self.steps) :]:
            planned_end = w.planned_start_epoch + self.step_time_s
            last_needed = round(w.end_epoch / self.interval_s) - 1  # w is interval-aligned
            if planned_end > now_epoch or last_needed not in self.intervals:
                return  # this step is still running or its last interval is not in yet
            step = self._live_step(w)
            self.steps.append(step)
            self.say(_step_line(len(self.steps), len(self.counts), step))
            basis = choose_basis(self.steps)
            self.decision = stop_decision(self.steps, self.rules, basis)
            if self.decision is not None:
                self.say(f"stopping: {self.decision.reason}: {self.decision.message}")
                return

    def _live_step(self, w: StepWindow) -> Step:
        # The window is aligned to intervals: its intervals are [first, last].
        first = round(w.start_epoch / self.interval_s)
        last = round(w.end_epoch / self.interval_s) - 1
        duration = w.end_epoch - w.start_epoch
        merged: dict[str, list[dict[str, Any]]] = {}
        for index in range(first, last + 1):
            for key, figures in self.intervals.get(index, {}).items():
                merged.setdefault(key, []).append(figures)
        requests = [_live_stats(key, parts, duration) for key, parts in sorted(merged.items())]
        requests = [r for r in requests if r.count]
        http = [r for r in requests if r.request_type != "FLOW"]
        total = _combine_live(http, duration)
        result = _step_result("live", w, requests, total)
        verdict = evaluate(result, self.budgets)
        return step_from_stats(
            users=w.users,
            requests=requests,
            verdict=verdict,
            start_s=w.start_epoch - (self.origin or 0.0),
        )


def _per_request(line: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    # "per_request" as docs/ARCHITECTURE.md names it; "keys" as an earlier plugin wrote it.
    figures = line.get("per_request", line.get("keys"))
    return figures if isinstance(figures, dict) else {}


def _live_stats(key: str, parts: Sequence[Mapping[str, Any]], duration_s: float) -> RequestStats:
    count = sum(int(p.get("count") or 0) for p in parts)
    timed = [(p["avg_ms"], int(p["count"])) for p in parts if p.get("avg_ms") is not None]
    p95s = [(p["p95_ms"], int(p["count"])) for p in parts if p.get("p95_ms") is not None]
    request_type, _, name = key.partition(" ")
    return RequestStats(
        request_type=request_type,
        name=name,
        count=count,
        failures=sum(int(p.get("failures") or 0) for p in parts),
        duration_s=duration_s,
        avg_ms=_weighted(timed),
        min_ms=None,
        max_ms=None,
        locust_percentiles_ms={95.0: v} if (v := _weighted(p95s)) is not None else {},
        source="locust",
    )


def _combine_live(parts: Sequence[RequestStats], duration_s: float) -> RequestStats:
    count = sum(p.count for p in parts)
    return RequestStats(
        request_type="",
        name=AGGREGATE_KEY,
        count=count,
        failures=sum(p.failures for p in parts),
        duration_s=duration_s,
        avg_ms=_weighted([(p.avg_ms, p.count) for p in parts if p.avg_ms is not None]),
        min_ms=None,
        max_ms=None,
        source="locust",
    )


def _weighted(pairs: Sequence[tuple[float, int]]) -> float | None:
    weight = sum(c for _, c in pairs)
    return sum(v * c for v, c in pairs) / weight if weight else None


def _step_line(number: int, of: int, step: Step) -> str:
    p95 = step.percentiles_ms.get(CHECKOUT_KEY, {}).get("p95")
    latency = f" | p95 initiate {p95:,.0f} ms" if p95 is not None else ""
    held = "budgets held" if step.budgets_held else f"broken: {step.broken[0]}"
    return (
        f"step {number}/{of}: {step.users} users | {step.checkout_rps:.1f} checkouts/s | "
        f"{step.throughput_rps:.1f} req/s{latency} | {held}"
    )


# --------------------------------------------------------------------------- the subprocess


@dataclass(frozen=True)
class _Run:
    returncode: int | None
    interrupted: bool
    stop: StopDecision | None
    started_at: str
    ended_at: str
    command: tuple[str, ...]


def _run_until_stopped(plan: LocustPlan, monitor: _LiveMonitor, deadline_s: float) -> _Run:
    """Run Locust until its shape ends the run, the monitor says stop, or Ctrl-C.

    Stopping is one SIGINT, as a terminal's Ctrl-C would send: Locust stops its users,
    writes its CSV and HTML, and the plugin its histograms; SIGKILL only if that hangs.
    """
    decisions: list[StopDecision] = []

    def should_stop() -> bool:
        decision = monitor.poll()
        if decision is not None:
            decisions.append(decision)
        return decision is not None

    outcome = run_locust(plan, poll_s=_POLL_S, should_stop=should_stop, max_duration_s=deadline_s)
    stop = decisions[0] if decisions else None
    if stop is None and not outcome.interrupted:
        monitor.poll()  # the progress line of the last step (the shape ended the run)
    return _Run(
        outcome.returncode,
        outcome.interrupted,
        stop,
        outcome.started_at,
        outcome.ended_at,
        outcome.command,
    )


def _facts(
    run_id: str,
    url: str,
    kind: str,
    budgets_path: Path,
    counts: Sequence[int],
    step_time_s: float,
    knobs: Mapping[str, str],
    run: _Run,
    target_overrides: Mapping[str, Any] | None,
) -> tuple[tuple[str, str], ...]:
    facts = [
        ("Run", run_id),
        ("Host", f"{url} ({kind})"),
        ("Budgets", str(budgets_path)),
        ("Steps planned", f"{len(counts)}: {', '.join(str(c) for c in counts)} users"),
        ("Step time", f"{step_time_s:g} s"),
        ("Scenario", ", ".join(f"--{k} {v}" for k, v in sorted(knobs.items()))),
        ("Started", run.started_at),
        ("Ended", run.ended_at),
    ]
    if kind == "reference" and target_overrides:
        facts.append(
            ("Target model", ", ".join(f"{k}={v}" for k, v in sorted(target_overrides.items())))
        )
    return tuple(facts)
