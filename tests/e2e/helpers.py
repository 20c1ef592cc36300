"""Helpers for end-to-end tests: the real `paybench` CLI as a subprocess, on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
