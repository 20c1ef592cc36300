"""The life of a run, the same for ``paybench run`` and ``paybench capacity``.

``execute(spec)`` puts the steps in order and keeps run.json true at each of them:

1. create the run folder, copy the budgets file into it, write run.json (``starting``);
2. start the reference target on loopback, unless the spec names a host (``preflight``);
3. preflight (``harness.preflight``): the target answers what the scenarios need,
   else TargetError (exit 3);
4. start Locust (``running``) and feed every progress line of ``paybench.live.jsonl`` to
   the spec's watcher and to its abort rules (``harness.core.abort``), either of which may
   stop the run; stop Locust at its deadline;
5. finish run.json: ``finished``, or ``incomplete`` with the reason (interrupted, stopped
   at the deadline, Locust's exit code), or ``failed`` with the error that ended it.

What a command does with the finished run (judge it, cut it into steps) is the command's.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, TypeGuard

from harness import __version__
from harness.core.abort import (
    ABORT_EXTRA,
    AbortRules,
    AbortWatch,
    IntervalFigures,
    KeyFigures,
    unwatched,
)
from harness.core.model import PreflightCheck
from harness.errors import ConfigError, PaybenchError, TargetError
from harness.locust_run import LocustOutcome, LocustPlan, MasterPlan, log_tail, run_locust
from harness.preflight import PAYMENTS_CHECKS, PREFLIGHT_TIMEOUT_S, preflight
from harness.profiles import PROJECT_ROOT
from harness.runfolder import (
    BUDGETS_SNAPSHOT,
    HDR_FILE,
    LOG_FILE,
    LiveLine,
    RunKind,
    RunRecord,
    RunTarget,
    bugs_reported_in,
    create_run_dir,
    write_atomic,
    write_run_record,
)

# After the planned run time, how long Locust may take to stop before we stop it ourselves.
STOP_GRACE_S = 60.0


class Watcher(Protocol):
    """Follows a run through its progress lines."""

    def feed(self, line: LiveLine) -> bool:
        """One new progress line; True stops the run now."""
        ...

    def facts(self, stopped: bool) -> Mapping[str, Any]:
        """What to add to run.json's ``extra`` once the run has ended (``stopped``: by
        this watcher's word)."""
        ...


@dataclass(frozen=True)
class LocustOptions:
    """What Locust is told beyond the locustfile, host and run folder (None: its config's)."""

    config: Path | None = None  # a profile's Locust config file
    users: int | None = None
    spawn_rate: float | None = None
    run_time_s: float | None = None
    workers: int = 0
    stop_timeout_s: float | None = None
    extra_args: tuple[str, ...] = ()
    allow_hosts: tuple[str, ...] = ()  # the run's allow-list, enforced inside Locust
    master: MasterPlan | None = None  # a master for `paybench worker`s (harness.distributed)


@dataclass(frozen=True)
class AbortPlan:
    """The abort rules that watch a run (budgets.yaml ``abort:``) and when its steady
    state begins: once ``steady_users`` run (the plan's users; None, for a load shape or
    no plan: the first user), plus ``warmup_s``."""

    rules: AbortRules
    warmup_s: float = 0.0
    steady_users: int | None = None
    # The planned run time: an interval ending later is the stop's, never judged (a run
    # that ran its time was not aborted by what its last lines say). None: no limit.
    run_time_s: float | None = None


@dataclass(frozen=True)
class RunSpec:
    """A run as planned: recorded in run.json before anything starts."""

    kind: RunKind
    run_id: str
    out: Path
    budgets_path: Path
    locustfile: Path
    profile: str | None
    users: int | None  # the plan's, profile defaults included
    spawn_rate: float | None
    run_time_s: float | None
    scenario_version: str | None
    locust: LocustOptions = LocustOptions()
    host: str | None = None  # None: the reference target on loopback
    target_config: Path | None = None
    target_overrides: Mapping[str, Any] = field(default_factory=dict)
    # The built-in target's back ends: a real PostgreSQL and Redis (None: SQLite, in-process).
    target_database_url: str | None = None
    target_redis_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    # What the target must answer before any load (harness.preflight).
    preflight_checks: tuple[PreflightCheck, ...] = PAYMENTS_CHECKS
    preflight_timeout_s: float = PREFLIGHT_TIMEOUT_S
    # Locust is stopped this long after it started; None: the run time plus STOP_GRACE_S.
    deadline_s: float | None = None
    # Entered just before Locust starts, left once it exits: (url, target kind, run folder)
    # -> the server metrics scraper (harness.server.scraper).
    around_load: Callable[[str, str, Path], contextlib.AbstractContextManager[Any]] | None = None
    abort: AbortPlan | None = None  # None: no abort rule watches the run

    @property
    def deadline(self) -> float | None:
        if self.deadline_s is not None:
            return self.deadline_s
        if self.run_time_s is None:
            return None
        # A master first waits for its workers: that wait is not the run's time.
        master = self.locust.master
        return self.run_time_s + STOP_GRACE_S + (master.expect_workers_timeout_s if master else 0)


