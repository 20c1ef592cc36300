"""Regression budgets on server metrics: budgets.yaml's ``regressions.server`` (pure).

    regressions:
      server:
        target_process:
          cpu_ms_per_request: "+10% significant"   # CPU time per completed request
        target:
          cache_hit_rate: "-5 points significant"  # better higher: a regression is a fall

A server metric is judged against the history's baseline exactly as a request regression
budget is (``harness.core.levels`` picks the runs: the last N comparable runs that were no
regression, since the level someone accepted; an open regression keeps failing until it is
accepted or the runs are back). The value of a run is the one its server budget would be
judged on, the steady state's (``harness.core.server_eval``), and the history keeps it per
run (``harness.store``'s server_metrics). There is one value per run and no interval of
its own, so significance comes from the spread between the baseline runs alone: the run
lies beyond the 95 % prediction interval of a new run, ``mean + t(0.975, n-1) * sd *
sqrt(1 + 1/n)`` (Hahn and Meeker 1991, 4.6; ``stats.above_baseline`` without an interval),
on the worse side of the metric (a higher CPU, a lower cache hit rate). docs/history.md
gives the test's error rates.

``cpu_ms_per_request`` is the cost figure: the CPU seconds of the source's
``process_cpu_seconds_total`` over the steady state (``server_eval.cpu_seconds``' rate over
the samples that cover it, times its length), in ms per request completed in it.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.core import metrics as registry
from harness.core import stats
from harness.core.budgets import _OFF, _Ctx, _is_off, _kind, _mapping, _suggest, format_key_path
from harness.core.evaluate import NO_BASELINE_YET, margin_pct
from harness.core.format import fmt_change, fmt_interval, fmt_limit, fmt_value, plural
from harness.core.model import Baseline, BudgetResult, RegressionBudget, Status
from harness.core.server_budgets import (
    _SIZE_UNITS,
    DIRECT_SERIES,
    FORMULAS,
    Expr,
    Rate,
    ServerBudget,
    ServerSection,
    SourceSpec,
    _check_direct,
    _merge,
    _sel,
    source_layer,
)
from harness.core.server_eval import SourceData, Window, judge_server, server_request_key

CONFIDENCE = 0.95
COST_METRIC = "cpu_ms_per_request"
_COST_FORMULAS: tuple[Expr, ...] = (Rate(_sel("process_cpu_seconds_total")),)
_REGRESSION = re.compile(
    r"(?P<sign>[-+])?\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z%]+)?(?:\s+(?P<rest>.+))?"
)
NAMES = (*registry.SERVER_NAMED, *registry.PER_REQUEST)


@dataclass(frozen=True)
class ServerRegressionBudget(RegressionBudget):
    """``regressions.server.target_process.cpu_ms_per_request: "+10% significant"``.

    ``selector`` is the source; ``metric`` the named server metric (the steady state's
    value); ``formulas`` what its scrape must give (``harness.server.scraper``);
    ``higher_is_better``: a regression is a fall (cache hit rate), ``max_increase`` then
    the fall allowed.
    """

    formulas: tuple[Expr, ...] = ()
    higher_is_better: bool = False

    @property
    def source(self) -> str:
        return self.selector


# --- parsing ---------------------------------------------------------------------------------


def _has(body: Any) -> bool:
    regs = body.get("regressions") if isinstance(body, Mapping) else None
    return isinstance(regs, Mapping) and "server" in regs


def regressions_written(data: Mapping[str, Any]) -> bool:
    """Whether the file writes ``regressions.server`` anywhere (the defaults or a profile)."""
    profiles = data.get("profiles")
    return _has(data) or (isinstance(profiles, Mapping) and any(_has(b) for b in profiles.values()))


def _example(info: registry.Metric) -> str:
    sign = "-" if info.better == "higher" else "+"
    if info.kind == "percent":
        return f'"{sign}5 points significant"'
    return f'"{sign}10% significant"'


def _parse(
    ctx: _Ctx, source: str, metric: str, value: Any, kind: str | None
) -> ServerRegressionBudget:
    info = registry.metric(metric)
    example = _example(info)
    if isinstance(value, bool) or not isinstance(value, str):
        ctx.fail(
            f"expected a regression budget like {example}, got {_kind(value)}",
            f"write e.g. {metric}: {example}",
        )
    text = value.strip()
    m = _REGRESSION.fullmatch(text)
    if m is None:
        ctx.fail(f"{text!r} is not a regression budget", f"write e.g. {metric}: {example}")
    higher = info.better == "higher"
    if m.group("sign") != ("-" if higher else "+"):
        if higher:
            ctx.fail(
                f"{text!r}: {metric} is better higher, so a regression is a fall",
                f"write the fall allowed with a minus sign, e.g. {metric}: {example}",
            )
        ctx.fail(f"{text!r} has no plus sign", f"a regression budget limits a rise: {example}")
    number = float(m.group("num"))
    unit = m.group("unit") or ""
    relative = unit == "%"
    if info.kind == "percent":
        if unit not in ("point", "points"):
            ctx.fail(
                f"{text!r}: {metric} is a percentage, which moves in percentage points",
                f"write e.g. {metric}: {example} (+10% of a percentage would be ambiguous)",
            )
    elif info.kind == "latency":
        if unit not in ("%", "ms", "s"):
            what = f"unknown unit {unit!r}" if unit else "no unit"
            ctx.fail(f"{what} in {text!r}", f"use % of the baseline or ms/s, e.g. {example}")
        number = number * 1000.0 if unit == "s" else number
    elif info.kind == "size":
        if not relative and unit not in _SIZE_UNITS:
            what = f"unknown unit {unit!r}" if unit else "no unit"
            ctx.fail(f"{what} in {text!r}", f"use % of the baseline or MiB/GiB, e.g. {example}")
        number = number if relative else number * _SIZE_UNITS[unit]
    elif unit not in ("%", ""):
        ctx.fail(
            f"unknown unit {unit!r} in {text!r}",
            f"use % of the baseline or a bare number, e.g. {example}",
        )
    rest = (m.group("rest") or "").strip()
    if rest and rest != "significant":
        ctx.fail(
            f"unknown word {rest!r} in {text!r}",
            f"{_suggest(rest, ['significant'])}the only word allowed after the change is "
            "'significant'",
        )
    if number == 0 and not rest:
        ctx.fail(
            f"{text!r} fails on any noise",
            f"allow a change or add significant, e.g. {metric}: {example}",
        )
    formulas = _COST_FORMULAS if metric == COST_METRIC else FORMULAS[metric]
    if kind in DIRECT_SERIES:
        formulas = _check_direct(ctx, source, kind, formulas, metric)
    return ServerRegressionBudget(
        key_path=format_key_path(ctx.path),
        selector=source,
        metric=metric,
        max_increase=number,
        relative=relative,
        significant_only=bool(rest),
        text=text,
        formulas=formulas,
        higher_is_better=higher,
    )


def _layer(ctx: _Ctx, value: Any, kinds: Mapping[str, str], in_profile: bool) -> dict[str, Any]:
    """``regressions.server`` -> source -> metric -> (budget,) | off (server_budgets' layers)."""

    def metrics_of(sctx: _Ctx, source: str, entry: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        example = 'add e.g. cpu_ms_per_request: "+10% significant"'
        for metric, raw in _mapping(sctx, entry, None, example).items():
            mctx = sctx.at(metric)
            if metric not in NAMES:
                hint = _suggest(metric, NAMES)
                base = metric.split(".", 1)[0]
                if base in NAMES:
                    hint = (
                        "a run has one value of a server metric for the history, the steady "
                        f"state's: write {base}; "
                    )
                elif metric == "expr":
                    hint = "raw expressions have no regression budget; "
                mctx.fail(
                    f"no regression budget for {metric!r}",
                    f"{hint}use {', '.join(NAMES)}",
                )
            if _is_off(raw):
                if not in_profile:
                    mctx.fail("off is for profiles", "use off in profiles.<name> to drop a default")
                out[metric] = _OFF
            else:
                out[metric] = (_parse(mctx, source, metric, raw, kinds.get(source)),)
        return out

    fix = 'add a source\'s regression budgets, e.g. target_process: {cpu_ms_per_request: "+10%"}'
    return source_layer(ctx, value, kinds, in_profile, fix, metrics_of)


def parse_server_regressions(
    ctx: _Ctx, data: Mapping[str, Any], kinds: Mapping[str, str], profile: str | None
) -> tuple[ServerRegressionBudget, ...]:
    """``regressions.server`` of the defaults with ``profile``'s overrides (every profile's
    validated); ``kinds``: source name -> kind, the built-in sources included."""
    defaults: dict[str, Any] = {}
    if _has(data):
        defaults = _layer(
            ctx.at("regressions", "server"), data["regressions"]["server"], kinds, False
        )
    chosen = defaults
    profiles = data.get("profiles")
    for name, body in profiles.items() if isinstance(profiles, Mapping) else ():
        if not _has(body):
            continue
        pctx = ctx.at("profiles", name, "regressions", "server")
        over = _layer(pctx, body["regressions"]["server"], kinds, True)
        merged = _merge(pctx, defaults, over)
        if name == profile:
            chosen = merged
    return tuple(b for entries in chosen.values() for found in entries.values() for b in found)


# --- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """A server regression budget's value in this run, or why it has none."""

    value: float | None
    status: Status = "pass"  # no data / no samples / skipped when there is no value
    message: str = ""


def measure(
    budgets: Sequence[ServerRegressionBudget],
    sources: Sequence[SourceSpec],
    data: Mapping[str, SourceData] | None,
    window: Window,
    *,
    builtin_target: bool,
    completed: int,
) -> dict[str, Measured]:
    """Each budget's value (by key path) over the steady state ``window``, as its server
    budget would take it; ``completed``: the requests completed in it (cpu_ms_per_request)."""
    probes = tuple(
        ServerBudget(
            key_path=rb.key_path,
            selector=rb.selector,
            metric=rb.metric,
            op="<=",
            limit=math.inf,
            text="",
            quantity=rb.metric,
            stat="avg",
            formulas=rb.formulas,
        )
        for rb in budgets
    )
    section = ServerSection(sources=tuple(sources), budgets=probes)
    out = {}
    for rb, r in zip(
        budgets, judge_server(section, data, window, builtin_target=builtin_target), strict=True
    ):
        if r.measured is None:
            out[rb.key_path] = Measured(None, r.status, r.message)
        elif rb.metric != COST_METRIC:
            out[rb.key_path] = Measured(r.measured)
        elif completed <= 0:
            message = "no samples: no request completed in the steady state, nothing to divide by"
            out[rb.key_path] = Measured(None, "no samples", message)
        else:
            # The rate of CPU seconds over the samples that cover the window, over its length.
            out[rb.key_path] = Measured(1000.0 * r.measured * window.duration_s / completed)
    return out


# --- judging ---------------------------------------------------------------------------------


def _worse(rb: ServerRegressionBudget, v: float) -> float:
    """The value on the scale where higher is worse."""
    return -v if rb.higher_is_better else v


def _change(rb: ServerRegressionBudget, value: float, base: float) -> float:
    """How much worse than the baseline: percent of it, or units/points."""
    d = _worse(rb, value) - _worse(rb, base)
    if not rb.relative:
        return d
    if base > 0:
        return d / base * 100.0
    return math.inf if d > 0 else 0.0


def _unit_word(rb: ServerRegressionBudget) -> str:
    unit = registry.unit_of(rb.metric)
    return "%" if rb.relative else ("points" if unit == "%" else unit)


def _held(
    rb: ServerRegressionBudget, values: Sequence[float], change: float, base: float, rose: bool
) -> bool:
    """An open regression still holds this run: the same rule as the request budgets'
    (``evaluate._held``): the run is back when within the allowed change and nearer the
    baseline than the regression's level, and it ends with two runs back in a row."""
    risen = [v for v in values if _change(rb, v, base) > rb.max_increase]
    level = statistics.median(risen or values)
    half_way = _change(rb, level, base) / 2.0
    before = _change(rb, values[-1], base)
    back = not rose and change <= half_way
    return not (back and before <= rb.max_increase and before <= half_way)


def _prediction(
    rb: ServerRegressionBudget, values: Sequence[float], value: float, runs: int = 1
) -> stats.Significance:
    return stats.above_baseline(
        [_worse(rb, v) for v in values], _worse(rb, value), None, CONFIDENCE, runs=runs
    )


def _interval_text(rb: ServerRegressionBudget, sig: stats.Significance) -> str:
    unit = registry.unit_of(rb.metric)
    low, high = sig.low, sig.high
    if rb.higher_is_better and low is not None and high is not None:
        low, high = -high, -low
    return fmt_interval(low, high, unit)


def judge(
    rb: ServerRegressionBudget, measured: Measured, baseline: Baseline | None
) -> BudgetResult:
    """One server regression budget on this run's value against ``baseline``."""
    key = server_request_key(rb.selector)
    described = baseline.description if baseline else None
    unit = registry.unit_of(rb.metric)
    if measured.value is None:
        return BudgetResult(
            rb, key, measured.status, None, 0.0, None, baseline=described, message=measured.message
        )
    value = measured.value
    values = tuple(baseline.values.get(key, {}).get(rb.metric, ())) if baseline else ()
    if not values:
        message = (
            NO_BASELINE_YET
            if baseline is None
            else f"the baseline ({baseline.description}) has no {rb.metric} of "
            f"{rb.selector!r} yet: regression budgets start with the next comparable run"
        )
        return BudgetResult(
            rb, key, "skipped", value, 0.0, None, baseline=described, message=message
        )
    base = statistics.median(values)
    allowed_abs = base * rb.max_increase / 100.0 if rb.relative else rb.max_increase
    threshold = base + allowed_abs if not rb.higher_is_better else base - allowed_abs
    change = _change(rb, value, base)
    word = _unit_word(rb)
    direction = "fall" if rb.higher_is_better else "rise"
    shown = -change if rb.higher_is_better else change
    change_text = fmt_change(shown, word) if math.isfinite(change) else "up from zero"
    allowed = f"{'-' if rb.higher_is_better else '+'}{fmt_limit(rb.max_increase, word)}"
    sig = _prediction(rb, values, value)
    if sig.method == stats.METHOD_PREDICTION_INTERVAL:
        worse_side = "below" if rb.higher_is_better else "above"
        where = (
            worse_side if sig.above else "within" if not sig.below else "beyond the better side of"
        )
        runs = plural(len(values), "run")
        how = f"{where} the 95 % prediction interval {_interval_text(rb, sig)} of {runs}"
        significant: bool | None = bool(sig.above)
    else:
        how = (
            f"significance unknown: the baseline has {plural(len(values), 'run')}, and the spread "
            f"between runs a {direction} must stand out of needs {stats.MIN_PREDICTION_RUNS}"
        )
        significant = None
    rose = change > rb.max_increase
    broken = rose and (bool(significant) or not rb.significant_only)
    status: Status = "fail" if broken else "pass"
    if broken:
        verdict = "broken"
    elif rose and significant is None and rb.significant_only:
        status, verdict = (
            "inconclusive",
            f"inconclusive: whether the {direction} is significant cannot be told yet",
        )
    elif rose:
        verdict = f"holds: the {direction} is not significant"
    else:
        verdict = "holds"
    opened = baseline.open_regressions.get(key, {}).get(rb.metric) if baseline else None
    risen = baseline.rising.get(key, {}).get(rb.metric) if baseline else None
    if not broken and opened is None and risen and rb.significant_only:
        # The runs just before it that moved too, and this one: a level that stayed.
        mean = statistics.fmean((*risen, value))
        pooled = _prediction(rb, values, mean, runs=len(risen) + 1)
        if _change(rb, mean, base) > rb.max_increase and pooled.above:
            status = "fail"
            verdict = (
                f"broken: with the {plural(len(risen), 'run')} before it that moved too, the mean "
                f"{fmt_value(mean, unit)} lies beyond the 95 % prediction interval "
                f"{_interval_text(rb, pooled)} of the mean of {len(risen) + 1} runs"
            )
    if opened is not None and status != "fail" and _held(rb, opened.values, change, base, rose):
        status = "fail"
        since = opened.since_run_id
        verdict = (
            f"broken: the regression since {since} ({plural(len(opened.values), 'run')}) has not "
            "been accepted and this run and the one before it are not both back; "
            f"`paybench baseline accept {since} --reason TEXT` accepts it"
        )
    elif opened is not None and broken:
        since = opened.since_run_id
        verdict += (
            f"; the regression since {since} has not been accepted: "
            f"`paybench baseline accept {since} --reason TEXT` accepts it"
        )
    message = (
        f"{rb.metric} {fmt_value(value, unit)} vs baseline {fmt_value(base, unit)} "
        f"({described}): {change_text}, allowed {allowed}"
        f"{' if significant' if rb.significant_only else ''}; {how}; {verdict}"
    )
    op = ">=" if rb.higher_is_better else "<="
    return BudgetResult(
        rb,
        key,
        status,
        value,
        threshold,
        margin_pct(op, value, threshold),
        baseline=described,
        message=message,
    )


def judge_all(
    budgets: Sequence[ServerRegressionBudget],
    measured: Mapping[str, Measured],
    baseline: Baseline | None,
) -> tuple[BudgetResult, ...]:
    """Every server regression budget judged (``measured``: ``measure``'s, by key path)."""
    return tuple(judge(rb, measured[rb.key_path], baseline) for rb in budgets)
