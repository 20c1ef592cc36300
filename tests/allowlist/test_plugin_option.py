"""``--paybench-allow-hosts``, the option that carries a run's allow-list into Locust."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.locust_run import LocustPlan, build_command
from tests.allowlist.helpers import ROOT

LOCUSTFILE = """
from locust import HttpUser, task

from harness import plugin  # noqa: F401


class Nobody(HttpUser):
    @task
    def nothing(self):
        pass
"""


def test_paybench_passes_the_allow_list_to_locust(tmp_path: Path) -> None:
    plan = LocustPlan(
        locustfile=tmp_path / "l.py",
        host="http://127.0.0.1:8089",
        run_dir=tmp_path,
        allow_hosts=("staging.example.invalid", "api.example.invalid"),
    )
    command = build_command(plan)
    at = command.index("--paybench-allow-hosts")
    assert command[at + 1] == "staging.example.invalid,api.example.invalid"
    bare = build_command(LocustPlan(tmp_path / "l.py", "http://127.0.0.1:8089", tmp_path))
    assert "--paybench-allow-hosts" not in bare


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("ok.example.invalid,bad\\\\name", "'bad\\\\\\\\name' holds a backslash"),
        ("admin@staging.example.invalid", "holds user info"),
        ("https://staging.example.invalid/", "is not a host name"),
    ],
)
def test_locust_refuses_a_bad_allow_list_before_any_user_starts(
    tmp_path: Path, value: str, fragment: str
) -> None:
    locustfile = tmp_path / "l.py"
    locustfile.write_text(LOCUSTFILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYBENCH_", "LOCUST_"))}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "--host",
            "http://127.0.0.1:9",
            "--run-time",
            "1s",
            "--paybench-allow-hosts",
            value,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "argument --paybench-allow-hosts" in result.stderr
    assert fragment in result.stderr
