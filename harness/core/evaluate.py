"""RunResult x Budgets (x Baseline) -> Verdict, and the verdict table the CLI prints (pure).

Every budget is expanded against the request keys of the run's steady state; a name that
never ran is a "no samples" failure, never a silent pass. Percentile and average budgets
carry a 95 % confidence interval from ``harness.core.stats``; when it straddles the limit the
result is marked marginal (still judged on the measured value).

A regression budget is broken when the rise over the baseline exceeds what it allows and,
for a ``significant`` one, lies beyond both the spread between the baseline runs and the
run's own interval (``stats.above_baseline``). A regression the history holds open (see
``harness.core.levels``) keeps breaking it until it is accepted or the run is back at the
baseline. A run whose own interval is too wide to tell a rise of the allowed size is
"inconclusive": not broken, not a pass, and said so with the samples it would need.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.core import metrics as registry
from harness.core import stats
from harness.core.budgets import is_glob, match_keys
from harness.core.format import (
    DASH,
    Column,
    fmt_change,
    fmt_interval,
    fmt_limit,
    fmt_margin,
    fmt_seconds,
    fmt_value,
    plural,
    table_width,
    text_table,
    wrap_text,
)
from harness.core.model import (
    AGGREGATE_KEY,
    Baseline,
    Budget,
    BudgetResult,
    Budgets,
    OpenRegression,
    Outcome,
    RegressionBudget,
    RequestStats,
    RunResult,
    Status,
    Verdict,
    metric_unit,
)
from harness.errors import EXIT_BUDGET_BROKEN, EXIT_OK, EXIT_UNJUDGEABLE

CONFIDENCE = 0.95
SEED = 1
MIN_PREDICTION_RUNS = stats.MIN_PREDICTION_RUNS
NO_BASELINE_YET = (
    "no baseline yet: this is the first comparable run; regression budgets start with the next"
)

TABLE_COLUMNS = (
    Column("request"),
    Column("metric"),
    Column("measured", "right"),
    Column("limit"),
    Column("margin", "right"),
    Column("95 % CI"),
    Column("result"),
)
TABLE_HEADER = tuple(c.title for c in TABLE_COLUMNS)


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Measure:
    value: float | None
    problem: str | None = None  # why there is no value (data lacks the percentile)
    ci: stats.ConfidenceInterval | None = None


def _ci(s: RequestStats, percent: float | None) -> stats.ConfidenceInterval | None:
    """The 95 % interval of a percentile (or of the mean when ``percent`` is None)."""
    if s.histogram is None:
        return None
    if percent is None:
        return stats.mean_ci(s.histogram, s.interval_histograms, CONFIDENCE, SEED)
    return stats.percentile_ci(s.histogram, s.interval_histograms, percent, CONFIDENCE, SEED)


def _measure(metric: str, s: RequestStats) -> _Measure:
    info = registry.metric(metric)
    if info.percentile is None:
        # The mean has an interval from the histograms; min, max, rates and counts have none.
        return _Measure(info.measure(s), ci=_ci(s, None) if metric == "avg" else None)
    percent = info.percentile
    value = info.measure(s)
    # An exact histogram has every percentile; Locust's CSV only a fixed few.
    if value is None:
        have = ", ".join(f"p{p:g}" for p in sorted(s.locust_percentiles_ms)) or "none"
        return _Measure(
            None,
            f"{metric} is not available from Locust's CSV (it has {have}); run the test "
            "through 'paybench run', which records every latency, or budget a percentile "
            "the CSV has",
        )
    ci = None
    if s.histogram is not None:
        ci = _ci(s, percent)
    return _Measure(value, ci=ci)


def _holds(op: str, measured: float, limit: float) -> bool:
    return {
        "<": measured < limit,
        "<=": measured <= limit,
        ">": measured > limit,
        ">=": measured >= limit,
    }[op]


def margin_pct(op: str, measured: float, limit: float) -> float | None:
    """Headroom in percent of the limit: positive while the budget holds, negative when broken.

    None for a limit of zero (``error_rate: "<= 0%"``), where no percentage exists.
    """
    if limit == 0:
        return None
    if op in ("<", "<="):
        return (limit - measured) / limit * 100.0
    return (measured - limit) / limit * 100.0


# --- expanding selectors --------------------------------------------------------------------


def _no_samples_message(key: str, result: RunResult) -> str:
    if key == AGGREGATE_KEY:
        return "no samples: no request completed in the steady state of this run"
    if any(r.key == key and r.count for r in result.ramp):
        return f"no samples: {key!r} ran only during the ramp, not in the steady state"
    return f"no samples: {key!r} never ran in this run"


def _expand(selector: str, result: RunResult) -> list[tuple[str, RequestStats | None, str]]:
    """(request key, its steady-state stats or None, the no-samples message) per match."""
    if selector == AGGREGATE_KEY:
        keys = [AGGREGATE_KEY]
    elif is_glob(selector):
        # Matched against what ran, so that a custom locustfile's names count too.
        keys = match_keys(selector, [r.key for r in result.requests])
        if not keys:
            message = f"no samples: no request matching {selector!r} ran in this run"
            return [(selector, None, message)]
    else:
        keys = [selector]
    out: list[tuple[str, RequestStats | None, str]] = []
    for key in keys:
        found = result.find(key)
        if found is None or found.count == 0:
            out.append((key, None, _no_samples_message(key, result)))
        else:
            out.append((key, found, ""))
    return out


# --- judging --------------------------------------------------------------------------------


def _judge(b: Budget, result: RunResult) -> list[BudgetResult]:
    out = []
    for key, s, no_samples in _expand(b.selector, result):
        if s is None:
            out.append(BudgetResult(b, key, "no samples", None, b.limit, None, message=no_samples))
            continue
        m = _measure(b.metric, s)
        if m.value is None:
            message = m.problem or _no_samples_message(key, result)
            out.append(BudgetResult(b, key, "fail", None, b.limit, None, message=message))
            continue
        # Judged on the measured value; the interval only says how sure that is.
        held = _holds(b.op, m.value, b.limit)
        ci_low = m.ci.low_ms if m.ci else None
        ci_high = m.ci.high_ms if m.ci else None
        marginal = m.ci is not None and m.ci.low_ms <= b.limit <= m.ci.high_ms
        measured = fmt_value(m.value, b.unit)
        limit = fmt_value(b.limit, b.unit)
        if held:
            message = ""
            if marginal:
                message = (
                    f"holds, but the 95 % confidence interval "
                    f"{_fmt_ci(ci_low, ci_high, b.unit)} straddles the limit {limit}: "
                    "a longer run would tell"
                )
        else:
            message = f"{b.metric} {measured} breaks {b.metric} {b.op} {limit}"
            if marginal:
                message += " (marginal: the 95 % confidence interval straddles the limit)"
        out.append(
            BudgetResult(
                b,
                key,
                "pass" if held else "fail",
                m.value,
                b.limit,
                margin_pct(b.op, m.value, b.limit),
                ci_low,
                ci_high,
                marginal,
                message=message,
            )
        )
    return out


def _candidate_interval(
    rb: RegressionBudget, s: RequestStats, m: _Measure
) -> tuple[float, float] | None:
    """The run's own 95 % interval of the metric (Wilson for error_rate), in its unit."""
    if rb.metric == "error_rate":
        low, high = stats.wilson_interval(s.failures, s.count, CONFIDENCE)
        return 100.0 * low, 100.0 * high
    if m.ci is not None:
        return m.ci.low_ms, m.ci.high_ms
    return None


