"""budgets.yaml text -> Budgets: parsing and validation (pure; harness.config reads the file).

The format is documented in ``docs/budgets.md``. Every mistake raises one ``ConfigError``
line: ``<file>: <key path>: <what is wrong>; <how to fix it>``. Validation covers the whole
file, every profile section included, whichever profile is asked for: a typo in the soak
overrides must not wait for the next soak run to surface.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

import yaml

from harness.core import metrics as registry
from harness.core.hosts import host_name_problem, target_url_problem
from harness.core.model import (
    AGGREGATE_KEY,
    Budget,
    Budgets,
    Operator,
    Preflight,
    PreflightCheck,
    RegressionBudget,
)
from harness.errors import ConfigError

# History of the format:
#   1: requests, run, steady_state, hosts, capacity, baseline, regressions, profiles;
#      preflight and abort added later (optional: an older paybench calls them unknown keys).
FORMAT_VERSION = 1

TOP_KEYS = (
    "version",
    "requests",
    "run",
    "steady_state",
    "hosts",
    "capacity",
    "baseline",
    "regressions",
    "profiles",
    "preflight",
    "sources",
    "server",
    "abort",
)
# hosts stays global: which machines may be loaded does not depend on the load profile.
# So do sources (harness.core.server_budgets); their budgets (server) do not.
PROFILE_KEYS = (
    "requests",
    "run",
    "steady_state",
    "capacity",
    "baseline",
    "regressions",
    "server",
    "abort",
)
# server: harness.core.server_regressions (parsed with the server section)
REGRESSION_KEYS = ("requests", "run", "server")
STEADY_STATE_KEYS = ("warmup",)
HOSTS_KEYS = ("allow",)
CAPACITY_KEYS = ("expected_peak_rps",)
BASELINE_KEYS = ("runs",)
# preflight stays global too: what the target must answer does not depend on the profile.
PREFLIGHT_KEYS = ("checks", "timeout")
PREFLIGHT_CHECK_KEYS = ("url", "status")

# Which metrics exist, their units and which the history stores: harness.core.metrics.
METRICS_HELP = registry.METRICS_HELP
_OPERATORS: tuple[Operator, ...] = ("<", "<=", ">", ">=")
_OP_CHARS = "<>=!≤≥"
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")
_DURATION = re.compile(r"(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>ms|s|m)?")
_REGRESSION = re.compile(
    r"(?P<sign>[-+])?\s*(?P<num>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-z%]+)?(?:\s+(?P<rest>.+))?"
)
_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")

# A profile override that drops a default: ``p95: off`` (YAML reads off/no/false as False).
_OFF = object()


# --- request name selectors -------------------------------------------------------------


def is_glob(selector: str) -> bool:
    """A selector is a glob when it holds ``*`` or ``?``; brackets are always literal.

    fnmatch would read ``[merchant_order_id]`` in the status request's name as a character
    class, so an exact name with brackets would silently match nothing.
    """
    return "*" in selector or "?" in selector


@functools.lru_cache(maxsize=256)
def _glob_regex(selector: str) -> re.Pattern[str]:
    # Each star but the last matches as little as it can, atomically (as fnmatch does): a
    # plain ".*" per star would backtrack exponentially, "*a*a*a*a*b" against a long name.
    def fixed(text: str) -> str:
        return "".join("." if c == "?" else re.escape(c) for c in text)

    if "*" not in selector:
        return re.compile(fixed(selector), re.DOTALL)
    head, *middle, tail = selector.split("*")
    inner = "".join(f"(?>.*?{fixed(part)})" for part in middle if part)
    return re.compile(f"{fixed(head)}{inner}.*{fixed(tail)}", re.DOTALL)


def selector_matches(selector: str, key: str) -> bool:
    """Whether a budget selector (exact name or ``*``/``?`` glob) covers a request key."""
    if not is_glob(selector):
        return selector == key
    return _glob_regex(selector).fullmatch(key) is not None


def match_keys(selector: str, keys: Sequence[str]) -> list[str]:
    """The keys a selector covers, in the order given; the run aggregate is never matched."""
    return [k for k in keys if k != AGGREGATE_KEY and selector_matches(selector, k)]


# --- key paths and errors ---------------------------------------------------------------


def format_key_path(parts: Sequence[str]) -> str:
    """``["requests", "GET /api/plans", "p95"]`` -> ``requests."GET /api/plans".p95``."""
    out = []
    for part in parts:
        if _PLAIN_KEY.fullmatch(part) or _PERCENTILE.fullmatch(part):
            out.append(part)
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'"{escaped}"')
    return ".".join(out)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class _Ctx:
    """Where we are in the file, for messages."""

    source: str
    path: tuple[str, ...] = ()

    def at(self, *parts: Any) -> _Ctx:
        return _Ctx(self.source, self.path + tuple(str(p) for p in parts))

    def fail(self, what: str, fix: str) -> NoReturn:
        where = format_key_path(self.path) if self.path else "top level"
        raise ConfigError(_one_line(f"{self.source}: {where}: {what}; {fix}"))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"a {type(value).__name__}"


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def _mapping(ctx: _Ctx, value: Any, allowed: Sequence[str] | None, fix: str) -> dict[Any, Any]:
    """A non-empty mapping whose keys are text (and among ``allowed`` when given)."""
    if value is None:
        ctx.fail("has no value", fix)
    if not isinstance(value, Mapping):
        ctx.fail(f"expected a mapping, got {_kind(value)}", fix)
    if not value:
        ctx.fail("is empty", f"remove it or {fix}")
    for key in value:
        if not isinstance(key, str):
            ctx.at(key).fail(f"key {key!r} is not text", "quote it")
        if allowed is not None and key not in allowed:
            ctx.at(key).fail(
                f"unknown key {key!r}",
                f"{_suggest(key, allowed)}allowed here: {', '.join(allowed)}",
            )
    return dict(value)


# --- YAML with duplicate-key detection ----------------------------------------------------


def _yaml_fix(problem: str) -> str:
    if "chomping or indentation" in problem:
        # `rps: >= 5` unquoted: YAML reads '>' as the start of a folded block.
        return 'quote budgets that start with > or >=, e.g. rps: ">= 5"'
    if "\\t" in problem:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return (
            'quote names and values that contain ": ", e.g. "FLOW checkout: initiate -> confirmed"'
        )
    return "check the indentation and quote request names and budgets (see docs/budgets.md)"


def _check_duplicates(node: yaml.Node, loader: yaml.SafeLoader, ctx: _Ctx, seen: set[int]) -> None:
    """Refuse duplicate keys, which PyYAML would silently resolve to the last one."""
    # Walks the composed nodes rather than the loaded dict: only they know both lines.
    if id(node) in seen:  # an alias points at a node already walked
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_line:
                ctx.at(key).fail(
                    f"duplicate key {key!r} (lines {first_line[key]} and {line})",
                    "keep one of them: YAML would silently use the last",
                )
            first_line[key] = line
            _check_duplicates(value_node, loader, ctx.at(key), seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_duplicates(item, loader, ctx.at(index), seen)


# Bounds that keep any file, of any shape, quick to accept or refuse (docs/budgets.md). The
# project's budgets.yaml is 4 kB of some 200 values; PyYAML reads ~100 kB/s at worst.
MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 20
# Keys, values and items, an alias counting what it repeats. Every profile is built over
# every default name, so names x profiles grows with the square of this.
MAX_VALUES = 5_000


class _TooBig(Exception):
    def __init__(self, problem: str, fix: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem, self.fix, self.mark = problem, fix, mark


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that stops, while composing, at a file nested too deep or one
    whose aliases make it stand for too many values (a "billion laughs" file)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._expanded = 0
        self._values: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded

    def _count(self, values: int, mark: Any) -> None:
        self._expanded += values
        if self._expanded > MAX_VALUES:
            raise _TooBig(
                f"more than {MAX_VALUES:,} keys and values (an alias counts what it repeats)",
                "a budgets file is far smaller; remove what repeats",
                mark,
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        # types-PyYAML leaves Parser.peek_event unannotated; it returns the next Event.
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            self._count(self._values.get(id(node), 1), mark)
            return node
        self._count(1, mark)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooBig(
                f"nested deeper than {MAX_DEPTH} levels",
                "budgets nest a few levels (profiles.NAME.requests.NAME.METRIC)",
                mark,
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        self._values[id(node)] = 1 + sum(self._values.get(id(c), 1) for c in children)
        return node


def _load_yaml(text: str, ctx: _Ctx) -> Any:
    if len(text) > MAX_FILE_BYTES:
        ctx.fail(
            f"{len(text):,} characters, more than the {MAX_FILE_BYTES // 1024} KiB a budgets "
            "file may hold",
            "a budgets file is a few kB; check that this is the right file",
        )
    loader = None
    try:
        # Inside the try: the reader refuses some characters (a lone surrogate) at once.
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_duplicates(node, loader, ctx, set())
        return loader.construct_document(node)
    except _TooBig as exc:
        where = f"line {exc.mark.line + 1}, column {exc.mark.column + 1}"
        raise ConfigError(_one_line(f"{ctx.source}: {where}: {exc.problem}; {exc.fix}")) from None
    except RecursionError:
        # Not reached within MAX_DEPTH; kept so that no shape of file ends in a traceback.
        raise ConfigError(
            f"{ctx.source}: top level: nested too deeply to read; "
            "budgets nest a few levels (profiles.NAME.requests.NAME.METRIC)"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "top level"
        problem = exc.problem or exc.context or "unreadable"
        raise ConfigError(
            _one_line(f"{ctx.source}: {where}: not valid YAML ({problem}); {_yaml_fix(problem)}")
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(
            _one_line(f"{ctx.source}: top level: not valid YAML ({exc}); {_yaml_fix(str(exc))}")
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


# --- metrics and limits -------------------------------------------------------------------


def _parse_metric(ctx: _Ctx, name: str) -> str:
    """A metric name -> its canonical spelling (``p95.0`` -> ``p95``)."""
    # One spelling per metric, so that overrides and baselines find each other.
    found = registry.lookup(name)
    if found is not None and found.source == "client":
        return found.name
    if found is not None:
        ctx.fail(f"{name!r} is a server metric", "budget it under server.SOURCE (docs/budgets.md)")
    m = _PERCENTILE.fullmatch(name)
    if m and float(m.group(1)) == 100:
        ctx.fail(f"{name!r} is the slowest request", "use max")
    if m and float(m.group(1)) == 0:
        ctx.fail(f"{name!r} is the fastest request", "use min")
    hint = registry.suggest(name)
    suggestion = f"did you mean {hint!r}? " if hint else ""
    ctx.fail(f"unknown metric {name!r}", f"{suggestion}{METRICS_HELP}")


def _an(phrase: str) -> str:
    return f"an {phrase}" if phrase[:1] in "aeiou" else f"a {phrase}"


def split_limit(
    ctx: _Ctx,
    value: Any,
    example: str,
    number_re: re.Pattern[str] = _NUMBER,
    negative: tuple[str, str] = ("negative limit in {text!r}", "a limit must be greater than zero"),
) -> tuple[Operator, float, str, str]:
    """``"< 2s"`` -> ``("<", 2.0, "s", "< 2s")``: operator, number, unit and the text; the
    one parser of a limit, for request and server budgets (``example``: ``key: "< 2s"``).
    ``negative`` is the problem and fix for a negative (or infinite) number."""
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            ctx.fail(
                f"{value} has no operator",
                f"write the operator (and unit) in quotes, e.g. {example}",
            )
        ctx.fail(
            f"expected a budget like {example.split(': ', 1)[1]}, got {_kind(value)}",
            f"write e.g. {example}",
        )
    text = value.strip()
    if not text:
        ctx.fail("the budget is empty", f"write e.g. {example}")
    op_len = 0
    while op_len < len(text) and text[op_len] in _OP_CHARS:
        op_len += 1
    op_text, rest = text[:op_len], text[op_len:].strip()
    if not op_text:
        ctx.fail(f"{text!r} has no operator", f"start it with <, <=, > or >=, e.g. {example}")
    if op_text not in _OPERATORS:
        ctx.fail(f"unknown operator {op_text!r} in {text!r}", "use <, <=, > or >=")
    op: Operator = op_text
    m = number_re.match(rest)
    if not m:
        ctx.fail(f"{text!r} has no number after the operator", f"write e.g. {example}")
    number = float(m.group(0))
    unit = rest[m.end() :].strip()
    # The sign is parsed (not left to the regex) so that "-5ms" says negative, not "no number".
    if number < 0 or not math.isfinite(number):
        ctx.fail(negative[0].format(text=text), negative[1])
    return op, number, unit, text


def _parse_limit(ctx: _Ctx, metric: str, value: Any) -> tuple[Operator, float, str]:
    """``"< 2s"`` for ``avg`` -> ``("<", 2000.0, "< 2s")``; the limit in the metric's unit."""
    info = registry.metric(metric)
    example = info.example
    op, number, unit, text = split_limit(ctx, value, example)

    if info.kind == "latency":
        if not unit:
            ctx.fail(f"{text!r} has no unit", f"add ms or s, e.g. {example}")
        if unit not in ("ms", "s"):
            ctx.fail(f"unknown unit {unit!r} in {text!r}", "use ms or s for a time")
        limit = number * 1000.0 if unit == "s" else number
    elif info.kind == "percent":
        if not unit:
            ctx.fail(f"{text!r} has no unit", f'write the {info.phrase} in percent, e.g. "< 1%"')
        if unit != "%":
            ctx.fail(f"unknown unit {unit!r} in {text!r}", f'{metric} is in percent: "< 1%"')
        if number > 100:
            ctx.fail(f"{text!r} is above 100 %", f"{_an(info.phrase)} is between 0 % and 100 %")
        limit = number
    else:
        what = "requests per second" if info.kind == "rate" else "a number of requests"
        if unit:
            ctx.fail(
                f"unknown unit {unit!r} in {text!r}", f"{metric} is {what}, without unit: {example}"
            )
        if info.kind == "count" and not number.is_integer():
            ctx.fail(f"{text!r} is not a whole number", f"{metric} is {what}: {example}")
        limit = number

    if limit == 0:
        if info.kind == "percent" and op in ("<=", ">"):
            # "<= 0%": no failure at all; "> 0%": a fault-injection run must see errors.
            return op, limit, text
        if info.kind == "percent":
            fix = 'write "<= 0%" to allow no errors at all'
            ctx.fail(f"{text!r} can never {'hold' if op == '<' else 'fail'}", fix)
        ctx.fail(f"the limit in {text!r} is zero", "a limit must be greater than zero")
    return op, limit, text


