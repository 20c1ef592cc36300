"""The user-facing errors of paybench and the exit codes of every command.

Library code raises these; only ``harness.cli`` catches them, prints the one-line message
and exits with the code. Nothing of ours is imported here.
"""

from __future__ import annotations

EXIT_OK = 0  # every budget holds
EXIT_BUDGET_BROKEN = 1  # a budget or regression budget is broken
EXIT_USAGE = 2  # usage or configuration error (budgets.yaml, profile, options)
EXIT_UNJUDGEABLE = 3  # target or Locust failed, run incomplete or unreliable, disk refused, a bug
EXIT_INTERRUPTED = 130  # interrupted; what was measured so far is kept, marked incomplete


class PaybenchError(Exception):
    """An error the user can act on: one line that says what, where and the fix."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(PaybenchError):
    """Bad budgets file, profile, option or input file (exit 2)."""

    exit_code = EXIT_USAGE


class TargetError(PaybenchError):
    """The target is unreachable or unhealthy, or Locust failed: no judgement (exit 3)."""

    exit_code = EXIT_UNJUDGEABLE


class FormatError(ConfigError):
    """A file written by paybench is unreadable or of a newer format version (exit 2)."""


class StorageError(PaybenchError):
    """A file cannot be written: the disk is full or read-only, or permission is denied (exit 3)."""

    exit_code = EXIT_UNJUDGEABLE


class InternalError(PaybenchError):
    """A paybench bug: the message says where its traceback was saved (exit 3)."""

    exit_code = EXIT_UNJUDGEABLE
