"""The data flow of ``paybench run`` and ``paybench check``: one path for every run.

Each step is a call into a module that does one thing; this module only orders them,
keeps the run folder consistent, and turns what happened into a verdict and an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from harness import __version__
from harness.config import load_budgets
from harness.core import catalogue
from harness.core.budgets import selector_matches
from harness.core.evaluate import evaluate, exit_code
from harness.core.hosts import check_host
from harness.core.model import (
    Baseline,
    Budgets,
    RunResult,
    Verdict,
    is_percentile_metric,
    percentile_of,
)
from harness.errors import EXIT_INTERRUPTED, ConfigError, FormatError, TargetError
from harness.locust_run import (
    LocustPlan,
    Progress,
    create_run_dir,
    finish_run_json,
    log_tail,
    new_run_id,
    run_locust,
    write_run_json,
)
from harness.profiles import DEFAULT_LOCUSTFILE, PROJECT_ROOT, available_profiles, load_profile
from harness.results import read_meta, read_run
from harness.summary import write_summary

HEALTH_PATHS = (
    "/api/health",
    "/api/health/database",
    "/api/health/redis",
    "/api/payments/v2/health",
)
PREFLIGHT_TIMEOUT_S = 10.0
BUDGETS_SNAPSHOT = "budgets.yaml"
# How long users may finish their current task after the run time (Locust's --stop-timeout).
STOP_TIMEOUT_S = 10.0
BASELINE_FILE = "baseline.json"


@dataclass(frozen=True)
class RunOutcome:
    run_dir: Path
    result: RunResult
    verdict: Verdict
    exit_code: int
    report_paths: tuple[Path, ...]
    history_note: str | None = None


def preflight(base_url: str, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """The health endpoints answer and say healthy, else TargetError (exit 3) within timeout_s."""
    per_request = httpx.Timeout(timeout_s / len(HEALTH_PATHS))
    problems: list[str] = []
    with httpx.Client(base_url=base_url, timeout=per_request, trust_env=False) as client:
        for path in HEALTH_PATHS:
            try:
                r = client.get(path)
            except httpx.HTTPError as e:
                reason = type(e).__name__ if not str(e) else str(e)
                raise TargetError(
                    f"preflight: {base_url}{path} did not answer ({reason}); "
                    "is the target running and the --host right?"
                ) from None
            if r.status_code != 200:
                problems.append(f"{path} answered {r.status_code}: {r.text[:120]!r}")
                continue
            try:
                body = r.json()
            except ValueError:
                problems.append(f"{path} answered 200 but not JSON")
                continue
            status = body.get("status") if isinstance(body, dict) else None
            if status not in ("healthy", "ok", "up"):
                problems.append(f"{path} says status={status!r}")
    if problems:
        raise TargetError(f"preflight: {base_url} is unhealthy: {'; '.join(problems)}")


def git_commit(cwd: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def locust_version() -> str | None:
    try:
        return metadata.version("locust")
    except metadata.PackageNotFoundError:
        return None


def live_line(p: Progress, budgets: Budgets, run_time_s: float | None) -> str:
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


@contextlib.contextmanager
def target_url(
    host: str | None, target_config: Path | None, overrides: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    """The base URL to load and its kind: ``host`` itself, or a reference target started
    on loopback for the duration (and stopped after, whatever happens)."""
    if host:
        yield host.rstrip("/"), "external"
        return
    from harness.target.process import ReferenceTarget

    with ReferenceTarget(config=target_config, overrides=dict(overrides)) as target:
        yield target.url, "reference"


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

    run_id = new_run_id()
    run_dir = create_run_dir(out, run_id)
    plan_users = users if users is not None or prof is None else prof.users
    plan_rate = spawn_rate if spawn_rate is not None or prof is None else prof.spawn_rate
    plan_time = run_time_s if run_time_s is not None or prof is None else prof.run_time_s
    meta: dict[str, Any] = {
        "run_id": run_id,
        "profile": profile,
        "users": plan_users,
        "spawn_rate": plan_rate,
        "run_time_s": plan_time,
        "workers": workers,
        "locust_version": locust_version(),
        "paybench_version": __version__,
        "git_commit": git_commit(Path.cwd()) or git_commit(PROJECT_ROOT),
        "scenario_version": catalogue.SCENARIO_VERSION if known is not None else None,
        "locustfile": str(locustfile),
        "budgets": str(budgets_path),
    }
    with target_url(host, target_config, target_overrides or {}) as (url, kind):
        meta.update(host=url, target=kind)
        if kind == "reference":
            meta["extra"] = {
                "target_overrides": dict(target_overrides or {}),
                "target_config": str(target_config) if target_config else None,
            }
        write_run_json(run_dir, {**meta, "status": "preflight"})
        # The run folder keeps the budgets it was judged against, for `paybench report`.
        (run_dir / BUDGETS_SNAPSHOT).write_bytes(budgets_path.read_bytes())
        try:
            preflight(url)
        except TargetError:
            write_run_json(run_dir, {**meta, "status": "preflight failed"})
            raise
        plan = LocustPlan(
            locustfile=locustfile,
            host=url,
            run_dir=run_dir,
            config=prof.path if prof else None,
            users=users,
            spawn_rate=spawn_rate,
            run_time_s=run_time_s,
            workers=workers,
            stop_timeout_s=None if prof and "stop-timeout" in prof.settings else STOP_TIMEOUT_S,
        )
        write_run_json(run_dir, {**meta, "status": "running"})
        outcome = run_locust(
            plan,
            on_progress=(lambda p: on_progress(live_line(p, budgets, plan_time)))
            if on_progress
            else None,
        )
    incomplete_reason = None
    if outcome.interrupted:
        incomplete_reason = "interrupted (Ctrl-C); what was measured until then is kept"
    elif outcome.timed_out:
        incomplete_reason = "Locust did not stop within a minute of its run time; it was stopped"
    elif outcome.returncode not in (0, None):
        incomplete_reason = f"Locust exited with code {outcome.returncode}"
    finish_run_json(run_dir, meta, outcome, incomplete_reason)
    if (
        incomplete_reason
        and not outcome.interrupted
        and not (run_dir / "paybench.hdr.json").exists()
    ):
        tail = " | ".join(log_tail(run_dir, 3))
        raise TargetError(f"{incomplete_reason}; see {run_dir / 'locust.log'}: {tail}")
    return judge(run_dir, budgets, history=history, interrupted=outcome.interrupted)


def judge(
    run_dir: Path,
    budgets: Budgets,
    *,
    history: bool = True,
    interrupted: bool = False,
    history_path: Path | None = None,
) -> RunOutcome:
    """Read a run folder, judge it, write summary, reports and history; the exit code."""
    result = read_run(run_dir, warmup_s=budgets.warmup_s)
    store = None
    baseline = None
    if history:
        from harness.store import HistoryStore

        store = HistoryStore(history_path or run_dir.parent.parent / "history.sqlite")
        if budgets.regressions:
            baseline = store.baseline_for(result, n=budgets.baseline_runs)
    if baseline is not None:
        _write_baseline(run_dir, baseline)
    verdict = evaluate(result, budgets, baseline)
    code = EXIT_INTERRUPTED if interrupted else exit_code(verdict)
    write_summary(run_dir, result, verdict, code)
    from harness.report import write_reports

    files = write_reports(run_dir, result, verdict, budgets)
    note = None
    if store is not None and not result.incomplete:
        added = store.add_run(result, verdict)
        note = f"recorded in {store.path}" if added else f"already in {store.path}"
    return RunOutcome(
        run_dir=run_dir,
        result=result,
        verdict=verdict,
        exit_code=code,
        report_paths=(run_dir / "summary.json", files.html, files.markdown, files.junit),
        history_note=note,
    )


def check(*, run_dir: Path, budgets_path: Path, profile: str | None = None) -> RunOutcome:
    """Judge an existing run folder again (one of ours, or a plain ``locust --csv`` folder)."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    # Names are not checked against the run: a budgeted name that never ran is "no samples".
    budgets = load_budgets(budgets_path, profile=profile or read_meta(run_dir).profile)
    return judge(run_dir, budgets, history=False)


