"""harness.locust_run without Locust: the command it builds, the live file it tails, run ids,
and how it stops a process.

The processes here are ones the tests start themselves (``sleep``, a shell, and a stand-in
``locust`` module put first on the child's PYTHONPATH that writes live lines and ends on
SIGINT), always stopped by PID. Real Locust runs are the end-to-end tests' business.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness import locust_run
from harness.errors import ConfigError, FormatError
from harness.locust_run import LocustPlan, build_command, log_tail, run_locust
from harness.runfolder import (
    LIVE_FILE,
    LOG_FILE,
    LiveLine,
    append_live_line,
    create_run_dir,
    new_run_id,
    read_live,
)

HOST = "http://127.0.0.1:8321"
LOCUSTFILE = Path("locustfiles/payments.py")


def plan(run_dir: Path, **changes: Any) -> LocustPlan:
    return LocustPlan(locustfile=LOCUSTFILE, host=HOST, run_dir=run_dir, **changes)


def option(cmd: list[str], name: str) -> str | None:
    """The value that follows ``name`` in ``cmd`` (None when absent; refused when twice)."""
    assert cmd.count(name) <= 1, f"{name} given twice"
    return cmd[cmd.index(name) + 1] if name in cmd else None


# -- the command ------------------------------------------------------------------------------


def test_the_base_command_writes_every_output_into_the_run_folder(tmp_path: Path) -> None:
    assert build_command(plan(tmp_path)) == [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "locustfiles/payments.py",
        "--headless",
        "--host",
        HOST,
        "--csv",
        str(tmp_path / "locust"),
        "--html",
        str(tmp_path / "locust.html"),
        "--paybench-dir",
        str(tmp_path),
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "INFO",
    ]


def test_the_profile_config_is_passed_right_after_the_module(tmp_path: Path) -> None:
    conf = Path("locustfiles/profiles/smoke.conf")
    cmd = build_command(plan(tmp_path, config=conf, users=3))
    assert cmd[:5] == [sys.executable, "-m", "locust", "--config", str(conf)]
    assert cmd.index("--config") < cmd.index("--users")


OPTIONS = {
    "users": ({"users": 6}, "--users", "6"),
    "a whole spawn rate": ({"spawn_rate": 6.0}, "--spawn-rate", "6"),
    "a fractional spawn rate": ({"spawn_rate": 0.5}, "--spawn-rate", "0.5"),
    "run time in whole seconds": ({"run_time_s": 90.6}, "--run-time", "91s"),
    "run time below a second: one second": ({"run_time_s": 0.2}, "--run-time", "1s"),
    "stop timeout": ({"stop_timeout_s": 10.0}, "--stop-timeout", "10"),
    "a stop timeout of zero is given, not dropped": (
        {"stop_timeout_s": 0.0},
        "--stop-timeout",
        "0",
    ),
    "allow-list": (
        {"allow_hosts": ("staging.example.internal", "10.0.0.5")},
        "--paybench-allow-hosts",
        "staging.example.internal,10.0.0.5",
    ),
}


@pytest.mark.parametrize(("changes", "name", "value"), OPTIONS.values(), ids=OPTIONS.keys())
def test_each_option(tmp_path: Path, changes: dict[str, Any], name: str, value: str) -> None:
    cmd = build_command(plan(tmp_path, **changes))
    assert option(cmd, name) == value
    assert cmd[: len(build_command(plan(tmp_path)))] == build_command(plan(tmp_path))


@pytest.mark.parametrize(
    "name",
    [
        "--users",
        "--spawn-rate",
        "--run-time",
        "--stop-timeout",
        "--processes",
        "--master-bind-host",
        "--paybench-allow-hosts",
        "--config",
    ],
)
def test_an_option_not_planned_is_left_to_the_profile(tmp_path: Path, name: str) -> None:
    assert name not in build_command(plan(tmp_path))


@pytest.mark.parametrize("stop_timeout_s", [2.5, 0.1, 59.01, 1e6])
def test_a_fractional_stop_timeout_is_whole_seconds_rounded_up(
    tmp_path: Path, stop_timeout_s: float
) -> None:
    """Guards: Locust's --stop-timeout is a timespan of whole seconds (its parse_timespan
    refuses "2.5" and "1e+06"); users get at least the time asked for."""
    value = option(build_command(plan(tmp_path, stop_timeout_s=stop_timeout_s)), "--stop-timeout")
    assert value is not None and re.fullmatch(r"\d+", value)
    assert stop_timeout_s <= int(value) < stop_timeout_s + 1


def test_workers_are_processes_with_the_master_on_loopback(tmp_path: Path) -> None:
    cmd = build_command(plan(tmp_path, workers=2))
    assert option(cmd, "--processes") == "2"
    assert option(cmd, "--master-bind-host") == "127.0.0.1"
    port = option(cmd, "--master-bind-port")
    # The forked workers connect to --master-port: it must be the port the master binds.
    assert port is not None and option(cmd, "--master-port") == port
    assert 1024 <= int(port) <= 65535


def test_extra_arguments_come_last(tmp_path: Path) -> None:
    cmd = build_command(
        plan(
            tmp_path,
            users=5,
            workers=1,
            allow_hosts=("a.internal",),
            extra_args=("--shape", "spike"),
        )
    )
    assert cmd[-2:] == ["--shape", "spike"]


# -- the live file ------------------------------------------------------------------------------

PROGRESS = {
    "epoch": 1_764_146_404.05,
    "elapsed_s": 4.05,
    "users": 20,
    "requests": 8123,
    "failures": 3,
    "cut_off": 1,
    "rps": 2011.5,
    "interval_index": 882073201,
    "per_request": {"GET /api/plans": {"count": 6100, "avg_ms": 4.2, "p95_ms": 7.7}},
}
HEADER = '{"format": "paybench-live", "format_version": 1}\n'


def test_a_progress_line_is_read_field_by_field(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    append_live_line(path, PROGRESS)
    (line,), offset = read_live(path, 0)
    assert line == LiveLine(
        elapsed_s=4.05,
        users=20,
        requests=8123,
        failures=3,
        rps=2011.5,
        per_request={"GET /api/plans": {"count": 6100, "avg_ms": 4.2, "p95_ms": 7.7}},
        epoch=1_764_146_404.05,
        cut_off=1,
        interval_index=882073201,
    )
    assert offset == path.stat().st_size
    assert path.read_text().splitlines()[0] == json.dumps(
        {"format": "paybench-live", "format_version": 1}, separators=(",", ":")
    )


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    whole = json.dumps({**PROGRESS, "users": 1}) + "\n"
    second = json.dumps({**PROGRESS, "users": 2})
    path.write_text(HEADER + whole + second[:17])  # the plugin is mid-write
    lines, offset = read_live(path, 0)
    assert [line.users for line in lines] == [1]
    assert offset == len(HEADER) + len(whole)
    with path.open("a") as f:
        f.write(second[17:] + "\n")
    lines, offset = read_live(path, offset)
    assert [line.users for line in lines] == [2]
    assert offset == path.stat().st_size
    assert read_live(path, offset) == ([], offset)


def test_garbage_lines_are_skipped_and_never_read_again(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    garbage = [
        b"not json at all",
        b"[1, 2, 3]",
        b'"a string"',
        b"",
        b'{"users": "many"}',
        b'{"requests": null}',
        b'{"elapsed_s": 1.0, "users": 3\xff\xfe}',  # not UTF-8
    ]
    progress = json.dumps(PROGRESS).encode()
    path.write_bytes(HEADER.encode() + b"\n".join([*garbage, progress]) + b"\n")
    lines, offset = read_live(path, 0)
    assert [line.requests for line in lines] == [8123]
    assert offset == path.stat().st_size


def test_an_early_plugins_keys_field_is_its_per_request(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    doc = {k: v for k, v in PROGRESS.items() if k != "per_request"}
    path.write_text(json.dumps({**doc, "keys": {"GET /x": {"count": 1}}}) + "\n")
    (line,), _ = read_live(path, 0)
    assert line.per_request == {"GET /x": {"count": 1}}


def test_a_boolean_interval_index_is_no_index(tmp_path: Path) -> None:
    path = tmp_path / LIVE_FILE
    path.write_text(HEADER + json.dumps({**PROGRESS, "interval_index": True}) + "\n")
    (line,), _ = read_live(path, 0)
    assert line.interval_index is None


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            {"format": "paybench-live", "format_version": 2},
            "format version 2 is newer than this paybench understands (1); upgrade paybench",
        ),
        ({"format": "paybench-hdr", "format_version": 1}, "\"format\" is 'paybench-hdr'"),
    ],
    ids=["a newer version", "another format"],
)
def test_a_live_file_paybench_cannot_read_is_refused(
    tmp_path: Path, header: dict[str, Any], message: str
) -> None:
    path = tmp_path / LIVE_FILE
    path.write_text(json.dumps(header) + "\n" + json.dumps(PROGRESS) + "\n")
    with pytest.raises(FormatError, match=re.escape(message)) as info:
        read_live(path, 0)
    assert info.value.message.startswith(f"{path}: ")


def test_no_live_file_yet_is_no_line(tmp_path: Path) -> None:
    assert read_live(tmp_path / LIVE_FILE, 0) == ([], 0)


# -- run ids ----------------------------------------------------------------------------------

RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


def test_a_run_id_is_the_utc_start_time_and_six_hex_digits() -> None:
    run_id = new_run_id(datetime(2025, 11, 26, 8, 30, 4, 999_999, tzinfo=UTC))
    assert RUN_ID.fullmatch(run_id)
    assert run_id.startswith("20251126T083004Z-")
    assert RUN_ID.fullmatch(new_run_id())


def test_a_run_id_is_in_utc_whatever_zone_the_time_is_in() -> None:
    """Guards: a time given in another zone is written in UTC, as the "Z" says, so that ids
    sort by when the runs started."""
    paris = timezone(timedelta(hours=1))
    assert new_run_id(datetime(2025, 11, 26, 9, 30, tzinfo=paris)).startswith("20251126T083000Z-")
    assert new_run_id(datetime(2026, 1, 1, 0, 30, tzinfo=paris)).startswith("20251231T233000Z-")


def test_run_ids_sort_by_start_time() -> None:
    start = datetime(2025, 12, 31, 23, 59, 58, tzinfo=UTC)
    moments = [start + timedelta(seconds=s) for s in (0, 1, 2, 3, 3600, 86400 * 40)]
    newest_first = [new_run_id(m) for m in reversed(moments)]
    # Whatever the random digits: a later second sorts later, across days and years.
    ids = sorted(newest_first)
    assert ids == newest_first[::-1]
    assert [i[:16] for i in ids] == [m.strftime("%Y%m%dT%H%M%SZ") for m in moments]


def test_a_run_id_is_unique_because_its_folder_is_written_once(tmp_path: Path) -> None:
    run_id = new_run_id()
    run_dir = create_run_dir(tmp_path, run_id)
    assert run_dir == tmp_path / "runs" / run_id and run_dir.is_dir()
    with pytest.raises(ConfigError) as info:
        create_run_dir(tmp_path, run_id)
    assert info.value.message == f"{run_dir} already exists; a run folder is written once"


# -- stopping a process -------------------------------------------------------------------------


def gone(pid: int) -> bool:
    """The process has ended (a zombie has ended too: it only waits to be reaped)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_gone(pid: int, timeout_s: float) -> bool:
    """Whether ``pid`` ends within ``timeout_s`` (a bound, not a measurement)."""
    deadline = time.monotonic() + timeout_s
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_stop_ends_a_process_with_one_sigint() -> None:
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        locust_run._stop(proc)
        assert proc.returncode == -signal.SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_process_that_lost_its_sigint_ends_on_sigterm(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGINT dropped (raised inside a finaliser, say): SIGTERM, before any SIGKILL."""
    monkeypatch.setattr(locust_run, "_INTERRUPT_GRACE_S", 0.3)
    proc = subprocess.Popen(
        ["sh", "-c", 'trap "" INT; echo ready; exec sleep 30'],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"  # SIGINT is ignored from here on
        locust_run._stop(proc)
        assert proc.returncode == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_process_that_ignores_sigint_and_sigterm_is_killed_with_its_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the grace periods the whole session goes: Locust's forked workers too."""
    monkeypatch.setattr(locust_run, "_INTERRUPT_GRACE_S", 0.3)
    proc = subprocess.Popen(
        ["sh", "-c", 'trap "" INT TERM; sleep 30 & echo $!; wait'],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    child = 0
    try:
        assert proc.stdout is not None
        child = int(proc.stdout.readline())
        locust_run._stop(proc)
        assert proc.returncode == -signal.SIGKILL
        assert wait_gone(child, timeout_s=10.0)
    finally:
        for pid in (proc.pid, child):
            if pid and not gone(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_log_tail_is_the_last_lines_that_say_something(tmp_path: Path) -> None:
    (tmp_path / LOG_FILE).write_text("one\n\ntwo\n   \nthree\nfour\n")
    assert log_tail(tmp_path, 3) == ["two", "three", "four"]
    assert log_tail(tmp_path / "nothing-here") == []


# -- run_locust with a stand-in for Locust ------------------------------------------------------

STANDIN = textwrap.dedent(
    """
    # A stand-in for `python -m locust`: writes live lines like the plugin, ends on SIGINT.
    import json, os, signal, sys

    run_dir = sys.argv[sys.argv.index("--paybench-dir") + 1]
    live = os.path.join(run_dir, "paybench.live.jsonl")

    def line(users):
        with open(live, "a") as f:
            f.write(json.dumps({"elapsed_s": 1.0, "users": users, "requests": 10 * users,
                                "failures": 0, "rps": 5.0, "per_request": {}}) + "\\n")

    def on_sigint(signum, frame):
        print("stand-in: SIGINT", os.environ.get("PAYBENCH_STANDIN"), flush=True)
        line(99)  # what Locust writes while it stops
        sys.exit(0)

    signal.signal(signal.SIGINT, on_sigint)
    with open(live, "a") as f:
        version = int(os.environ.get("PAYBENCH_STANDIN_LIVE_VERSION", "1"))
        f.write(json.dumps({"format": "paybench-live", "format_version": version}) + "\\n")
    line(1)
    while True:
        signal.pause()
    """
)


@pytest.fixture
def standin(tmp_path: Path) -> dict[str, str]:
    """The environment that makes `python -m locust` run the stand-in."""
    package = tmp_path / "standin" / "locust"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(STANDIN)
    return {"PYTHONPATH": str(package.parent), "PAYBENCH_STANDIN": "yes"}


def test_the_watcher_sees_every_line_and_can_stop_the_run(
    tmp_path: Path, standin: dict[str, str]
) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    seen: list[int] = []

    def watch(line: LiveLine) -> bool:
        seen.append(line.users)
        return line.users == 1  # stop at the first line

    outcome = run_locust(plan(run_dir, env=standin), on_line=watch, poll_s=0.05)
    assert (outcome.stopped, outcome.interrupted, outcome.timed_out) == (True, False, False)
    assert outcome.returncode == 0  # it ended on the one SIGINT
    assert seen == [1, 99]  # the lines written while stopping are fed too
    assert outcome.command == tuple(build_command(plan(run_dir, env=standin)))
    assert (run_dir / LOG_FILE).read_text() == "stand-in: SIGINT yes\n"


def test_ctrl_c_is_forwarded_as_one_sigint(tmp_path: Path, standin: dict[str, str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    pressed: list[int] = []

    def watch(line: LiveLine) -> bool:
        if not pressed:
            pressed.append(line.users)
            raise KeyboardInterrupt  # Ctrl-C, while paybench tails the live file
        return False

    outcome = run_locust(plan(run_dir, env=standin), on_line=watch, poll_s=0.05)
    assert (outcome.interrupted, outcome.stopped, outcome.timed_out) == (True, False, False)
    assert outcome.returncode == 0
    assert (run_dir / LOG_FILE).read_text() == "stand-in: SIGINT yes\n"


def test_a_run_past_its_deadline_is_stopped(tmp_path: Path, standin: dict[str, str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    outcome = run_locust(plan(run_dir, env=standin), poll_s=0.05, deadline_s=0.2)
    assert (outcome.timed_out, outcome.stopped, outcome.interrupted) == (True, False, False)
    # By SIGINT (before or after the stand-in set its handler), never killed.
    assert outcome.returncode in (0, -signal.SIGINT)


def test_a_live_file_paybench_cannot_read_ends_the_progress_not_the_run(
    tmp_path: Path, standin: dict[str, str]
) -> None:
    """Regression: a live header of a newer format raised out of the tail loop, and Locust
    was then killed without writing its outputs; now progress stops and the run ends as
    planned (here at its deadline, by the one SIGINT)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    seen: list[int] = []

    def watch(line: LiveLine) -> bool:
        seen.append(line.users)
        return False

    env = {**standin, "PAYBENCH_STANDIN_LIVE_VERSION": "99"}
    outcome = run_locust(plan(run_dir, env=env), on_line=watch, poll_s=0.05, deadline_s=1.0)
    assert outcome.timed_out
    assert outcome.returncode in (0, -signal.SIGINT)  # stopped by SIGINT, never killed
    assert seen == []


def test_a_run_folder_with_a_locust_log_already_is_refused(tmp_path: Path) -> None:
    (tmp_path / LOG_FILE).write_text("an earlier run\n")
    with pytest.raises(ConfigError) as info:
        run_locust(plan(tmp_path))
    assert info.value.message == (
        f"{tmp_path / LOG_FILE} already exists; a run folder is written once"
    )
    assert (tmp_path / LOG_FILE).read_text() == "an earlier run\n"