def _significance(
    rb: RegressionBudget,
    candidate: float,
    values: Sequence[float],
    interval: tuple[float, float] | None,
) -> tuple[bool | None, str]:
    """Whether the candidate is higher than the baseline beyond both kinds of noise.

    ``stats.above_baseline``: above the 95 % prediction interval of the baseline runs,
    widened by the run's own interval when that is the wider (percentile/mean intervals
    from ``harness.core.stats``, the Wilson interval for error_rate). None with fewer than
    ``MIN_PREDICTION_RUNS`` baseline runs: without their spread it cannot be told.
    """
    unit = metric_unit(rb.metric)
    n = len(values)
    sig = stats.above_baseline(values, candidate, interval, CONFIDENCE)
    # Only a rise can break a regression budget, so only the upper side counts.
    if sig.method == stats.METHOD_PREDICTION_INTERVAL:
        where = "above" if sig.above else "below" if sig.below else "within"
        interval_text = _fmt_ci(sig.low, sig.high, unit)
        widened = ", widened by the run's own 95 % interval" if sig.widened else ""
        return sig.above, (
            f"{where} the 95 % prediction interval {interval_text} of {n} runs{widened}"
        )
    return None, (
        f"significance unknown: the baseline has {plural(n, 'run')}, and the spread "
        f"between runs a rise must stand out of needs {MIN_PREDICTION_RUNS}"
    )


