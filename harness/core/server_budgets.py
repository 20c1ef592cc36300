"""budgets.yaml's ``sources:`` and ``server:`` sections -> ServerSection (pure).

``sources:`` names where server metrics come from (a Prometheus text endpoint, a Prometheus
server, Redis, PostgreSQL, local processes); ``server:`` budgets them, per source, like
``requests:`` budgets request names:

    server:
      target_process:
        cpu_percent: "< 70%"              # the window's average
        memory_percent: {max: "< 80%"}    # a statistic over the window's samples
      redis:
        cache_hit_rate: "> 80%"
        expr:
          "rate(redis_evicted_keys_total)": "< 1"   # a raw expression, a bare number

A named metric (``harness.core.metrics``' server entries) has one or more formulas over the
standard series names the exporters use; the first whose series a source has is the one
judged (``formulas``). Counters are always judged as their change over the window, gauges
by their average, minimum, maximum or a percentile over the window's samples
(``harness.core.server_eval``). The format is documented in docs/budgets.md ("Server
metrics"); every mistake is one line naming the key path, as in ``harness.core.budgets``,
whose helpers this module uses (it imports this one lazily).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from harness.core import metrics as registry
from harness.core.budgets import (
    _OFF,
    _Ctx,
    _duration_s,
    _is_off,
    _kind,
    _mapping,
    _suggest,
    format_key_path,
    split_limit,
)
from harness.core.model import Budget, Operator

if TYPE_CHECKING:
    from harness.core.server_regressions import ServerRegressionBudget

SourceKind = Literal["prometheus", "promql", "redis", "postgres", "process"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("prometheus", "promql", "redis", "postgres", "process")
MatchOp = Literal["=", "!=", "=~", "!~"]

# The two sources every run of the built-in target has without any setup: its /metrics and
# its process (by PID). A source declared under the same name replaces the built-in one
# (e.g. ``target: {kind: prometheus, url: /metrics}`` for a --host that has /metrics).
TARGET_SOURCE = "target"
TARGET_PROCESS_SOURCE = "target_process"
BUILTIN_SOURCES = (TARGET_SOURCE, TARGET_PROCESS_SOURCE)

DEFAULT_TIMEOUT_S = 1.0  # per scrape of one source
MAX_TIMEOUT_S = 30.0
RAW_KEY = "expr"
SOURCE_KEYS = (
    "kind",
    "url",
    "pid",
    "pid_file",
    "children",
    "username_env",
    "password_env",
    "match",
    "timeout",
)
# Which keys each kind takes besides kind and timeout.
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "prometheus": ("url", "username_env", "password_env"),
    "promql": ("url", "username_env", "password_env", "match"),
    "redis": ("url", "username_env", "password_env"),
    "postgres": ("url", "password_env"),
    "process": ("pid", "pid_file", "children"),
}
_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "prometheus": ("http", "https"),
    "promql": ("http", "https"),
    "redis": ("redis", "rediss"),
    "postgres": ("postgresql", "postgres"),
}
_EXAMPLE_SOURCE: dict[str, str] = {
    "prometheus": "{kind: prometheus, url: http://127.0.0.1:9100/metrics}",
    "promql": "{kind: promql, url: http://127.0.0.1:9090}",
    "redis": "{kind: redis, url: redis://127.0.0.1:6379/0}",
    "postgres": "{kind: postgres, url: postgresql://paybench@127.0.0.1:5432/payments}",
    "process": "{kind: process, pid_file: /run/postgresql/15-main.pid}",
}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SOURCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_STAT = re.compile(r"min|max|avg|run|p(\d+(?:\.\d+)?)")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_SIZE_UNITS = {
    "B": 1 / 2**20,
    "kB": 1e3 / 2**20,
    "KB": 1e3 / 2**20,
    "KiB": 1 / 2**10,
    "MB": 1e6 / 2**20,
    "MiB": 1.0,
    "GB": 1e9 / 2**20,
    "GiB": 2**10,
}
# Bounded by their definition; CPU of a process may pass 100 % (several cores).
_AT_MOST_100 = (
    "memory_percent",
    "cache_hit_rate",
    "pool_usage_percent",
    "host_cpu_percent",
    "host_memory_percent",
)


# --- series and selectors -------------------------------------------------------------------


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_text(name: str, labels: Mapping[str, str]) -> str:
    """A sample's name and labels as Prometheus' text format writes them, labels sorted:
    ``node_cpu_seconds_total{cpu="0",mode="idle"}``; the key of server.jsonl's values."""
    if not labels:
        return name
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


_LABEL_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)', re.S)


