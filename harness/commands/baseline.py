"""``paybench baseline accept RUN --reason TEXT`` and ``paybench baseline pin RUN``.

A regression budget that broke keeps breaking the nightly until somebody decides
(``harness.core.levels``): ``accept`` makes the level of RUN's regression the new baseline,
``pin`` makes RUN itself the baseline. Both are recorded in the history with the time (and
the reason), and ``paybench history list`` and the trend report show them.
"""

from __future__ import annotations

from pathlib import Path

from harness.commands import Reply
from harness.core.format import plural
from harness.errors import ConfigError
from harness.store import DEFAULT_HISTORY, HistoryStore

MAX_REASON_CHARS = 500


def accept(*, run: str, reason: str, history: Path = DEFAULT_HISTORY) -> Reply:
    """Accept the level of ``run`` (a run id or a unique prefix) as the new baseline."""
    text = " ".join(reason.split())
    if not text:
        raise ConfigError(
            "--reason is empty; say why the new level is right, e.g. --reason "
            '"fraud check adds 8 ms to initiate"'
        )
    if len(text) > MAX_REASON_CHARS:
        raise ConfigError(f"--reason is {len(text)} characters; keep it to {MAX_REASON_CHARS}")
    store = HistoryStore(history, create=False)
    decision, covered = store.decide("accept", run, text)
    level = (
        f"from {decision.from_run_id}"
        if decision.from_run_id == decision.run_id
        else f"from {decision.from_run_id}, where the regression of {decision.run_id} began"
    )
    lines = [
        f"accepted the level {level} in {history}: {text}",
        f"{plural(covered, 'run')} that broke a regression budget "
        f"{'is' if covered == 1 else 'are'} part of it now; the next "
        f"comparable run is judged against the runs from {decision.from_run_id} on",
    ]
    if covered == 0:
        lines[1] = (
            f"{decision.run_id} broke no regression budget: the baseline starts again at it, "
            "and earlier runs no longer count"
        )
    return Reply(lines=tuple(lines))


def pin(*, run: str, history: Path = DEFAULT_HISTORY) -> Reply:
    """Pin ``run`` as the baseline: it, then the first runs after the pin, and no drift."""
    store = HistoryStore(history, create=False)
    decision, _ = store.decide("pin", run)
    return Reply(
        lines=(
            f"pinned {decision.run_id} as the baseline in {history}",
            "the next comparable runs are judged against it, joined by the runs after the pin "
            "that break no regression budget until the baseline has its full count; then it "
            "stays fixed until the next accept or pin",
        )
    )
