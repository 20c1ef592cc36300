"""Compare two runs: per request name and metric, the change, its confidence interval and
whether it is significant (pure: two runs in, a Comparison out).

Like pyperf, a comparison of runs measured under different conditions is refused unless
forced: ``CHECKED_METADATA`` names what must match.

Methods (each MetricChange names the one it used):

- Latencies (percentiles, mean) and requests/s, from the runs' HDR histograms. With at
  least ``MIN_INTERVALS`` non-empty interval histograms in each run, each run is
  bootstrapped over its intervals (each interval, a few seconds of consecutive requests,
  is one resampled block, so bursts within an interval stay together; Kuensch 1989,
  Ann. Statist. 17(3)). The bootstrap standard error of log(statistic) of each run is
  corrected by k/(k-1) for its k intervals (the bootstrap variance of a mean of k blocks
  is (k-1)/k of the unbiased one; Efron and Tibshirani 1993, "An Introduction to the
  Bootstrap", 6 and 12), the two are added, and the interval of the log ratio is
  +- t(k_base + k_candidate - 2) standard errors, returned as percent change. Measured
  on runs of identical distributions it excludes zero 3.3 %, 5.7 % and 3.7 % of the time
  for 3, 10 and 30 intervals at 95 % (a plain percentile interval of a moving-block
  bootstrap: 38 %, 11 % and 4.3 %). With fewer intervals (a very short run): the Poisson
  bootstrap over the requests (each histogram bucket count redrawn as Poisson of itself;
  Hanley and MacGibbon 2006, Comput. Methods Programs Biomed. 83(1)) and a normal
  interval, which assumes independent requests and is narrower for it.
- Error rate: the change in percentage points with Newcombe's hybrid score interval for a
  difference of two independent proportions (Newcombe 1998, Statistics in Medicine 17,
  873-890, method 10), built from Wilson score intervals.
- Server metrics (a server budget's measured value, kept by the history and summary.json):
  the change in percent of the base, without an interval (one value per run), and whether
  it is worse by the metric's direction; never counted a significant regression.

Resampling uses ``numpy.random.default_rng(seed)``. A change is significant when its
interval excludes zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.core import metrics as registry
from harness.core import stats
from harness.core.format import DASH, Column, fmt_change, fmt_value, text_table
from harness.core.model import AGGREGATE_KEY, RequestStats, RunMeta, RunResult
from harness.errors import ConfigError

COMPARED_METRICS = ("p50", "p95", "p99", "avg", "error_rate", "rps")
# Run metadata that must be equal for a comparison to mean anything; ``host`` is checked
# only when both runs hit an external target (the reference target's port is random).
CHECKED_METADATA = ("profile", "users", "scenario_version", "target", "host")
MIN_INTERVALS = 5
RESAMPLES = 1000

# What a comparison can estimate: the stored percentiles and the mean from the histograms,
# requests/s from the counts, the error rate with its own interval. What each metric is
# (unit, which way is worse) is the registry's.
_LATENCY = {registry.percentile_name(p): p for p in registry.STORED_PERCENTILES}
_UNITS = {name: registry.metric(name).unit for name in ("avg", "error_rate", "rps")}


@dataclass(frozen=True)
class MetricChange:
    """One metric of one request name: base -> candidate, and the change with its CI.

    ``change``, ``ci_low`` and ``ci_high`` are in ``change_unit``: percent of the base
    value, or percentage points for ``error_rate``. ``significant`` is None when no
    interval could be computed (no histograms, no samples on one side).
    """

    request_key: str
    metric: str
    unit: str
    base: float | None
    candidate: float | None
    change: float | None
    change_unit: str
    ci_low: float | None
    ci_high: float | None
    significant: bool | None
    method: str

    @property
    def higher_is_worse(self) -> bool:
        return registry.metric(self.metric).higher_is_worse

    @property
    def regression(self) -> bool:
        """Significantly worse: slower, more errors, or fewer requests/s."""
        if not self.significant or self.change is None:
            return False
        return self.change > 0 if self.higher_is_worse else self.change < 0

    @property
    def improvement(self) -> bool:
        return bool(self.significant) and not self.regression


@dataclass(frozen=True)
class ServerChange:
    """One server metric (``cpu_percent`` of ``target_process``): base -> candidate."""

    source: str
    metric: str
    unit: str
    base: float | None
    candidate: float | None

    @property
    def request_key(self) -> str:
        return f"{self.source} (server)"

    @property
    def change_pct(self) -> float | None:
        return _relative(self.base, self.candidate)

    @property
    def worse(self) -> bool | None:
        """Worse by the metric's direction (None: unchanged, or not on both sides)."""
        if self.base is None or self.candidate is None or self.base == self.candidate:
            return None
        found = registry.lookup(self.metric)
        higher_is_worse = found.higher_is_worse if found else True
        return (self.candidate > self.base) == higher_is_worse