@dataclass(frozen=True)
class _Resolution:
    """Whether the run's own samples can tell a rise of the allowed size from none.

    ``half_width``: half the width of the run's own 95 % interval, in the metric's unit
    (the noise a rise must stand out of; `stats.own_standard_error` times z); ``needed``:
    about how many samples would bring it within the allowed rise
    (`stats.samples_for_half_width`); ``run_s``: about how long a run that collects them
    would be.
    """

    enough: bool
    samples: int
    half_width: float
    needed: int
    run_s: float | None


def _run_length_s(result: RunResult, s: RequestStats, samples: int) -> float | None:
    """A run long enough for ``samples`` of ``s`` at its steady rate, ramp and warm-up kept."""
    if s.duration_s <= 0 or s.count == 0:
        return None
    rate = s.count / s.duration_s
    steady = result.steady_end_s - result.steady_start_s
    planned = result.meta.run_time_s
    outside = max(0.0, planned - steady) if planned else max(0.0, result.steady_start_s)
    total = outside + samples / rate
    step = 5.0 if total < 120 else 60.0
    return math.ceil(total / step) * step


def _resolution(
    rb: RegressionBudget,
    s: RequestStats,
    result: RunResult,
    value: float,
    base: float,
    interval: tuple[float, float] | None,
    allowed: float,
) -> _Resolution | None:
    """How finely this run resolves a change of ``allowed`` (None: nothing to tell by)."""
    if allowed <= 0 or s.count == 0:
        return None
    if rb.metric == "error_rate":
        # A rate's interval depends on the rate: read it at the highest rate allowed,
        # where a rise would have to show.
        at_pct = min(100.0, base + allowed)
        failures = min(s.count, round(at_pct / 100.0 * s.count))
        low, high = stats.wilson_interval(failures, s.count, CONFIDENCE)
        half = 100.0 * (high - low) / 2.0
    elif interval is not None:
        half = (max(interval[1], value) - min(interval[0], value)) / 2.0
    else:
        return None
    # A relative budget asks about a share of the value, and an interval's width scales
    # with the value: a step to twice the latency is no harder to see than the baseline.
    target = allowed * value / base if rb.relative and base > 0 else allowed
    if target <= 0:
        return None
    needed = stats.samples_for_half_width(s.count, half, target)
    return _Resolution(half <= target, s.count, half, needed, _run_length_s(result, s, needed))


# How the message of a run too short to resolve its regression budget begins: such a run
# tells nothing of a level, and the history does not count its rise (``harness.store``).
CANNOT_DETECT = "cannot detect a "


def _cannot_detect(rb: RegressionBudget, res: _Resolution) -> str:
    """``cannot detect a 10 % change with 110 samples; about 420 are needed, a run of ...``."""
    unit = metric_unit(rb.metric)
    if rb.relative:
        size = fmt_limit(rb.max_increase, "%")
    else:
        size = fmt_limit(rb.max_increase, "points" if unit == "%" else unit)
    run = f", a run of about {fmt_seconds(res.run_s)}" if res.run_s is not None else ""
    return (
        f"{CANNOT_DETECT}{size} change with {res.samples:,} samples; about {res.needed:,} "
        f"are needed{run} (the run's own 95 % interval is +-{fmt_value(res.half_width, unit)} "
        "wide and narrows as 1/sqrt(samples))"
    )


