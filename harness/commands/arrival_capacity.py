"""``paybench capacity --arrival-rate-steps 10/s,20/s,30/s``: capacity in the open model.

One run with ``--arrival-stages`` (each rate held ``--step-time``), through the same
lifecycle as every run; then, per step, from the exact histograms: the checkouts/s that
completed over the step's steady part (its first ``settle`` seconds left out) and the
budgets judged on it. The answer (``harness.core.arrivals.rate_capacity``): the highest rate
carried (budgets hold and at least 95 % of the arrivals complete, every step from the
first), and the most checkouts/s completed in any step, the saturation. docs/capacity.md.

While it runs, each step is judged as it completes on the live progress lines (exact
counts, per-interval p95), as the closed-loop capacity's steps are
(``harness.commands.capacity``): the first step not carried (a live budget breaks, or fewer
than 95 % of its arrivals complete) stops the run, since no higher rate can change the
answer; Locust gets one SIGINT and writes its outputs. Each step is judged through the
same function live and from the exact histograms (``_rate_step``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.commands.capacity import (
    LIVE_METRICS,
    PROFILE,
    SCENARIO_DEFAULTS,
    live_stats,
    step_budgets,
    step_result,
)
from harness.config import load_budgets
from harness.core import arrivals, catalogue
from harness.core.capacity import StepWindow
from harness.core.evaluate import evaluate
from harness.core.hosts import check_host
from harness.core.model import Budgets, RequestStats, request_key
from harness.errors import EXIT_BUDGET_BROKEN, EXIT_OK, EXIT_UNJUDGEABLE, ConfigError, TargetError
from harness.lifecycle import LocustOptions, RunSpec, execute
from harness.preflight import preflight_checks
from harness.profiles import DEFAULT_LOCUSTFILE
from harness.recording import (
    Recording,
    combine_stats,
    generator_unreliable_reasons,
    load_recording,
)
from harness.report.arrival_capacity import ArrivalCounts, build_arrival_capacity_context
from harness.report.arrival_capacity_render import write_arrival_capacity_reports
from harness.runfolder import (
    HDR_FILE,
    LOG_FILE,
    LiveLine,
    bugs_reported_in,
    new_run_id,
    write_atomic,
)

INITIATE_KEY = request_key(*catalogue.INITIATE)
# The same requests from the actual send (the second latency of the open model).
SERVICE_INITIATE_KEY = request_key("FLOW", arrivals.SERVICE_PREFIX + INITIATE_KEY)
INTERVAL_S = 1.0
MIN_STEP_TIME_S = 3.0
TAIL_S = 2.0  # after the last stage: no arrivals, the journeys in flight finish
# Closed-loop users beside the arrivals: the webhook senders (PhonePe) and one health prober.
USERS = 6


@dataclass(frozen=True)
class ArrivalCapacityResult:
    run_dir: Path
    answer: arrivals.RateCapacity
    reasons: tuple[str, ...]  # why the generator cannot be trusted
    stopped_after: arrivals.RateStep | None = None  # the live step that stopped the run
    reports: tuple[Path, ...] = ()  # capacity.html, capacity.md

    @property
    def lines(self) -> tuple[str, ...]:
        rows = [
            f"{'arrivals/s':>10}  {'completed/s':>11}  {'p95 initiate':>12}  step",
        ]
        for s in self.answer.steps:
            p95 = "-" if s.p95_ms is None else f"{s.p95_ms:,.0f} ms"
            rows.append(f"{s.offered_per_s:>10g}  {s.served_per_s:>11.1f}  {p95:>12}  {s.verdict}")
        return (
            *rows,
            "",
            *(
                (
                    f"stopped after {self.stopped_after.offered_per_s:g}/s: not carried, no "
                    "higher rate can change the answer",
                )
                if self.stopped_after is not None
                else ()
            ),
            self.answer.sentence,
            *(f"UNRELIABLE: {r}" for r in self.reasons),
            *(
                (f"capacity report: {', '.join(str(p) for p in self.reports)}",)
                if self.reports
                else ()
            ),
            f"run folder: {self.run_dir}",
        )

    @property
    def exit_code(self) -> int:
        if self.reasons:
            return EXIT_UNJUDGEABLE
        return EXIT_OK if self.answer.capacity_per_s is not None else EXIT_BUDGET_BROKEN


def arrival_capacity(
    *,
    host: str | None,
    budgets_path: Path,
    rate_steps: str,
    step_time_s: float,
    out: Path,
    target_config: Path | None = None,
    target_overrides: Mapping[str, Any] | None = None,
    allow_hosts: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> ArrivalCapacityResult:
    say = progress or (lambda _line: None)
    try:
        rates = arrivals.parse_rate_steps(rate_steps)
    except arrivals.ArrivalError as exc:
        raise ConfigError(str(exc)) from None
    if step_time_s < MIN_STEP_TIME_S:
        raise ConfigError(f"--step-time {step_time_s:g}s: at least {MIN_STEP_TIME_S:g}s")
    budgets = load_budgets(budgets_path, profile=None, known_keys=catalogue.REQUEST_KEYS)
    if host:
        check_host(host, budgets.allowed_hosts, allow_hosts)
    stages = ",".join(f"{step_time_s:g}s:{r:g}/s" for r in rates)
    knobs = dict(SCENARIO_DEFAULTS)
    extra_args = ["--arrival-stages", stages, "--paybench-interval", f"{INTERVAL_S:g}"]
    for name, value in sorted(knobs.items()):
        extra_args += [f"--{name}", value]
    checks, timeout_s = preflight_checks(budgets, builtin=True)
    # Locust's run time starts before the arrivals do: a tail gives the last step its length.
    run_time_s = len(rates) * step_time_s + TAIL_S
    spec = RunSpec(
        kind="capacity",
        run_id=new_run_id(),
        out=out,
        budgets_path=budgets_path,
        locustfile=DEFAULT_LOCUSTFILE,
        profile=PROFILE,
        users=USERS,
        spawn_rate=float(USERS),
        run_time_s=run_time_s,
        scenario_version=catalogue.SCENARIO_VERSION,
        locust=LocustOptions(
            users=USERS,
            spawn_rate=float(USERS),
            run_time_s=run_time_s,
            extra_args=tuple(extra_args),
            allow_hosts=(*budgets.allowed_hosts, *allow_hosts),
        ),
        host=host,
        target_config=target_config,
        target_overrides=dict(target_overrides or {}),
        extra={
            "capacity": {
                "arrival_rate_steps": list(rates),
                "step_time_s": step_time_s,
                "scenario_options": knobs,
            }
        },
        preflight_checks=checks,
        preflight_timeout_s=timeout_s,
    )
    say(f"capacity run {spec.run_id}: {len(rates)} arrival rates of {step_time_s:g} s: {stages}")
    settle_s = min(2.0, step_time_s / 3)
    monitor = _RateMonitor(rates, step_time_s, settle_s, budgets, say)
    finished = execute(spec, monitor)
    with bugs_reported_in(finished.run_dir):
        if not finished.has_recording:
            raise finished.no_recording_error()
        rec = load_recording(finished.run_dir / HDR_FILE)
        origin = rec.test_start_epoch
        if origin is None:
            raise TargetError(
                f"{finished.run_dir / HDR_FILE}: the run never started; see "
                f"{finished.run_dir / LOG_FILE}"
            )
        judged = step_budgets(budgets)
        steps, service_p95 = [], []
        for i, rate in enumerate(rates):
            # The interval the stop falls in is cut short (its journeys were stopped).
            stop = (rec.test_stop_epoch or origin) - INTERVAL_S
            w = _window(origin, i, step_time_s, settle_s, stop)
            if w.end_epoch - w.start_epoch < INTERVAL_S:
                break  # the run stopped before this step's steady part
            requests = rec.request_stats(w.start_epoch, w.end_epoch)
            total = rec.aggregate(w.start_epoch, w.end_epoch)
            steps.append(_rate_step(rate, finished.run_dir.name, w, requests, total, judged))
            service = next((r for r in requests if r.key == SERVICE_INITIATE_KEY), None)
            service_p95.append(service.percentile_ms(95) if service else None)
        answer = arrivals.rate_capacity(tuple(steps))
        reasons = generator_unreliable_reasons(rec, origin, rec.test_stop_epoch)
        stopped = monitor.stopped_after if finished.outcome.stopped else None
        ctx = build_arrival_capacity_context(
            answer,
            service_p95_ms=service_p95,
            counts=_arrival_counts(rec),
            stopped_after=stopped,
            reasons=reasons,
            facts=(
                ("run", finished.run_dir.name),
                ("arrival rates", ", ".join(f"{r:g}/s" for r in rates)),
                ("step time", f"{step_time_s:g} s, the first {settle_s:g} s of each left out"),
                ("budgets", str(budgets_path)),
                ("target", host or "the reference target on loopback"),
            ),
        )
        reports = write_arrival_capacity_reports(finished.run_dir, ctx)
        result_ = ArrivalCapacityResult(finished.run_dir, answer, tuple(reasons), stopped, reports)
        # Through the one atomic write: a full disk is one line (exit 3), never a traceback.
        write_atomic(finished.run_dir / "arrival_capacity.txt", "\n".join(result_.lines) + "\n")
        say(answer.sentence)
        return result_


def _arrival_counts(rec: Recording) -> ArrivalCounts | None:
    """The run's intended, dropped and late arrivals (whole-run rows beside the paced users')."""
    rows = {c.user_class: c for c in rec.paced.user_classes}
    dropped, late = rows.get(arrivals.DROPPED_CLASS), rows.get(arrivals.LATE_CLASS)
    if dropped is None or late is None:
        return None
    intended = round(dropped.intended_iterations)
    return ArrivalCounts(
        intended=intended,
        dropped=intended - dropped.achieved_iterations,
        late=round(late.intended_iterations) - late.achieved_iterations,
    )


def _window(
    origin: float, index: int, step_time_s: float, settle_s: float, stop_epoch: float | None
) -> StepWindow:
    """Step ``index``'s steady part: ``settle_s`` after its start to its end (or the stop)."""
    planned = origin + index * step_time_s
    end = planned + step_time_s if stop_epoch is None else min(planned + step_time_s, stop_epoch)
    return StepWindow(index, USERS, planned, planned + settle_s, end)


