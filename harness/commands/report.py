"""``paybench report RUN_DIR``: write report.html, summary.md and junit.xml again (nothing else).

The run is judged as it was: against the budgets snapshot in its folder (unless another
file is given) and the baseline it was compared with (baseline.json).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from harness.commands import Reply
from harness.commands.check import verdict_of
from harness.config import load_budgets
from harness.errors import ConfigError
from harness.results import read_meta, read_run
from harness.runfolder import BUDGETS_SNAPSHOT, bugs_reported_in, load_baseline, load_run_record


def report(*, run_dir: Path, budgets_path: Path | None = None) -> Reply:
    """Render the run's reports again; the lines name the files written."""
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run folder")
    with bugs_reported_in(run_dir):
        path = budgets_path or run_dir / BUDGETS_SNAPSHOT
        if not path.exists():
            raise ConfigError(
                f"{run_dir}: no copy of the budgets in the run folder (not written by "
                "`paybench run`); pass --budgets FILE"
            )
        budgets = load_budgets(path, profile=read_meta(run_dir).profile)
        if budgets_path is None:
            # The copy stands for the file the run named: the reports say the same as before.
            record = load_run_record(run_dir)
            if record is not None and record.budgets:
                budgets = dataclasses.replace(budgets, source=record.budgets)
        result = read_run(run_dir, warmup_s=budgets.warmup_s)
        verdict = verdict_of(run_dir, result, budgets, load_baseline(run_dir))
        from harness.report import write_reports

        files = write_reports(run_dir, result, verdict, budgets)
    return Reply(lines=tuple(f"wrote {p}" for p in (files.html, files.markdown, files.junit)))