def _change(rb: RegressionBudget, value: float, base: float) -> float:
    """The rise over the baseline as the budget counts it: percent of it, or units/points."""
    if not rb.relative:
        return value - base
    if base > 0:
        return (value - base) / base * 100.0
    return math.inf if value > base else 0.0  # any rise from zero is an infinite relative rise


def _held(
    rb: RegressionBudget,
    open_regression: OpenRegression,
    change: float,
    base: float,
    rose: bool,
) -> str | None:
    """Why an open regression still fails this run (None: the runs show it gone).

    A run is back when it is within the allowed rise and nearer the baseline than the
    regression's level (the median of its runs that rose beyond the allowed rise: the runs
    held while back do not pull it down). One run back could be noise: the regression ends
    when this run and the one before it are both back. Judged on the measured values, so
    that runs too short to resolve a change can still end a regression, two in a row.
    """
    unit = metric_unit(rb.metric)
    risen = [v for v in open_regression.values if _change(rb, v, base) > rb.max_increase]
    level = statistics.median(risen or open_regression.values)
    half_way = _change(rb, level, base) / 2.0
    before = _change(rb, open_regression.values[-1], base)
    back = not rose and change <= half_way
    if back and before <= rb.max_increase and before <= half_way:
        return None
    since = open_regression.since_run_id
    runs = plural(len(open_regression.values), "run")
    why = (
        "this run is back, but the one before it was not (two in a row end it)"
        if back
        else "this run is not back (back: within the allowed rise and nearer the baseline "
        "than that level)"
    )
    return (
        f"broken: the regression since {since} ({runs}, at {fmt_value(level, unit)}) has not "
        f"been accepted and {why}; `paybench baseline accept {since} --reason TEXT` "
        "accepts it"
    )


def _pooled(
    rb: RegressionBudget,
    value: float,
    risen: Sequence[float],
    base: float,
    values: Sequence[float],
    interval: tuple[float, float] | None,
) -> str | None:
    """Why this run and the runs just before it that rose too break the budget together.

    Each of them rose beyond the allowed rise without the rise being significant; their
    mean, a level that stayed up, is judged by the same test (``stats.above_baseline``
    over ``len(risen) + 1`` runs). None when it holds.
    """
    unit = metric_unit(rb.metric)
    runs = len(risen) + 1
    mean = statistics.fmean((*risen, value))
    change = _change(rb, mean, base)
    if not change > rb.max_increase:
        return None
    sig = stats.above_baseline(values, mean, interval, CONFIDENCE, runs=runs)
    if not sig.above:
        return None
    rise = fmt_change(change, "%" if rb.relative else ("points" if unit == "%" else unit))
    return (
        f"broken: with the {plural(runs - 1, 'run')} before it that rose too, the mean "
        f"{fmt_value(mean, unit)} ({rise}) lies above the 95 % prediction interval "
        f"{_fmt_ci(sig.low, sig.high, unit)} of the mean of {runs} runs"
    )


