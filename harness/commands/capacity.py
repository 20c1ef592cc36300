"""``paybench capacity``: a stepped run that stops by itself, cut into steps, answered.

The IO edge of capacity planning (the analysis is ``harness.core.capacity``, pure):

1. Validate the options and budgets.yaml; refuse a host that may not be loaded.
2. ``harness.lifecycle.execute``, as for ``paybench run``: run folder, run.json, the
   reference target when no host is given, the preflight, then
   ``locust -f locustfiles/payments.py --shape steps ...``. While it runs, every completed
   step is judged on the live progress lines (``paybench.live.jsonl``: exact counts,
   per-interval p95 and averages) and ``capacity.stop_decision`` says whether to go on.
   When it says stop, Locust gets one SIGINT (from outside: the shape itself only knows
   the plan), stops its users and writes its outputs and the exact histograms as on Ctrl-C.
3. From the exact histograms (``paybench.hdr.json``) each step's steady part is measured
   again and judged by ``evaluate`` against budgets.yaml, and its server budgets on
   server.jsonl over the same steady part (scraped as for ``paybench run``; the cost figure,
   CPU seconds per checkout, from the target process' CPU); ``capacity.analyse`` answers;
   capacity.html and capacity.md are written into the run folder.

Only progress lines go to the ``progress`` callback: nothing here prints.
"""

from __future__ import annotations

import dataclasses
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
from harness.core.model import (
    Budgets,
    PreflightCheck,
    RequestStats,
    RunMeta,
    RunResult,
)
from harness.core.server_eval import Window, cpu_seconds, judge_server, with_server_results
from harness.errors import (
    EXIT_BUDGET_BROKEN,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNJUDGEABLE,
    ConfigError,
    TargetError,
)
from harness.lifecycle import FinishedRun, LocustOptions, RunSpec, execute
from harness.preflight import PAYMENTS_CHECKS, PREFLIGHT_TIMEOUT_S, preflight_checks
from harness.profiles import DEFAULT_LOCUSTFILE
from harness.recording import (
    CPU_SATURATED_PCT,
    RUNNABLE_SATURATED_PCT,
    combine_stats,
    load_recording,
)
from harness.runfolder import HDR_FILE, LOG_FILE, LiveLine, bugs_reported_in, new_run_id
from harness.server.results import load_run_server_data
from harness.server.scraper import scraping_hook

PROFILE = "capacity"
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
    """What ``paybench capacity`` found; the CLI prints ``lines``."""

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
    def lines(self) -> tuple[str, ...]:
        """The answer, then where the run folder and the reports are."""
        reports = (f"report:     {p}" for p in self.report_paths)
        return (self.sentence, f"run folder: {self.run_dir}", *reports)

    @property
    def exit_code(self) -> int:
        """0: answered. 1: the capacity lies below the expected peak, or there is none (the
        first step broke a budget). 3: the steps never reached the expected peak, nor a
        break or a knee, so the question stays open (raise --max-users); or the run is
        incomplete (Locust failed or was stopped at its deadline). 130: interrupted (what
        was measured is reported)."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.incomplete_reason is not None:
            return EXIT_UNJUDGEABLE
        a = self.analysis
        if a.capacity.held is None:
            return EXIT_BUDGET_BROKEN
        if a.headroom is not None and a.headroom < 1.0:
            return EXIT_UNJUDGEABLE if a.is_lower_bound else EXIT_BUDGET_BROKEN
        return EXIT_OK


def recording_interval_s(step_time_s: float) -> float:
    """Interval histograms short enough that a step's steady part holds several."""
    return min(2.0, max(0.5, step_time_s / 8.0))


