"""The commands shown in the README work as shown."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT

pytestmark = pytest.mark.e2e

README = (ROOT / "README.md").read_text(encoding="utf-8")


def shell_block_after(heading: str, starts_with: str) -> str:
    section = README[README.index(heading) :]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return next(b for b in blocks if b.startswith(starts_with))


def test_readme_opens_with_the_two_setup_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    commands = [ln.split("#")[0].strip() for ln in first_block.splitlines() if ln.strip()]
    assert commands == ["make run", "make test"]


def test_walk_the_checkout_by_hand_with_curl(tmp_path: Path) -> None:
    serve = shell_block_after("## Walk the checkout by hand", ".venv/bin/paybench target serve")
    assert serve.strip() == ".venv/bin/paybench target serve --port 8000"
    walk = shell_block_after("## Walk the checkout by hand", "URL=")
    # The same command as documented, on a free port instead of 8000.
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "target", "serve", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if m := re.search(r"serving on (http://127\.0\.0\.1:\d+)", line):
                url = m.group(1)
            elif not line and proc.poll() is not None:
                break
        assert url, "paybench target serve did not print its URL"
        script = walk.replace("URL=http://127.0.0.1:8000", f"URL={url}")
        r = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert '"status":"healthy"' in out[0]
    assert '"result":"processed"' in r.stdout
    assert '"state":"COMPLETED"' in out[-2]
    assert '"status":"ACTIVE"' in out[-1]


def test_serve_refuses_a_non_loopback_address() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "harness", "target", "serve", "--host", "10.1.2.3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("paybench: error: target --host 10.1.2.3: ")
    assert "Traceback" not in r.stderr


def test_make_run_prints_the_verdict_and_where_the_report_is(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    r = subprocess.run(
        ["make", "run", f"RUN_ARGS=--out {out} --no-history"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "PASS: all" in r.stdout
    run_dir = next((out / "runs").iterdir())
    assert f"report:     {run_dir / 'report.html'}" in r.stdout
