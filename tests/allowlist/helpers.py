"""Helpers of the allow-list tests: a run of the real CLI inside a namespace with no network,
and what a run folder holds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.recording import load_recording

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NETNS_TIMEOUT_S = 150.0


def run_isolated(
    tmp_path: Path,
    paybench_args: list[str],
    server_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """tiny_server.py and ``python -m harness <paybench_args>`` (``{URL}``: the server's URL)
    inside ``unshare -n``: whatever tries to leave loopback fails there, and reaches nothing."""
    spec = tmp_path / "netns-spec.json"
    result = tmp_path / "netns-result.json"
    spec.write_text(
        json.dumps(
            {
                "server_args": list(server_args),
                "paybench_args": paybench_args,
                "env": env or {},
                "timeout_s": NETNS_TIMEOUT_S - 30,
            }
        )
    )
    done = subprocess.run(
        ["unshare", "-n", "--", sys.executable, str(HERE / "netns_run.py"), str(spec), str(result)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=NETNS_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(result.read_text())


def only_run_dir(out: Path) -> Path:
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def failures(run_dir: Path) -> dict[tuple[str, str], list[str]]:
    """(method, name) -> the failure messages paybench recorded for it."""
    out: dict[tuple[str, str], list[str]] = {}
    for row in load_recording(run_dir / "paybench.hdr.json").failure_rows:
        out.setdefault((row["type"], row["name"]), []).append(row["message"])
    return out


def run_folder_text(run_dir: Path) -> str:
    """Every file of a run folder as text, to search for what must not be there."""
    return "\n".join(
        p.read_bytes().decode("utf-8", "replace") for p in sorted(run_dir.rglob("*")) if p.is_file()
    )