def _write_baseline(run_dir: Path, baseline: Baseline) -> None:
    data = {
        "description": baseline.description,
        "run_ids": list(baseline.run_ids),
        "values": {k: {m: list(v) for m, v in ms.items()} for k, ms in baseline.values.items()},
    }
    (run_dir / BASELINE_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _read_baseline(run_dir: Path) -> Baseline | None:
    path = run_dir / BASELINE_FILE
    if not path.exists():
        return None
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        return Baseline(
            description=str(d["description"]),
            run_ids=tuple(d["run_ids"]),
            values={k: {m: tuple(v) for m, v in ms.items()} for k, ms in d["values"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise FormatError(f"{path}: unreadable ({e}); the run folder is damaged") from None


def rerender(*, run_dir: Path, budgets_path: Path | None = None) -> RunOutcome:
    """Write report.html, summary.md and junit.xml of a run folder again (nothing else).

    The run is judged as it was: against the budgets snapshot in its folder (unless another
    file is given) and the baseline it was compared with.
    """
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    path = budgets_path or run_dir / BUDGETS_SNAPSHOT
    if not path.exists():
        raise ConfigError(
            f"{run_dir}: no copy of the budgets in the run folder (not written by "
            "`paybench run`); pass --budgets FILE"
        )
    budgets = load_budgets(path, profile=read_meta(run_dir).profile)
    if budgets_path is None:
        # The copy stands for the file the run named: the reports say the same as before.
        run_json = run_dir / "run.json"
        named = json.loads(run_json.read_text(encoding="utf-8")).get("budgets")
        if named:
            budgets = dataclasses.replace(budgets, source=str(named))
    result = read_run(run_dir, warmup_s=budgets.warmup_s)
    verdict = evaluate(result, budgets, _read_baseline(run_dir))
    from harness.report import write_reports

    files = write_reports(run_dir, result, verdict, budgets)
    return RunOutcome(
        run_dir=run_dir,
        result=result,
        verdict=verdict,
        exit_code=exit_code(verdict),
        report_paths=(files.html, files.markdown, files.junit),
    )
