"""``paybench run``: a load profile through the run lifecycle, judged, reported, recorded.

1. Validate: the locustfile, budgets.yaml (names checked against our scenarios'), the
   profile, the options; refuse a host that may not be loaded (exit 2, nothing written).
2. ``harness.lifecycle.execute``: run folder, run.json, target, preflight, Locust with
   live progress, run.json finished.
3. ``harness.commands.check.judge``: read the folder, judge, write summary.json and the
   reports, record the run in ``<out>/history.sqlite``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.commands.check import RunOutcome, judge
from harness.config import load_budgets
from harness.core import catalogue
from harness.core.budgets import selector_matches
from harness.core.hosts import check_host
from harness.core.model import Budgets, is_percentile_metric, percentile_of
from harness.errors import ConfigError
from harness.lifecycle import LocustOptions, RunSpec, execute
from harness.preflight import preflight_checks
from harness.profiles import DEFAULT_LOCUSTFILE, available_profiles, load_profile
from harness.runfolder import LiveLine, bugs_reported_in, new_run_id

# How long users may finish their current task after the run time (Locust's --stop-timeout).
STOP_TIMEOUT_S = 10.0
HISTORY_FILE = "history.sqlite"  # <out>/history.sqlite


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
    history: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> RunOutcome:
    """Run a load profile, judge it against the budgets, write the reports (module doc)."""
    if host and (target_config or target_overrides):
        raise ConfigError(
            "--target-config/--target-slowdown/--target-error-rate/--target-set apply to the "
            "built-in target only; drop them or drop --host"
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
    if host:
        check_host(host, budgets.allowed_hosts, allow_hosts)

    plan_time = run_time_s if run_time_s is not None or prof is None else prof.run_time_s
    checks, preflight_timeout_s = preflight_checks(budgets, builtin=known is not None)
    spec = RunSpec(
        kind="run",
        run_id=new_run_id(),
        out=out,
        budgets_path=budgets_path,
        locustfile=locustfile,
        profile=profile,
        users=users if users is not None or prof is None else prof.users,
        spawn_rate=spawn_rate if spawn_rate is not None or prof is None else prof.spawn_rate,
        run_time_s=plan_time,
        scenario_version=catalogue.SCENARIO_VERSION if known is not None else None,
        locust=LocustOptions(
            config=prof.path if prof else None,
            users=users,
            spawn_rate=spawn_rate,
            run_time_s=run_time_s,
            workers=workers,
            stop_timeout_s=None if prof and "stop-timeout" in prof.settings else STOP_TIMEOUT_S,
            allow_hosts=(*budgets.allowed_hosts, *allow_hosts),
        ),
        host=host,
        target_config=target_config,
        target_overrides=dict(target_overrides or {}),
        preflight_checks=checks,
        preflight_timeout_s=preflight_timeout_s,
    )
    watcher = _Progress(on_progress, budgets, plan_time) if on_progress else None
    finished = execute(spec, watcher)
    with bugs_reported_in(finished.run_dir):
        if finished.incomplete_reason and not finished.interrupted and not finished.has_recording:
            raise finished.no_recording_error()
        return judge(
            finished.run_dir,
            budgets,
            history=out / HISTORY_FILE if history else None,
            interrupted=finished.interrupted,
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
