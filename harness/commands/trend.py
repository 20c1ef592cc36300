"""``paybench trend``: trend.html and trend.md over the recorded runs of one profile.

The rows come from the history store (``harness.store``); the report is
``harness.report.trend`` (context, charts, templates).
"""

from __future__ import annotations

from pathlib import Path

from harness.commands import Reply
from harness.config import load_budgets
from harness.core.model import Budgets
from harness.errors import ConfigError
from harness.store import DEFAULT_HISTORY, UNTRUSTED_OUTCOMES, HistoryStore, RunRow


def trend(
    *,
    history: Path = DEFAULT_HISTORY,
    profile: str | None = None,
    last: int = 30,
    budgets_path: Path,
    out: Path,
) -> Reply:
    """The trend report of the last ``last`` runs of ``profile``; the lines name its files."""
    budgets = load_budgets(budgets_path, profile=profile)
    html, md = trend_report(
        out_dir=out, history=history, profile=profile, last=last, budgets=budgets
    )
    return Reply(lines=(f"wrote {html}", f"wrote {md}"))


def _comparable(latest: RunRow, r: RunRow) -> bool:
    same = (r.users, r.scenario_version, r.target) == (
        latest.users,
        latest.scenario_version,
        latest.target,
    )
    return same and (latest.target != "external" or r.host == latest.host)


def trend_report(
    *,
    out_dir: Path,
    history: Path = DEFAULT_HISTORY,
    profile: str | None = None,
    last: int | None = 30,
    budgets: Budgets | None = None,
    baseline_runs: int | None = None,
    p_value: float = 0.001,
    min_magnitude: float = 0.0,
) -> tuple[Path, Path]:
    """The last ``last`` runs of ``profile`` -> trend.html, trend.md in ``out_dir``.

    Without ``profile``, the profile of the latest run. Only runs comparable with the
    latest (same users, scenario version, target kind and, for an external target, host)
    are shown; incomplete and unreliable runs are left out. Those left out are listed.
    """
    from harness.report.trend import write_trend_report

    store = HistoryStore(history, create=False)
    if profile is None:
        latest = store.list_runs(last=1)
        if not latest:
            raise ConfigError(f"{history}: no runs yet; `paybench run` records runs there")
        profile = latest[0].profile
    runs = store.list_runs(profile=profile, last=last)
    if not runs:
        known = ", ".join(store.profiles()) or "none"
        raise ConfigError(
            f"no runs of profile {profile!r} in {history} (profiles there: {known}); "
            "pass --profile with one of them"
        )
    usable = [r for r in runs if not r.incomplete and r.outcome not in UNTRUSTED_OUTCOMES]
    if not usable:
        raise ConfigError(
            f"every run of profile {profile!r} in {history} is incomplete or unreliable"
        )
    left_out = [f"{r.run_id}: {r.outcome or 'incomplete'}" for r in runs if r not in usable]
    shown = [r for r in usable if _comparable(usable[-1], r)]
    left_out += [
        f"{r.run_id}: {r.users} users, scenario {r.scenario_version}, {r.target} target "
        "(differs from the latest run)"
        for r in usable
        if r not in shown
    ]
    n = baseline_runs or (budgets.baseline_runs if budgets else 5)
    metrics = store.request_metrics([r.run_id for r in shown])
    return write_trend_report(
        out_dir,
        shown,
        metrics,
        budgets,
        baseline_runs=n,
        p_value=p_value,
        min_magnitude=min_magnitude,
        left_out=left_out,
    )
