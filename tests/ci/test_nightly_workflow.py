"""docs/ci/nightly.yml, offline: it parses, and every paybench command it runs exists in the
CLI with the options it passes, and the script it runs is the one in the repository."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "ci" / "nightly.yml"


def _steps() -> list[dict[str, Any]]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps: list[dict[str, Any]] = doc["jobs"]["nightly"]["steps"]
    return steps


def _commands(prefix: str) -> list[list[str]]:
    found = []
    for step in _steps():
        for line in str(step.get("run", "")).splitlines():
            if line.strip().startswith(prefix + " "):
                found.append(shlex.split(line.strip(), comments=True))
    return found


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command the words name, and the words left for its options."""
    command: click.Command = main
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def test_the_workflow_parses_and_runs_the_nightly_script() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as True.
    assert "schedule" in doc.get("on", doc.get(True))
    runs = [str(s.get("run", "")) for s in _steps()]
    assert any("sh docs/ci/nightly.sh" in r for r in runs)
    assert (ROOT / "docs" / "ci" / "nightly.sh").is_file()
    uploads = [s for s in _steps() if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"


def test_every_paybench_command_in_the_workflow_exists_with_its_options() -> None:
    commands = _commands("paybench")
    assert {tuple(w[1:3]) for w in commands} == {("baseline", "accept"), ("baseline", "pin")}
    for words in commands:
        command, rest = _resolve(words)
        assert not isinstance(command, click.Group), words
        options = {o for p in command.params for o in getattr(p, "opts", [])}
        passed = [w for w in rest if w.startswith("--")]
        assert passed and set(passed) <= options, (words, sorted(options))
        arguments = [p for p in command.params if isinstance(p, click.Argument)]
        assert len(arguments) == 1, words  # the run named
