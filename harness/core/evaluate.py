"""RunResult x Budgets (x Baseline) -> Verdict, and the verdict table the CLI prints (pure).

Every budget is expanded against the request keys of the run's steady state; a name that
never ran is a "no samples" failure, never a silent pass. Percentile and average budgets
carry a 95 % confidence interval from ``harness.core.stats``; when it straddles the limit the
result is marked marginal (still judged on the measured value).
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core import stats
from harness.core.budgets import is_glob, match_keys
from harness.core.model import (
    AGGREGATE_KEY,
    Baseline,
    Budget,
    BudgetResult,
    Budgets,
    RegressionBudget,
    RequestStats,
    RunResult,
    Verdict,
    metric_unit,
    percentile_of,
)
from harness.errors import EXIT_BUDGET_BROKEN, EXIT_OK, EXIT_UNJUDGEABLE

CONFIDENCE = 0.95
SEED = 1
MIN_PREDICTION_RUNS = 3
NO_BASELINE_YET = (
    "no baseline yet: this is the first comparable run; regression budgets start with the next"
)

TABLE_HEADER = ("request", "metric", "measured", "limit", "margin", "95% CI", "result")


# --- statistics for regressions --------------------------------------------------------------


def _t_central_probability(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with ``df`` (integer) degrees of freedom.

    The closed forms of Abramowitz & Stegun, *Handbook of Mathematical Functions* (1964),
    26.7.3 (odd df) and 26.7.4 (even df): finite sums in powers of cos(theta),
    theta = atan(t / sqrt(df)).
    """
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        total, term = 0.0, math.cos(theta)
        for j in range(1, df - 1, 2):  # powers 1, 3, ..., df - 2
            total += term
            term *= (j + 1) / (j + 2) * c2
        return 2.0 / math.pi * (theta + math.sin(theta) * total)
    total, term = 0.0, 1.0
    for j in range(0, df - 1, 2):  # powers 0, 2, ..., df - 2
        total += term
        term *= (j + 1) / (j + 2) * c2
    return math.sin(theta) * total


def student_t_quantile(probability: float, df: int) -> float:
    """The upper quantile t with P(T <= t) = ``probability`` (> 0.5), by bisection.

    Bisection on the exact CDF (Abramowitz & Stegun 26.7.3/26.7.4) to 1e-9: t_{2, 0.975} is
    4.303, t_{4, 0.975} 2.776, t_{29, 0.975} 2.045, as in the published tables.
    """
    if not 0.5 < probability < 1.0 or df < 1:
        raise ValueError(f"need 0.5 < probability < 1 and df >= 1, got {probability}, {df}")
    target = 2.0 * probability - 1.0
    low, high = 0.0, 1.0
    while _t_central_probability(high, df) < target:
        high *= 2.0
    while high - low > 1e-9:
        mid = (low + high) / 2.0
        if _t_central_probability(mid, df) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2.0


def prediction_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Where one more run should fall: mean +- t_{n-1} * sd * sqrt(1 + 1/n).

    The prediction interval for a single new observation from a normal sample of ``n``
    (sd with n - 1 degrees of freedom); e.g. Hahn & Meeker, *Statistical Intervals* (1991),
    section 4.6. Needs n >= 2; the judge uses it from ``MIN_PREDICTION_RUNS`` runs.
    """
    n = len(values)
    if n < 2:
        raise ValueError("a prediction interval needs at least 2 values")
    mean = statistics.fmean(values)
    sd = statistics.stdev(values)
    half = student_t_quantile(0.5 + confidence / 2.0, n - 1) * sd * math.sqrt(1.0 + 1.0 / n)
    return mean - half, mean + half


def wilson_interval(
    failures: int, count: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval for an error rate, in percent.

    E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
    JASA 22 (1927) 209-212: unlike the normal approximation it stays inside 0..100 % and
    is honest at 0 failures.
    """
    z = statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = failures / count
    denominator = 1.0 + z * z / count
    centre = (p + z * z / (2 * count)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / count + z * z / (4 * count * count))
    return 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Measure:
    value: float | None
    problem: str | None = None  # why there is no value (data lacks the percentile)
    ci: stats.ConfidenceInterval | None = None


def _ci_histogram(h: Any) -> stats.Histogram:
    """``harness.core.stats.Histogram`` as is; a bare hdrh HdrHistogram (microseconds) converted."""
    if isinstance(h, stats.Histogram):
        return h
    converted = stats.new_histogram()
    for item in h.get_recorded_iterator():
        converted.record_ns(round(item.value_iterated_to * 1000), item.count_at_value_iterated_to)
    return converted


