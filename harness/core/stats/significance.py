"""The one test of "is the candidate significantly above its baseline".

Used by the judge (regression budgets, ``harness.core.evaluate``) and by the trend report
(latest run vs the runs before it, ``harness.report.trend``), so that a rise the judge calls
significant is the rise the trend report marks, and the other way round.

A run's value differs from its baseline for two reasons: runs differ from each other (the
spread between the baseline runs) and the run's own samples are a sample (its confidence
interval). ``above_baseline`` weighs both; ``samples_for_half_width`` says how many samples
a run would need for its own interval to resolve a given change.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.stats.distributions import normal_quantile, t_quantile, t_two_sided_p

MIN_PREDICTION_RUNS = 3
METHOD_PREDICTION_INTERVAL = "prediction-interval"
METHOD_NONE = "none"  # fewer than MIN_PREDICTION_RUNS baseline runs: cannot be told


@dataclass(frozen=True)
class Significance:
    """How a candidate value stands against the values of the baseline runs.

    ``above``: significantly above the baseline (None: cannot be told). ``low``/``high``
    (in the metric's unit): the baseline runs' prediction interval (``method``
    prediction-interval). ``p_value``: two-sided, of the candidate's t statistic against
    the baseline runs. ``baseline``: the runs' median.
    ``spread``: the baseline runs' standard deviation; ``own_error``: the candidate's own
    standard error, from its confidence interval (None without one); ``widened``: the
    candidate's own error was the larger and widened the prediction interval.
    """

    candidate: float
    above: bool | None
    method: str
    runs: int
    baseline: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    spread: float | None = None
    own_error: float | None = None
    widened: bool = False

    @property
    def below(self) -> bool | None:
        """Below the baseline runs' prediction interval (None: not that method)."""
        if self.method != METHOD_PREDICTION_INTERVAL or self.low is None:
            return None
        return self.candidate < self.low

    @property
    def outside(self) -> bool | None:
        """Outside the baseline runs' prediction interval, on either side."""
        below = self.below
        return None if below is None else bool(self.above) or below


def own_standard_error(
    candidate: float, candidate_interval: tuple[float, float], confidence: float = 0.95
) -> float:
    """The candidate's own standard error, from its ``confidence`` interval.

    Half the interval's width over z, the standard normal ``0.5 + confidence / 2``
    quantile. The interval of a tail percentile is asymmetric: from few samples its
    lower side is tight and its upper side reaches into the tail, and neither alone is the
    spread of the estimate between runs (the lower side alone understated it by more than
    half in 60-sample runs of the reference target). The half-width errs on the wide side,
    which for a test of a rise means fewer false alarms; from a nightly's thousands of
    samples the two sides are close. The interval is taken to contain ``candidate``.
    """
    low = min(candidate_interval[0], candidate)
    high = max(candidate_interval[1], candidate)
    return (high - low) / 2.0 / normal_quantile(0.5 + confidence / 2.0)


def above_baseline(
    baseline: Sequence[float],
    candidate: float,
    candidate_interval: tuple[float, float] | None = None,
    confidence: float = 0.95,
    runs: int = 1,
) -> Significance:
    """Whether ``candidate`` lies significantly above the ``baseline`` runs' values.

    With ``MIN_PREDICTION_RUNS`` or more baseline runs: above the ``confidence``
    prediction interval of a new run, ``mean + t * sqrt(sd**2 / n + v)`` with t the
    ``0.5 + confidence / 2`` quantile of Student's t with n - 1 degrees of freedom. ``v``,
    the variance of the candidate itself, is the larger of the baseline runs' variance
    ``sd**2`` (runs differ from each other) and the candidate's own squared standard error
    from ``candidate_interval`` (`own_standard_error`): a run varies at least as much as
    runs do and at least as much as its own samples say. With ``v = sd**2`` (no interval,
    or one narrower than the spread) this is the classic prediction interval
    ``mean + t * sd * sqrt(1 + 1/n)`` (Hahn & Meeker, *Statistical Intervals* (1991), 4.6;
    `prediction_interval`); a run whose own interval is wider (fewer samples than the
    baseline runs had, or baseline runs that agree by chance) widens it. The statistic
    ``(candidate - mean) / sqrt(sd**2 / n + v)`` is beyond that quantile exactly when the
    candidate is outside; its two-sided p-value is ``p_value``. Keeping n - 1 degrees of
    freedom when the candidate's own error dominates (it is estimated from many samples)
    makes the test conservative there.

    ``runs`` > 1: ``candidate`` is the mean of that many consecutive runs (the latest with
    ``candidate_interval``, the others taken to be as noisy), whose variance is ``v / runs``:
    a level that stays up across nights shows sooner than in any one night alone.

    With fewer runs there is no spread between runs to weigh, and ``above`` is None (cannot
    be told) whatever the candidate's own interval says: from thousands of samples that
    interval is a few percent wide, narrower than the differences between runs, and a test
    by it alone calls those differences regressions.
    """
    n = len(baseline)
    if n == 0:
        return Significance(candidate, None, METHOD_NONE, 0)
    base = statistics.median(baseline)
    if n >= MIN_PREDICTION_RUNS:
        mean, sd = statistics.fmean(baseline), statistics.stdev(baseline)
        own = None
        if candidate_interval is not None:
            own = own_standard_error(candidate, candidate_interval, confidence)
        widened = own is not None and own > sd
        variance = sd * sd / n + (own * own if widened and own is not None else sd * sd) / runs
        half = t_quantile(0.5 + confidence / 2.0, n - 1) * math.sqrt(variance)
        low, high = mean - half, mean + half
        if variance == 0:
            p = 1.0 if candidate == mean else 0.0
        else:
            p = t_two_sided_p((candidate - mean) / math.sqrt(variance), n - 1)
        return Significance(
            candidate,
            candidate > high,
            METHOD_PREDICTION_INTERVAL,
            n,
            base,
            low,
            high,
            p,
            spread=sd,
            own_error=own,
            widened=widened,
        )
    own = None
    if candidate_interval is not None:
        own = own_standard_error(candidate, candidate_interval, confidence)
    return Significance(candidate, None, METHOD_NONE, n, base, own_error=own)


def samples_for_half_width(samples: int, half_width: float, target: float) -> int:
    """About how many samples would shrink an interval's ``half_width`` to ``target``.

    The width of a confidence interval scales as 1/sqrt(n): for a percentile, the ranks of
    the order-statistic interval lie about ``z * sqrt(n p (1 - p))`` from ``n p``, a share
    of the samples that shrinks as 1/sqrt(n) (Conover 1999, 3.2); for a mean it is
    ``z * sd / sqrt(n)``; for a proportion ``z * sqrt(p (1 - p) / n)``. So ``samples *
    (half_width / target) ** 2``, rounded up to two significant digits: an estimate from
    the interval the run has, not a guarantee (the tail's shape and slow drifts, which the
    block bootstrap sees, do not all shrink that way).
    """
    if samples < 1 or target <= 0:
        raise ValueError(f"need samples >= 1 and target > 0, got {samples} and {target}")
    needed = samples * (half_width / target) ** 2
    if needed <= samples:
        return samples
    digits = max(0, math.floor(math.log10(needed)) - 1)
    step = 10**digits
    return int(math.ceil(needed / step) * step)