def parse_series_text(text: str) -> tuple[str, dict[str, str]] | None:
    """``series_text``'s inverse; None for text that is not a series."""
    brace = text.find("{")
    if brace < 0:
        return (text, {}) if _METRIC_NAME.fullmatch(text) else None
    name, inner = text[:brace], text[brace + 1 :]
    if not _METRIC_NAME.fullmatch(name) or not inner.endswith("}"):
        return None
    inner = inner[:-1]
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(inner):
        m = _LABEL_PAIR.match(inner, pos)
        if m is None:
            return None
        labels[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
    return name, labels


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


_METRIC_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a selector: ``mode="idle"``, ``device!~"loop.*"``."""

    label: str
    op: MatchOp
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        # Anchored, as in PromQL.
        found = re.fullmatch(self.value, have) is not None
        return found if self.op == "=~" else not found

    @property
    def text(self) -> str:
        return f'{self.label}{self.op}"{_escape(self.value)}"'


@dataclass(frozen=True)
class Selector:
    """A series name and label matchers; it stands for the sum of every series it matches."""

    name: str
    matchers: tuple[Matcher, ...] = ()

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        return name == self.name and all(m.matches(labels) for m in self.matchers)

    @property
    def text(self) -> str:
        return f"{self.name}{{{','.join(m.text for m in self.matchers)}}}"


# --- expressions ------------------------------------------------------------------------------
# The formulas of the named metrics and the raw expressions, evaluated by server_eval over a
# source's samples. Counters enter only through Increase and Rate (their change), gauges
# through Gauge (their value at each sample).


@dataclass(frozen=True)
class Gauge:
    selector: Selector


@dataclass(frozen=True)
class Increase:
    """A counter's increase (``delta()``); resets (a restart) count from zero."""

    selector: Selector


@dataclass(frozen=True)
class Rate:
    """A counter's increase per second (``rate()``)."""

    selector: Selector


@dataclass(frozen=True)
class Ratio:
    numerator: Expr
    denominator: Expr


@dataclass(frozen=True)
class Sum:
    parts: tuple[Expr, ...]


@dataclass(frozen=True)
class Scale:
    factor: float
    inner: Expr


@dataclass(frozen=True)
class Complement:
    """``1 - inner`` (an idle share -> a busy share)."""

    inner: Expr


@dataclass(frozen=True)
class NonZero:
    """``first`` where it is above zero, else ``fallback`` (Redis' maxmemory 0 = no limit)."""

    first: Expr
    fallback: Expr


Expr = Gauge | Increase | Rate | Ratio | Sum | Scale | Complement | NonZero


def selectors(expr: Expr) -> Iterator[Selector]:
    """Every selector an expression reads, in order."""
    if isinstance(expr, (Gauge, Increase, Rate)):
        yield expr.selector
    elif isinstance(expr, Ratio):
        yield from selectors(expr.numerator)
        yield from selectors(expr.denominator)
    elif isinstance(expr, Sum):
        for part in expr.parts:
            yield from selectors(part)
    elif isinstance(expr, (Scale, Complement)):
        yield from selectors(expr.inner)
    else:
        yield from selectors(expr.first)
        yield from selectors(expr.fallback)


def series_names(expr: Expr) -> tuple[str, ...]:
    """The series names an expression needs, each once."""
    return tuple(dict.fromkeys(s.name for s in selectors(expr)))


def expression_text(expr: Expr) -> str:
    """The raw syntax of an expression that has one (a selector, rate, delta, a ratio)."""
    if isinstance(expr, Gauge):
        return expr.selector.text
    if isinstance(expr, Increase):
        return f"delta({expr.selector.text})"
    if isinstance(expr, Rate):
        return f"rate({expr.selector.text})"
    if isinstance(expr, Ratio):
        return f"{expression_text(expr.numerator)} / {expression_text(expr.denominator)}"
    raise ValueError(f"{expr!r} has no raw syntax")


def _sel(name: str, **labels: str) -> Selector:
    return Selector(name, tuple(Matcher(k, "=", v) for k, v in labels.items()))


def _pct(expr: Expr) -> Expr:
    return Scale(100.0, expr)


def _hit_rate(hits: str, misses: str) -> Expr:
    h = Increase(_sel(hits))
    return _pct(Ratio(h, Sum((h, Increase(_sel(misses))))))


def _per(numerator: str, denominator: str, factor: float = 1.0, **labels: str) -> Expr:
    ratio = Ratio(Increase(_sel(numerator)), Increase(_sel(denominator, **labels)))
    return ratio if factor == 1.0 else Scale(factor, ratio)


_MIB = 1.0 / 2**20
# The formulas of each named server metric, over the standard names (node_exporter,
# redis_exporter, postgres_exporter, prometheus_client's process collector, OpenTelemetry's
# pool metrics, the reference target's counters); the direct sources write the same names.
# For a source, the first formula whose series it has is judged.
FORMULAS: dict[str, tuple[Expr, ...]] = {
    "cpu_percent": (
        _pct(Rate(_sel("process_cpu_seconds_total"))),
        _pct(
            Sum(
                (
                    Rate(_sel("redis_cpu_sys_seconds_total")),
                    Rate(_sel("redis_cpu_user_seconds_total")),
                )
            )
        ),
    ),
    "memory_percent": (
        _pct(
            Ratio(
                Gauge(_sel("process_resident_memory_bytes")),
                Gauge(_sel("node_memory_MemTotal_bytes")),
            )
        ),
        # Redis: of maxmemory, or of the machine when maxmemory is 0 (no limit).
        _pct(
            Ratio(
                Gauge(_sel("redis_memory_used_bytes")),
                NonZero(
                    Gauge(_sel("redis_memory_max_bytes")),
                    Gauge(_sel("redis_total_system_memory_bytes")),
                ),
            )
        ),
        # redis_exporter without --include-system-metrics: of maxmemory only.
        _pct(Ratio(Gauge(_sel("redis_memory_used_bytes")), Gauge(_sel("redis_memory_max_bytes")))),
    ),
    "memory_bytes": (
        Scale(_MIB, Gauge(_sel("process_resident_memory_bytes"))),
        Scale(_MIB, Gauge(_sel("redis_memory_used_bytes"))),
    ),
    "cache_hit_rate": (
        _hit_rate("payments_cache_hits_total", "payments_cache_misses_total"),
        _hit_rate("redis_keyspace_hits_total", "redis_keyspace_misses_total"),
    ),
    "query_time_avg": (
        _per(
            "payments_db_query_duration_seconds_sum",
            "payments_db_query_duration_seconds_count",
            1000.0,
        ),
        _per("pg_stat_statements_seconds_total", "pg_stat_statements_calls_total", 1000.0),
    ),
    "pool_usage_percent": (
        _pct(
            Ratio(
                Gauge(_sel("db_client_connection_count", state="used")),
                Gauge(_sel("db_client_connection_max")),
            )
        ),
        _pct(
            Ratio(Gauge(_sel("pg_stat_activity_count")), Gauge(_sel("pg_settings_max_connections")))
        ),
    ),
    "emails_per_completed_payment": (
        _per("payments_emails_sent_total", "payments_completed_total"),
    ),
    "host_cpu_percent": (
        _pct(
            Complement(
                Ratio(
                    Increase(_sel("node_cpu_seconds_total", mode="idle")),
                    Increase(_sel("node_cpu_seconds_total")),
                )
            )
        ),
    ),
    "host_memory_percent": (
        _pct(
            Complement(
                Ratio(
                    Gauge(_sel("node_memory_MemAvailable_bytes")),
                    Gauge(_sel("node_memory_MemTotal_bytes")),
                )
            )
        ),
    ),
    "disk_io_time_avg": (
        Scale(
            1000.0,
            Ratio(
                Sum(
                    (
                        Increase(_sel("node_disk_read_time_seconds_total")),
                        Increase(_sel("node_disk_write_time_seconds_total")),
                    )
                ),
                Sum(
                    (
                        Increase(_sel("node_disk_reads_completed_total")),
                        Increase(_sel("node_disk_writes_completed_total")),
                    )
                ),
            ),
        ),
    ),
}

# What each direct source writes (harness.server): the standard names, so that the same
# formulas hold. pg_stat_statements_* only where the extension is installed.
DIRECT_SERIES: dict[str, frozenset[str]] = {
    "redis": frozenset(
        {
            "redis_up",
            "redis_uptime_in_seconds",
            "redis_connected_clients",
            "redis_blocked_clients",
            "redis_memory_used_bytes",
            "redis_memory_used_rss_bytes",
            "redis_memory_max_bytes",
            "redis_total_system_memory_bytes",
            "redis_keyspace_hits_total",
            "redis_keyspace_misses_total",
            "redis_evicted_keys_total",
            "redis_expired_keys_total",
            "redis_commands_processed_total",
            "redis_connections_received_total",
            "redis_rejected_connections_total",
            "redis_cpu_sys_seconds_total",
            "redis_cpu_user_seconds_total",
            "redis_db_keys",
        }
    ),
    "postgres": frozenset(
        {
            "pg_up",
            "pg_settings_max_connections",
            "pg_stat_activity_count",
            "pg_stat_database_numbackends",
            "pg_stat_database_xact_commit",
            "pg_stat_database_xact_rollback",
            "pg_stat_database_blks_read",
            "pg_stat_database_blks_hit",
            "pg_stat_database_tup_returned",
            "pg_stat_database_tup_fetched",
            "pg_stat_database_tup_inserted",
            "pg_stat_database_tup_updated",
            "pg_stat_database_tup_deleted",
            "pg_stat_database_deadlocks",
            "pg_stat_database_temp_bytes",
            "pg_stat_statements_calls_total",
            "pg_stat_statements_seconds_total",
            "pg_stat_statements_rows_total",
        }
    ),
    "process": frozenset(
        {
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_threads",
            "process_count",
            "node_memory_MemTotal_bytes",
        }
    ),
}


# --- the parsed section ------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """One source of server metrics, as declared under ``sources:`` (or built in).

    ``url`` may be a path (``/metrics``) for a prometheus source: a path on the target.
    Credentials are never in the file: ``username_env``/``password_env`` name the
    environment variables that hold them.
    """

    name: str
    kind: SourceKind
    url: str | None = None
    pid: int | None = None
    pid_file: str | None = None
    children: bool = True  # process: its child processes count too (PostgreSQL's backends)
    username_env: str | None = None
    password_env: str | None = None
    match: tuple[Matcher, ...] = ()  # promql: label matchers added to every query
    timeout_s: float = DEFAULT_TIMEOUT_S
    key_path: str = ""
    builtin: bool = False


@dataclass(frozen=True)
class ServerBudget(Budget):
    """A budget on a server metric: ``server.target_process.cpu_percent: "< 70%"``.

    ``selector`` is the source's name; ``metric`` the registry name with its statistic
    (``cpu_percent``, ``memory_percent.max``, ``rate(x{}).p95``); ``quantity`` the named
    metric or the raw expression; ``stat`` avg (the steady state's value), min, max or pNN
    over its samples, or run (the whole run's value); ``formulas`` the alternatives, in
    order of preference.
    """

    quantity: str
    stat: str
    formulas: tuple[Expr, ...]

    @property
    def source(self) -> str:
        return self.selector

    @property
    def raw(self) -> bool:
        return self.quantity not in registry.SERVER_NAMED


@dataclass(frozen=True)
class ServerSection:
    """The sources a run scrapes and the server budgets judged on them (one profile's)."""

    sources: tuple[SourceSpec, ...] = ()
    budgets: tuple[ServerBudget, ...] = ()
    declared: tuple[str, ...] = field(default=())  # names declared under sources:
    # regressions.server: judged against the history's baseline (core.server_regressions)
    regressions: tuple[ServerRegressionBudget, ...] = ()

    def source(self, name: str) -> SourceSpec | None:
        return next((s for s in self.sources if s.name == name), None)

    def budgets_on(self, source: str) -> tuple[ServerBudget | ServerRegressionBudget, ...]:
        """The budgets and regression budgets on ``source`` (what its scrape must give)."""
        both: tuple[ServerBudget | ServerRegressionBudget, ...] = (*self.budgets, *self.regressions)
        return tuple(b for b in both if b.selector == source)

    def used_sources(self, *, builtin_target: bool) -> tuple[SourceSpec, ...]:
        """The sources some budget reads (the built-in ones only with the built-in target)."""
        used = {b.selector for b in self.budgets} | {b.selector for b in self.regressions}
        return tuple(
            s for s in self.sources if s.name in used and (builtin_target or not s.builtin)
        )


def builtin_source(name: str) -> SourceSpec:
    if name == TARGET_SOURCE:
        return SourceSpec(name, "prometheus", url="/metrics", builtin=True)
    return SourceSpec(name, "process", builtin=True)


# --- parsing ---------------------------------------------------------------------------------


def _text(ctx: _Ctx, value: Any, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        ctx.fail(f"expected text, got {_kind(value)}", f"write e.g. {example}")
    return value.strip()


def _env_name(ctx: _Ctx, value: Any) -> str:
    name = _text(ctx, value, "PAYBENCH_METRICS_PASSWORD")
    if not _ENV_NAME.fullmatch(name):
        ctx.fail(
            f"{name!r} is not an environment variable name",
            "name the variable that holds the value (letters, digits, _), never the value",
        )
    return name


def _source_url(ctx: _Ctx, kind: str, value: Any) -> str:
    url = _text(ctx, value, _EXAMPLE_SOURCE[kind])
    if any(c.isspace() or ord(c) < 32 or c == "\\" for c in url):
        ctx.fail(f"{url!r} holds whitespace, a control character or a backslash", "remove it")
    if kind == "prometheus" and url.startswith("/"):
        return url  # a path on the target
    scheme, sep, rest = url.partition("://")
    schemes = _URL_SCHEMES[kind]
    if not sep or scheme.lower() not in schemes:
        where = " or a path on the target (/metrics)" if kind == "prometheus" else ""
        ctx.fail(
            f"{url!r} is not a {' or '.join(s + '://' for s in schemes)} URL",
            f"write a whole URL{where}, e.g. {_EXAMPLE_SOURCE[kind]}",
        )
    authority = rest.split("/", 1)[0].split("?", 1)[0]
    if "@" in authority and ":" in authority.rsplit("@", 1)[0]:
        ctx.fail(
            "the URL holds a password, which would be copied into the run folder",
            "remove it and name the environment variable that holds it with password_env",
        )
    if not authority.rsplit("@", 1)[-1]:
        ctx.fail(f"{url!r} has no host", f"write e.g. {_EXAMPLE_SOURCE[kind]}")
    return url


def parse_matchers(ctx: _Ctx, text: str) -> tuple[Matcher, ...]:
    """``{instance="db:9187"}`` or ``instance="db:9187"`` -> matchers (promql ``match``)."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    parser = _ExprParser(ctx, "{" + body + "}")
    matchers = parser.matchers()
    parser.end()
    return matchers


def _source(ctx: _Ctx, name: str, value: Any) -> SourceSpec:
    if not _SOURCE_NAME.fullmatch(name):
        ctx.fail(f"{name!r} is not a source name", "use letters, digits, - and _ (a letter first)")
    entry = _mapping(ctx, value, SOURCE_KEYS, "write e.g. " + _EXAMPLE_SOURCE["prometheus"])
    kctx = ctx.at("kind")
    kind = entry.get("kind")
    if kind not in SOURCE_KINDS:
        got = "missing" if kind is None else f"unknown kind {_kind(kind)}"
        hint = _suggest(kind, SOURCE_KINDS) if isinstance(kind, str) else ""
        kctx.fail(got, f"{hint}use one of {', '.join(SOURCE_KINDS)}")
    for key in entry:
        if key not in ("kind", "timeout", *_KIND_KEYS[kind]):
            ctx.at(key).fail(
                f"a {kind} source takes no {key}",
                f"allowed for {kind}: kind, timeout, {', '.join(_KIND_KEYS[kind])}",
            )
    spec: dict[str, Any] = {}
    if kind != "process":
        if "url" not in entry:
            ctx.at("url").fail("missing", f"write e.g. {_EXAMPLE_SOURCE[kind]}")
        spec["url"] = _source_url(ctx.at("url"), kind, entry["url"])
    else:
        if ("pid" in entry) == ("pid_file" in entry):
            ctx.fail(
                "a process source names its process by pid or by pid_file (one of them)",
                f"write e.g. {_EXAMPLE_SOURCE['process']}",
            )
        if "pid" in entry:
            pid = entry["pid"]
            if isinstance(pid, bool) or not isinstance(pid, int) or pid < 1:
                ctx.at("pid").fail(
                    f"expected a process id, got {_kind(pid)}", "write e.g. pid: 1234"
                )
            spec["pid"] = pid
        else:
            spec["pid_file"] = _text(ctx.at("pid_file"), entry["pid_file"], "/run/app.pid")
        if "children" in entry:
            if not isinstance(entry["children"], bool):
                ctx.at("children").fail(
                    f"expected true or false, got {_kind(entry['children'])}",
                    "write children: false to leave out the child processes",
                )
            spec["children"] = entry["children"]
    for key in ("username_env", "password_env"):
        if key in entry:
            spec[key] = _env_name(ctx.at(key), entry[key])
    if "match" in entry:
        mctx = ctx.at("match")
        spec["match"] = parse_matchers(
            mctx, _text(mctx, entry["match"], "'{instance=\"db:9187\"}'")
        )
    if "timeout" in entry:
        tctx = ctx.at("timeout")
        timeout = _duration_s(tctx, entry["timeout"])
        if not 0 < timeout <= MAX_TIMEOUT_S:
            tctx.fail(
                f"{entry['timeout']!r} is out of range",
                f"a scrape timeout is above 0 and at most {MAX_TIMEOUT_S:g}s, e.g. timeout: 1s",
            )
        spec["timeout_s"] = timeout
    return SourceSpec(name=name, kind=kind, key_path=format_key_path(ctx.path), **spec)


def parse_sources(ctx: _Ctx, value: Any) -> tuple[SourceSpec, ...]:
    """``sources:`` -> the declared sources, in the order written."""
    entries = _mapping(
        ctx, value, None, "declare a source, e.g. redis: " + _EXAMPLE_SOURCE["redis"]
    )
    return tuple(_source(ctx.at(name), name, body) for name, body in entries.items())


# --- raw expressions ---------------------------------------------------------------------------


class _ExprParser:
    """``NAME{label="v",...}``, ``rate(...)``, ``delta(...)`` and ``A / B`` of those."""

    _TOKEN = re.compile(
        r'\s*(?:(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)|(?P<op>=~|!~|!=|=)|(?P<str>"(?:[^"\\]|\\.)*"'
        r"|'(?:[^'\\]|\\.)*')|(?P<punct>[{}(),/]))",
        re.S,
    )

    def __init__(self, ctx: _Ctx, text: str) -> None:
        self.ctx = ctx
        self.text = text
        self.pos = 0

    def _fail(self, what: str) -> Any:
        self.ctx.fail(
            f"{what} at character {self.pos + 1} of {self.text!r}",
            "write a series with label matchers, rate(...) or delta(...) of one, or a ratio "
            'of two: rate(redis_evicted_keys_total), node_load1, delta(a_total{x="y"}) / '
            "delta(b_total)",
        )

    def _peek(self) -> tuple[str, str] | None:
        m = self._TOKEN.match(self.text, self.pos)
        if m is None or m.end() == self.pos:
            return None
        kind = m.lastgroup or ""
        return kind, m.group(kind)

    def _take(self) -> tuple[str, str]:
        m = self._TOKEN.match(self.text, self.pos)
        if m is None:
            rest = self.text[self.pos :].strip()
            return self._fail(f"unexpected {rest[:1]!r}" if rest else "unexpected end")
        self.pos = m.end()
        kind = m.lastgroup or ""
        return kind, m.group(kind)

    def _expect(self, punct: str) -> None:
        kind, value = self._take()
        if (kind, value) != ("punct", punct):
            self._fail(f"expected {punct!r}, found {value!r}")

    def end(self) -> None:
        if self.text[self.pos :].strip():
            self._fail(f"unexpected {self.text[self.pos :].strip()[:1]!r}")

    def matchers(self) -> tuple[Matcher, ...]:
        self._expect("{")
        out: list[Matcher] = []
        while True:
            peek = self._peek()
            if peek == ("punct", "}"):
                self._take()
                return tuple(out)
            kind, label = self._take()
            if kind != "name":
                self._fail(f"expected a label name, found {label!r}")
            kind, op = self._take()
            if kind != "op":
                self._fail(f"expected =, !=, =~ or !~ after {label}, found {op!r}")
            kind, quoted = self._take()
            if kind != "str":
                self._fail(f"expected a quoted value after {label}{op}, found {quoted!r}")
            value = _unescape(quoted[1:-1])
            if op in ("=~", "!~"):
                try:
                    re.compile(value)
                except re.error as exc:
                    self._fail(f"{value!r} is not a regular expression ({exc})")
            out.append(Matcher(label, op, value))  # type: ignore[arg-type]
            peek = self._peek()
            if peek == ("punct", ","):
                self._take()
            elif peek != ("punct", "}"):
                self._fail("expected , or }")

    def selector(self, name: str) -> Selector:
        if self._peek() == ("punct", "{"):
            return Selector(name, self.matchers())
        return Selector(name)

    def term(self) -> Expr:
        kind, name = self._take()
        if kind != "name":
            return self._fail(f"expected a series name, rate( or delta(, found {name!r}")
        if self._peek() == ("punct", "("):
            if name not in ("rate", "delta"):
                return self._fail(f"unknown function {name!r} (rate and delta are known)")
            self._take()
            kind, series = self._take()
            if kind != "name":
                return self._fail(f"expected a series name in {name}(), found {series!r}")
            selector = self.selector(series)
            self._expect(")")
            return Rate(selector) if name == "rate" else Increase(selector)
        return Gauge(self.selector(name))

    def expression(self) -> Expr:
        first = self.term()
        if self._peek() == ("punct", "/"):
            self._take()
            second = self.term()
            self.end()
            return Ratio(first, second)
        self.end()
        return first


def parse_expression(ctx: _Ctx, text: str) -> Expr:
    """A raw expression (module doc) -> Expr; ConfigError naming the key path otherwise."""
    return _ExprParser(ctx, text).expression()


# --- limits ------------------------------------------------------------------------------------


def _limit(
    ctx: _Ctx, info: registry.Metric, quantity: str, value: Any
) -> tuple[Operator, float, str]:
    """``"< 70%"`` -> ("<", 70.0, "< 70%"), the limit in the metric's unit (metrics.KIND_UNITS)."""
    # The operator and number as for a request budget (budgets.split_limit); a server limit
    # may be zero ("<= 0") and written with an exponent (a raw expression's "< 1e6").
    op, number, unit, text = split_limit(
        ctx,
        value,
        info.example,
        _NUMBER,
        ("{text!r} is negative or not finite", "a limit is zero or more"),
    )
    example = info.example.split(": ", 1)[1]
    kind = info.kind
    if kind == "latency":
        if unit not in ("ms", "s"):
            ctx.fail(
                f"{'no unit' if not unit else f'unknown unit {unit!r}'} in {text!r}",
                f"{info.phrase} is a time: add ms or s, e.g. {example}",
            )
        limit = number * 1000.0 if unit == "s" else number
    elif kind == "percent":
        if unit != "%":
            ctx.fail(
                f"{'no unit' if not unit else f'unknown unit {unit!r}'} in {text!r}",
                f"{quantity} is in percent: e.g. {example}",
            )
        if number > 100 and quantity in _AT_MOST_100:
            ctx.fail(f"{text!r} is above 100 %", f"{quantity} is between 0 % and 100 %")
        limit = number
    elif kind == "size":
        if unit not in _SIZE_UNITS:
            ctx.fail(
                f"{'no unit' if not unit else f'unknown unit {unit!r}'} in {text!r}",
                f"memory takes B, kB, MB, GB, KiB, MiB or GiB, e.g. {example}",
            )
        limit = number * _SIZE_UNITS[unit]
    else:
        if unit:
            ctx.fail(
                f"unknown unit {unit!r} in {text!r}",
                f"{quantity} is a bare number in the series' own unit: e.g. {example}",
            )
        limit = number
    if limit == 0 and op in ("<", ">="):
        ctx.fail(
            f"{text!r} can never {'hold' if op == '<' else 'fail'}",
            f"write {'<= 0' if op == '<' else '> 0'} or a limit above zero",
        )
    return op, limit, text


# --- the server: section -------------------------------------------------------------------------


# source -> metric name -> tuple[ServerBudget, ...] | _OFF (or the source -> _OFF)
_Layer = dict[str, Any]
# A profile's ``cpu_percent: off``: every statistic of the quantity.
_ALL_OFF = object()


def _stat_metric(quantity: str, stat: str) -> str:
    return quantity if stat == "avg" else f"{quantity}.{stat}"


def _canonical_stat(ctx: _Ctx, stat: str) -> str:
    m = _STAT.fullmatch(stat)
    if m is None:
        ctx.fail(
            f"unknown statistic {stat!r}",
            f"{_suggest(stat, ['avg', 'min', 'max', 'p95', 'run'])}use avg (the steady state's "
            "value), min, max or pNN (of its samples), or run (the whole run's value)",
        )
    if m.group(1) is not None:
        percent = float(m.group(1))
        if not 0 < percent < 100:
            ctx.fail(f"{stat!r} is not a percentile between 0 and 100", "use min or max")
        return registry.percentile_name(percent)
    return stat


def _limits(
    ctx: _Ctx, source: str, quantity: str, stat: str, value: Any, formulas: tuple[Expr, ...]
) -> tuple[ServerBudget, ...]:
    metric = _stat_metric(quantity, stat)
    info = registry.metric(metric)
    items = value if isinstance(value, list) else [value]
    if not items:
        ctx.fail("the list of limits is empty", f"write e.g. {info.example.split(': ', 1)[1]}")
    out = []
    for index, item in enumerate(items):
        ictx = ctx.at(index) if isinstance(value, list) else ctx
        op, limit, text = _limit(ictx, info, quantity, item)
        out.append(
            ServerBudget(
                key_path=format_key_path(ictx.path),
                selector=source,
                metric=metric,
                op=op,
                limit=limit,
                text=text,
                quantity=quantity,
                stat=stat,
                formulas=formulas,
            )
        )
    return tuple(out)


def _entries(
    ctx: _Ctx, source: str, quantity: str, value: Any, formulas: tuple[Expr, ...], in_profile: bool
) -> dict[str, Any]:
    """One metric's value: a limit, a list of limits, or statistic -> limit(s)."""
    out: dict[str, Any] = {}
    if isinstance(value, Mapping):
        for stat_key, limits in _mapping(ctx, value, None, 'add e.g. max: "< 80%"').items():
            sctx = ctx.at(stat_key)
            stat = _canonical_stat(sctx, stat_key)
            metric = _stat_metric(quantity, stat)
            if metric in out:
                sctx.fail(f"{stat_key!r} repeats the statistic {stat!r}", "keep one of them")
            if _is_off(limits):
                if not in_profile:
                    sctx.fail("off is for profiles", "use off in profiles.<name> to drop a default")
                out[metric] = _OFF
            else:
                out[metric] = _limits(sctx, source, quantity, stat, limits, formulas)
        return out
    if _is_off(value):
        if not in_profile:
            ctx.fail("off is for profiles", "use off in profiles.<name> to drop a default")
        return {quantity: _ALL_OFF}
    out[quantity] = _limits(ctx, source, quantity, "avg", value, formulas)
    return out


def _source_budgets(
    ctx: _Ctx, source: str, value: Any, kinds: Mapping[str, str], in_profile: bool
) -> dict[str, Any]:
    names = list(registry.SERVER_NAMED)
    fix = f'add e.g. cache_hit_rate: "> 80%" (metrics: {", ".join(names)}, or {RAW_KEY}:)'
    body = _mapping(ctx, value, None, fix)
    out: dict[str, Any] = {}
    kind = kinds.get(source)
    for key, item in body.items():
        kctx = ctx.at(key)
        if key == RAW_KEY:
            raw = _mapping(kctx, item, None, 'add e.g. "rate(redis_evicted_keys_total)": "< 1"')
            for text, limits in raw.items():
                ectx = kctx.at(text)
                expr = parse_expression(ectx, text)
                quantity = expression_text(expr)
                _check_direct(ectx, source, kind, (expr,), quantity)
                _add(ectx, out, _entries(ectx, source, quantity, limits, (expr,), in_profile))
            continue
        if key not in registry.SERVER_NAMED:
            hint = _suggest(key, names)
            if key in registry.NAMED or registry.lookup(key) is not None:
                hint = f"{key} is a request metric (budget it under requests: or run:); "
            if key in registry.PER_REQUEST:
                hint = (
                    f"{key} depends on the machine, so it is judged against earlier runs only "
                    f'(regressions.server.{source}.{key}: "+10% significant"); '
                )
            kctx.fail(
                f"unknown server metric {key!r}",
                f"{hint}use {', '.join(names)}, or a raw expression under {RAW_KEY}:",
            )
        formulas = FORMULAS[key]
        if kind in DIRECT_SERIES:
            formulas = _check_direct(kctx, source, kind, formulas, key)
        _add(kctx, out, _entries(kctx, source, key, item, formulas, in_profile))
    return out


def _add(ctx: _Ctx, out: dict[str, Any], entries: Mapping[str, Any]) -> None:
    for metric, entry in entries.items():
        if metric in out:
            ctx.fail(f"{metric!r} is budgeted twice for this source", "keep one of them")
        out[metric] = entry


def _check_direct(
    ctx: _Ctx, source: str, kind: str | None, formulas: tuple[Expr, ...], what: str
) -> tuple[Expr, ...]:
    """The formulas a direct source (redis, postgres, process) can give; none: an error now,
    not at the next run."""
    if kind not in DIRECT_SERIES:
        return formulas
    have = DIRECT_SERIES[kind]
    usable = tuple(f for f in formulas if set(series_names(f)) <= have)
    if not usable:
        missing = next(n for n in series_names(formulas[0]) if n not in have)
        close = difflib.get_close_matches(missing, sorted(have), n=3, cutoff=0.5)
        similar = f" (closest: {', '.join(close)})" if close else ""
        ctx.fail(
            f"a {kind} source cannot give {what}: it has no {missing}{similar}",
            f"budget {what} on a source that has it, or see docs/budgets.md for what a "
            f"{kind} source gives",
        )
    return usable


def parse_server_layer(ctx: _Ctx, value: Any, kinds: Mapping[str, str], in_profile: bool) -> _Layer:
    """``server:`` (or ``profiles.NAME.server:``) -> source -> metric -> budgets | off."""
    return source_layer(
        ctx,
        value,
        kinds,
        in_profile,
        "add a source's budgets, e.g. target: {cache_hit_rate: ...}",
        lambda sctx, source, entry: _source_budgets(sctx, source, entry, kinds, in_profile),
    )


def source_layer(
    ctx: _Ctx,
    value: Any,
    kinds: Mapping[str, str],
    in_profile: bool,
    fix: str,
    parse_source: Callable[[_Ctx, str, Any], Any],
) -> _Layer:
    """A layer keyed by declared source names, each ``off`` (profiles only) or what
    ``parse_source`` makes of it: for ``server:`` and ``regressions.server:`` alike."""
    layer: _Layer = {}
    for source, entry in _mapping(ctx, value, None, fix).items():
        sctx = ctx.at(source)
        if source not in kinds:
            known = list(kinds)
            sctx.fail(
                f"no source is named {source!r}",
                f"{_suggest(source, known)}declare it under sources: (known: {', '.join(known)})",
            )
        if _is_off(entry):
            if not in_profile:
                sctx.fail("off is for profiles", "use off in profiles.<name> to drop a default")
            layer[source] = _OFF
            continue
        layer[source] = parse_source(sctx, source, entry)
    return layer


def _merge(ctx: _Ctx, base: _Layer, over: _Layer) -> _Layer:
    """A profile's overrides on the defaults: per source and per metric; off drops one."""
    merged = {source: dict(entries) for source, entries in base.items()}
    for source, entries in over.items():
        sctx = ctx.at(source)
        if entries is _OFF:
            if source not in merged:
                sctx.fail(f"off drops nothing: no default server budget on {source!r}", "remove it")
            del merged[source]
            continue
        target = merged.setdefault(source, {})
        for metric, entry in entries.items():
            if entry is _OFF or entry is _ALL_OFF:
                dropped = [m for m in target if m == metric]
                if entry is _ALL_OFF:
                    dropped += [m for m in target if m.startswith(metric + ".")]
                if not dropped:
                    sctx.at(metric).fail(
                        f"off drops nothing: no default {metric} here", "remove it"
                    )
                for m in dropped:
                    del target[m]
            else:
                target[metric] = entry
        if not target:
            del merged[source]
    return merged


def _flatten(layer: _Layer) -> tuple[ServerBudget, ...]:
    return tuple(b for entries in layer.values() for budgets in entries.values() for b in budgets)


def parse_server(
    ctx: _Ctx,
    data: Mapping[str, Any],
    profile_values: Mapping[str, Any],
    profile: str | None,
) -> ServerSection | None:
    """The whole file's ``sources:`` and ``server:`` sections (``data``: the file's top
    level), every profile's ``server:`` overrides (``profile_values``) validated; the section
    of ``profile`` (None: the defaults), or None when neither is written anywhere.
    ``regressions.server`` (defaults and profiles') too: ``server_regressions``."""
    # Lazily: server_regressions builds on this module.
    from harness.core.server_regressions import parse_server_regressions, regressions_written

    written = regressions_written(data)
    if "sources" not in data and "server" not in data and not profile_values and not written:
        return None
    sources_value = data.get("sources")
    declared = parse_sources(ctx.at("sources"), sources_value) if "sources" in data else ()
    sources = {s.name: s for s in declared}
    for name in BUILTIN_SOURCES:
        sources.setdefault(name, builtin_source(name))
    kinds = {name: s.kind for name, s in sources.items()}
    defaults: _Layer = {}
    if "server" in data:
        defaults = parse_server_layer(ctx.at("server"), data["server"], kinds, in_profile=False)
    chosen = defaults
    for name, value in profile_values.items():
        pctx = ctx.at("profiles", name, "server")
        merged = _merge(pctx, defaults, parse_server_layer(pctx, value, kinds, in_profile=True))
        if name == profile:
            chosen = merged
    return ServerSection(
        sources=tuple(sources.values()),
        budgets=_flatten(chosen),
        declared=tuple(s.name for s in declared),
        regressions=parse_server_regressions(ctx, data, kinds, profile) if written else (),
    )