def _ci(s: RequestStats, percent: float | None) -> stats.ConfidenceInterval | None:
    """The 95 % interval of a percentile (or of the mean when ``percent`` is None)."""
    total = _ci_histogram(s.histogram)
    intervals = [_ci_histogram(h) for h in s.interval_histograms]
    if percent is None:
        return stats.mean_ci(total, intervals, CONFIDENCE, SEED)
    return stats.percentile_ci(total, intervals, percent, CONFIDENCE, SEED)


def _measure(metric: str, s: RequestStats) -> _Measure:
    if metric == "error_rate":
        return _Measure(s.error_rate_pct)
    if metric == "rps":
        return _Measure(s.rps)
    if metric == "count":
        return _Measure(float(s.count))
    if metric in ("min", "max"):
        return _Measure(s.min_ms if metric == "min" else s.max_ms)
    if metric == "avg":
        ci = None
        if s.histogram is not None:
            ci = _ci(s, None)
        return _Measure(s.avg_ms, ci=ci)
    percent = percentile_of(metric)
    value = s.percentile_ms(percent)
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
    out = []
    for key in keys:
        found = result.find(key)
        if found is None or found.count == 0:
            out.append((key, None, _no_samples_message(key, result)))
        else:
            out.append((key, found, ""))
    return out


# --- judging --------------------------------------------------------------------------------


def fmt_value(value: float | None, unit: str) -> str:
    """A measured value with its unit: ``812 ms``, ``0.42%``, ``12.3 req/s``, ``1234``."""
    if value is None:
        return "-"
    if unit == "ms":
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
        return f"{value:.{digits}f} ms"
    if unit == "%":
        return f"{value:.2f}%"
    if unit == "req/s":
        return f"{value:.1f} req/s"
    return f"{value:.0f}"


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


