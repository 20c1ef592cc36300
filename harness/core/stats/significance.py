"""The one test of "is the candidate significantly above its baseline".

Used by the judge (regression budgets, ``harness.core.evaluate``) and by the trend report
(latest run vs the runs before it, ``harness.report.trend``), so that a rise the judge calls
significant is the rise the trend report marks, and the other way round.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.stats.distributions import t_two_sided_p
from harness.core.stats.intervals import prediction_interval

MIN_PREDICTION_RUNS = 3
METHOD_PREDICTION_INTERVAL = "prediction-interval"
METHOD_CANDIDATE_INTERVAL = "candidate-interval"
METHOD_NONE = "none"


@dataclass(frozen=True)
class Significance:
    """How a candidate value stands against the values of the baseline runs.

    ``above``: significantly above the baseline (None: cannot be told). ``low``/``high``
    (in the metric's unit): the interval compared, the baseline runs' prediction interval
    (``method`` prediction-interval) or the candidate's own confidence interval
    (candidate-interval). ``p_value``: two-sided, of the candidate's t statistic against
    the baseline runs (prediction-interval only). ``baseline``: the runs' median.
    """

    candidate: float
    above: bool | None
    method: str
    runs: int
    baseline: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None

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


def above_baseline(
    baseline: Sequence[float],
    candidate: float,
    candidate_interval: tuple[float, float] | None = None,
    confidence: float = 0.95,
) -> Significance:
    """Whether ``candidate`` lies significantly above the ``baseline`` runs' values.

    With ``MIN_PREDICTION_RUNS`` or more baseline runs: above their ``confidence``
    prediction interval, ``mean + t * sd * sqrt(1 + 1/n)`` with t the ``0.5 + confidence/2``
    quantile of Student's t with n - 1 degrees of freedom (Hahn & Meeker, *Statistical
    Intervals* (1991), 4.6; `prediction_interval`). Equivalently the statistic
    ``(candidate - mean) / (sd * sqrt(1 + 1/n))`` is beyond that quantile; its two-sided
    p-value is ``p_value``. Baseline runs that are all equal have a zero-width interval.

    With fewer runs: the candidate's own ``candidate_interval`` (its confidence interval
    from the run's samples) lies wholly above the baseline median; without one, None.
    """
    n = len(baseline)
    if n == 0:
        return Significance(candidate, None, METHOD_NONE, 0)
    base = statistics.median(baseline)
    if n >= MIN_PREDICTION_RUNS:
        low, high = prediction_interval(baseline, confidence)
        mean, sd = statistics.fmean(baseline), statistics.stdev(baseline)
        if sd == 0:
            p = 1.0 if candidate == mean else 0.0
        else:
            t = (candidate - mean) / (sd * math.sqrt(1.0 + 1.0 / n))
            p = t_two_sided_p(t, n - 1)
        return Significance(
            candidate, candidate > high, METHOD_PREDICTION_INTERVAL, n, base, low, high, p
        )
    if candidate_interval is None:
        return Significance(candidate, None, METHOD_NONE, n, base)
    low, high = candidate_interval
    return Significance(candidate, low > base, METHOD_CANDIDATE_INTERVAL, n, base, low, high)