@dataclass(frozen=True)
class FinishedRun:
    """A run whose Locust has ended, and its run.json as finished."""

    run_dir: Path
    record: RunRecord
    outcome: LocustOutcome

    @property
    def interrupted(self) -> bool:
        return self.outcome.interrupted

    @property
    def incomplete_reason(self) -> str | None:
        return self.record.incomplete_reason

    @property
    def has_recording(self) -> bool:
        return (self.run_dir / HDR_FILE).exists()

    def no_recording_error(self) -> TargetError:
        """Locust left no exact recording: why, and the end of its log."""
        tail = " | ".join(log_tail(self.run_dir, 3))
        why = self.incomplete_reason or "no measurement"
        return TargetError(
            f"Locust wrote no {HDR_FILE} ({why}); see {self.run_dir / LOG_FILE}: {tail}"
        )


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


@contextlib.contextmanager
def target_url(
    host: str | None,
    target_config: Path | None,
    overrides: Mapping[str, Any],
    database_url: str | None = None,
    redis_url: str | None = None,
) -> Iterator[tuple[str, RunTarget]]:
    """The base URL to load and its kind: ``host`` itself, or a reference target started
    on loopback for the duration (and stopped after, whatever happens)."""
    if host:
        yield host.rstrip("/"), "external"
        return
    from harness.target.process import ReferenceTarget

    with ReferenceTarget(
        config=target_config,
        overrides=dict(overrides),
        database_url=database_url,
        redis_url=redis_url,
    ) as target:
        yield target.url, "reference"


def execute(
    spec: RunSpec,
    watcher: Watcher | None = None,
    *,
    poll_s: float = 0.5,
    say: Callable[[str], None] | None = None,
) -> FinishedRun:
    """Run ``spec`` from an empty run folder to a finished run.json (see the module doc).

    ``say`` gets one line when an abort rule stops the run (the CLI's progress stream).

    Raises what ended the run early (TargetError for the target or Locust, StorageError
    for the disk), after recording it in run.json as far as the disk lets us; an exception
    paybench did not expect becomes an InternalError with its traceback in the run folder.
    """
    run_dir = create_run_dir(spec.out, spec.run_id)
    if spec.abort is not None and spec.abort.rules.rules:
        watcher = _Watchers(watcher, AbortWatcher(spec.abort, say))
    with bugs_reported_in(run_dir):
        record = _planned(spec)
        try:
            try:
                snapshot = spec.budgets_path.read_bytes()
            except OSError as e:
                raise ConfigError(f"{spec.budgets_path}: cannot be read ({e.strerror})") from None
            # The run folder keeps the budgets it was judged against, for `paybench report`.
            write_atomic(run_dir / BUDGETS_SNAPSHOT, snapshot)
            write_run_record(run_dir, record)
            around = contextlib.ExitStack()  # left before the target stops
            with (
                target_url(
                    spec.host,
                    spec.target_config,
                    spec.target_overrides,
                    spec.target_database_url,
                    spec.target_redis_url,
                ) as (url, kind),
                around,
            ):
                record = replace(record, host=url, target=kind, extra=_extra(spec, kind))
                record = _status(run_dir, record, "preflight")
                preflight(url, spec.preflight_checks, spec.preflight_timeout_s)
                if spec.around_load is not None:
                    around.enter_context(spec.around_load(url, kind, run_dir))
                record = _status(run_dir, record, "running")
                outcome = run_locust(
                    _plan(spec, url, run_dir),
                    on_line=watcher.feed if watcher is not None else None,
                    poll_s=poll_s,
                    deadline_s=spec.deadline,
                )
                if spec.locust.master is not None:
                    record = _distributed_facts(run_dir, record)
                    _raise_if_called_off(record)
        except PaybenchError as e:
            _failed(run_dir, record, e.message)
            raise
        except KeyboardInterrupt:
            _failed(run_dir, record, "interrupted (Ctrl-C)")
            raise
        except Exception as e:
            _failed(run_dir, record, f"internal error ({type(e).__name__}); see the traceback")
            raise
        facts = dict(watcher.facts(outcome.stopped)) if watcher is not None else {}
        record = replace(
            record,
            status="incomplete" if (reason := _incomplete_reason(outcome, spec)) else "finished",
            incomplete_reason=reason,
            started_at=outcome.started_at,
            ended_at=outcome.ended_at,
            locust_command=outcome.command,
            locust_exit_code=outcome.returncode,
            extra={**record.extra, **facts},
        )
        write_run_record(run_dir, record)
    return FinishedRun(run_dir=run_dir, record=record, outcome=outcome)


