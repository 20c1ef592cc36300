"""Builds and runs the ``locust`` subprocess for one run, with live progress and signals.

Locust runs out of process: ``import locust`` monkey-patches the interpreter with gevent,
so the harness only ever starts ``python -m locust`` and reads the files it writes. The run
folder around it (run.json, the target, the preflight) is ``harness.lifecycle``'s.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from harness.errors import ConfigError, FormatError, TargetError
from harness.runfolder import (
    CSV_PREFIX,
    LIVE_FILE,
    LOCUST_HTML,
    LOG_FILE,
    LiveLine,
    create_exclusive,
    read_live,
)

# After SIGINT, how long Locust may take to write its outputs before it is killed.
_INTERRUPT_GRACE_S = 20.0


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
    allow_hosts: tuple[str, ...] = ()  # the run's allow-list, enforced by the plugin
    # A master for workers on other machines (`paybench worker`): where it listens, how
    # many workers it waits for and for how long (harness.distributed holds the start).
    master: MasterPlan | None = None


@dataclass(frozen=True)
class MasterPlan:
    bind_host: str = "127.0.0.1"
    bind_port: int = 5557
    expect_workers: int = 1
    expect_workers_timeout_s: float = 120.0


@dataclass(frozen=True)
class LocustOutcome:
    returncode: int | None
    interrupted: bool
    timed_out: bool
    stopped: bool  # ended early because on_line said so
    started_at: str
    ended_at: str
    command: tuple[str, ...]


def parse_address(text: str, default_port: int, option: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for an IPv6 address) of ``option``, or a ConfigError."""
    host, port = text.strip(), str(default_port)
    if host.startswith("["):
        inside, bracket, rest = host[1:].partition("]")
        if not bracket:
            raise ConfigError(f"{option} {text!r}: close the IPv6 address, e.g. [::1]:5557")
        host = inside
        if rest:
            if not rest.startswith(":"):
                raise ConfigError(f"{option} {text!r}: give HOST:PORT, e.g. 10.0.0.5:5557")
            port = rest[1:]
    elif host.count(":") == 1:
        host, port = host.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"{option} {text!r}: give HOST:PORT with a port from 1 to 65535, e.g. "
            f"10.0.0.5:{default_port}"
        )
    return host, int(port)


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
        str(plan.run_dir / LOCUST_HTML),
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
        # Locust reads a timespan of whole seconds ("2.5" is refused): round up, so that
        # users get at least the time asked for.
        cmd += ["--stop-timeout", str(max(0, math.ceil(plan.stop_timeout_s)))]
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
    if plan.master is not None:
        m = plan.master
        cmd += [
            "--master",
            "--master-bind-host",
            m.bind_host,
            "--master-bind-port",
            str(m.bind_port),
            "--expect-workers",
            str(m.expect_workers),
            # Locust's own wait starts once harness.distributed has accepted the workers.
            "--expect-workers-max-wait",
            str(max(1, math.ceil(m.expect_workers_timeout_s))),
        ]
    cmd += ["--paybench-allow-hosts", ",".join(plan.allow_hosts)] if plan.allow_hosts else []
    cmd += list(plan.extra_args)
    return cmd


def build_worker_command(
    locustfile: Path, master_host: str, master_port: int, processes: int = 0
) -> list[str]:
    """``locust`` as a worker of a remote master (``paybench worker``): the master sends
    the host, users, run time and paybench's options with its spawn message."""
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "INFO",
    ]
    if processes > 0:
        cmd += ["--processes", str(processes)]
    return cmd


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def run_locust(
    plan: LocustPlan,
    on_line: Callable[[LiveLine], bool] | None = None,
    poll_s: float = 0.5,
    deadline_s: float | None = None,
) -> LocustOutcome:
    """Run Locust to the end (or until interrupted, stopped or past its deadline); how it ended.

    Locust gets its own session so that a terminal's Ctrl-C reaches only us; we forward
    one SIGINT, which makes Locust stop its users and write its outputs (SIGTERM if it
    has not ended after ``_INTERRUPT_GRACE_S``, then SIGKILL: ``_stop``). The same
    SIGINT ends a run early when ``on_line`` (given every new line of the live file, every
    ``poll_s``) returns True, and when ``deadline_s`` seconds have passed since the start.
    """
    cmd = build_command(plan)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **plan.env}
    started_at = _now_iso()
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    live, offset = plan.run_dir / LIVE_FILE, 0

    unreadable_live = False

    def feed(watch: Callable[[LiveLine], bool]) -> bool:
        # A live file paybench cannot read ends the progress, never the run: Locust must
        # still stop its users and write its outputs.
        nonlocal offset, unreadable_live
        if unreadable_live:
            return False
        try:
            lines, offset = read_live(live, offset)
        except FormatError:
            unreadable_live = True
            return False
        stop = False
        for line in lines:
            stop = bool(watch(line)) or stop
        return stop

    with create_exclusive(plan.run_dir / LOG_FILE) as log:
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
                if on_line is not None and feed(on_line):
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
    if on_line is not None:
        feed(on_line)  # the lines written at the end; the run is over whatever they say
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
    """SIGINT (Locust then writes its outputs); SIGTERM if it does not end in time, then
    SIGKILL.

    Python raises the SIGINT's KeyboardInterrupt wherever the process is, and one raised
    inside a finaliser (``__del__`` of a response being collected) is printed and dropped:
    Locust then runs on as if never told. SIGTERM reaches Locust through gevent's own
    handler, which calls the same shutdown (outputs written) without that hazard. It is
    the second try, not the first, so that a Locust already busy writing its outputs after
    the SIGINT is left to finish: SIGKILL was the only other way out of that wait.
    """
    if proc.poll() is not None:
        return
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc.send_signal(sig)
        try:
            proc.wait(timeout=_INTERRUPT_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            pass
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def log_tail(run_dir: Path, lines: int = 5) -> Sequence[str]:
    try:
        text = (run_dir / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]