def _judge_regression(
    rb: RegressionBudget, result: RunResult, baseline: Baseline | None
) -> list[BudgetResult]:
    out = []
    unit = metric_unit(rb.metric)
    described = baseline.description if baseline else None
    for key, s, no_samples in _expand(rb.selector, result):
        if s is None:
            out.append(
                BudgetResult(
                    rb, key, "no samples", None, 0.0, None, baseline=described, message=no_samples
                )
            )
            continue
        m = _measure(rb.metric, s)
        if m.value is None:
            out.append(
                BudgetResult(
                    rb, key, "fail", None, 0.0, None, baseline=described, message=m.problem or ""
                )
            )
            continue
        ci_low = m.ci.low_ms if m.ci else None
        ci_high = m.ci.high_ms if m.ci else None
        values = tuple(baseline.values.get(key, {}).get(rb.metric, ())) if baseline else ()
        # The first night has nothing to compare with: failing it would teach people to
        # ignore the job, passing it would claim a comparison that never happened.
        if not values:
            message = NO_BASELINE_YET
            if baseline is not None:
                who = "the whole run" if key == AGGREGATE_KEY else repr(key)
                message = (
                    f"the baseline ({baseline.description}) has no {rb.metric} of {who} yet: "
                    "regression budgets start with the next comparable run"
                )
            out.append(
                BudgetResult(
                    rb,
                    key,
                    "skipped",
                    m.value,
                    0.0,
                    None,
                    ci_low,
                    ci_high,
                    baseline=described,
                    message=message,
                )
            )
            continue
        base = statistics.median(values)
        change = _change(rb, m.value, base)
        if rb.relative:
            threshold = base * (1.0 + rb.max_increase / 100.0)
            allowed_abs = base * rb.max_increase / 100.0
            change_text = fmt_change(change, "%") if math.isfinite(change) else "up from zero"
            allowed = f"+{fmt_limit(rb.max_increase, '%')}"
        else:
            threshold = base + rb.max_increase
            allowed_abs = rb.max_increase
            # A rate rises in percentage points, as its regression budget is written.
            points = "points" if unit == "%" else unit
            change_text = fmt_change(change, points)
            allowed = f"+{fmt_limit(rb.max_increase, points)}"
        interval = _candidate_interval(rb, s, m)
        significant, how = _significance(rb, m.value, values, interval)
        resolution = _resolution(rb, s, result, m.value, base, interval, allowed_abs)
        rose = change > rb.max_increase
        # A run that cannot resolve a change of the allowed size judges no significant
        # budget, either way: a rise it shows is as likely the tail of its own noise.
        unresolved = rb.significant_only and resolution is not None and not resolution.enough
        broken = rose and (bool(significant) or not rb.significant_only) and not unresolved
        status: Status = "fail" if broken else "pass"
        if broken:
            verdict = "broken"
        elif rose and significant is None and rb.significant_only and not unresolved:
            status = "inconclusive"
            verdict = "inconclusive: whether the rise is significant cannot be told yet"
        elif rose and not unresolved:
            verdict = "holds: the rise is not significant"
        else:
            verdict = "holds"
        opened = baseline.open_regressions.get(key, {}).get(rb.metric) if baseline else None
        risen = baseline.rising.get(key, {}).get(rb.metric) if baseline else None
        if not broken and opened is None and risen and rb.significant_only and not unresolved:
            pooled = _pooled(rb, m.value, risen, base, values, interval)
            if pooled is not None:
                broken, status, verdict = True, "fail", pooled
        if not broken and opened is not None:
            held = _held(rb, opened, change, base, rose)
            if held is not None:
                status, verdict = "fail", held
        elif broken and opened is not None:
            since = opened.since_run_id
            verdict += (
                f"; the regression since {since} ({plural(len(opened.values), 'run')}) has not "
                f"been accepted: `paybench baseline accept {since} --reason TEXT` accepts it"
            )
        if status == "pass" and unresolved and resolution is not None:
            status, verdict = "inconclusive", f"{_cannot_detect(rb, resolution)}; inconclusive"
        message = (
            f"{rb.metric} {fmt_value(m.value, unit)} vs baseline {fmt_value(base, unit)} "
            f"({baseline.description if baseline else ''}): {change_text}, allowed {allowed}"
            f"{' if significant' if rb.significant_only else ''}; {how}; {verdict}"
        )
        # The limit of a regression budget is the baseline plus the allowed rise, so that
        # its margin and marginal flag read like those of any other budget.
        # An inconclusive result says more than "marginal" would: it is not both.
        marginal = m.ci is not None and m.ci.low_ms <= threshold <= m.ci.high_ms
        marginal = marginal and status != "inconclusive"
        out.append(
            BudgetResult(
                rb,
                key,
                status,
                m.value,
                threshold,
                margin_pct("<=", m.value, threshold),
                ci_low,
                ci_high,
                marginal,
                baseline=described,
                message=message,
            )
        )
    return out


