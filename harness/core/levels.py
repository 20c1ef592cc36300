"""Which earlier runs a regression budget compares with, and which regressions are still open.

Pure: the history store (``harness.store``) reads the comparable runs and the decisions
(``paybench baseline accept|pin``) and asks here; the benchmark of the regression gate
(``benchmarks/verdict_trust.py``) asks the same functions over runs it made up.

The rules (docs/history.md):

- A run that broke a regression budget is a *regression*. The baseline is the last ``n``
  comparable runs that were not regressions, so a lasting regression is never averaged in.
- A regression stays open, and the judge holds every later run to it, until somebody
  decides: ``accept RUN`` makes the level of RUN's regression (its first run on) the new
  baseline, which then rolls on as before; ``pin RUN`` makes RUN the baseline, joined by
  the first runs after the decision that are not regressions, up to ``n``, and then fixed
  (no drift gets absorbed). The regressions recorded up to a decision are accepted by it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.core.model import BaselineDecision

Budgeted = tuple[str, str]  # (request key, metric) of a regression budget


@dataclass(frozen=True)
class LevelRun:
    """A comparable run as the rules see it: when it was recorded and what it broke.

    ``seq`` orders runs by when they were recorded (the history's row order), which is
    what decides whether a decision came after them.
    """

    run_id: str
    seq: int
    regressions: frozenset[Budgeted] = frozenset()


@dataclass(frozen=True)
class Selection:
    """The baseline runs (oldest first), the decision in force, the regressions still open."""

    run_ids: tuple[str, ...]
    decision: BaselineDecision | None = None
    # (request key, metric) -> the runs of the open regression, oldest first
    open: Mapping[Budgeted, tuple[str, ...]] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        return self.decision is not None and self.decision.kind == "pin"


def _accepted(run: LevelRun, decision: BaselineDecision | None) -> bool:
    return decision is not None and run.seq <= decision.recorded_through


def _window(
    runs: Sequence[LevelRun], decision: BaselineDecision | None
) -> tuple[Sequence[LevelRun], BaselineDecision | None]:
    """The runs since the level in force began; a decision on a run not here is ignored."""
    if decision is None:
        return runs, None
    start = next((i for i, r in enumerate(runs) if r.run_id == decision.from_run_id), None)
    if start is None:
        return runs, None
    return runs[start:], decision


def select_baseline(
    runs: Sequence[LevelRun], decision: BaselineDecision | None, n: int
) -> Selection:
    """The baseline of the next run from the comparable ``runs`` before it, oldest first.

    ``decision`` is the latest accept or pin among those runs (None: none). Returns the
    baseline runs (empty when there are none yet) and the open regressions: for each
    regression budget the latest run broke without a decision covering it, the unbroken
    stretch of runs back to where that regression began.
    """
    if n < 1:
        raise ValueError(f"a baseline needs n >= 1, got {n}")
    window, decision = _window(runs, decision)
    if decision is not None and decision.kind == "pin":
        pinned, later = window[0], window[1:]
        after = [r for r in later if r.seq > decision.recorded_through and not r.regressions]
        chosen = [pinned, *after][:n]
    else:
        eligible = [r for r in window if not r.regressions or _accepted(r, decision)]
        chosen = eligible[-n:]
    return Selection(
        run_ids=tuple(r.run_id for r in chosen),
        decision=decision,
        open=open_regressions(window, decision),
    )


def open_regressions(
    window: Sequence[LevelRun], decision: BaselineDecision | None
) -> dict[Budgeted, tuple[str, ...]]:
    """Per regression budget the latest run broke (unaccepted): its runs back to the start."""
    if not window or _accepted(window[-1], decision):
        return {}
    out: dict[Budgeted, tuple[str, ...]] = {}
    for budgeted in sorted(window[-1].regressions):
        streak: list[str] = []
        for run in reversed(window):
            if budgeted not in run.regressions or _accepted(run, decision):
                break
            streak.append(run.run_id)
        out[budgeted] = tuple(reversed(streak))
    return out


def regression_start(
    runs: Sequence[LevelRun], run_id: str, decision: BaselineDecision | None
) -> str:
    """Where the level ``accept run_id`` accepts begins: the first run of its regression.

    Walks back from ``run_id`` over the runs that broke a regression budget and that no
    earlier decision covers, never past the start of the level in force. A run that broke
    nothing starts its own level.
    """
    window, decision = _window(runs, decision)
    index = next((i for i, r in enumerate(window) if r.run_id == run_id), None)
    if index is None:
        raise ValueError(f"run {run_id!r} is not among the runs of the level in force")
    if not window[index].regressions or _accepted(window[index], decision):
        return run_id
    while (
        index > 0 and window[index - 1].regressions and not _accepted(window[index - 1], decision)
    ):
        index -= 1
    return window[index].run_id
