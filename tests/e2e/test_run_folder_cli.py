"""A run folder is a CI artefact that may come from anywhere: `paybench check` and `paybench
report` write into it only through regular files they create themselves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.helpers import ROOT, paybench

pytestmark = pytest.mark.e2e

PLAIN = ROOT / "tests" / "fixtures" / "plain_locust"


def _plain_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(PLAIN, folder)
    return folder


@pytest.mark.parametrize(
    ("command", "planted", "refused"),
    [
        ("check", "summary.json.tmp", False),
        ("check", "summary.json", True),
        ("report", "report.html.tmp", False),
        ("report", "report.html", True),
        ("report", "summary.json", False),  # not a file `report` writes: left alone
    ],
)
def test_a_planted_link_never_makes_paybench_write_outside_the_run_folder(
    tmp_path: Path, command: str, planted: str, refused: bool
) -> None:
    """Regression: `paybench check RUN` wrote summary.json through a planted
    summary.json.tmp (or summary.json) link, overwriting any file the user could write."""
    folder = _plain_folder(tmp_path)
    outside = tmp_path / "precious.txt"
    outside.write_text("not paybench's\n", encoding="utf-8")
    (folder / planted).symlink_to(outside)

    r = paybench(command, str(folder), "--budgets", str(folder / "budgets.yaml"), timeout=90)

    assert outside.read_text(encoding="utf-8") == "not paybench's\n"
    assert (folder / planted).is_symlink()  # paybench neither followed nor removed it
    assert "Traceback" not in r.stderr
    if refused:
        assert r.returncode == 2, r.stdout + r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines == [
            f"paybench: error: {folder / planted}: is a symbolic link; paybench does not "
            "write through links, remove it"
        ]
    else:
        assert r.returncode == 0, r.stdout + r.stderr
        written = "summary.json" if command == "check" else "report.html"
        assert (folder / written).is_file() and not (folder / written).is_symlink()
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp") and p.name != planted]


def test_a_run_json_of_a_newer_format_is_refused_by_check(tmp_path: Path) -> None:
    folder = _plain_folder(tmp_path)
    (folder / "run.json").write_text(
        json.dumps({"format": "paybench-run", "format_version": 99, "run_id": "x"})
    )
    r = paybench("check", str(folder), "--budgets", str(folder / "budgets.yaml"), timeout=90)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        f"paybench: error: {folder / 'run.json'}: format version 99 is newer than this "
        "paybench understands (1); upgrade paybench"
    ]
    assert not (folder / "summary.json").exists()
