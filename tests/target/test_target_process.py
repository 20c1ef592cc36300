"""Starting and stopping the target: ReferenceTarget, `python -m harness.target`, the CLI."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import psutil
import pytest
from click.testing import CliRunner

from harness.errors import ConfigError, TargetError
from harness.target.cli import target_group
from harness.target.process import ReferenceTarget

URL_LINE = re.compile(r"^paybench target: serving on (http://127\.0\.0\.1:(\d+))$")


def _gone(pid: int, timeout_s: float) -> bool:
    """True once ``pid`` has exited (a zombie counts as exited), polling until the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_reference_target_starts_serves_and_stops_cleanly(tmp_path: Path) -> None:
    log = tmp_path / "target.log"
    target = ReferenceTarget(overrides={"seed": 3}, log_path=log)
    with target:
        assert re.match(r"^http://127\.0\.0\.1:\d+$", target.url)
        assert target.running
        assert httpx.get(target.url + "/api/health").json()["status"] == "healthy"
        pid = target.pid
        database = re.search(r"paybench target: database (\S+)", log.read_text())
        assert database
        temp_dir = Path(database.group(1)).parent
        assert temp_dir.exists()
    assert not target.running
    assert _gone(pid, 10.0)
    assert not temp_dir.exists()  # the temporary database went with it
    assert "serving on" in log.read_text()
    target.stop()  # idempotent


def test_a_bad_override_fails_before_any_process_starts() -> None:
    target = ReferenceTarget(overrides={"capacity.chekout": 4})
    with pytest.raises(ConfigError, match=r"capacity\.chekout.*capacity\.checkout"):
        target.start()
    assert target.pid == 0


def test_a_child_that_cannot_start_is_a_clear_target_error(tmp_path: Path) -> None:
    target = ReferenceTarget(db=tmp_path / "missing" / "target.db", startup_timeout_s=20)
    started = time.monotonic()
    with pytest.raises(TargetError, match=r"exited with code 2 at start.*does not exist"):
        target.start()
    assert time.monotonic() - started < 15
    assert not target.running


def test_the_target_exits_when_its_parent_dies(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = textwrap.dedent(f"""
        import pathlib, time
        from harness.target.process import ReferenceTarget
        target = ReferenceTarget(db=pathlib.Path({str(tmp_path / "t.db")!r}),
                                 log_path=pathlib.Path({str(tmp_path / "t.log")!r})).start()
        pathlib.Path({str(pid_file)!r}).write_text(str(target.pid))
        time.sleep(60)
    """)
    # Killed parents leave their temporary folder behind: keep everything under tmp_path.
    env = dict(os.environ, TMPDIR=str(tmp_path))
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.05)
        assert pid_file.exists()
        child = int(pid_file.read_text())
        parent.kill()  # no chance to stop its target
        parent.wait(timeout=10)
        assert _gone(child, 10.0)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)


def _serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.target", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_python_m_harness_target_port_0_prints_the_url_and_serves(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    proc = _serve("--port", "0", "--db", str(db), "--seed", "5")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        match = URL_LINE.match(line)
        assert match, line
        url, port = match.group(1), int(match.group(2))
        assert port != 0
        assert httpx.get(url + "/api/plans").status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close() if proc.stdout else None
        proc.stderr.close() if proc.stderr else None
    assert db.exists()  # --db is kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "loopback only"),
        (["--host", "192.168.1.10"], "loopback only"),
        (["--set", "capacity.chekout=4"], "unknown key"),
        (["--error-rate", "2"], "'error_rate' is 2.0"),
    ],
)
def test_serve_refuses_bad_options_with_one_line_and_exit_2(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.target", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paybench: error: "), proc.stderr
    assert message in lines[0]


def test_serve_refuses_a_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "harness.target", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in proc.stderr


def test_serve_accepts_ipv6_loopback_and_localhost() -> None:
    for host, prefix in (("localhost", "http://127.0.0.1:"), ("::1", "http://[::1]:")):
        if host == "::1" and not socket.has_ipv6:
            continue
        proc = _serve("--host", host, "--port", "0")
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if host == "::1" and not line:
                err = proc.stderr.read() if proc.stderr else ""
                if "Cannot assign requested address" in err or "not available" in err:
                    continue  # no IPv6 loopback on this machine
            assert line.startswith("paybench target: serving on " + prefix), line
            url = line.rsplit(" ", 1)[1]
            assert httpx.get(url + "/api/health").status_code == 200
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=15)
            proc.stdout.close() if proc.stdout else None
            proc.stderr.close() if proc.stderr else None


def test_the_click_group_has_the_serve_command_and_its_options() -> None:
    result = CliRunner().invoke(target_group, ["serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--config",
        "--db",
        "--slowdown",
        "--error-rate",
        "--seed",
        "--set",
    ):
        assert option in result.output
    assert "--parent-pid" not in result.output
    assert target_group.name == "target"


def test_serve_through_the_click_group_in_a_subprocess() -> None:
    code = "from harness.target.cli import target_group; target_group()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--slowdown", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        assert proc.stdout is not None
        match = URL_LINE.match(proc.stdout.readline().strip())
        assert match
        assert httpx.get(match.group(1) + "/api/health").status_code == 200
        proc.terminate()
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close() if proc.stdout else None
        proc.stderr.close() if proc.stderr else None
