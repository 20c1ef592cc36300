"""budgets.yaml ``abort:`` -> AbortRules for the profile (pure; called by parse_budgets).

The format is documented in ``docs/budgets.md`` (Abort rules); mistakes raise the same one
line as every other budgets.yaml mistake, ``<file>: <key path>: <what>; <fix>``. Every
profile's rules are built (and their ``"> 5x budget"`` limits resolved against that
profile's budgets) whichever profile is asked for, as for the budgets.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.core.abort import ABORT_METRICS, AbortOp, AbortRule, AbortRules
from harness.core.budgets import (
    _DURATION,
    _check_selector,
    _Ctx,
    _is_off,
    _kind,
    _mapping,
    _parse_limit,
    _parse_metric,
    format_key_path,
)
from harness.core.model import AGGREGATE_KEY, Budget, Budgets

SETTING_KEYS = ("window", "windows", "min_samples", "grace")
SECTION_KEYS = (*SETTING_KEYS, "requests", "run")
RULE_KEYS = ("when", *SETTING_KEYS)
# When neither the rule nor its section (nor the defaults' section) says.
DEFAULT_SETTINGS: Mapping[str, float | int] = {
    "window": 30.0,
    "windows": 3,
    "min_samples": 20,
    "grace": 0.0,
}
_MULTIPLE = re.compile(r"(?P<op>>=|>)\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*x\s+budget")
_OFF = object()  # a profile's `off`: drops a default


@dataclass(frozen=True)
class _Spec:
    """A rule as written: its threshold, its own settings (the rest comes from sections)."""

    ctx: _Ctx  # where its threshold is written, for messages
    key_path: str  # the rule's own: abort.run.error_rate
    selector: str
    metric: str
    op: AbortOp
    limit: float | None  # None: a multiple of the budget
    factor: float | None
    text: str
    settings: Mapping[str, float | int]


@dataclass
class _Layer:
    """The defaults' ``abort:``, or one profile's, as written."""

    settings: dict[str, float | int] = field(default_factory=dict)
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)  # selector -> metric -> spec
    excluded: list[str] = field(default_factory=list)  # `"name": off`
    run_off: bool = False
    off: bool = False  # the whole `abort: off` of a profile


# --- values ---------------------------------------------------------------------------------


def _seconds(ctx: _Ctx, value: Any, what: str, zero: bool) -> float:
    example = "grace: 30s" if zero else "window: 30s"
    if value == 0 and not isinstance(value, bool) and zero:
        return 0.0
    m = _DURATION.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None or m.group("unit") is None:
        ctx.fail(f"expected {what} with a unit, got {_kind(value)}", f"write e.g. {example}")
    seconds = float(m.group("num")) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group("unit")]
    if seconds < 0 or (seconds == 0 and not zero):
        ctx.fail(
            f"{value!r} is {'negative' if seconds < 0 else 'zero'}",
            f"{what} is {'zero or more' if zero else 'longer than zero'}, e.g. {example}",
        )
    return seconds


def _whole(ctx: _Ctx, value: Any, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        ctx.fail(
            f"expected a whole number of 1 or more, got {_kind(value)}", f"write e.g. {example}"
        )
    return value


def _settings(ctx: _Ctx, entries: Mapping[str, Any]) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    if "window" in entries:
        out["window"] = _seconds(ctx.at("window"), entries["window"], "a window", zero=False)
    if "windows" in entries:
        out["windows"] = _whole(ctx.at("windows"), entries["windows"], "windows: 3")
    if "min_samples" in entries:
        out["min_samples"] = _whole(
            ctx.at("min_samples"), entries["min_samples"], "min_samples: 50"
        )
    if "grace" in entries:
        out["grace"] = _seconds(ctx.at("grace"), entries["grace"], "a grace time", zero=True)
    return out


def _threshold(
    ctx: _Ctx, metric: str, value: Any
) -> tuple[AbortOp, float | None, float | None, str]:
    """``"> 50%"`` -> (">", 50.0, None, text); ``"> 5x budget"`` -> (">", None, 5.0, text)."""
    if isinstance(value, str) and (m := _MULTIPLE.fullmatch(value.strip())):
        factor = float(m.group("num"))
        if factor <= 0:
            ctx.fail(f"{value.strip()!r} is zero times the budget", 'write e.g. "> 5x budget"')
        op: AbortOp = ">" if m.group("op") == ">" else ">="
        return op, None, factor, value.strip()
    op_text, limit, text = _parse_limit(ctx, metric, value)
    if op_text not in (">", ">="):
        example = '"> 50%"' if metric == "error_rate" else '"> 15s" or "> 5x budget"'
        ctx.fail(
            f"{text!r} says what holds, as a budget does",
            f"an abort rule says when to stop the run: write > or >=, e.g. {metric}: {example}",
        )
    return (">" if op_text == ">" else ">="), limit, None, text


def _rule(ctx: _Ctx, selector: str, raw_metric: str, value: Any) -> _Spec:
    metric = _parse_metric(ctx, raw_metric)
    if metric not in ABORT_METRICS:
        ctx.fail(
            f"no abort rule on {metric}",
            f"the live progress carries each interval's count, failures, avg and p95: abort "
            f"rules judge {', '.join(ABORT_METRICS)}",
        )
    own: dict[str, float | int] = {}
    key_path = format_key_path(ctx.path)
    when = value
    if isinstance(value, Mapping):
        entries = _mapping(ctx, value, RULE_KEYS, 'write e.g. {when: "> 50%", windows: 5}')
        if "when" not in entries:
            ctx.at("when").fail("missing", 'write the threshold, e.g. when: "> 50%"')
        own = _settings(ctx, entries)
        when = entries["when"]
        ctx = ctx.at("when")
    op, limit, factor, text = _threshold(ctx, metric, when)
    return _Spec(ctx, key_path, selector, metric, op, limit, factor, text, own)


def _metrics(ctx: _Ctx, selector: str, value: Any, in_profile: bool) -> dict[str, Any]:
    entries = _mapping(ctx, value, None, 'add rules such as error_rate: "> 50%"')
    out: dict[str, Any] = {}
    for raw_metric, raw in entries.items():
        mctx = ctx.at(raw_metric)
        if _is_off(raw):
            if not in_profile:
                mctx.fail(
                    "off is for profiles", "use off in profiles.<name>.abort to drop a default"
                )
            out[_parse_metric(mctx, raw_metric)] = _OFF
            continue
        spec = _rule(mctx, selector, raw_metric, raw)
        if spec.metric in out:
            mctx.fail(f"{raw_metric!r} repeats the metric {spec.metric!r}", "keep one of them")
        out[spec.metric] = spec
    return out


def _layer(ctx: _Ctx, value: Any, known_keys: Sequence[str] | None, in_profile: bool) -> _Layer:
    if _is_off(value):
        if not in_profile:
            ctx.fail("off is for profiles", "leave abort: out to have no abort rules")
        return _Layer(off=True)
    section = _mapping(ctx, value, SECTION_KEYS, 'add run: {error_rate: "> 50%"}')
    layer = _Layer(settings=_settings(ctx, section))
    if "requests" in section:
        rctx = ctx.at("requests")
        names = _mapping(
            rctx, section["requests"], None, 'add request names, e.g. "GET /api/plans"'
        )
        for selector, entry in names.items():
            sctx = rctx.at(selector)
            _check_selector(sctx, selector, known_keys)
            if _is_off(entry):
                layer.excluded.append(selector)  # no rule watches it, the run's neither
            else:
                layer.rules[selector] = _metrics(sctx, selector, entry, in_profile)
    if "run" in section:
        rctx = ctx.at("run")
        if _is_off(section["run"]):
            if not in_profile:
                rctx.fail(
                    "off is for profiles", "use off in profiles.<name>.abort to drop a default"
                )
            layer.run_off = True
        else:
            layer.rules[AGGREGATE_KEY] = _metrics(rctx, AGGREGATE_KEY, section["run"], in_profile)
    return layer


# --- a profile's rules ------------------------------------------------------------------------


def _merge(ctx: _Ctx, base: _Layer, over: _Layer) -> _Layer:
    """A profile's abort section over the defaults': per name and metric, as budgets merge."""
    if over.off:
        return over
    rules = {sel: dict(metrics) for sel, metrics in base.rules.items()}
    excluded = list(base.excluded)
    if over.run_off:
        if AGGREGATE_KEY not in rules:
            ctx.at("run").fail("off drops nothing: no default abort rule on the run", "remove it")
        del rules[AGGREGATE_KEY]
    for selector in over.excluded:
        rules.pop(selector, None)
        excluded.append(selector)
    for selector, metrics in over.rules.items():
        if selector in excluded:
            excluded.remove(selector)  # the profile watches it again
        target = rules.setdefault(selector, {})
        for metric, spec in metrics.items():
            if spec is _OFF:
                if metric not in target:
                    where = (
                        ctx.at("run") if selector == AGGREGATE_KEY else ctx.at("requests", selector)
                    )
                    where.at(metric).fail(
                        f"off drops nothing: no default abort rule on {metric} here", "remove it"
                    )
                del target[metric]
            else:
                target[metric] = spec
        if not target:
            del rules[selector]
    return _Layer(settings={**base.settings, **over.settings}, rules=rules, excluded=excluded)


def _resolve(layer: _Layer, budgets: Sequence[Budget], profile: str | None) -> AbortRules:
    """The layer's rules with their settings and limits (a multiple of the budget resolved)."""
    if layer.off:
        return AbortRules()
    limits = {(b.selector, b.metric): b for b in budgets if b.op in ("<", "<=")}
    out: list[AbortRule] = []
    order = [s for s in layer.rules if s != AGGREGATE_KEY]
    order += [AGGREGATE_KEY] if AGGREGATE_KEY in layer.rules else []
    for selector in order:
        for spec in layer.rules[selector].values():
            settings = {**DEFAULT_SETTINGS, **layer.settings, **spec.settings}
            limit = spec.limit
            if spec.factor is not None:
                budget = limits.get((selector, spec.metric))
                if budget is None:
                    section = "run:" if selector == AGGREGATE_KEY else f"requests: {selector!r}"
                    whose = f"profile {profile!r} has" if profile else "the defaults have"
                    example = '"> 50%"' if spec.metric == "error_rate" else '"> 15s"'
                    spec.ctx.fail(
                        f"{spec.text!r}: {whose} no {spec.metric} budget under {section} "
                        "to be a multiple of",
                        f"add the budget, or write the limit itself, e.g. {spec.metric}: {example}",
                    )
                else:
                    limit = spec.factor * budget.limit
            assert limit is not None
            out.append(
                AbortRule(
                    key_path=spec.key_path,
                    selector=selector,
                    metric=spec.metric,
                    op=spec.op,
                    limit=limit,
                    text=spec.text,
                    window_s=float(settings["window"]),
                    windows=int(settings["windows"]),
                    min_samples=int(settings["min_samples"]),
                    grace_s=float(settings["grace"]),
                    budget_factor=spec.factor,
                )
            )
    return AbortRules(rules=tuple(out), excluded=tuple(dict.fromkeys(layer.excluded)))