def _parse_regression(ctx: _Ctx, metric: str, value: Any) -> tuple[float, bool, bool, str]:
    """``"+10% significant"`` -> (max_increase, relative, significant_only, text)."""
    info = registry.metric(metric)
    example = '"+0.5 points"' if info.kind == "percent" else '"+10% significant"'
    if not info.regressable:
        ctx.fail(
            f"no regression budget for {metric}",
            "regressions judge latencies and error_rate; set an rps budget for throughput",
        )
    if not info.regression:
        # The baseline is read from the history: a metric it does not keep could never be
        # compared, and the budget would be skipped on every run.
        ctx.fail(
            f"no regression budget for {metric}: the history keeps no {metric} of earlier runs",
            f"{registry.REGRESSION_HELP}, or an absolute budget such as {info.example}",
        )
    if isinstance(value, bool) or not isinstance(value, str):
        ctx.fail(
            f"expected a regression budget like {example}, got {_kind(value)}",
            f"write e.g. {metric}: {example}",
        )
    text = value.strip()
    m = _REGRESSION.fullmatch(text)
    if not m:
        ctx.fail(f"{text!r} is not a regression budget", f"write e.g. {metric}: {example}")
    if m.group("sign") != "+":
        ctx.fail(f"{text!r} has no plus sign", f"a regression budget limits a rise: {example}")
    number = float(m.group("num"))
    unit = m.group("unit") or ""
    rest = (m.group("rest") or "").strip()
    if info.kind == "percent":
        # Points, not percent: 0.01 % -> 0.02 % is +100 % but nothing anyone should page on.
        if unit not in ("point", "points"):
            ctx.fail(
                f"{text!r}: {_an(info.phrase)} rises in percentage points",
                'write e.g. "+0.5 points" (a relative rise of a rate near 0 % is noise)',
            )
        relative, increase = False, number
    else:
        if unit not in ("%", "ms", "s"):
            what = f"unknown unit {unit!r}" if unit else "no unit"
            ctx.fail(f"{what} in {text!r}", 'use % of the baseline or ms/s, e.g. "+10%"')
        relative = unit == "%"
        increase = number * 1000.0 if unit == "s" else number
    significant = False
    if rest:
        if rest != "significant":
            ctx.fail(
                f"unknown word {rest!r} in {text!r}",
                f"{_suggest(rest, ['significant'])}the only word allowed after the rise is "
                "'significant'",
            )
        significant = True
    if increase == 0 and not significant:
        ctx.fail(
            f"{text!r} fails on any noise",
            'allow a rise ("+5%") or add significant ("+0% significant")',
        )
    return increase, relative, significant, text


