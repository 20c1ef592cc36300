"""``paybench history list|import|export``: the history of runs (``harness.store``) for people.

The store keeps and answers; here its answers become the lines the CLI prints, and the
export file is written (atomically, like everything paybench writes). The list shows which
runs were regressions and the levels accepted or pinned (``paybench baseline``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from harness.commands import Reply
from harness.core.format import DASH
from harness.core.model import BaselineDecision
from harness.runfolder import write_atomic
from harness.store import DEFAULT_HISTORY, HistoryStore, ImportedRun, RunRow, ServerMetric


def show(
    *, history: Path = DEFAULT_HISTORY, profile: str | None = None, last: int | None = None
) -> Reply:
    """``paybench history list``: the table of recorded runs, oldest first, then the levels
    accepted or pinned among them."""
    store = HistoryStore(history, create=False)
    rows = store.list_runs(profile=profile, last=last)
    shown = {r.run_id for r in rows}
    decisions = [d for d in store.decisions(profile=profile) if d.from_run_id in shown]
    server = store.server_metrics([r.run_id for r in rows])
    lines = [*format_run_rows(rows, decisions), *format_server_rows(rows, server)]
    return Reply(lines=tuple(lines))


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


def _levels(rows: Sequence[RunRow], decisions: Sequence[BaselineDecision]) -> dict[str, str]:
    """Each run's level label: a regression, a run that rose beyond a regression budget
    without significance, where a level was accepted or pinned, and the regressions a
    decision covered (those recorded by then, from its level's first run on)."""
    position = {r.run_id: i for i, r in enumerate(rows)}
    labels = {r.run_id: "rose" for r in rows if r.rose}
    labels.update({r.run_id: "regression" for r in rows if r.regression})
    for d in decisions:
        start = position.get(d.from_run_id)
        if start is None:
            continue
        for r in rows[start:]:
            if r.regression and r.seq <= d.recorded_through:
                labels[r.run_id] = "accepted regression"
    for d in decisions:  # the latest decision on a run is the one its label shows
        if d.from_run_id in position:
            labels[d.from_run_id] = "accepted level" if d.kind == "accept" else "pinned"
    return labels


def format_decision(d: BaselineDecision) -> str:
    """``accepted 2025-11-27 09:12 UTC: the level from RUN (named RUN2): reason``."""
    when = d.decided_at[:16].replace("T", " ") + " UTC"
    if d.kind == "pin":
        return f"pinned {when}: {d.from_run_id} is the baseline"
    named = "" if d.run_id == d.from_run_id else f" (named {d.run_id})"
    because = f": {d.reason}" if d.reason else ""
    return f"accepted {when}: the level from {d.from_run_id}{named}{because}"


def format_run_rows(
    rows: Sequence[RunRow], decisions: Sequence[BaselineDecision] = ()
) -> list[str]:
    """The lines ``paybench history list`` prints: a table of the runs, oldest first, with
    each run's level (regression, accepted, pinned), then one line per decision."""
    from harness.core.format import Column, fmt_count, fmt_pct, fmt_rps, fmt_value, text_table

    if not rows:
        return ["no runs in the history"]
    columns = (
        Column("run id"),
        Column("started (UTC)"),
        Column("profile"),
        Column("users", "right"),
        Column("scenario"),
        Column("outcome"),
        Column("level"),
        Column("requests", "right"),
        Column("errors", "right"),
        Column("req/s", "right"),
        Column("p95", "right"),
        Column("commit"),
    )
    levels = _levels(rows, decisions)
    table = [
        [
            r.run_id,
            (r.started_at or DASH)[:19].replace("T", " "),
            r.profile or DASH,
            fmt_count(r.users),
            r.scenario_version or DASH,
            r.outcome or DASH,
            levels.get(r.run_id, DASH),
            fmt_count(r.requests),
            fmt_pct(r.error_rate_pct),
            fmt_rps(r.rps),
            fmt_value(r.p95_ms, "ms"),
            (r.git_commit or DASH)[:10],
        ]
        for r in rows
    ]
    lines = text_table(columns, table)
    if decisions:
        lines.append("")
        lines.append("accepted levels (paybench baseline accept|pin), oldest first:")
        lines.extend(f"  {format_decision(d)}" for d in decisions)
    return lines


def format_server_rows(rows: Sequence[RunRow], server: Sequence[ServerMetric]) -> list[str]:
    """The server metrics of the listed runs (their server budgets' values), a row per run
    and a column per source and metric; nothing when no run has any."""
    from harness.core.format import Column, fmt_value, text_table

    if not server:
        return []
    by_run: dict[str, dict[tuple[str, str], ServerMetric]] = {}
    for m in server:
        by_run.setdefault(m.run_id, {})[m.source, m.metric] = m
    keys = list(dict.fromkeys((m.source, m.metric) for m in server))
    units = {(m.source, m.metric): m.unit for m in server}
    columns = (Column("run id"), *(Column(f"{s} {metric}", "right") for s, metric in keys))
    table = []
    for r in rows:
        have = by_run.get(r.run_id, {})
        table.append(
            [
                r.run_id,
                *(fmt_value(have[k].value if k in have else None, units[k]) for k in keys),
            ]
        )
    return ["", "server metrics (steady state; .run: the whole run):", *text_table(columns, table)]


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
