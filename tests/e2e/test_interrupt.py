"""Ctrl-C during `paybench run`: Locust is stopped, what was measured is kept, exit 130.

Also when paybench was started the way a script's background job is, with SIGINT ignored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.recording import load_recording
from tests.e2e.helpers import ROOT, only_run_dir

pytestmark = pytest.mark.e2e


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    "started_ignoring_sigint",
    [False, True],
    ids=["foreground", "background-job"],  # `paybench run &` in a script: SIGINT ignored
)
def test_ctrl_c_keeps_the_measurements_and_exits_130(
    tmp_path: Path, started_ignoring_sigint: bool
) -> None:
    out = tmp_path / "reports"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--run-time",
            "60s",
            "--out",
            str(out),
            "--no-history",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        preexec_fn=_ignore_sigint if started_ignoring_sigint else None,
    )
    try:
        # Wait (bounded) until requests are flowing, then press Ctrl-C.
        deadline = time.monotonic() + 60
        seen = ""
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            seen += line
            if "req/s" in line and "requests 0 " not in line:
                break
        else:
            pytest.fail(f"no progress line within 60 s: {seen}")
        run_dir = only_run_dir(out)
        host = json.loads((run_dir / "run.json").read_text())["host"]
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stdout + stderr
    # Locust stopped at the Ctrl-C, not at the end of its 60 s (measured by the recording,
    # not by the wall clock of a machine that may be busy).
    recording = load_recording(run_dir / "paybench.hdr.json")
    assert recording.test_stop_epoch - recording.test_start_epoch < 60
    assert "Traceback" not in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["incomplete"] is True
    assert "interrupted" in summary["incomplete_reason"]
    assert summary["verdict"]["outcome"] == "INCOMPLETE"
    assert summary["verdict"]["exit_code"] == 130
    assert sum(r["count"] for r in summary["requests"] + summary["ramp"]) > 0
    assert (run_dir / "report.html").is_file() and (run_dir / "locust_stats.csv").is_file()
    # the reference target it started is gone too
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{host}/api/health", timeout=2)
