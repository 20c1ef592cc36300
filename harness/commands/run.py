"""``paybench run``: a load profile through the run lifecycle, judged, reported, recorded.

1. Validate: the locustfile, budgets.yaml (names checked against our scenarios'), the
   profile, the options; refuse a host that may not be loaded (exit 2, nothing written).
2. ``harness.lifecycle.execute``: run folder, run.json, target, preflight, Locust with
   live progress and the profile's abort rules, run.json finished.
3. ``harness.commands.check.judge``: read the folder, judge, write summary.json and the
   reports, record the run in ``<out>/history.sqlite``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.commands.check import RunOutcome, judge
from harness.config import load_budgets
from harness.core import arrivals, catalogue
from harness.core.budgets import selector_matches
from harness.core.hosts import check_host
from harness.core.model import Budgets, is_percentile_metric, percentile_of
from harness.distributed import worker_lines
from harness.errors import ConfigError
from harness.lifecycle import AbortPlan, LocustOptions, RunSpec, execute
from harness.locust_run import MasterPlan, parse_address
from harness.preflight import preflight_checks
from harness.profiles import DEFAULT_LOCUSTFILE, available_profiles, load_profile
from harness.runfolder import LiveLine, bugs_reported_in, new_run_id
from harness.server.scraper import interval_for, scraping_hook

# How long users may finish their current task after the run time (Locust's --stop-timeout).
STOP_TIMEOUT_S = 10.0
HISTORY_FILE = "history.sqlite"  # <out>/history.sqlite
# `paybench run --master`: where it listens and how long it waits for its workers.
DEFAULT_MASTER_PORT = 5557  # Locust's
DEFAULT_MASTER_BIND = f"127.0.0.1:{DEFAULT_MASTER_PORT}"
DEFAULT_EXPECT_WORKERS_TIMEOUT_S = 120.0


def run(
    *,
    profile: str | None = None,
    host: str | None = None,
    budgets_path: Path,
    users: int | None = None,
    spawn_rate: float | None = None,
    run_time_s: float | None = None,
    workers: int = 0,
    out: Path,
    allow_hosts: Sequence[str] = (),
    locustfile: Path | None = None,
    target_config: Path | None = None,
    target_overrides: Mapping[str, Any] | None = None,
    target_database_url: str | None = None,
    target_redis_url: str | None = None,
    history: bool = True,
    on_progress: Callable[[str], None] | None = None,
    master: bool = False,
    expect_workers: int | None = None,
    expect_workers_timeout_s: float | None = None,
    master_bind: str | None = None,
    arrival_rate: str | None = None,
    arrival_stages: str | None = None,
    max_in_flight: str | None = None,
) -> RunOutcome:
    """Run a load profile, judge it against the budgets, write the reports (module doc)."""
    master_plan = _master_plan(
        master, workers, expect_workers, expect_workers_timeout_s, master_bind
    )
    if host and (target_config or target_overrides or target_database_url or target_redis_url):
        raise ConfigError(
            "--target-config/--target-slowdown/--target-error-rate/--target-set/"
            "--target-database-url/--target-redis-url apply to the built-in target only; "
            "drop them or drop --host"
        )
    locustfile = locustfile or DEFAULT_LOCUSTFILE
    if not locustfile.is_file():
        raise ConfigError(f"locustfile {locustfile} does not exist; check --locustfile")
    # Our own scenarios' names are known before the run: a budget glob that matches none is a typo.
    known = catalogue.REQUEST_KEYS if locustfile.resolve() == DEFAULT_LOCUSTFILE else None
    # Our profiles set our scenarios' options: with another locustfile, none unless asked.
    if profile is None and known is not None:
        profile = "smoke"
    budgets = load_budgets(
        budgets_path, profile=profile, known_keys=known, known_profiles=available_profiles()
    )
    prof = load_profile(profile) if profile is not None else None
    if workers < 0:
        raise ConfigError(f"--workers {workers}: must be 0 (one process) or more")
    try:  # open-model arrivals (harness.core.arrivals), checked before anything runs
        arrival_args = arrivals.locust_args(
            arrival_rate, arrival_stages, max_in_flight,
            prof.settings if prof else None, str(prof.path) if prof else "the profile",
        )  # fmt: skip
    except arrivals.ArrivalError as exc:
        raise ConfigError(str(exc)) from None
    if arrival_stages and run_time_s is None:  # the stages' length is the run's
        run_time_s = arrivals.total_duration_s(arrivals.parse_stages(arrival_stages))
    if host:
        check_host(host, budgets.allowed_hosts, allow_hosts)

    plan_time = run_time_s if run_time_s is not None or prof is None else prof.run_time_s
    plan_users = users if users is not None or prof is None else prof.users
    checks, preflight_timeout_s = preflight_checks(budgets, builtin=known is not None)
    spec = RunSpec(
        kind="run",
        run_id=new_run_id(),
        out=out,
        budgets_path=budgets_path,
        locustfile=locustfile,
        profile=profile,
        users=plan_users,
        spawn_rate=spawn_rate if spawn_rate is not None or prof is None else prof.spawn_rate,
        run_time_s=plan_time,
        scenario_version=catalogue.SCENARIO_VERSION if known is not None else None,
        locust=LocustOptions(
            config=prof.path if prof else None,
            users=users,
            spawn_rate=spawn_rate,
            run_time_s=run_time_s,
            workers=workers,
            extra_args=arrival_args,
            stop_timeout_s=None if prof and "stop-timeout" in prof.settings else STOP_TIMEOUT_S,
            allow_hosts=(*budgets.allowed_hosts, *allow_hosts),
            master=master_plan,
        ),
        host=host,
        target_config=target_config,
        target_overrides=dict(target_overrides or {}),
        target_database_url=target_database_url,
        target_redis_url=target_redis_url,
        preflight_checks=checks,
        preflight_timeout_s=preflight_timeout_s,
        abort=_abort_plan(budgets, plan_users, prof.shape if prof else None, plan_time),
        around_load=scraping_hook(
            budgets.server,
            source_file=budgets.source,
            interval_s=interval_for(prof.settings if prof else {}),
        ),
    )
    watcher = _Progress(on_progress, budgets, plan_time) if on_progress else None
    finished = execute(spec, watcher, say=on_progress)
    with bugs_reported_in(finished.run_dir):
        if finished.incomplete_reason and not finished.interrupted and not finished.has_recording:
            raise finished.no_recording_error()
        outcome = judge(
            finished.run_dir,
            budgets,
            history=out / HISTORY_FILE if history else None,
            interrupted=finished.interrupted,
        )
        if master_plan is not None:
            facts = finished.record.extra.get("distributed")
            return MasterRunOutcome(**vars(outcome), worker_lines=tuple(worker_lines(facts)))
        return outcome


@dataclass(frozen=True)
class MasterRunOutcome(RunOutcome):
    """A ``--master`` run: the verdict, then a line per worker (harness.distributed)."""

    worker_lines: tuple[str, ...] = ()

    @property
    def lines(self) -> tuple[str, ...]:
        return (*super().lines, *self.worker_lines)


def _master_plan(
    master: bool,
    workers: int,
    expect_workers: int | None,
    timeout_s: float | None,
    bind: str | None,
) -> MasterPlan | None:
    """``--master`` and its options (docs/distributed.md), checked before anything runs."""
    if not master:
        given = [
            name
            for name, value in (
                ("--expect-workers", expect_workers),
                ("--expect-workers-timeout", timeout_s),
                ("--master-bind", bind),
            )
            if value is not None
        ]
        if given:
            raise ConfigError(f"{'/'.join(given)} apply with --master only; add --master")
        return None
    if workers:
        raise ConfigError(
            f"--master cannot be combined with --workers {workers}: --workers forks workers on "
            "this machine, --master waits for `paybench worker` processes; drop one (a worker "
            "machine uses `paybench worker --processes N`)"
        )
    if expect_workers is not None and expect_workers < 1:
        raise ConfigError(f"--expect-workers {expect_workers}: must be 1 or more")
    if timeout_s is not None and timeout_s <= 0:
        raise ConfigError(f"--expect-workers-timeout {timeout_s:g}: must be positive, e.g. 60s")
    host, port = parse_address(bind or DEFAULT_MASTER_BIND, DEFAULT_MASTER_PORT, "--master-bind")
    return MasterPlan(
        bind_host=host,
        bind_port=port,
        expect_workers=expect_workers or 1,
        expect_workers_timeout_s=timeout_s or DEFAULT_EXPECT_WORKERS_TIMEOUT_S,
    )


def _abort_plan(
    budgets: Budgets, users: int | None, shape: str | None, run_time_s: float | None
) -> AbortPlan | None:
    """The profile's abort rules, judged from the steady state: once the planned users run
    (with a load shape, whose users change by design: once the first runs) plus warm-up."""
    if budgets.abort is None or not budgets.abort.rules:
        return None
    return AbortPlan(
        rules=budgets.abort,
        warmup_s=budgets.warmup_s,
        steady_users=None if shape else users,
        run_time_s=run_time_s,
    )


class _Progress:
    """Turns each progress line into the line the CLI shows while the run goes on."""

    def __init__(
        self, say: Callable[[str], None], budgets: Budgets, run_time_s: float | None
    ) -> None:
        self.say = say
        self.budgets = budgets
        self.run_time_s = run_time_s

    def feed(self, line: LiveLine) -> bool:
        self.say(live_line(line, self.budgets, self.run_time_s))
        return False

    def facts(self, stopped: bool) -> Mapping[str, Any]:
        return {}


def live_line(p: LiveLine, budgets: Budgets, run_time_s: float | None) -> str:
    """One progress line: elapsed/remaining, users, req/s, failures, the worst budget so far."""
    remaining = f" / {run_time_s - p.elapsed_s:4.0f}s left" if run_time_s else ""
    line = (
        f"[{p.elapsed_s:5.0f}s{remaining}] users {p.users:4d} | {p.rps:8.1f} req/s | "
        f"requests {p.requests} | failures {p.failures}"
    )
    worst = worst_budget(p.per_request, budgets)
    return f"{line} | worst: {worst}" if worst else line


def worst_budget(per_request: Mapping[str, Mapping[str, Any]], budgets: Budgets) -> str | None:
    """The budget closest to (or furthest past) its limit on the live, cumulative figures."""
    worst: tuple[float, str] | None = None
    for b in budgets.budgets:
        if b.op not in ("<", "<="):
            continue
        if b.metric == "avg":
            field = "avg_ms"
        elif is_percentile_metric(b.metric) and percentile_of(b.metric) == 95.0:
            field = "p95_ms"
        else:
            continue
        for key, figures in per_request.items():
            if not selector_matches(b.selector, key):
                continue
            value = figures.get(field)
            if value is None or b.limit <= 0:
                continue
            used = float(value) / b.limit
            if worst is None or used > worst[0]:
                worst = (used, f"{key} {b.metric} {float(value):.0f} ms ({used:.0%} of {b.text})")
    return worst[1] if worst else None