def compare_server(base: Sequence[Any], candidate: Sequence[Any]) -> tuple[ServerChange, ...]:
    """Server metrics of two runs (items with ``source``, ``metric``, ``unit``, ``value``,
    such as ``store.ServerMetric``), in the base's order, then those only the candidate has."""
    b = {(m.source, m.metric): m for m in base}
    c = {(m.source, m.metric): m for m in candidate}
    keys = [*b, *(k for k in c if k not in b)]
    return tuple(
        ServerChange(
            source,
            metric,
            (b.get((source, metric)) or c[source, metric]).unit,
            None if (source, metric) not in b else float(b[source, metric].value),
            None if (source, metric) not in c else float(c[source, metric].value),
        )
        for source, metric in keys
    )


@dataclass(frozen=True)
class MetadataDifference:
    field: str
    base: Any
    candidate: Any

    def __str__(self) -> str:
        return f"{self.field.replace('_', ' ')} ({self.base} vs {self.candidate})"


@dataclass(frozen=True)
class Comparison:
    base_run_id: str
    candidate_run_id: str
    changes: tuple[MetricChange, ...]
    confidence: float
    differences: tuple[MetadataDifference, ...] = ()  # non-empty only when forced
    forced: bool = False
    only_in_base: tuple[str, ...] = ()
    only_in_candidate: tuple[str, ...] = ()
    resamples: int = RESAMPLES
    seed: int = 1
    server: tuple[ServerChange, ...] = ()

    @property
    def regressions(self) -> tuple[MetricChange, ...]:
        return tuple(c for c in self.changes if c.regression)

    def find(self, request_key: str, metric: str) -> MetricChange | None:
        return next(
            (c for c in self.changes if c.request_key == request_key and c.metric == metric), None
        )


def metadata_differences(base: RunMeta, candidate: RunMeta) -> tuple[MetadataDifference, ...]:
    """The checked metadata (``CHECKED_METADATA``) that differs between two runs."""
    out = []
    for name in CHECKED_METADATA:
        if name == "host" and not (base.target == candidate.target == "external"):
            continue
        a, b = getattr(base, name), getattr(candidate, name)
        if a != b:
            out.append(MetadataDifference(name, a, b))
    return tuple(out)


