"""The life of a run, the same for ``paybench run`` and ``paybench capacity``.

``execute(spec)`` puts the steps in order and keeps run.json true at each of them:

1. create the run folder, copy the budgets file into it, write run.json (``starting``);
2. start the reference target on loopback, unless the spec names a host (``preflight``);
3. preflight (``harness.preflight``): the target answers what the scenarios need,
   else TargetError (exit 3);
4. start Locust (``running``) and feed every progress line of ``paybench.live.jsonl`` to
   the spec's watcher, which may stop the run; stop Locust at its deadline;
5. finish run.json: ``finished``, or ``incomplete`` with the reason (interrupted, stopped
   at the deadline, Locust's exit code), or ``failed`` with the error that ended it.

What a command does with the finished run (judge it, cut it into steps) is the command's.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from harness import __version__
from harness.core.model import PreflightCheck
from harness.errors import ConfigError, PaybenchError, TargetError
from harness.locust_run import LocustOutcome, LocustPlan, log_tail, run_locust
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
    extra: Mapping[str, Any] = field(default_factory=dict)
    # What the target must answer before any load (harness.preflight).
    preflight_checks: tuple[PreflightCheck, ...] = PAYMENTS_CHECKS
    preflight_timeout_s: float = PREFLIGHT_TIMEOUT_S
    # Locust is stopped this long after it started; None: the run time plus STOP_GRACE_S.
    deadline_s: float | None = None

    @property
    def deadline(self) -> float | None:
        if self.deadline_s is not None:
            return self.deadline_s
        return None if self.run_time_s is None else self.run_time_s + STOP_GRACE_S


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
    host: str | None, target_config: Path | None, overrides: Mapping[str, Any]
) -> Iterator[tuple[str, RunTarget]]:
    """The base URL to load and its kind: ``host`` itself, or a reference target started
    on loopback for the duration (and stopped after, whatever happens)."""
    if host:
        yield host.rstrip("/"), "external"
        return
    from harness.target.process import ReferenceTarget

    with ReferenceTarget(config=target_config, overrides=dict(overrides)) as target:
        yield target.url, "reference"


def execute(spec: RunSpec, watcher: Watcher | None = None, *, poll_s: float = 0.5) -> FinishedRun:
    """Run ``spec`` from an empty run folder to a finished run.json (see the module doc).

    Raises what ended the run early (TargetError for the target or Locust, StorageError
    for the disk), after recording it in run.json as far as the disk lets us; an exception
    paybench did not expect becomes an InternalError with its traceback in the run folder.
    """
    run_dir = create_run_dir(spec.out, spec.run_id)
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
            with target_url(spec.host, spec.target_config, spec.target_overrides) as (url, kind):
                record = replace(record, host=url, target=kind, extra=_extra(spec, kind))
                record = _status(run_dir, record, "preflight")
                preflight(url, spec.preflight_checks, spec.preflight_timeout_s)
                record = _status(run_dir, record, "running")
                outcome = run_locust(
                    _plan(spec, url, run_dir),
                    on_line=watcher.feed if watcher is not None else None,
                    poll_s=poll_s,
                    deadline_s=spec.deadline,
                )
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
        extra["target_overrides"] = dict(spec.target_overrides)
        extra["target_config"] = str(spec.target_config) if spec.target_config else None
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
    )


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