def evaluate(result: RunResult, budgets: Budgets, baseline: Baseline | None = None) -> Verdict:
    """Judge every budget (and regression budget) of ``budgets`` on ``result``'s steady state.

    Without a baseline (the first comparable run), regression budgets are "skipped": not
    broken, and said so in the message.
    """
    results: list[BudgetResult] = []
    for b in budgets.budgets:
        results.extend(_judge(b, result))
    for rb in budgets.regressions:
        results.extend(_judge_regression(rb, result, baseline))
    # INCOMPLETE first: a run that did not finish is that, whatever else is wrong with it;
    # then UNRELIABLE: a saturated generator makes even a finished run's figures suspect.
    notes = baseline.notes if baseline is not None and budgets.regressions else ()
    if result.incomplete:
        reasons = (result.incomplete_reason or "the run did not finish",)
        return Verdict(
            "INCOMPLETE", tuple(results), reasons + tuple(result.unreliable_reasons), notes
        )
    if result.unreliable_reasons:
        return Verdict("UNRELIABLE", tuple(results), tuple(result.unreliable_reasons), notes)
    outcome: Outcome = "FAIL" if any(not r.passed for r in results) else "PASS"
    return Verdict(outcome, tuple(results), notes=notes)


def exit_code(verdict: Verdict) -> int:
    """PASS 0, FAIL 1, UNRELIABLE and INCOMPLETE 3 (the CLI maps an interrupt to 130)."""
    return {
        "PASS": EXIT_OK,
        "FAIL": EXIT_BUDGET_BROKEN,
        "UNRELIABLE": EXIT_UNJUDGEABLE,
        "INCOMPLETE": EXIT_UNJUDGEABLE,
    }[verdict.outcome]


# --- the verdict table ----------------------------------------------------------------------


def _fmt_ci(low: float | None, high: float | None, unit: str) -> str:
    return fmt_interval(low, high, unit)


def status_label(r: BudgetResult) -> str:
    """The result column: PASS, MARGINAL, FAIL, FAIL (marginal), NO SAMPLES, NO DATA,
    SKIPPED, INCONCLUSIVE."""
    if r.status == "no samples":
        return "NO SAMPLES"
    if r.status == "no data":
        return "NO DATA"
    if r.status == "skipped":
        return "SKIPPED"
    if r.status == "inconclusive":
        return "INCONCLUSIVE"
    if r.status == "fail":
        return "FAIL (marginal)" if r.marginal else "FAIL"
    return "MARGINAL" if r.marginal else "PASS"


def verdict_rows(verdict: Verdict) -> list[list[str]]:
    """One row per budget result, columns as ``TABLE_HEADER`` (the header is not included)."""
    rows = []
    for r in verdict.results:
        b = r.budget
        unit = metric_unit(b.metric)
        metric = f"{b.metric} vs base" if isinstance(b, RegressionBudget) else b.metric
        margin = fmt_margin(r.margin_pct)
        if r.status in ("no samples", "no data", "skipped") or r.measured is None:
            margin = DASH
        rows.append(
            [
                "(whole run)" if r.request_key == AGGREGATE_KEY else r.request_key,
                metric,
                fmt_value(r.measured, unit),
                r.budget.text,
                margin,
                fmt_interval(r.ci_low, r.ci_high, unit),
                status_label(r),
            ]
        )
    return rows