def compare_runs(
    base: Any,
    candidate: Any,
    force: bool = False,
    *,
    confidence: float = 0.95,
    resamples: int = RESAMPLES,
    seed: int = 1,
    metrics: Sequence[str] = COMPARED_METRICS,
) -> Comparison:
    """Compare ``candidate`` with ``base`` (RunResult or store.StoredRun each; a StoredRun's
    ``server`` metrics are compared too).

    Raises ConfigError naming every checked metadata field that differs, unless ``force``.
    """
    b_run: RunResult = getattr(base, "result", base)
    c_run: RunResult = getattr(candidate, "result", candidate)
    diffs = metadata_differences(b_run.meta, c_run.meta)
    if diffs and not force:
        raise ConfigError(
            f"refusing to compare {b_run.meta.run_id} with {c_run.meta.run_id}: "
            + ", ".join(str(d) for d in diffs)
            + " differ; compare runs of the same settings, or pass --force"
        )
    for m in metrics:
        if m not in _LATENCY and m not in _UNITS:
            known = ", ".join([*_LATENCY, *_UNITS])
            raise ConfigError(f"cannot compare metric {m!r}; use {known}")
    b_reqs = {**{r.key: r for r in b_run.requests}, AGGREGATE_KEY: b_run.total}
    c_reqs = {**{r.key: r for r in c_run.requests}, AGGREGATE_KEY: c_run.total}
    # Locust's order: request names as the base has them, the aggregate last.
    keys = [k for k in b_reqs if k in c_reqs and k != AGGREGATE_KEY] + [AGGREGATE_KEY]
    rng = np.random.default_rng(seed)
    changes: list[MetricChange] = []
    for key in keys:
        changes.extend(
            _compare_request(key, b_reqs[key], c_reqs[key], metrics, confidence, resamples, rng)
        )
    return Comparison(
        base_run_id=b_run.meta.run_id,
        candidate_run_id=c_run.meta.run_id,
        changes=tuple(changes),
        confidence=confidence,
        differences=diffs,
        forced=force and bool(diffs),
        only_in_base=tuple(k for k in b_reqs if k not in c_reqs),
        only_in_candidate=tuple(k for k in c_reqs if k not in b_reqs),
        resamples=resamples,
        seed=seed,
        server=compare_server(getattr(base, "server", ()), getattr(candidate, "server", ())),
    )


# ---------------------------------------------------------------------------------------
# Per request
# ---------------------------------------------------------------------------------------


def _point(r: RequestStats, metric: str) -> float | None:
    if metric in _LATENCY:
        return r.percentile_ms(_LATENCY[metric])
    if metric == "avg":
        return r.avg_ms
    if metric == "error_rate":
        return r.error_rate_pct
    return r.rps


def _relative(base: float | None, cand: float | None) -> float | None:
    if base is None or cand is None or base == 0:
        return None
    return 100.0 * (cand / base - 1.0)