def _rate_step(
    rate: float,
    run_id: str,
    w: StepWindow,
    requests: Sequence[RequestStats],
    total: RequestStats,
    judged: Budgets,
) -> arrivals.RateStep:
    """One held rate judged: completed initiates per second over whole intervals, budgets."""
    initiate = next((r for r in requests if r.key == INITIATE_KEY), None)
    intervals = len(initiate.interval_histograms) if initiate else 0
    if initiate is not None and not intervals:  # live figures: whole intervals, no histograms
        intervals = round(initiate.duration_s / INTERVAL_S)
    served = initiate.count / (intervals * INTERVAL_S) if initiate and intervals else 0.0
    broken = evaluate(step_result(run_id, w, requests, total), judged).broken
    return arrivals.RateStep(
        offered_per_s=rate,
        served_per_s=served,
        p95_ms=initiate.percentile_ms(95) if initiate else None,
        budgets_hold=not broken,
        broken=(f"{broken[0].request_key} {broken[0].budget.metric}" if broken else ""),
    )


class _RateMonitor:
    """Judges each arrival rate as its steady part completes, from the live progress lines
    (``per_request.<key>.last`` of each interval: exact counts, the p95 a count-weighted mean
    of the intervals'); the first step not carried stops the run. The last step never stops
    it: there is nothing left to skip."""

    def __init__(
        self,
        rates: Sequence[float],
        step_time_s: float,
        settle_s: float,
        budgets: Budgets,
        say: Callable[[str], None],
    ) -> None:
        self.rates = tuple(rates)
        self.step_time_s = step_time_s
        self.settle_s = settle_s
        judged = step_budgets(budgets)
        kept = tuple(b for b in judged.budgets if b.metric in LIVE_METRICS)
        self.budgets = dataclasses.replace(judged, budgets=kept, regressions=())
        self.say = say
        self.origin: float | None = None
        self.intervals: dict[int, dict[str, dict[str, Any]]] = {}
        self.steps: list[arrivals.RateStep] = []
        self.stopped_after: arrivals.RateStep | None = None

    def feed(self, line: LiveLine) -> bool:
        if line.epoch is None:
            return self.stopped_after is not None
        if self.origin is None:
            self.origin = line.epoch - line.elapsed_s
        if line.interval_index is not None:
            self.intervals[line.interval_index] = {
                key: dict(figures.get("last") or {}) for key, figures in line.per_request.items()
            }
        while self.stopped_after is None and len(self.steps) < len(self.rates) - 1:
            i = len(self.steps)
            w = _window(self.origin, i, self.step_time_s, self.settle_s, None)
            first = math.ceil(w.start_epoch / INTERVAL_S - 1e-6)
            last = math.floor(w.end_epoch / INTERVAL_S + 1e-6) - 1
            if line.epoch < w.end_epoch or last not in self.intervals or last < first:
                break  # this step is still running or its last interval is not in yet
            step = self._live_step(i, w, first, last)
            self.steps.append(step)
            self.say(
                f"step {i + 1}/{len(self.rates)}: {step.offered_per_s:g} arrivals/s | "
                f"{step.served_per_s:.1f} completed/s | {step.verdict}"
            )
            if not step.carried:
                self.stopped_after = step
                self.say(f"stopping: {step.offered_per_s:g}/s is not carried")
        return self.stopped_after is not None

    def facts(self, stopped: bool) -> Mapping[str, Any]:
        """run.json's record of the stop, when it was this monitor's."""
        if stopped and self.stopped_after is not None:
            return {"stop": dataclasses.asdict(self.stopped_after)}
        return {}

    def _live_step(self, i: int, w: StepWindow, first: int, last: int) -> arrivals.RateStep:
        duration = (last - first + 1) * INTERVAL_S
        merged: dict[str, list[dict[str, Any]]] = {}
        for index in range(first, last + 1):
            for key, figures in self.intervals.get(index, {}).items():
                merged.setdefault(key, []).append(figures)
        requests = [live_stats(key, parts, duration) for key, parts in sorted(merged.items())]
        requests = [r for r in requests if r.count]
        total = combine_stats(
            [r for r in requests if r.request_type != "FLOW"], duration, source="locust"
        )
        aligned = dataclasses.replace(
            w, start_epoch=first * INTERVAL_S, end_epoch=(last + 1) * INTERVAL_S
        )
        return _rate_step(self.rates[i], "live", aligned, requests, total, self.budgets)
