"""The library calls behind the CLI commands, one module per command.

Each command is a function with keyword arguments that puts the IO steps in order (asv's
``commands/`` is the model) and returns what to print and the exit code; nothing here
prints, and nothing here exits. ``harness.cli`` parses, calls one of them, prints the
returned lines and exits with the code.

  run       harness.commands.run.run            a load profile, judged (harness.lifecycle)
  check     harness.commands.check.check        an existing run folder judged again
  report    harness.commands.report.report      the reports of a run folder written again
  capacity  harness.commands.capacity.capacity  a stepped run until the budgets break
  history   harness.commands.history            list, import, export
  compare   harness.commands.compare.compare    two runs, change and significance
  trend     harness.commands.trend.trend        trend.html and trend.md over the history
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import EXIT_OK


@dataclass(frozen=True)
class Reply:
    """What a command says on standard output, line by line, and its exit code."""

    lines: tuple[str, ...] = ()
    exit_code: int = EXIT_OK
