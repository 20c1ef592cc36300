"""Helpers for end-to-end tests: the real `paybench` CLI as a subprocess, on loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def paybench(
    *args: str, cwd: Path | None = None, timeout: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI, as a user would, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )


def only_run_dir(out: Path) -> Path:
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def load_summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def _can_mount_tmpfs() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", "mount -t tmpfs none /mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


CAN_MOUNT_TMPFS = _can_mount_tmpfs()
needs_tmpfs = pytest.mark.skipif(
    not CAN_MOUNT_TMPFS,
    reason="needs root and `unshare -m` to mount a tiny tmpfs in a private mount namespace",
)


def paybench_on_tmpfs(
    mount: Path,
    *args: str,
    disk: str,
    size: str = "1m",
    before: str = "",
    keep: Path | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI with a tmpfs of ``size`` mounted at ``mount`` that is ``disk``
    ("full" or "read-only") by then, inside a private mount namespace: nothing leaks
    to the machine, and the tmpfs is gone when the command ends.

    ``before`` is shell run on the fresh tmpfs first (``$M`` is the mount point); ``keep``
    receives a copy of what the tmpfs holds afterwards, for the test to look at.
    """
    mount.mkdir(parents=True, exist_ok=True)
    spoil = {
        "full": 'cat /dev/zero > "$M/.fill" 2>/dev/null || true',
        "read-only": 'mount -o remount,ro "$M"',
    }[disk]
    script = "\n".join(
        [
            "set -e",
            f'mount -t tmpfs -o size={size} paybench-test "$M"',
            before,
            spoil,
            "set +e",
            '"$PY" -m harness "$@"',
            "rc=$?",
            'if [ -n "$KEEP" ]; then cp -a "$M/." "$KEEP/"; rm -f "$KEEP/.fill"; fi',
            "exit $rc",
        ]
    )
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "COLUMNS": "120",
        "M": str(mount),
        "PY": sys.executable,
        "KEEP": str(keep) if keep is not None else "",
    }
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
