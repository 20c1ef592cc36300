"""Which earlier runs a regression budget compares with, and which regressions are still open.

Pure: the history store (``harness.store``) reads the comparable runs and the decisions
(``paybench baseline accept|pin``) and asks here; the benchmark of the regression gate
(``benchmarks/verdict_trust.py``) goes through the store too.

The rules (docs/history.md):

- A run that broke a regression budget is a *regression*; one that rose beyond what a
  budget allows, without the rise being significant, is *rising* (maybe the first runs of
  a new level). The baseline is the last ``n`` comparable runs that were no regression, so
  a lasting regression is never averaged in, not even by its nights that passed; of the
  rising runs, those that are the latest runs, or that led into a regression, are left
  out too. A rise that a plain run followed was noise, and its run counts again: leaving
  every high run out would narrow the baseline's spread to its low side, and make noise
  look significant.
- A regression stays open, and the judge holds every later run to it, until somebody
  decides (or the runs are back at the baseline, ``harness.core.evaluate``).
- ``accept RUN`` makes the level of RUN's regression, from its first run on, the new
  baseline, which then rolls on as before.
- ``pin RUN`` fixes the baseline at RUN's level: RUN and the runs just before it that are
  like it (all regressions, or all not, back to the start of a decided level), then the
  first runs after the pin that are not regressions, up to ``n``, and no further: no
  drift is ever absorbed.
- A decision accepts the regressions recorded up to it; the latest decision on a run of
  the history is the one in force.
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
    rising: frozenset[Budgeted] = frozenset()  # rose beyond the budget, not significantly


@dataclass(frozen=True)
class Selection:
    """The baseline runs (oldest first), the decision in force, the regressions still open."""

    run_ids: tuple[str, ...]
    decision: BaselineDecision | None = None
    # (request key, metric) -> the runs of the open regression, oldest first
    open: Mapping[Budgeted, tuple[str, ...]] = field(default_factory=dict)
    # (request key, metric) -> the latest runs that rose in a row, oldest first
    rising: Mapping[Budgeted, tuple[str, ...]] = field(default_factory=dict)

    @property
    def pinned(self) -> bool:
        return self.decision is not None and self.decision.kind == "pin"


def in_force(
    decisions: Sequence[BaselineDecision], runs: Sequence[LevelRun]
) -> BaselineDecision | None:
    """The latest decision (by ``decision_id``) whose level starts at one of ``runs``."""
    ids = {r.run_id for r in runs}
    found = [d for d in decisions if d.from_run_id in ids]
    return max(found, key=lambda d: d.decision_id) if found else None


def _accepted(run: LevelRun, decision: BaselineDecision | None) -> bool:
    return decision is not None and run.seq <= decision.recorded_through


def _index(runs: Sequence[LevelRun], run_id: str) -> int:
    return next(i for i, r in enumerate(runs) if r.run_id == run_id)


def _changed(run: LevelRun) -> bool:
    """It broke a regression budget, or rose beyond one: not the level before it."""
    return bool(run.regressions or run.rising)


def _streak_start(runs: Sequence[LevelRun], index: int, decision: BaselineDecision | None) -> int:
    """The first run of the regression ``runs[index]`` belongs to, the runs that rose
    before it included (they were its first nights)."""
    while index > 0 and _changed(runs[index - 1]) and not _accepted(runs[index - 1], decision):
        index -= 1
    return index


def _rolling(
    runs: Sequence[LevelRun], decisions: Sequence[BaselineDecision], n: int
) -> tuple[list[LevelRun], BaselineDecision | None, int]:
    """The last ``n`` runs that may be a baseline under the decision in force among
    ``runs``, that decision, and where its level starts (0 without one)."""
    decision = in_force(decisions, runs)
    start = 0 if decision is None else _index(runs, decision.from_run_id)
    return eligible(runs[start:], decision)[-n:], decision, start


def eligible(window: Sequence[LevelRun], decision: BaselineDecision | None) -> list[LevelRun]:
    """The runs of ``window`` that may be a baseline: every run but the regressions and the
    rising runs whose rise has not been followed by a plain run (the latest runs, or the
    first nights of a regression). The runs a decision covers all may."""
    out = []
    for i, run in enumerate(window):
        if _accepted(run, decision) or not (run.regressions or run.rising):
            out.append(run)
            continue
        if run.regressions:
            continue
        j = i + 1
        while j < len(window) and _rising_only(window[j], decision):
            j += 1
        if j < len(window) and (_accepted(window[j], decision) or not window[j].regressions):
            out.append(run)  # a plain run followed: the rise was noise
    return out


def _rising_only(run: LevelRun, decision: BaselineDecision | None) -> bool:
    return bool(run.rising) and not run.regressions and not _accepted(run, decision)


def select_baseline(
    runs: Sequence[LevelRun], decisions: Sequence[BaselineDecision], n: int
) -> Selection:
    """The baseline of the next run from the comparable ``runs`` before it, oldest first.

    ``decisions``: the accepts and pins on these runs (the latest is in force). Returns
    the baseline runs (empty when there are none yet) and the open regressions: for each
    regression budget the latest run broke without a decision covering it, the unbroken
    stretch of runs back to where that regression began.
    """
    if n < 1:
        raise ValueError(f"a baseline needs n >= 1, got {n}")
    decision = in_force(decisions, runs)
    if decision is None or decision.kind == "accept":
        chosen, decision, start = _rolling(runs, decisions, n)
        return Selection(
            tuple(r.run_id for r in chosen),
            decision,
            open_regressions(runs[start:], decision),
            rising_streaks(runs[start:], decision),
        )
    pin = _index(runs, decision.from_run_id)
    # The pinned run's level: it and the runs just before it like it (regressions, or not),
    # back to the start of a level someone decided on.
    starts = {d.from_run_id for d in decisions if d.decision_id < decision.decision_id}
    changed = _changed(runs[pin])
    first = pin
    while first > 0 and runs[first].run_id not in starts and _changed(runs[first - 1]) == changed:
        first -= 1
    level = list(runs[first : pin + 1])[-n:]
    after = [r for r in eligible(runs[pin + 1 :], None) if r.seq > decision.recorded_through]
    chosen = [*level, *after][:n]
    return Selection(
        tuple(r.run_id for r in chosen),
        decision,
        open_regressions(runs[pin:], decision),
        rising_streaks(runs[pin + 1 :], decision),
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


def rising_streaks(
    window: Sequence[LevelRun], decision: BaselineDecision | None
) -> dict[Budgeted, tuple[str, ...]]:
    """Per regression budget the latest run rose on: the runs that rose on it in a row."""
    if not window or _accepted(window[-1], decision):
        return {}
    out: dict[Budgeted, tuple[str, ...]] = {}
    for budgeted in sorted(window[-1].rising):
        streak: list[str] = []
        for run in reversed(window):
            if budgeted not in run.rising or _accepted(run, decision):
                break
            streak.append(run.run_id)
        out[budgeted] = tuple(reversed(streak))
    return out


def regression_start(
    runs: Sequence[LevelRun], run_id: str, decisions: Sequence[BaselineDecision]
) -> str:
    """Where the level ``accept run_id`` accepts begins: the first run of its regression.

    Walks back from ``run_id`` over the runs that broke a regression budget and that no
    decision in force covers, never past the start of the level in force. A run that broke
    nothing, or one from before the level in force, starts a level of its own.
    """
    decision = in_force(decisions, runs)
    start = 0 if decision is None else _index(runs, decision.from_run_id)
    index = _index(runs, run_id)
    if index < start or not runs[index].regressions or _accepted(runs[index], decision):
        return run_id
    return runs[max(start, _streak_start(runs, index, decision))].run_id