def capacity(
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
    spec = capacity_spec(
        run_id=new_run_id(),
        out=out,
        budgets_path=budgets_path,
        start_users=start_users,
        step_users=step_users,
        step_time_s=step_time_s,
        max_users=max_users,
        expected_peak_rps=peak,
        knobs=knobs,
        host=host,
        target_config=target_config,
        target_overrides=target_overrides,
        allow_hosts=(*budgets.allowed_hosts, *allow_hosts),
        preflight=preflight_checks(budgets, builtin=True),
    )
    say(
        f"capacity run {spec.run_id}: {len(counts)} steps of {step_time_s:g} s, "
        f"{counts[0]} to {counts[-1]} users"
    )
    # The server budgets' sources, scraped at the recording's interval (as `paybench run`).
    hook = scraping_hook(budgets.server, source_file=budgets.source, interval_s=interval_s)
    spec = dataclasses.replace(spec, around_load=hook)
    monitor = _LiveMonitor(counts, step_time_s, interval_s, budgets, rules, say)
    finished = execute(spec, monitor, poll_s=_POLL_S)
    with bugs_reported_in(finished.run_dir):
        return _answer(finished, monitor, budgets, counts, step_time_s, peak, knobs, say)


def capacity_spec(
    *,
    run_id: str,
    out: Path,
    budgets_path: Path,
    start_users: int,
    step_users: int,
    step_time_s: float,
    max_users: int,
    expected_peak_rps: float | None,
    knobs: Mapping[str, str],
    host: str | None = None,
    target_config: Path | None = None,
    target_overrides: Mapping[str, Any] | None = None,
    allow_hosts: Sequence[str] = (),
    preflight: tuple[tuple[PreflightCheck, ...], float] = (PAYMENTS_CHECKS, PREFLIGHT_TIMEOUT_S),
    deadline_s: float | None = None,
) -> RunSpec:
    """The lifecycle's spec of a capacity run: the steps shape, the knobs, the plan in extra."""
    counts = steps_plan(start_users, step_users, max_users)
    interval_s = recording_interval_s(step_time_s)
    return RunSpec(
        kind="capacity",
        run_id=run_id,
        out=out,
        budgets_path=budgets_path,
        locustfile=DEFAULT_LOCUSTFILE,
        profile=PROFILE,
        users=max_users,
        spawn_rate=None,
        run_time_s=len(counts) * step_time_s,
        scenario_version=catalogue.SCENARIO_VERSION,
        locust=LocustOptions(
            extra_args=_shape_args(counts, start_users, step_users, step_time_s, interval_s)
            + _knob_args(knobs),
            allow_hosts=tuple(allow_hosts),
        ),
        host=host,
        target_config=target_config,
        target_overrides=dict(target_overrides or {}),
        extra={
            "capacity": {
                "start_users": start_users,
                "step_users": step_users,
                "step_time_s": step_time_s,
                "max_users": max_users,
                "steps": list(counts),
                "expected_peak_rps": expected_peak_rps,
                "scenario_options": dict(knobs),
            }
        },
        preflight_checks=preflight[0],
        preflight_timeout_s=preflight[1],
        deadline_s=deadline_s,
    )


def _answer(
    finished: FinishedRun,
    monitor: _LiveMonitor,
    budgets: Budgets,
    counts: Sequence[int],
    step_time_s: float,
    peak: float | None,
    knobs: Mapping[str, str],
    say: Callable[[str], None],
) -> CapacityResult:
    """The finished run's steps, measured again from the exact histograms; the reports."""
    run_dir, record = finished.run_dir, finished.record
    if not finished.has_recording:
        raise finished.no_recording_error()
    steps, notes = measure_steps(
        run_dir, counts, step_time_s, budgets, builtin_target=record.target == "reference"
    )
    stop = monitor.decision if finished.outcome.stopped else None
    if finished.incomplete_reason is None and stop is None and steps:
        stop = StopDecision("max users", steps[-1].users, f"ran every step up to {counts[-1]}")
    analysis = analyse(steps, expected_peak_rps=peak, stop=stop)
    if finished.incomplete_reason and not finished.interrupted:
        notes = (f"the run is incomplete: {finished.incomplete_reason}", *notes)
    if notes:
        analysis = dataclasses.replace(analysis, notes=analysis.notes + notes)
    # Imported here: matplotlib loads only once there is something to draw.
    from harness.report.capacity import write_capacity_reports

    overrides = record.extra.get("target_overrides") or {}
    facts = _facts(
        record.run_id,
        record.host,
        record.target,
        record.budgets or "",
        counts,
        step_time_s,
        knobs,
        record.started_at or "",
        record.ended_at or "",
        overrides,
    )
    title = f"paybench capacity · run {record.run_id} · {record.host}"
    paths = write_capacity_reports(run_dir, analysis, budgets=budgets, facts=facts, title=title)
    say(analysis.sentence)
    return CapacityResult(
        run_dir=run_dir,
        analysis=analysis,
        report_paths=paths,
        host=record.host,
        target=record.target,
        planned_users=tuple(counts),
        interrupted=finished.interrupted,
        incomplete_reason=finished.incomplete_reason,
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
    """The budgets a single step is judged on: no request counts, no regressions, no server
    budget on the whole run (``.run``: an invariant of the run, not of a step)."""
    kept = tuple(b for b in budgets.budgets if b.metric not in STEP_EXCLUDED_METRICS)
    server = budgets.server
    if server is not None:
        server = dataclasses.replace(
            server, budgets=tuple(b for b in server.budgets if b.stat != "run")
        )
    return dataclasses.replace(budgets, budgets=kept, regressions=(), server=server)


def measure_steps(
    run_dir: Path,
    counts: Sequence[int],
    step_time_s: float,
    budgets: Budgets,
    *,
    builtin_target: bool = True,
) -> tuple[list[Step], tuple[str, ...]]:
    """Every complete step from the exact histograms, judged (the server budgets on
    server.jsonl over the same window); and notes for the reader."""
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
    scraped = load_run_server_data(run_dir)
    steps, notes = [], []
    for w in windows:
        requests = rec.request_stats(w.start_epoch, w.end_epoch)
        total = rec.aggregate(w.start_epoch, w.end_epoch)
        verdict = evaluate(step_result(run_dir.name, w, requests, total), judged)
        step_window = Window(w.start_epoch, w.end_epoch, scraped[0] if scraped else rec.interval_s)
        if judged.server is not None and judged.server.budgets:
            server = judge_server(
                judged.server,
                None if scraped is None else scraped[1],
                step_window,
                builtin_target=builtin_target,
            )
            verdict = with_server_results(verdict, server)
        step = step_from_stats(
            users=w.users, requests=requests, verdict=verdict, start_s=w.start_epoch - origin
        )
        cpu_s = None if scraped is None else cpu_seconds(scraped[1], step_window)
        checkouts = next((r.count for r in requests if r.key == CHECKOUT_KEY), 0)
        if cpu_s is not None and checkouts:
            step = dataclasses.replace(step, cpu_s_per_checkout=cpu_s / checkouts)
        steps.append(step)
        facts = rec.generator_facts(w.start_epoch, w.end_epoch)
        cpu = facts.max_cpu_pct
        runnable = max((s.runnable_pct or 0.0 for s in facts.cpu), default=0.0)
        if cpu is not None and cpu >= CPU_SATURATED_PCT:
            notes.append(
                f"the load generator was at {cpu:.0f} % CPU at {w.users} users: from there "
                "on the knee may be Locust's, not the target's"
            )
        elif runnable >= RUNNABLE_SATURATED_PCT:
            notes.append(
                f"the load generator was runnable {runnable:.0f} % of the time at {w.users} "
                "users but other processes took part of its core: from there on the knee "
                "may be Locust's, not the target's"
            )
    return steps, tuple(notes[:1])


def _min_steady_s(step_time_s: float) -> float:
    """A step cut short by the stop counts only if half of its steady part ran."""
    return max(1.0, 0.5 * (step_time_s - settle_time_s(step_time_s)))


def step_result(
    run_id: str, w: StepWindow, requests: Sequence[RequestStats], total: RequestStats
) -> RunResult:
    meta = RunMeta(
        run_id=run_id,
        profile=PROFILE,
        host="",
        target="unknown",
        users=w.users,
        paybench_version=__version__,
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
        counts: Sequence[int],
        step_time_s: float,
        interval_s: float,
        budgets: Budgets,
        rules: StopRules,
        say: Callable[[str], None],
    ) -> None:
        self.counts = tuple(counts)
        self.step_time_s = step_time_s
        self.interval_s = interval_s
        kept = tuple(b for b in budgets.budgets if b.metric in LIVE_METRICS)
        self.budgets = dataclasses.replace(budgets, budgets=kept, regressions=())
        self.rules = rules
        self.say = say
        self.origin: float | None = None
        self.users: list[tuple[float, int]] = []
        self.intervals: dict[int, dict[str, dict[str, Any]]] = {}
        self.steps: list[Step] = []
        self.decision: StopDecision | None = None

    def feed(self, line: LiveLine) -> bool:
        """One progress line; judge the steps it completes; True once the decision is stop."""
        if line.epoch is None:
            return self.decision is not None  # not a progress line of this plugin version
        if self.origin is None:
            self.origin = line.epoch - line.elapsed_s
        self.users.append((line.epoch, line.users))
        if line.interval_index is not None:
            self.intervals[line.interval_index] = {
                key: dict(figures.get("last") or {}) for key, figures in line.per_request.items()
            }
        self._judge_completed(line.epoch)
        return self.decision is not None

    def facts(self, stopped: bool) -> Mapping[str, Any]:
        """run.json's record of the stop decision, when it was this monitor's."""
        if stopped and self.decision is not None:
            return {"stop": dataclasses.asdict(self.decision)}
        return {}

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
        requests = [live_stats(key, parts, duration) for key, parts in sorted(merged.items())]
        requests = [r for r in requests if r.count]
        http = [r for r in requests if r.request_type != "FLOW"]
        total = combine_stats(http, duration, source="locust")
        result = step_result("live", w, requests, total)
        verdict = evaluate(result, self.budgets)
        return step_from_stats(
            users=w.users,
            requests=requests,
            verdict=verdict,
            start_s=w.start_epoch - (self.origin or 0.0),
        )


def live_stats(key: str, parts: Sequence[Mapping[str, Any]], duration_s: float) -> RequestStats:
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


def _facts(
    run_id: str,
    url: str,
    kind: str,
    budgets_path: str,
    counts: Sequence[int],
    step_time_s: float,
    knobs: Mapping[str, str],
    started_at: str,
    ended_at: str,
    target_overrides: Mapping[str, Any],
) -> tuple[tuple[str, str], ...]:
    facts = [
        ("Run", run_id),
        ("Host", f"{url} ({kind})"),
        ("Budgets", budgets_path),
        ("Steps planned", f"{len(counts)}: {', '.join(str(c) for c in counts)} users"),
        ("Step time", f"{step_time_s:g} s"),
        ("Scenario", ", ".join(f"--{k} {v}" for k, v in sorted(knobs.items()))),
        ("Started", started_at),
        ("Ended", ended_at),
    ]
    if kind == "reference" and target_overrides:
        facts.append(
            ("Target model", ", ".join(f"{k}={v}" for k, v in sorted(target_overrides.items())))
        )
    return tuple(facts)
