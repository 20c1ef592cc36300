"""``paybench trend``: trend.html and trend.md over the recorded runs of one profile.

The rows come from the history store (``harness.store``); the report is
``harness.report.trend`` (context, charts, templates). ``unaccepted_level_notes`` asks the
same change-point rule for the run being judged (``harness.commands.check.judge``), so that
the nightly's summary names a new level nobody accepted.
"""

from __future__ import annotations

from pathlib import Path

from harness.commands import Reply
from harness.config import load_budgets
from harness.core import metrics as registry
from harness.core.budgets import is_glob, match_keys
from harness.core.format import fmt_change, fmt_p_value, fmt_value
from harness.core.model import AGGREGATE_KEY, Budgets, RunResult
from harness.errors import ConfigError
from harness.store import DEFAULT_HISTORY, UNTRUSTED_OUTCOMES, HistoryStore, RunRow

# How many runs, the judged one included, the nightly's change-point check looks back over.
LEVEL_RUNS = 30


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
        decisions=store.decisions(profile=profile),
        server=store.server_metrics([r.run_id for r in shown]),
    )


def unaccepted_level_notes(
    store: HistoryStore, result: RunResult, budgets: Budgets, runs: int = LEVEL_RUNS
) -> tuple[str, ...]:
    """A note per regression budget whose series moved to a worse level nobody accepted.

    The series: the budget's metric over the comparable runs before ``result`` (the
    baseline's, regressions included) and ``result`` itself, the last ``runs`` of them;
    the rule: ``harness.report.trend.unaccepted_change`` (the trend report's change points,
    p <= 0.001). A level the regression budgets already fail on is named too: the note
    says where it began.
    """
    from harness.report.trend import unaccepted_change

    earlier, decisions = store.level_history(result)
    earlier = earlier[-(runs - 1) :] if runs > 1 else []
    ids = [r.run_id for r in earlier]
    stored = {(m.run_id, m.request_key): m for m in store.request_metrics(ids)}
    notes = []
    for rb in budgets.regressions:
        if rb.selector == AGGREGATE_KEY:
            keys = [AGGREGATE_KEY]
        elif is_glob(rb.selector):
            keys = match_keys(rb.selector, [r.key for r in result.requests])
        else:
            keys = [rb.selector]
        for key in keys:
            found = result.find(key)
            values = [
                None if (m := stored.get((run_id, key))) is None else m.value(rb.metric)
                for run_id in ids
            ]
            values.append(None if found is None else registry.metric(rb.metric).measure(found))
            mark = unaccepted_change(key, rb.metric, values, [*ids, result.meta.run_id], decisions)
            if mark is None:
                continue
            unit = registry.unit_of(rb.metric)
            who = "the whole run" if key == AGGREGATE_KEY else key
            p_text = fmt_p_value(mark.p_value)
            notes.append(
                f"{rb.metric} of {who} moved to a new level at run {mark.run_id} "
                f"({fmt_value(mark.mean_before, unit)} to {fmt_value(mark.mean_after, unit)}, "
                f"{fmt_change(mark.change, mark.change_unit)}; change point "
                f"p {p_text if p_text.startswith('<') else '= ' + p_text}) that nobody has "
                "accepted; "
                f"`paybench baseline accept {mark.run_id} --reason TEXT` accepts it"
            )
    return tuple(notes)
