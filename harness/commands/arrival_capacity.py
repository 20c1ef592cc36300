"""``paybench capacity --arrival-rate-steps 10/s,20/s,30/s``: capacity in the open model.

One run with ``--arrival-stages`` (each rate held ``--step-time``), through the same
lifecycle as every run; then, per step, from the exact histograms: the checkouts/s that
completed over the step's steady part (its first ``settle`` seconds left out) and the
budgets judged on it. The answer (``harness.core.arrivals.rate_capacity``): the highest rate
carried (budgets hold and at least 95 % of the arrivals complete, every step from the
first), and the most checkouts/s completed in any step, the saturation. docs/capacity.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.commands.capacity import PROFILE, SCENARIO_DEFAULTS, step_budgets
from harness.config import load_budgets
from harness.core import arrivals, catalogue
from harness.core.evaluate import evaluate
from harness.core.hosts import check_host
from harness.core.model import RunMeta, RunResult, request_key
from harness.errors import EXIT_BUDGET_BROKEN, EXIT_OK, EXIT_UNJUDGEABLE, ConfigError, TargetError
from harness.lifecycle import LocustOptions, RunSpec, execute
from harness.preflight import preflight_checks
from harness.profiles import DEFAULT_LOCUSTFILE
from harness.recording import generator_unreliable_reasons, load_recording
from harness.runfolder import HDR_FILE, LOG_FILE, bugs_reported_in, new_run_id

INITIATE_KEY = request_key(*catalogue.INITIATE)
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

    @property
    def lines(self) -> tuple[str, ...]:
        rows = [
            f"{'arrivals/s':>10}  {'completed/s':>11}  {'p95 initiate':>12}  step",
        ]
        for s in self.answer.steps:
            p95 = "-" if s.p95_ms is None else f"{s.p95_ms:,.0f} ms"
            verdict = "carried" if s.carried else ("budget broken" if s.broken else "saturated")
            rows.append(f"{s.offered_per_s:>10g}  {s.served_per_s:>11.1f}  {p95:>12}  {verdict}")
        return (
            *rows,
            "",
            self.answer.sentence,
            *(f"UNRELIABLE: {r}" for r in self.reasons),
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
    finished = execute(spec, None)
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
        settle_s = min(2.0, step_time_s / 3)
        steps = []
        for i, rate in enumerate(rates):
            start = origin + i * step_time_s + settle_s
            # The interval the stop falls in is cut short (its journeys were stopped).
            end = min(origin + (i + 1) * step_time_s, (rec.test_stop_epoch or start) - INTERVAL_S)
            if end - start < INTERVAL_S:
                break  # the run stopped before this step's steady part
            requests = rec.request_stats(start, end)
            initiate = next((r for r in requests if r.key == INITIATE_KEY), None)
            intervals = len(initiate.interval_histograms) if initiate else 0
            served = initiate.count / (intervals * rec.interval_s) if initiate and intervals else 0
            meta = RunMeta(
                run_id=finished.run_dir.name, profile=PROFILE, host="", target="unknown",
                paybench_version=__version__,
            )  # fmt: skip
            result = RunResult(
                meta=meta,
                requests=tuple(requests),
                total=rec.aggregate(start, end),
                steady_end_s=end - start,
            )
            verdict = evaluate(result, judged)
            broken = verdict.broken
            steps.append(
                arrivals.RateStep(
                    offered_per_s=rate,
                    served_per_s=served,
                    p95_ms=initiate.percentile_ms(95) if initiate else None,
                    budgets_hold=not broken,
                    broken=(f"{broken[0].request_key} {broken[0].budget.metric}" if broken else ""),
                )
            )
        answer = arrivals.rate_capacity(tuple(steps))
        reasons = generator_unreliable_reasons(rec, origin, rec.test_stop_epoch)
        result_ = ArrivalCapacityResult(finished.run_dir, answer, tuple(reasons))
        (finished.run_dir / "arrival_capacity.txt").write_text(
            "\n".join(result_.lines) + "\n", encoding="utf-8"
        )
        say(answer.sentence)
        return result_
