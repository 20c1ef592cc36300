"""Builds and runs the ``locust`` subprocess for one run, with live progress and signals.

Locust runs out of process: ``import locust`` monkey-patches the interpreter with gevent,
so the harness only ever starts ``python -m locust`` and reads the files it writes.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, TargetError

LIVE_FILE = "paybench.live.jsonl"
RUN_FILE = "run.json"
LOG_FILE = "locust.log"
CSV_PREFIX = "locust"
HTML_FILE = "locust.html"

# After a planned run time, how long Locust may take to stop before we stop it ourselves.
_STOP_GRACE_S = 60.0
# After SIGINT, how long Locust may take to write its outputs before it is killed.
_INTERRUPT_GRACE_S = 20.0


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC start time plus six random hex digits."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def create_run_dir(out: Path, run_id: str) -> Path:
    run_dir = out / "runs" / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ConfigError(f"{run_dir} already exists; a run folder is written once") from None
    except OSError as e:
        raise ConfigError(
            f"cannot create the run folder {run_dir}: {e.strerror}; check --out"
        ) from None
    return run_dir


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LocustPlan:
    locustfile: Path
    host: str
    run_dir: Path
    config: Path | None = None  # the profile's Locust config file
    users: int | None = None
    spawn_rate: float | None = None
    run_time_s: float | None = None
    workers: int = 0  # Locust's --processes; 0 runs a single process
    # Users finish the task they are in when the run time is up (None: the profile's or
    # Locust's own setting), so that few requests are cut off in flight.
    stop_timeout_s: float | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """One line of ``paybench.live.jsonl`` as the plugin wrote it."""

    elapsed_s: float
    users: int
    requests: int
    failures: int
    rps: float
    per_request: dict[str, dict[str, Any]]  # request key -> cumulative count, avg_ms, p95_ms


@dataclass(frozen=True)
class LocustOutcome:
    returncode: int | None
    interrupted: bool
    timed_out: bool
    stopped: bool  # ended early because should_stop() said so
    started_at: str
    ended_at: str
    command: tuple[str, ...]


def build_command(plan: LocustPlan) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(plan.locustfile),
        "--headless",
        "--host",
        plan.host,
        "--csv",
        str(plan.run_dir / CSV_PREFIX),
        "--html",
        str(plan.run_dir / HTML_FILE),
        "--paybench-dir",
        str(plan.run_dir),
        # paybench judges failures itself: a failed request is not a failed Locust run.
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "INFO",
    ]
    if plan.config is not None:
        cmd[3:3] = ["--config", str(plan.config)]
    if plan.users is not None:
        cmd += ["--users", str(plan.users)]
    if plan.spawn_rate is not None:
        cmd += ["--spawn-rate", f"{plan.spawn_rate:g}"]
    if plan.run_time_s is not None:
        cmd += ["--run-time", f"{max(1, round(plan.run_time_s))}s"]
    if plan.stop_timeout_s is not None:
        cmd += ["--stop-timeout", f"{plan.stop_timeout_s:g}"]
    if plan.workers > 0:
        port = str(free_loopback_port())
        cmd += [
            "--processes",
            str(plan.workers),
            "--master-bind-host",
            "127.0.0.1",
            # the forked workers connect to --master-port: both must name the free port
            "--master-bind-port",
            port,
            "--master-port",
            port,
        ]
    cmd += list(plan.extra_args)
    return cmd


def read_progress(path: Path, offset: int) -> tuple[list[Progress], int]:
    """New complete lines of the live file from byte ``offset``; returns them and the new offset."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    lines, consumed = [], 0
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # a line still being written
        consumed += len(raw)
        try:
            d = json.loads(raw)
        except ValueError:
            continue
        lines.append(
            Progress(
                elapsed_s=float(d.get("elapsed_s", 0.0)),
                users=int(d.get("users", 0)),
                requests=int(d.get("requests", 0)),
                failures=int(d.get("failures", 0)),
                rps=float(d.get("rps", 0.0)),
                per_request=d.get("per_request", {}),
            )
        )
    return lines, offset + consumed


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_locust(
    plan: LocustPlan,
    on_progress: Callable[[Progress], None] | None = None,
    poll_s: float = 0.5,
    should_stop: Callable[[], bool] | None = None,
    max_duration_s: float | None = None,
) -> LocustOutcome:
    """Run Locust to the end (or until interrupted or ``should_stop()``) and say how it ended.

    Locust gets its own session so that a terminal's Ctrl-C reaches only us; we forward
    exactly one SIGINT, which makes Locust stop its users and write its outputs. The same
    SIGINT ends a run early when ``should_stop()`` (asked every ``poll_s``) says so.
    """
    cmd = build_command(plan)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **plan.env}
    started_at = _now_iso()
    deadline = None
    planned = plan.run_time_s if plan.run_time_s is not None else max_duration_s
    if planned is not None:
        deadline = time.monotonic() + planned + _STOP_GRACE_S
    live, offset = plan.run_dir / LIVE_FILE, 0
    with (plan.run_dir / LOG_FILE).open("wb") as log:
        try:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        except OSError as e:
            raise TargetError(f"could not start Locust ({cmd[0]}): {e.strerror}") from None
        interrupted = timed_out = stopped = False
        try:
            while True:
                try:
                    proc.wait(timeout=poll_s)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if on_progress is not None:
                    lines, offset = read_progress(live, offset)
                    for p in lines:
                        on_progress(p)
                if should_stop is not None and should_stop():
                    stopped = True
                    _stop(proc)
                    break
                if deadline is not None and time.monotonic() > deadline:
                    timed_out = True
                    _stop(proc)
                    break
        except KeyboardInterrupt:
            interrupted = True
            _stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if on_progress is not None:
        lines, offset = read_progress(live, offset)
        for p in lines:
            on_progress(p)
    return LocustOutcome(
        returncode=proc.returncode,
        interrupted=interrupted,
        timed_out=timed_out,
        stopped=stopped,
        started_at=started_at,
        ended_at=_now_iso(),
        command=tuple(cmd),
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (Locust then writes its outputs), and SIGKILL if it does not end in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=_INTERRUPT_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def write_run_json(run_dir: Path, data: dict[str, Any]) -> None:
    tmp = run_dir / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(run_dir / RUN_FILE)


def finish_run_json(
    run_dir: Path,
    meta: dict[str, Any],
    outcome: LocustOutcome | Any,
    incomplete_reason: str | None,
    **extra: Any,
) -> None:
    """The run's metadata once Locust has ended: how it ended, and whether it is complete."""
    write_run_json(
        run_dir,
        {
            **meta,
            "status": "incomplete" if incomplete_reason else "finished",
            "started_at": outcome.started_at,
            "ended_at": outcome.ended_at,
            "locust_exit_code": outcome.returncode,
            "locust_command": list(outcome.command),
            "incomplete": incomplete_reason is not None,
            "incomplete_reason": incomplete_reason,
            **extra,
        },
    )


def log_tail(run_dir: Path, lines: int = 5) -> Sequence[str]:
    try:
        text = (run_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]