def _significance(
    rb: RegressionBudget,
    s: RequestStats,
    candidate: float,
    values: Sequence[float],
    base: float,
    m: _Measure,
) -> tuple[bool | None, str]:
    """Whether the candidate is higher than the baseline beyond run-to-run noise.

    With ``MIN_PREDICTION_RUNS`` or more baseline runs: above the 95 % prediction interval
    of those runs (`prediction_interval`). With fewer: the run's own 95 % interval lies
    wholly above the baseline value (percentile/mean intervals from ``harness.core.stats``, the
    Wilson interval for error_rate). None when neither can be told (min/max, Locust CSV).
    """
    unit = metric_unit(rb.metric)
    n = len(values)
    # Only a rise can break a regression budget, so only the upper side counts.
    if n >= MIN_PREDICTION_RUNS:
        low, high = prediction_interval(values)
        above = candidate > high
        where = "above" if above else "within" if candidate >= low else "below"
        return above, f"{where} the 95 % prediction interval {_fmt_ci(low, high, unit)} of {n} runs"
    if rb.metric == "error_rate":
        low, high = wilson_interval(s.failures, s.count)
    elif m.ci is not None:
        low, high = m.ci.low_ms, m.ci.high_ms
    else:
        return None, (
            f"significance unknown: {n} baseline run(s), fewer than {MIN_PREDICTION_RUNS}, "
            f"and no confidence interval for {rb.metric}"
        )
    above = low > base
    return above, (
        f"the run's 95 % interval {_fmt_ci(low, high, unit)} "
        f"{'lies above' if above else 'does not lie above'} the baseline ({n} run(s), fewer than "
        f"{MIN_PREDICTION_RUNS} for a prediction interval)"
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
        if rb.relative:
            threshold = base * (1.0 + rb.max_increase / 100.0)
            if base > 0:
                change = (m.value - base) / base * 100.0
            else:  # any rise from zero is an infinite relative rise
                change = math.inf if m.value > base else 0.0
            change_text = f"{change:+.1f}%" if math.isfinite(change) else "up from zero"
            allowed = f"+{rb.max_increase:g}%"
        else:
            threshold = base + rb.max_increase
            change = m.value - base
            if unit == "%":
                change_text = f"{change:+.2f} points"
                allowed = f"+{rb.max_increase:g} points"
            else:
                change_text = f"{change:+.1f} {unit}"
                allowed = f"+{rb.max_increase:g} {unit}"
        significant, how = _significance(rb, s, m.value, values, base, m)
        rose = change > rb.max_increase
        broken = rose and (bool(significant) or not rb.significant_only)
        verdict = "broken" if broken else "holds"
        if rose and not broken:
            verdict = "holds: the rise is not significant"
        message = (
            f"{rb.metric} {fmt_value(m.value, unit)} vs baseline {fmt_value(base, unit)} "
            f"({baseline.description if baseline else ''}): {change_text}, allowed {allowed}"
            f"{' if significant' if rb.significant_only else ''}; {how}; {verdict}"
        )
        # The limit of a regression budget is the baseline plus the allowed rise, so that
        # its margin and marginal flag read like those of any other budget.
        marginal = m.ci is not None and m.ci.low_ms <= threshold <= m.ci.high_ms
        out.append(
            BudgetResult(
                rb,
                key,
                "fail" if broken else "pass",
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
    if result.incomplete:
        reasons = (result.incomplete_reason or "the run did not finish",)
        return Verdict("INCOMPLETE", tuple(results), reasons + tuple(result.unreliable_reasons))
    if result.unreliable_reasons:
        return Verdict("UNRELIABLE", tuple(results), tuple(result.unreliable_reasons))
    outcome = "FAIL" if any(not r.passed for r in results) else "PASS"
    return Verdict(outcome, tuple(results))


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
    if low is None or high is None:
        return ""
    low_text, high_text = fmt_value(low, unit), fmt_value(high, unit)
    suffix = f" {unit}" if unit in ("ms", "req/s") else ""
    if suffix and low_text.endswith(suffix):
        low_text = low_text[: -len(suffix)]
    return f"{low_text}-{high_text}"


def status_label(r: BudgetResult) -> str:
    """The result column: PASS, MARGINAL, FAIL, FAIL (marginal), NO SAMPLES, SKIPPED."""
    if r.status == "no samples":
        return "NO SAMPLES"
    if r.status == "skipped":
        return "SKIPPED"
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
        margin = f"{r.margin_pct:+.1f}%" if r.margin_pct is not None else "n/a"
        if r.status in ("no samples", "skipped") or r.measured is None:
            margin = "-"
        rows.append(
            [
                "(whole run)" if r.request_key == AGGREGATE_KEY else r.request_key,
                metric,
                fmt_value(r.measured, unit),
                r.budget.text,
                margin,
                _fmt_ci(r.ci_low, r.ci_high, unit),
                status_label(r),
            ]
        )
    return rows


def outcome_line(verdict: Verdict) -> str:
    """``PASS: all 16 budgets hold``, ``FAIL: 2 of 16 budgets broken``, ``UNRELIABLE: ...``."""
    n = len(verdict.results)
    broken = len(verdict.broken)
    marginal = sum(1 for r in verdict.results if r.marginal and r.passed)
    skipped = sum(1 for r in verdict.results if r.status == "skipped")
    if verdict.outcome in ("UNRELIABLE", "INCOMPLETE"):
        unreliable = verdict.outcome == "UNRELIABLE"
        what = "is an unreliable measurement" if unreliable else "did not finish"
        return f"{verdict.outcome}: the run {what}: {'; '.join(verdict.reasons)}"
    if verdict.outcome == "FAIL":
        line = f"FAIL: {broken} of {n} budgets broken"
    elif n == 0:
        line = "PASS: no budgets to judge"
    else:
        line = (
            f"PASS: all {n - skipped} budgets hold"
            if n - skipped != 1
            else "PASS: the budget holds"
        )
    extras = []
    if marginal:
        extras.append(f"{marginal} marginal")
    if skipped:
        extras.append(f"{skipped} skipped")
    return line + (f" ({', '.join(extras)})" if extras else "")


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
        if r.message and (not r.passed or r.marginal or r.status == "skipped"):
            label = r.budget.metric
            if isinstance(r.budget, RegressionBudget):
                label += " vs baseline"
            grouped.setdefault((r.request_key, r.message), []).append(label)
    lines: list[str] = []
    for (key, message), metrics in grouped.items():
        who = "(whole run)" if key == AGGREGATE_KEY else key
        text = f"{who} {', '.join(metrics)}: {message}"
        lines.extend(
            textwrap.wrap(text, width=width, subsequent_indent="    ", break_on_hyphens=False)
        )
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
    lines = [outcome_line(verdict)]
    if not rows:
        return lines
    gap = "  "
    table = [list(TABLE_HEADER), *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(TABLE_HEADER))]
    # The status check's 47-character name would squeeze every other column: when the
    # flat table is too wide, each name gets a line and its results go under it.
    if sum(widths) + len(gap) * (len(widths) - 1) <= width:
        for row in table:
            lines.append(gap.join(t.ljust(w) for t, w in zip(row, widths, strict=True)).rstrip())
    else:
        indent = "  "
        first = max(len("request / metric"), len(indent) + widths[1])
        cell_widths = [first, *widths[2:]]
        header = ["request / metric", *TABLE_HEADER[2:]]
        lines.append(
            gap.join(t.ljust(w) for t, w in zip(header, cell_widths, strict=True)).rstrip()
        )
        current = None
        for row in rows:
            if row[0] != current:
                current = row[0]
                lines.append(current)
            cells = [indent + row[1], *row[2:]]
            lines.append(
                gap.join(t.ljust(w) for t, w in zip(cells, cell_widths, strict=True)).rstrip()
            )
    notes = _note_lines([verdict.results[i] for i in order], width)
    if notes:
        lines.append("")
        lines.extend(notes)
    return lines