def _planned(spec: RunSpec) -> RunRecord:
    return RunRecord(
        run_id=spec.run_id,
        kind=spec.kind,
        profile=spec.profile,
        users=spec.users,
        spawn_rate=spec.spawn_rate,
        run_time_s=spec.run_time_s,
        workers=spec.locust.workers,
        locust_version=locust_version(),
        paybench_version=__version__,
        git_commit=git_commit(Path.cwd()) or git_commit(PROJECT_ROOT),
        scenario_version=spec.scenario_version,
        locustfile=str(spec.locustfile),
        budgets=str(spec.budgets_path),
        host=spec.host.rstrip("/") if spec.host else "unknown",
        target="external" if spec.host else "reference",
        status="starting",
        extra=dict(spec.extra),
    )


def _extra(spec: RunSpec, kind: str) -> dict[str, Any]:
    extra = dict(spec.extra)
    if kind == "reference":
        from harness.target import DATABASE_URL_ENV, REDIS_URL_ENV
        from harness.target.db import redact

        extra["target_overrides"] = dict(spec.target_overrides)
        extra["target_config"] = str(spec.target_config) if spec.target_config else None
        # Like the overrides, the back ends are part of the system measured: a run on
        # PostgreSQL stays comparable with one on SQLite, and the change shows as one.
        database = spec.target_database_url or os.environ.get(DATABASE_URL_ENV)
        cache = spec.target_redis_url or os.environ.get(REDIS_URL_ENV)
        extra["target_backend"] = {
            "database": redact(database) if database else "sqlite",
            "cache": redact(cache) if cache else "in-process",
        }
    return extra


def _plan(spec: RunSpec, url: str, run_dir: Path) -> LocustPlan:
    o = spec.locust
    return LocustPlan(
        locustfile=spec.locustfile,
        host=url,
        run_dir=run_dir,
        config=o.config,
        users=o.users,
        spawn_rate=o.spawn_rate,
        run_time_s=o.run_time_s,
        workers=o.workers,
        stop_timeout_s=o.stop_timeout_s,
        extra_args=o.extra_args,
        allow_hosts=o.allow_hosts,
        master=o.master,
    )


def _distributed_facts(run_dir: Path, record: RunRecord) -> RunRecord:
    """The master's handshake and totals (harness.distributed) in run.json's extra."""
    from harness.distributed import read_facts

    facts = read_facts(run_dir)
    if facts is None:
        return record
    return replace(record, extra={**record.extra, "distributed": facts})


def _raise_if_called_off(record: RunRecord) -> None:
    """A run the master called off before any request: its error (exit 2 or 3)."""
    from harness.distributed import refusal

    refused = refusal(record.extra.get("distributed"))
    if refused is not None:
        code, message = refused
        raise (ConfigError if code == 2 else TargetError)(message)


def _status(run_dir: Path, record: RunRecord, status: str) -> RunRecord:
    record = replace(record, status=status)
    write_run_record(run_dir, record)
    return record


