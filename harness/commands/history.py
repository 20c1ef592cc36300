"""``paybench history list|import|export``: the history of runs (``harness.store``) for people.

The store keeps and answers; here its answers become the lines the CLI prints, and the
export file is written (atomically, like everything paybench writes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from harness.commands import Reply
from harness.runfolder import write_atomic
from harness.store import DEFAULT_HISTORY, HistoryStore, ImportedRun, RunRow


def show(
    *, history: Path = DEFAULT_HISTORY, profile: str | None = None, last: int | None = None
) -> Reply:
    """``paybench history list``: the table of recorded runs, oldest first."""
    return Reply(
        lines=tuple(format_run_rows(history_list(history=history, profile=profile, last=last)))
    )


def import_runs(*, history: Path = DEFAULT_HISTORY, run_dirs: Sequence[Path]) -> Reply:
    """``paybench history import RUN_DIR...``: one line per folder."""
    return Reply(lines=tuple(format_imported(history_import(history=history, run_dirs=run_dirs))))


def export(
    *,
    history: Path = DEFAULT_HISTORY,
    fmt: Literal["csv", "jsonl"] = "csv",
    profile: str | None = None,
    last: int | None = None,
    output: Path | None = None,
) -> Reply:
    """``paybench history export``: the rows as lines, or written to ``output``."""
    text = history_export(history=history, fmt=fmt, profile=profile, last=last)
    if output is None:
        return Reply(lines=tuple(text.splitlines()))
    write_atomic(output, text, option="--output")
    return Reply(lines=(f"wrote {output}",))


def history_list(
    *, history: Path = DEFAULT_HISTORY, profile: str | None = None, last: int | None = None
) -> list[RunRow]:
    """The recorded runs, oldest first (a missing history is refused, not created)."""
    return HistoryStore(history, create=False).list_runs(profile=profile, last=last)


def format_run_rows(rows: Sequence[RunRow]) -> list[str]:
    """The lines ``paybench history list`` prints."""
    from harness.core.format import DASH, Column, fmt_count, fmt_pct, fmt_rps, fmt_value, text_table

    if not rows:
        return ["no runs in the history"]
    columns = (
        Column("run id"),
        Column("started (UTC)"),
        Column("profile"),
        Column("users", "right"),
        Column("scenario"),
        Column("outcome"),
        Column("requests", "right"),
        Column("errors", "right"),
        Column("req/s", "right"),
        Column("p95", "right"),
        Column("commit"),
    )
    table = [
        [
            r.run_id,
            (r.started_at or DASH)[:19].replace("T", " "),
            r.profile or DASH,
            fmt_count(r.users),
            r.scenario_version or DASH,
            r.outcome or DASH,
            fmt_count(r.requests),
            fmt_pct(r.error_rate_pct),
            fmt_rps(r.rps),
            fmt_value(r.p95_ms, "ms"),
            (r.git_commit or DASH)[:10],
        ]
        for r in rows
    ]
    return text_table(columns, table)


def history_import(
    *, history: Path = DEFAULT_HISTORY, run_dirs: Sequence[Path], warmup_s: float | None = None
) -> list[ImportedRun]:
    """Record run folders (CI artefacts); idempotent (an imported run is skipped)."""
    store = HistoryStore(history)
    return [store.import_run_dir(Path(d), warmup_s=warmup_s) for d in run_dirs]


def format_imported(rows: Sequence[ImportedRun]) -> list[str]:
    """The lines ``paybench history import`` prints: one per folder."""
    return [
        f"{'imported' if r.added else 'already in the history'}: {r.run_id} ({r.path})"
        for r in rows
    ]


def history_export(
    *,
    history: Path = DEFAULT_HISTORY,
    fmt: Literal["csv", "jsonl"] = "csv",
    profile: str | None = None,
    last: int | None = None,
) -> str:
    """The per-request metrics of the recorded runs as CSV or JSON lines."""
    return HistoryStore(history, create=False).export(fmt=fmt, profile=profile, last=last)
