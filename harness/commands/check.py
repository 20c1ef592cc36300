"""``paybench check RUN_DIR``: judge a run folder again; and the judging every run ends in.

``judge`` is shared with ``paybench run``: read the folder, look up the baseline, judge,
write summary.json and the reports, record the run in the history.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from harness.config import load_budgets
from harness.core import server_regressions
from harness.core.abort import with_abort
from harness.core.evaluate import evaluate, exit_code, format_verdict_table
from harness.core.model import Baseline, BudgetResult, Budgets, RunResult, Verdict
from harness.core.server_eval import Window, with_server_results
from harness.errors import EXIT_INTERRUPTED, ConfigError, StorageError
from harness.results import read_meta, read_run
from harness.runfolder import SUMMARY_FILE, bugs_reported_in, write_baseline
from harness.server.results import load_run_server_data, recording_start_epoch, server_results
from harness.server.scraper import DEFAULT_INTERVAL_S
from harness.summary import write_summary


@dataclass(frozen=True)
class RunOutcome:
    """A judged run: the verdict, where its files are, and what became of it in the history."""

    run_dir: Path
    result: RunResult
    verdict: Verdict
    exit_code: int
    report_paths: tuple[Path, ...]
    history_note: str | None = None

    @property
    def lines(self) -> tuple[str, ...]:
        """The verdict table, then where the run folder, the report and the history are."""
        out = [*format_verdict_table(self.verdict), ""]
        if not self.result.exact:
            out.append(
                "measured by: Locust's CSV (response times rounded to ~2 significant digits; "
                "run through paybench for exact percentiles)"
            )
        out.append(f"run folder: {self.run_dir}")
        html = next((p for p in self.report_paths if p.suffix == ".html"), None)
        if html is not None:
            out.append(f"report:     {html}")
        if self.history_note:
            out.append(f"history:    {self.history_note}")
        return tuple(out)


def _has_regressions(budgets: Budgets) -> bool:
    return bool(budgets.regressions or (budgets.server and budgets.server.regressions))


def server_regression_results(
    run_dir: Path, result: RunResult, budgets: Budgets, baseline: Baseline | None
) -> tuple[BudgetResult, ...]:
    """``regressions.server``: each metric's steady-state value from server.jsonl, judged
    against the baseline (``harness.core.server_regressions``)."""
    section = budgets.server
    if section is None or not section.regressions:
        return ()
    scraped = load_run_server_data(run_dir)
    start = recording_start_epoch(run_dir)
    data = None if scraped is None or start is None else scraped[1]
    origin = start or 0.0
    window = Window(
        origin + result.steady_start_s,
        origin + result.steady_end_s,
        scraped[0] if scraped is not None else DEFAULT_INTERVAL_S,
    )
    measured = server_regressions.measure(
        section.regressions,
        section.sources,
        data,
        window,
        builtin_target=result.meta.target == "reference",
        completed=result.total.count,
    )
    return server_regressions.judge_all(section.regressions, measured, baseline)


def verdict_of(
    run_dir: Path, result: RunResult, budgets: Budgets, baseline: Baseline | None
) -> Verdict:
    """The run's verdict: request budgets and regressions, an abort, the server budgets and
    the server regressions. ``paybench report`` renders it again with the same call."""
    verdict = with_abort(evaluate(result, budgets, baseline), result.meta.extra)
    verdict = with_server_results(verdict, server_results(run_dir, result, budgets))
    regressed = server_regression_results(run_dir, result, budgets, baseline)
    return with_server_results(verdict, regressed)


def check(*, run_dir: Path, budgets_path: Path, profile: str | None = None) -> RunOutcome:
    """Judge an existing run folder again (one of ours, or a plain ``locust --csv`` folder)."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    with bugs_reported_in(run_dir):
        # Names are not checked against the run: a budgeted name that never ran is "no samples".
        budgets = load_budgets(budgets_path, profile=profile or read_meta(run_dir).profile)
        return judge(run_dir, budgets)


def judge(
    run_dir: Path,
    budgets: Budgets,
    *,
    history: Path | None = None,
    interrupted: bool = False,
) -> RunOutcome:
    """Read a run folder, judge it, write summary and reports, record it in ``history``.

    A history that cannot be read (not a history, a newer schema) does not change the
    verdict: the run is judged without a baseline and the note says it was not recorded.
    A history the disk refuses to write is a StorageError (exit 3), raised once the
    reports are written.
    """
    from harness.store import HistoryStore

    result = read_run(run_dir, warmup_s=budgets.warmup_s)
    store = HistoryStore(history) if history is not None else None
    baseline = None
    unusable: str | None = None  # why the history was left aside
    refused: StorageError | None = None
    if store is not None and _has_regressions(budgets):
        try:
            baseline = store.baseline_for(result, n=budgets.baseline_runs)
            if baseline is not None:
                from harness.commands.trend import unaccepted_level_notes

                # A new level nobody accepted is named in the summary, failing or not.
                notes = unaccepted_level_notes(store, result, budgets)
                baseline = dataclasses.replace(baseline, notes=notes)
        except StorageError as e:
            store, refused = None, e
        except ConfigError as e:
            store, unusable = None, e.message
    if baseline is not None:
        write_baseline(run_dir, baseline)
    verdict = verdict_of(run_dir, result, budgets, baseline)
    code = EXIT_INTERRUPTED if interrupted else exit_code(verdict)
    write_summary(run_dir, result, verdict, code)
    from harness.report import write_reports

    files = write_reports(run_dir, result, verdict, budgets)
    note = None
    if store is not None and result.incomplete:
        note = "not recorded (the run is incomplete)"
    elif store is not None:
        try:
            added = store.add_run(result, verdict)
            note = f"recorded in {store.path}" if added else f"already in {store.path}"
        except StorageError as e:
            refused = e
        except ConfigError as e:
            unusable = e.message
    if refused is not None:
        raise StorageError(
            f"{refused.message}; the run is not recorded in the history, its verdict "
            f"({verdict.outcome}) and reports are in {run_dir}"
        )
    if unusable is not None:
        note = f"not recorded: {unusable}"
        if _has_regressions(budgets) and baseline is None:
            note += " (the regression budgets were judged without a baseline)"
    return RunOutcome(
        run_dir=run_dir,
        result=result,
        verdict=verdict,
        exit_code=code,
        report_paths=(run_dir / SUMMARY_FILE, files.html, files.markdown, files.junit),
        history_note=note,
    )