def with_abort_rules(
    ctx: _Ctx,
    data: Mapping[str, Any],
    result: Budgets,
    default_budgets: Mapping[str, Mapping[str, Any]],
    built: Mapping[str, Budgets],
    known_keys: Sequence[str] | None,
) -> Budgets:
    """``result`` (the asked profile's budgets) with its abort rules; every profile's rules
    checked. ``default_budgets`` are the defaults' budgets (selector -> metric -> Budget),
    ``built`` every profile with a section; ``data`` the whole file (its profile sections
    already checked for keys)."""
    defaults = (
        _layer(ctx.at("abort"), data["abort"], known_keys, False) if "abort" in data else None
    )
    layers: dict[str, _Layer] = {}
    for name, section in (data.get("profiles") or {}).items():
        if isinstance(section, Mapping) and "abort" in section:
            pctx = ctx.at("profiles", name, "abort")
            layers[name] = _layer(pctx, section["abort"], known_keys, True)
    if defaults is None and not layers:
        return result
    base = defaults or _Layer()
    flat = [b for metrics in default_budgets.values() for b in metrics.values()]
    chosen = _resolve(base, [b for b in flat if isinstance(b, Budget)], None)
    for name, budgets in built.items():
        layer = (
            _merge(ctx.at("profiles", name, "abort"), base, layers[name])
            if name in layers
            else base
        )
        rules = _resolve(layer, budgets.budgets, name)
        if name == result.profile:
            chosen = rules
    return replace(result, abort=chosen)