def headline(verdict: Verdict) -> str:
    """What the verdict says of its budgets; the CLI's first line and every report's headline.

    ``3 of 16 budgets broken (1 marginal, 2 skipped)``, ``all 14 budgets hold (2 skipped)``:
    a skipped regression budget (no baseline yet) is neither held nor broken, nor is an
    inconclusive one (too few samples to tell), so "all N hold" counts the judged ones and
    the others are named beside them. An unreliable or incomplete run says that first.
    """
    results = verdict.results
    n = len(results)
    broken = len(verdict.broken)
    marginal = sum(1 for r in results if r.marginal and r.passed)
    skipped = sum(1 for r in results if r.status == "skipped")
    inconclusive = len(verdict.inconclusive)
    judged = n - skipped - inconclusive
    extras = [f"{marginal} marginal"] if marginal else []
    if inconclusive and (judged or skipped or broken):
        extras.append(f"{inconclusive} inconclusive")
    if n == 0:
        counts = "no budgets were set"
    elif broken:
        counts = f"{broken} of {plural(n, 'budget')} broken"
    elif judged == 0 and not skipped:
        counts = f"no budget judged: {inconclusive} inconclusive"
    elif judged == 0:
        counts = f"no budget judged: {skipped} skipped"
    else:
        counts = f"all {judged} budgets hold" if judged > 1 else "the budget holds"
    if skipped and judged:
        extras.append(f"{skipped} skipped")
    if extras:
        counts += f" ({', '.join(extras)})"
    if verdict.outcome == "UNRELIABLE":
        return f"the run is an unreliable measurement and cannot be judged; {counts}"
    if verdict.outcome == "INCOMPLETE":
        return f"the run did not finish; {counts}"
    return counts


def outcome_line(verdict: Verdict) -> str:
    """``PASS: all 16 budgets hold``, ``FAIL: 2 of 16 budgets broken``: outcome and headline."""
    return f"{verdict.outcome}: {headline(verdict)}"


def _by_request(results: Sequence[BudgetResult]) -> list[int]:
    """Indices of ``results`` with each request key's results together, keys in first-seen order.

    A glob budget expands per name, so budget order would scatter one name's rows.
    """
    first: dict[str, int] = {}
    for r in results:
        first.setdefault(r.request_key, len(first))
    return sorted(range(len(results)), key=lambda i: first[results[i].request_key])


def _note_lines(results: Sequence[BudgetResult], width: int) -> list[str]:
    """Why a budget broke, had no samples, was marginal or skipped; one note per message."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for r in results:
        if r.message and (not r.passed or r.marginal or r.status in ("skipped", "inconclusive")):
            label = r.budget.metric
            if isinstance(r.budget, RegressionBudget):
                label += " vs baseline"
            grouped.setdefault((r.request_key, r.message), []).append(label)
    lines: list[str] = []
    for (key, message), metrics in grouped.items():
        who = "(whole run)" if key == AGGREGATE_KEY else key
        text = f"{who} {', '.join(metrics)}: {message}"
        lines.extend(wrap_text(text, width))
    return lines


def format_verdict_table(verdict: Verdict, width: int = 100) -> list[str]:
    """The verdict as text lines: the outcome, a table of every result, then the notes.

    One line per result, with the request in the first column when the table fits in
    ``width``; otherwise each request name gets a line of its own and its results follow
    indented under it, so that long names (the status check's is 47 characters) are never
    cut. Notes (why a budget broke, had no samples, was marginal or skipped) are wrapped.
    """
    order = _by_request(verdict.results)
    all_rows = verdict_rows(verdict)
    rows = [all_rows[i] for i in order]
    lines = [outcome_line(verdict), *(f"why: {reason}" for reason in verdict.reasons)]
    if not rows:
        return lines
    # The status check's 47-character name would squeeze every other column: when the
    # flat table is too wide, each name gets a line and its results go under it.
    if table_width(TABLE_COLUMNS, rows) <= width:
        lines.extend(text_table(TABLE_COLUMNS, rows))
    else:
        columns = (Column("request / metric"), *TABLE_COLUMNS[2:])
        grouped: list[list[str] | str] = []
        current = None
        for row in rows:
            if row[0] != current:
                current = row[0]
                grouped.append(current)
            grouped.append(["  " + row[1], *row[2:]])
        lines.extend(text_table(columns, grouped))
    notes = _note_lines([verdict.results[i] for i in order], width)
    if notes:
        lines.append("")
        lines.extend(notes)
    if verdict.notes:
        lines.append("")
        for note in verdict.notes:
            lines.extend(wrap_text(f"note: {note}", width))
    return lines