def _compare_request(
    key: str,
    base: RequestStats,
    cand: RequestStats,
    metrics: Sequence[str],
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> list[MetricChange]:
    boot_metrics = [m for m in metrics if m != "error_rate"]
    b_boot = _Resampler.of(base)
    c_boot = _Resampler.of(cand)
    spread: dict[str, float] = {}  # metric -> standard error of log(candidate / base)
    quantile = 0.0
    method = "no interval (no samples or histograms)"
    if b_boot is not None and c_boot is not None and boot_metrics:
        by_interval = min(b_boot.blocks, c_boot.blocks) >= MIN_INTERVALS
        b_var = b_boot.log_variances(boot_metrics, resamples, rng, by_interval)
        c_var = c_boot.log_variances(boot_metrics, resamples, rng, by_interval)
        spread = {
            m: math.sqrt(b_var[m] + c_var[m])
            for m in boot_metrics
            if math.isfinite(b_var[m]) and math.isfinite(c_var[m])
        }
        if by_interval:
            df = b_boot.blocks + c_boot.blocks - 2
            quantile = stats.t_quantile(0.5 + confidence / 2, df)
            method = (
                f"bootstrap over {b_boot.blocks} and {c_boot.blocks} intervals, "
                f"t interval ({df} df), {resamples} resamples"
            )
        else:
            quantile = stats.normal_quantile(0.5 + confidence / 2)
            method = (
                f"Poisson bootstrap over requests (fewer than {MIN_INTERVALS} intervals), "
                f"{resamples} resamples"
            )
    out = []
    for metric in metrics:
        if metric == "error_rate":
            out.append(_error_rate_change(key, base, cand, confidence))
            continue
        b_val, c_val = _point(base, metric), _point(cand, metric)
        change = _relative(b_val, c_val)
        low = high = None
        if metric in spread and b_val and c_val and b_val > 0 and c_val > 0:
            centre, half = math.log(c_val / b_val), quantile * spread[metric]
            low = 100.0 * math.expm1(centre - half)
            high = 100.0 * math.expm1(centre + half)
        out.append(
            MetricChange(
                request_key=key,
                metric=metric,
                unit=registry.unit_of(metric),
                base=b_val,
                candidate=c_val,
                change=change,
                change_unit="%",
                ci_low=low,
                ci_high=high,
                significant=None if low is None or high is None else (low > 0 or high < 0),
                method=method if low is not None else _no_interval(b_boot, c_boot),
            )
        )
    return out


def _no_interval(base: _Resampler | None, cand: _Resampler | None) -> str:
    if base is None or cand is None:
        return "no interval (no samples, or no histograms)"
    return "no interval (too few requests)"


def _error_rate_change(
    key: str, base: RequestStats, cand: RequestStats, confidence: float
) -> MetricChange:
    b_val, c_val = base.error_rate_pct, cand.error_rate_pct
    if not base.count or not cand.count:
        return MetricChange(
            key, "error_rate", "%", b_val, c_val, None, "pts", None, None, None, "no samples"
        )
    p1, p2 = base.failures / base.count, cand.failures / cand.count
    l1, u1 = stats.wilson_interval(base.failures, base.count, confidence)
    l2, u2 = stats.wilson_interval(cand.failures, cand.count, confidence)
    diff = p2 - p1
    low = diff - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = diff + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return MetricChange(
        request_key=key,
        metric="error_rate",
        unit="%",
        base=b_val,
        candidate=c_val,
        change=100.0 * diff,
        change_unit="pts",
        ci_low=100.0 * low,
        ci_high=100.0 * high,
        significant=low > 0 or high < 0,
        method="Newcombe hybrid score interval (1998)",
    )


# ---------------------------------------------------------------------------------------
# Bootstrap of one run's request
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Resampler:
    """One request of one run as bucket counts: per interval (rows) and for the window."""

    values_ms: np.ndarray  # highest equivalent value of each column's bucket
    mids_ms: np.ndarray  # its mid value (HdrHistogram's median equivalent value)
    interval_counts: np.ndarray  # intervals x columns (float64)
    total_counts: np.ndarray  # columns
    duration_s: float

    @property
    def blocks(self) -> int:
        return self.interval_counts.shape[0]

    @classmethod
    def of(cls, r: RequestStats) -> _Resampler | None:
        if r.histogram is None or r.count == 0 or r.duration_s <= 0:
            return None
        if r.histogram.count == 0:
            return None
        parts = [h for h in r.interval_histograms if h.count]
        columns = np.unique(np.concatenate([h.buckets()[0] for h in (r.histogram, *parts)]))
        matrix = np.zeros((len(parts), columns.size))
        for row, h in enumerate(parts):
            index, counts = h.buckets()
            matrix[row, np.searchsorted(columns, index)] = counts
        total = np.zeros(columns.size)
        index, counts = r.histogram.buckets()
        total[np.searchsorted(columns, index)] = counts
        layout = stats.bucket_layout()
        return cls(
            layout.highest_ns[columns] / stats.NS_PER_MS,
            layout.mid_ns[columns] / stats.NS_PER_MS,
            matrix,
            total,
            r.duration_s,
        )

    def log_variances(
        self, metrics: Sequence[str], resamples: int, rng: np.random.Generator, by_interval: bool
    ) -> dict[str, float]:
        """Per metric, the bootstrap variance of log(statistic) (nan: cannot tell).

        ``by_interval``: resample the k intervals with replacement, variance times
        k/(k-1); else redraw every bucket count as Poisson of itself.
        """
        draws = {m: np.empty(resamples) for m in metrics}
        k = self.blocks
        chunk = max(1, 2_000_000 // max(1, self.values_ms.size))
        for start in range(0, resamples, chunk):
            size = min(chunk, resamples - start)
            if by_interval:
                picks = rng.integers(0, k, size=(size, k))
                weights = np.zeros((size, k))
                np.add.at(weights, (np.repeat(np.arange(size), k), picks.ravel()), 1.0)
                counts = weights @ self.interval_counts
            else:
                counts = rng.poisson(self.total_counts, size=(size, self.total_counts.size))
                counts = counts.astype(np.float64)
            totals = counts.sum(axis=1)
            cum = np.cumsum(counts, axis=1)
            for m in metrics:
                out = draws[m][start : start + size]
                with np.errstate(divide="ignore", invalid="ignore"):
                    if m in _LATENCY:
                        target = np.maximum(np.floor(_LATENCY[m] * totals / 100.0 + 0.5), 1.0)
                        idx = (cum < target[:, None]).sum(axis=1)
                        idx = np.minimum(idx, self.values_ms.size - 1)
                        out[:] = np.where(totals > 0, self.values_ms[idx], np.nan)
                    elif m == "avg":
                        out[:] = counts @ self.mids_ms / totals
                    else:  # rps: requests in the resampled window over its length
                        out[:] = totals / self.duration_s
        result = {}
        for m, values in draws.items():
            with np.errstate(divide="ignore", invalid="ignore"):
                logs = np.log(values)
            logs = logs[np.isfinite(logs)]
            # Fewer than 90 % usable resamples (empty resampled windows): cannot tell.
            if logs.size < max(2, 0.9 * resamples):
                result[m] = math.nan
                continue
            var = float(logs.var(ddof=1))
            result[m] = var * k / (k - 1) if by_interval else var
        return result


# ---------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------


def format_comparison(c: Comparison) -> list[str]:
    """The lines ``paybench compare`` prints: one table row per request name and metric."""
    conf = f"{c.confidence * 100:g} %"
    lines = [f"base:      {c.base_run_id}", f"candidate: {c.candidate_run_id}"]
    if c.forced:
        lines.append(
            "WARNING: forced comparison of runs whose "
            + ", ".join(str(d) for d in c.differences)
            + " differ"
        )
    else:
        lines.append(
            "checked metadata equal: profile, users, scenario version, target "
            "(and host, for an external target)"
        )
    columns = (
        Column("request"),
        Column("metric"),
        Column("base", "right"),
        Column("candidate", "right"),
        Column("change", "right"),
        Column(f"{conf} CI"),
        Column("significant"),
    )
    table = []
    for ch in c.changes:
        ci = DASH
        if ch.ci_low is not None and ch.ci_high is not None:
            low, high = (
                fmt_change(ch.ci_low, ch.change_unit),
                fmt_change(ch.ci_high, ch.change_unit),
            )
            ci = f"[{low}, {high}]"
        if ch.significant is None:
            verdict = "n/a"
        elif not ch.significant:
            verdict = "no"
        else:
            verdict = "yes, worse" if ch.regression else "yes, better"
        table.append(
            [
                ch.request_key,
                ch.metric,
                fmt_value(ch.base, ch.unit),
                fmt_value(ch.candidate, ch.unit),
                fmt_change(ch.change, ch.change_unit),
                ci,
                verdict,
            ]
        )
    lines.append("")
    lines.extend(text_table(columns, table))
    methods = sorted({ch.method for ch in c.changes})
    lines.append("")
    lines.append(f"intervals ({conf}, seed {c.seed}): " + "; ".join(methods))
    if c.only_in_base:
        lines.append("only in base: " + ", ".join(c.only_in_base))
    if c.only_in_candidate:
        lines.append("only in candidate: " + ", ".join(c.only_in_candidate))
    if c.server:
        lines.append("")
        lines.append("server metrics (one value per run: no interval, no significance)")
        server_columns = (
            Column("source"),
            Column("metric"),
            Column("base", "right"),
            Column("candidate", "right"),
            Column("change", "right"),
            Column("direction"),
        )
        rows = [
            [
                ch.request_key,
                ch.metric,
                fmt_value(ch.base, ch.unit),
                fmt_value(ch.candidate, ch.unit),
                fmt_change(ch.change_pct, "%"),
                {True: "worse", False: "better", None: DASH}[ch.worse],
            ]
            for ch in c.server
        ]
        lines.extend(text_table(server_columns, rows))
    n = len(c.regressions)
    lines.append(f"{n} significant regression{'s' if n != 1 else ''}")
    return lines
