"""deploy/: the Compose file and the Kubernetes manifests, offline: the YAML parses, and every
paybench command they run exists in the CLI with the options they pass."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import click
import yaml

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The click command the words name, and the words left for its options."""
    command: click.Command = main
    rest = words[1:]
    while isinstance(command, click.Group) and rest and rest[0] in command.commands:
        command, rest = command.commands[rest[0]], rest[1:]
    return command, rest


def _commands(node: Any) -> list[list[str]]:
    """Every `command:` list that starts with paybench, anywhere in a document."""
    found = []
    if isinstance(node, dict):
        command = node.get("command")
        if isinstance(command, list) and command and command[0] == "paybench":
            found.append([str(w) for w in command])
        for value in node.values():
            found += _commands(value)
    elif isinstance(node, list):
        for value in node:
            found += _commands(value)
    return found


def _documents() -> dict[str, list[Any]]:
    files = [DEPLOY / "docker-compose.yml", *sorted((DEPLOY / "kubernetes").glob("*.yaml"))]
    return {f.name: list(yaml.safe_load_all(f.read_text(encoding="utf-8"))) for f in files}


def _doc_commands() -> list[list[str]]:
    """The paybench commands of docs/distributed.md's code blocks."""
    text = (ROOT / "docs" / "distributed.md").read_text(encoding="utf-8")
    blocks = text.split("```")[1::2]
    return [shlex.split(ln) for b in blocks for ln in b.splitlines() if ln.startswith("paybench ")]


def test_every_paybench_command_exists_with_its_options() -> None:
    commands = [c for docs in _documents().values() for c in _commands(docs)]
    assert {tuple(c[:2]) for c in commands} == {("paybench", "run"), ("paybench", "worker")}
    documented = _doc_commands()
    assert len(documented) >= 3
    for words in commands + documented:
        command, rest = _resolve(words)
        assert not isinstance(command, click.Group), words
        params = {o: p for p in command.params for o in getattr(p, "opts", [])}
        i = 0
        while i < len(rest):
            word = rest[i]
            assert word in params, f"{words}: {word} is not an option of paybench {words[1]}"
            param = params[word]
            flag = isinstance(param, click.Option) and param.is_flag
            i += 1 if flag else 2
        if words[1] == "run":
            assert "--master" in rest and "--workers" not in rest


def test_the_master_is_a_job_whose_exit_code_is_the_verdict() -> None:
    docs = _documents()["master.yaml"]
    (job,) = [d for d in docs if d["kind"] == "Job"]
    assert job["spec"]["backoffLimit"] == 0
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (service,) = [d for d in docs if d["kind"] == "Service"]
    workers = _commands(_documents()["workers.yaml"])
    assert workers == [["paybench", "worker", "--master", f"{service['metadata']['name']}:5557"]]


def test_the_compose_master_listens_where_the_workers_go() -> None:
    (compose,) = _documents()["docker-compose.yml"]
    master = compose["services"]["master"]["command"]
    assert master[master.index("--master-bind") + 1] == "0.0.0.0:5557"
    assert compose["services"]["worker"]["command"][-1] == "master:5557"