def _failed(run_dir: Path, record: RunRecord, reason: str) -> None:
    # Best effort: on a full disk this write fails too, and the error that ended the run
    # is the one to report.
    with contextlib.suppress(PaybenchError):
        write_run_record(run_dir, replace(record, status="failed", incomplete_reason=reason))


def _incomplete_reason(outcome: LocustOutcome, spec: RunSpec) -> str | None:
    if outcome.interrupted:
        return "interrupted (Ctrl-C); what was measured until then is kept"
    if outcome.timed_out:
        return (
            f"Locust had not stopped {spec.deadline:g} s after it started (its deadline); "
            "it was stopped"
        )
    if outcome.returncode not in (0, None):
        return f"Locust exited with code {outcome.returncode}"
    return None


# -- abort rules ------------------------------------------------------------------------------


class AbortWatcher:
    """The run's abort rules on its live lines (``harness.core.abort.AbortWatch``): True,
    once one fires, stops the run (one SIGINT: Locust stops its users, counts what is in
    flight as cut off and writes every output, as at the end of its run time)."""

    def __init__(self, plan: AbortPlan, say: Callable[[str], None] | None = None) -> None:
        self.plan = plan
        self.say = say
        self.watch: AbortWatch | None = None
        self._end_epoch: float | None = None  # the planned end of the run

    @property
    def fired(self) -> bool:
        return self.watch is not None and self.watch.fired is not None

    def feed(self, line: LiveLine) -> bool:
        if self.watch is None:
            interval_s = line.interval_s
            if interval_s is None:
                return False  # a line without the interval length: an older plugin
            self.watch = AbortWatch(self.plan.rules, interval_s)
        watch = self.watch
        if watch.fired is not None:
            return True
        if self._end_epoch is None and self.plan.run_time_s is not None and line.epoch:
            self._end_epoch = line.epoch - line.elapsed_s + self.plan.run_time_s
        wanted = self.plan.steady_users
        if line.epoch is not None and line.users >= (1 if wanted is None else max(wanted, 1)):
            # The first line that has every user running: spawning completed by then.
            watch.begin_steady(line.epoch + self.plan.warmup_s)
        index = line.interval_index
        if index is None or (
            self._end_epoch is not None and (index + 1) * watch.interval_s > self._end_epoch
        ):
            return False
        fired = watch.observe(interval_figures(line, index), line.elapsed_s)
        if fired is None:
            return False
        if self.say is not None:
            self.say(f"{fired.message}; stopping the run")
        return True

    def facts(self, stopped: bool = False) -> Mapping[str, Any]:
        if self.watch is None:
            why = "the live progress never gave the interval length (an older plugin)"
            return {ABORT_EXTRA: unwatched(self.plan.rules, why).to_json()}
        return {ABORT_EXTRA: self.watch.facts().to_json()}


def interval_figures(line: LiveLine, index: int) -> IntervalFigures:
    """Each request key's newest complete interval (``last``) of a live line; what is not
    a well-formed figure is left out (progress is best effort, abort rules too)."""
    keys: dict[str, KeyFigures] = {}
    for key, figures in line.per_request.items():
        last = figures.get("last") if isinstance(figures, Mapping) else None
        if not isinstance(key, str) or not isinstance(last, Mapping):
            continue
        count, failures = last.get("count"), last.get("failures", 0)
        if not _whole(count) or not _whole(failures) or failures > count:
            continue
        keys[key] = KeyFigures(
            count=count,
            failures=failures,
            avg_ms=_ms(last.get("avg_ms")),
            p95_ms=_ms(last.get("p95_ms")),
        )
    return IntervalFigures(index=index, keys=keys)


def _whole(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _ms(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if 0 <= value < float("inf") else None


class _Watchers:
    """The command's watcher and the abort rules, fed the same lines."""

    def __init__(self, main: Watcher | None, abort: AbortWatcher) -> None:
        self.main = main
        self.abort = abort

    def feed(self, line: LiveLine) -> bool:
        stop = self.main.feed(line) if self.main is not None else False
        return self.abort.feed(line) or stop

    def facts(self, stopped: bool) -> Mapping[str, Any]:
        aborted = self.abort.fired
        main = self.main.facts(stopped and not aborted) if self.main is not None else {}
        return {**main, **self.abort.facts()}