# --- sections -----------------------------------------------------------------------------


@dataclass
class _Layer:
    """The defaults, or one profile's overrides, as written (``_OFF`` drops a default)."""

    budgets: dict[str, Any] = field(default_factory=dict)  # selector -> metric -> Budget|_OFF
    regressions: dict[str, Any] = field(default_factory=dict)
    warmup_s: float | None = None
    baseline_runs: int | None = None
    expected_peak_rps: float | None = None


def _check_selector(ctx: _Ctx, selector: str, known_keys: Sequence[str] | None) -> None:
    if not selector.strip():
        ctx.fail("empty request name", 'write "METHOD name", e.g. "GET /api/plans"')
    if selector != selector.strip():
        ctx.fail(f"{selector!r} has spaces around it", "remove them: names match exactly")
    if selector == AGGREGATE_KEY:
        ctx.fail(f"{AGGREGATE_KEY!r} is the whole run", "put run-wide budgets in the run: section")
    if selector.startswith("/"):
        ctx.fail(
            f"{selector!r} lacks its method",
            f'a request name starts with its method, e.g. "GET {selector}"',
        )
    if known_keys is None:
        return
    # A run's keys include the aggregate, which is never a request name.
    names = [k for k in known_keys if k != AGGREGATE_KEY]
    if match_keys(selector, names):
        return
    if is_glob(selector):
        ctx.fail(
            f"the glob {selector!r} matches no request name",
            f"known names: {', '.join(names)}",
        )
    close = difflib.get_close_matches(selector, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else f"known names: {', '.join(names)}; "
    ctx.fail(
        f"no request is named {selector!r}",
        f"{hint}names match exactly, brackets included; use * or ? for a glob",
    )


def _is_off(value: Any) -> bool:
    # Unquoted off is YAML 1.1's false; quoted "off" is accepted as well.
    return value is False or (isinstance(value, str) and value.strip() == "off")


def _metric_entries(
    ctx: _Ctx,
    value: Any,
    selector: str,
    in_profile: bool,
    regression: bool,
) -> dict[str, Any]:
    fix = "add budgets such as " + ('p95: "+10% significant"' if regression else 'p95: "< 800ms"')
    entries = _mapping(ctx, value, None, fix)
    out: dict[str, Any] = {}
    for raw_metric, raw in entries.items():
        mctx = ctx.at(raw_metric)
        metric = _parse_metric(mctx, raw_metric)
        if metric in out:
            mctx.fail(f"{raw_metric!r} repeats the metric {metric!r}", "keep one of them")
        if _is_off(raw):
            if not in_profile:
                mctx.fail("off is for profiles", "use off in profiles.<name> to drop a default")
            out[metric] = _OFF
        elif regression:
            increase, relative, significant, text = _parse_regression(mctx, metric, raw)
            out[metric] = RegressionBudget(
                key_path=format_key_path(mctx.path),
                selector=selector,
                metric=metric,
                max_increase=increase,
                relative=relative,
                significant_only=significant,
                text=text,
            )
        else:
            op, limit, text = _parse_limit(mctx, metric, raw)
            out[metric] = Budget(
                key_path=format_key_path(mctx.path),
                selector=selector,
                metric=metric,
                op=op,
                limit=limit,
                text=text,
            )
    return out


def _budget_sections(
    ctx: _Ctx,
    section: Mapping[str, Any],
    known_keys: Sequence[str] | None,
    in_profile: bool,
    regression: bool,
) -> dict[str, Any]:
    """The ``requests:`` and ``run:`` keys of a layer -> selector -> metric -> entry."""
    out: dict[str, Any] = {}
    if "requests" in section:
        rctx = ctx.at("requests")
        names = _mapping(
            rctx, section["requests"], None, 'add request names, e.g. "GET /api/plans"'
        )
        for selector, value in names.items():
            sctx = rctx.at(selector)
            _check_selector(sctx, selector, known_keys)
            if _is_off(value):
                if not in_profile:
                    sctx.fail("off is for profiles", "use off in profiles.<name> to drop a default")
                out[selector] = _OFF
            else:
                out[selector] = _metric_entries(sctx, value, selector, in_profile, regression)
    if "run" in section:
        rctx = ctx.at("run")
        if _is_off(section["run"]):
            if not in_profile:
                rctx.fail("off is for profiles", "use off in profiles.<name> to drop a default")
            out[AGGREGATE_KEY] = _OFF
        else:
            out[AGGREGATE_KEY] = _metric_entries(
                rctx, section["run"], AGGREGATE_KEY, in_profile, regression
            )
    return out


def _duration_s(ctx: _Ctx, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        ctx.fail(f"expected a duration like 2s, got {_kind(value)}", "write e.g. warmup: 2s")
    if not isinstance(value, str):
        if value == 0:
            return 0.0
        ctx.fail(f"{value} has no unit", f"write e.g. warmup: {value}s")
    m = _DURATION.fullmatch(value.strip())
    if not m:
        ctx.fail(f"{value!r} is not a duration", "write e.g. 2s, 500ms or 1m")
    number = float(m.group("num"))
    if number < 0:
        ctx.fail(f"{value!r} is negative", "a warm-up is zero or more, e.g. 2s")
    unit = m.group("unit")
    if unit is None and number != 0:
        ctx.fail(f"{value!r} has no unit", f"write e.g. {m.group('num')}s")
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[unit]


def _layer(
    ctx: _Ctx, section: Mapping[str, Any], known_keys: Sequence[str] | None, in_profile: bool
) -> _Layer:
    layer = _Layer()
    layer.budgets = _budget_sections(ctx, section, known_keys, in_profile, regression=False)
    if "regressions" in section:
        rctx = ctx.at("regressions")
        regs = _mapping(rctx, section["regressions"], REGRESSION_KEYS, "add requests: or run:")
        layer.regressions = _budget_sections(rctx, regs, known_keys, in_profile, regression=True)
    if "steady_state" in section:
        sctx = ctx.at("steady_state")
        steady = _mapping(sctx, section["steady_state"], STEADY_STATE_KEYS, "add warmup: 2s")
        if "warmup" in steady:
            layer.warmup_s = _duration_s(sctx.at("warmup"), steady["warmup"])
    if "baseline" in section:
        bctx = ctx.at("baseline")
        base = _mapping(bctx, section["baseline"], BASELINE_KEYS, "add runs: 5")
        runs = base.get("runs")
        if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
            bctx.at("runs").fail(
                f"expected a whole number of runs of 1 or more, got {_kind(runs)}",
                "write e.g. runs: 5 (3 or more allow a prediction interval)",
            )
        layer.baseline_runs = runs
    if "capacity" in section:
        cctx = ctx.at("capacity")
        cap = _mapping(cctx, section["capacity"], CAPACITY_KEYS, "add expected_peak_rps: 80")
        peak = cap.get("expected_peak_rps")
        if isinstance(peak, bool) or not isinstance(peak, (int, float)) or peak <= 0:
            cctx.at("expected_peak_rps").fail(
                f"expected a number of requests per second above zero, got {_kind(peak)}",
                "write e.g. expected_peak_rps: 80",
            )
        layer.expected_peak_rps = float(peak)
    return layer


def _hosts(ctx: _Ctx, value: Any) -> tuple[str, ...]:
    section = _mapping(ctx, value, HOSTS_KEYS, "add allow: [staging.example.internal]")
    actx = ctx.at("allow")
    allow = section.get("allow", [])
    if not isinstance(allow, list):
        actx.fail(
            f"expected a list of host names, got {_kind(allow)}",
            "write e.g. allow: [staging.example.internal] or allow: []",
        )
    hosts: list[str] = []
    for index, item in enumerate(allow):
        ictx = actx.at(index)
        if not isinstance(item, str) or not item.strip():
            ictx.fail(
                f"expected a host name, got {_kind(item)}", "write e.g. staging.example.internal"
            )
        host = item.strip().lower().rstrip(".")
        if "://" in host or "/" in host:
            ictx.fail(
                f"{item!r} is a URL", "list the host name only, e.g. staging.example.internal"
            )
        if "*" in host or "?" in host:
            ictx.fail(
                f"{item!r} is a pattern",
                "list each host by name, so that no production host matches by accident",
            )
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif host.count(":") == 1:
            ictx.fail(f"{item!r} has a port", "list the host name without the port")
        problem = host_name_problem(host)
        if problem is not None:
            ictx.fail(f"{item!r} {problem[0]}", problem[1])
        if host not in hosts:
            hosts.append(host)
    return tuple(hosts)


def _preflight(ctx: _Ctx, value: Any, hosts: tuple[str, ...]) -> Preflight:
    """``preflight:``: the requests a target must answer before any load (see docs)."""
    section = _mapping(ctx, value, PREFLIGHT_KEYS, "add checks: [{url: /healthz, status: 200}]")
    cctx = ctx.at("checks")
    items = section.get("checks", [])
    if not isinstance(items, list):
        cctx.fail(
            f"expected a list of checks, got {_kind(items)}",
            "write e.g. checks: [{url: /healthz, status: 200}] (or checks: [] for none)",
        )
    checks: list[PreflightCheck] = []
    for index, item in enumerate(items):
        ictx = cctx.at(index)
        entry = _mapping(ictx, item, PREFLIGHT_CHECK_KEYS, "write e.g. {url: /healthz}")
        uctx = ictx.at("url")
        url = entry.get("url")
        if not isinstance(url, str) or not url:
            uctx.fail(
                f"expected a path or URL, got {_kind(url)}",
                "write e.g. url: /healthz (a path on the target) or a whole http(s) URL",
            )
        problem = target_url_problem(url, hosts)
        if problem is not None:
            uctx.fail(f"{url!r} {problem[0]}", problem[1])
        status = entry.get("status", 200)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            ictx.at("status").fail(
                f"expected an HTTP status code (100-599), got {_kind(status)}",
                "write e.g. status: 200",
            )
        checks.append(PreflightCheck(url=url, status=status, key_path=format_key_path(ictx.path)))
    timeout_s = None
    if "timeout" in section:
        tctx = ctx.at("timeout")
        text = section["timeout"]
        m = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
        if m is None or m.group("unit") is None or float(m.group("num")) <= 0:
            tctx.fail(
                f"expected a duration above zero with a unit, got {_kind(text)}",
                "write e.g. timeout: 5s (for the whole preflight)",
            )
        timeout_s = float(m.group("num")) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group("unit")]
    return Preflight(checks=tuple(checks), timeout_s=timeout_s)


def _check_version(ctx: _Ctx, data: Mapping[str, Any]) -> None:
    vctx = ctx.at("version")
    if "version" not in data:
        vctx.fail(
            "missing", f"add 'version: {FORMAT_VERSION}' at the top (the budgets format version)"
        )
    version = data["version"]
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        vctx.fail(
            f"budgets format version {version} is newer than this paybench reads "
            f"({FORMAT_VERSION})",
            "upgrade paybench",
        )
    if isinstance(version, bool) or version != FORMAT_VERSION or not isinstance(version, int):
        vctx.fail(
            f"{version!r} is not a format version paybench reads",
            f"write version: {FORMAT_VERSION} (a number, unquoted)",
        )


def _merge(ctx: _Ctx, base: dict[str, Any], over: dict[str, Any], what: str) -> dict[str, Any]:
    """Apply a profile's overrides to the defaults: per name, per metric; ``off`` drops one."""
    merged = {sel: dict(metrics) for sel, metrics in base.items()}
    for selector, metrics in over.items():
        sctx = ctx.at("run") if selector == AGGREGATE_KEY else ctx.at("requests", selector)
        if metrics is _OFF:
            if selector not in merged:
                sctx.fail(f"off drops nothing: no default {what} for {selector!r}", "remove it")
            del merged[selector]
            continue
        target = merged.setdefault(selector, {})
        for metric, entry in metrics.items():
            if entry is _OFF:
                if metric not in target:
                    sctx.at(metric).fail(
                        f"off drops nothing: no default {metric} {what} here", "remove it"
                    )
                del target[metric]
            else:
                target[metric] = entry
        if not target:
            del merged[selector]
    return merged


def _profile_budgets(
    source: str, defaults: _Layer, layer: _Layer | None, name: str, hosts: tuple[str, ...]
) -> Budgets:
    pctx = _Ctx(source, ("profiles", name))
    budgets = defaults.budgets
    regressions = defaults.regressions
    warmup, runs, peak = defaults.warmup_s, defaults.baseline_runs, defaults.expected_peak_rps
    if layer is not None:
        budgets = _merge(pctx, budgets, layer.budgets, "budget")
        regressions = _merge(
            pctx.at("regressions"),
            regressions,
            layer.regressions,
            "regression budget",
        )
        warmup = layer.warmup_s if layer.warmup_s is not None else warmup
        runs = layer.baseline_runs if layer.baseline_runs is not None else runs
        peak = layer.expected_peak_rps if layer.expected_peak_rps is not None else peak
    return _build(source, budgets, regressions, hosts, warmup, runs, peak, name)


def _build(
    source: str,
    budgets: Mapping[str, Any],
    regressions: Mapping[str, Any],
    hosts: tuple[str, ...],
    warmup_s: float | None,
    baseline_runs: int | None,
    expected_peak_rps: float | None,
    profile: str | None,
) -> Budgets:
    # Request budgets first, then the run's, each in the order written.
    def flatten(entries: Mapping[str, Any]) -> tuple[Any, ...]:
        order = [s for s in entries if s != AGGREGATE_KEY]
        if AGGREGATE_KEY in entries:
            order.append(AGGREGATE_KEY)
        return tuple(e for s in order for e in entries[s].values())

    return Budgets(
        source=source,
        budgets=flatten(budgets),
        regressions=flatten(regressions),
        allowed_hosts=hosts,
        warmup_s=warmup_s if warmup_s is not None else 0.0,
        baseline_runs=baseline_runs if baseline_runs is not None else 5,
        expected_peak_rps=expected_peak_rps,
        profile=profile,
    )


# --- public API ---------------------------------------------------------------------------


def parse_budgets(
    text: str,
    source: str,
    profile: str | None = None,
    known_keys: Sequence[str] | None = None,
    known_profiles: Sequence[str] | None = None,
) -> Budgets:
    """Validate a budgets file's text and return the budgets for ``profile`` (None: defaults).

    ``known_keys`` (the scenario catalogue, or a run's request keys) makes every name and
    glob that matches none of them an error; ``known_profiles`` does the same for the names
    under ``profiles:``. A profile without a section in the file simply gets the defaults.
    """
    ctx = _Ctx(source)
    data = _load_yaml(text, ctx)
    if data is None:
        ctx.fail(
            "the file is empty",
            f"write at least 'version: {FORMAT_VERSION}' and a "
            "requests: or run: section (see docs/budgets.md)",
        )
    if not isinstance(data, Mapping):
        ctx.fail(
            f"expected a mapping of sections, got {_kind(data)}",
            f"start with 'version: {FORMAT_VERSION}' and sections such as requests: and run:",
        )
    for key in data:
        if not isinstance(key, str):
            ctx.at(key).fail(f"key {key!r} is not text", f"allowed here: {', '.join(TOP_KEYS)}")
    # The version first: a newer file's new keys must read "upgrade", not "unknown key".
    _check_version(ctx, data)
    _mapping(ctx, data, TOP_KEYS, "add sections")

    defaults = _layer(ctx, data, known_keys, in_profile=False)
    hosts = _hosts(ctx.at("hosts"), data["hosts"]) if "hosts" in data else ()
    preflight = None
    if "preflight" in data:
        preflight = _preflight(ctx.at("preflight"), data["preflight"], hosts)

    layers: dict[str, _Layer] = {}
    server_overrides: dict[str, Any] = {}
    if "profiles" in data:
        pctx = ctx.at("profiles")
        sections = _mapping(pctx, data["profiles"], None, "add a profile, e.g. smoke:")
        for name, section in sections.items():
            nctx = pctx.at(name)
            if not _PROFILE_NAME.fullmatch(name):
                nctx.fail(f"{name!r} is not a profile name", "use letters, digits, - and _")
            if known_profiles is not None and name not in known_profiles:
                nctx.fail(
                    f"no profile is named {name!r}",
                    f"{_suggest(name, known_profiles)}profiles: {', '.join(known_profiles)}",
                )
            body = _mapping(nctx, section, PROFILE_KEYS, "add overrides such as requests:")
            layers[name] = _layer(nctx, body, known_keys, in_profile=True)
            if "server" in body:
                server_overrides[name] = body["server"]

    # Build every profile now so that a bad override fails whichever profile was asked for.
    built = {
        name: _profile_budgets(source, defaults, layer, name, hosts)
        for name, layer in layers.items()
    }
    if profile is not None and profile in built:
        result = built[profile]
    else:
        result = _build(
            source,
            defaults.budgets,
            defaults.regressions,
            hosts,
            defaults.warmup_s,
            defaults.baseline_runs,
            defaults.expected_peak_rps,
            profile,
        )
    # Lazily: server_budgets builds on this module's helpers.
    from harness.core.server_budgets import parse_server

    server = parse_server(ctx, data, server_overrides, profile)
    if server is not None:
        result = replace(result, server=server)
    judged_server = server is not None and bool(server.budgets or server.regressions)
    if not result.budgets and not result.regressions and not judged_server:
        where = ctx.at("profiles", profile) if profile in built else ctx.at("requests")
        what = f"no budgets for profile {profile!r}" if profile else "no budgets"
        where.fail(
            what, "add budgets under requests: or run: (a run with no budget proves nothing)"
        )
    # Lazily: harness.core.abort_rules reads this module's helpers.
    from harness.core.abort_rules import with_abort_rules

    result = with_abort_rules(ctx, data, result, defaults.budgets, built, known_keys)
    return result if preflight is None else replace(result, preflight=preflight)
