"""``paybench compare BASE CANDIDATE``: two runs, given as run folders or run ids."""

from __future__ import annotations

from pathlib import Path

from harness.commands import Reply
from harness.core.compare import Comparison, compare_runs, format_comparison
from harness.core.model import RunResult
from harness.errors import ConfigError
from harness.store import DEFAULT_HISTORY, HistoryStore, StoredRun, run_dir_server_metrics


def compare(
    *, base: str, candidate: str, history: Path = DEFAULT_HISTORY, force: bool = False
) -> Reply:
    """The comparison table: change, 95 % CI and significance per request and metric."""
    comparison = compare_refs(base=base, candidate=candidate, history=history, force=force)
    return Reply(lines=tuple(format_comparison(comparison)))


def compare_refs(
    *,
    base: str,
    candidate: str,
    history: Path = DEFAULT_HISTORY,
    force: bool = False,
    warmup_s: float | None = None,
) -> Comparison:
    """The comparison of two runs (folders, or run ids or unique prefixes in the history),
    their server metrics included (a folder's from its summary.json)."""
    return compare_runs(
        load_stored_run(base, history=history, warmup_s=warmup_s),
        load_stored_run(candidate, history=history, warmup_s=warmup_s),
        force=force,
    )


def load_stored_run(
    ref: str, *, history: Path = DEFAULT_HISTORY, warmup_s: float | None = None
) -> StoredRun:
    """As ``load_run``, with the run's server metrics (and, from the history, its outcome)."""
    path = Path(ref)
    if path.is_dir():
        result = load_run(ref, history=history, warmup_s=warmup_s)
        return StoredRun(result=result, outcome=None, server=run_dir_server_metrics(path))
    _check_history(ref, history)
    return HistoryStore(history, create=False).get_run(ref)


def _check_history(ref: str, history: Path) -> None:
    if not Path(history).exists():
        raise ConfigError(
            f"{ref!r} is not a run folder, and there is no history at {history} to look "
            "the run id up in; give a folder under reports/runs/ or pass --history"
        )


def load_run(
    ref: str, *, history: Path = DEFAULT_HISTORY, warmup_s: float | None = None
) -> RunResult:
    """A run given as a folder or as a run id (or unique prefix) in the history."""
    path = Path(ref)
    if path.is_dir():
        from harness.results import read_run

        return read_run(path, warmup_s=warmup_s)
    _check_history(ref, history)
    return HistoryStore(history, create=False).get_run(ref).result
