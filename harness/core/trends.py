"""Change points and trends over a series of runs (pure: values in, values out).

``detect_change_points`` finds the runs where a metric (p95 of one request, say) moved to a
new level, with the method Apache Otava (formerly Hunter) uses: E-Divisive means with a
Student t-test as significance check, applied over sliding windows (split) and then pruned
bottom-up (merge). ``mann_kendall`` says whether the last runs rise or fall. The Student t
and normal distributions come from ``harness.core.stats`` (scipy.stats).

References:

- D. S. Matteson and N. A. James, "A Nonparametric Approach for Multiple Change Point
  Analysis of Multivariate Data", JASA 109 (2014), doi:10.1080/01621459.2013.849605.
- M. Fleming, P. Kolaczkowski, I. Kumar, S. Das, S. Huang, H. Ingo, "Hunter: Using Change
  Point Detection to Hunt for Performance Regressions", ICPE 2023, arXiv:2301.03034.
- H. B. Mann, "Nonparametric tests against trend", Econometrica 13 (1945); M. G. Kendall,
  "Rank Correlation Methods" (1975): the Mann-Kendall trend test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.core import stats

__all__ = [
    "ChangePoint",
    "Trend",
    "detect_change_points",
    "mann_kendall",
    "pooled_t_test",
]


@dataclass(frozen=True)
class ChangePoint:
    """A level shift: ``series[index]`` is the first value of the new level.

    ``change_pct`` is ``100 * (mean_after / mean_before - 1)``; None when ``mean_before`` is
    0 (an error rate going from 0 % to 2 % has no relative change).
    """

    index: int
    p_value: float
    mean_before: float
    mean_after: float
    change_pct: float | None
    stddev_before: float = 0.0
    stddev_after: float = 0.0

    @property
    def magnitude(self) -> float:
        """The larger of the forward and backward relative change (Otava's magnitude)."""
        forward = abs(self.mean_after / self.mean_before - 1) if self.mean_before else 0.0
        backward = abs(self.mean_before / self.mean_after - 1) if self.mean_after else 0.0
        return max(forward, backward)


# ---------------------------------------------------------------------------------------
# The two-sample t-test
# ---------------------------------------------------------------------------------------


def pooled_t_test(
    left: Sequence[float] | np.ndarray, right: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Two-sample Student t-test with pooled variance: returns ``(t, two-sided p)``.

    The test Otava's ``TTestSignificanceTester`` runs (scipy's ``ttest_ind_from_stats``
    with equal variances), here with sample standard deviations (ddof=1). A side of one
    value contributes no variance; both sides constant gives p = 0 when the means differ
    and p = 1 when they are equal.
    """
    n1, n2 = len(left), len(right)
    df = n1 + n2 - 2
    if n1 == 0 or n2 == 0 or df <= 0:
        return 0.0, 1.0
    a = np.asarray(left, dtype=np.float64)
    b = np.asarray(right, dtype=np.float64)
    m1, m2 = float(a.mean()), float(b.mean())
    ss = float(((a - m1) ** 2).sum() + ((b - m2) ** 2).sum())
    pooled_var = ss / df
    # Rounding makes two constant sides differ by an ulp; such differences are no change.
    if math.isclose(m1, m2, rel_tol=1e-12, abs_tol=1e-300):
        return 0.0, 1.0
    if pooled_var <= (1e-12 * max(abs(m1), abs(m2))) ** 2:
        return math.copysign(math.inf, m2 - m1), 0.0
    t = (m2 - m1) / math.sqrt(pooled_var * (1.0 / n1 + 1.0 / n2))
    return t, stats.t_two_sided_p(t, df)


# ---------------------------------------------------------------------------------------
# E-Divisive means
# ---------------------------------------------------------------------------------------


def _best_split(x: np.ndarray, start: int, stop: int) -> tuple[int, float] | None:
    """The E-Divisive candidate in ``x[start:stop]``: the split tau maximising Q-hat.

    Matteson and James (2014), eq. (6)-(7) with alpha = 1: for X = x[start:tau] (n values)
    and Y = x[tau:kappa] (m values),

        Q(X, Y) = 2/(m+n) sum|X_i - Y_j| - 2m/((m+n)(n-1)) sum_{i<k}|X_i - X_k|
                  - 2n/((m+n)(m-1)) sum_{j<k}|Y_j - Y_k|,

    maximised over start < tau < kappa <= stop. Block sums come from a 2-D prefix sum of
    the distance matrix, so the whole (tau, kappa) grid costs O(len^2).
    """
    seg = x[start:stop]
    size = len(seg)
    if size < 2:
        return None
    dist = np.abs(seg[:, None] - seg[None, :])
    prefix = np.zeros((size + 1, size + 1))
    prefix[1:, 1:] = dist.cumsum(axis=0).cumsum(axis=1)

    def block(r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        return prefix[r1, c1] - prefix[r0, c1] - prefix[r1, c0] + prefix[r0, c0]

    tau = np.arange(1, size)[:, None]  # relative to start; X = seg[0:tau]
    kappa = np.arange(2, size + 1)[None, :]
    valid = kappa > tau
    tau_b, kappa_b = np.broadcast_arrays(tau, kappa)
    zero = np.zeros_like(tau_b)
    n = tau_b.astype(np.float64)
    m = (kappa_b - tau_b).astype(np.float64)
    between = block(zero, tau_b, tau_b, kappa_b)
    within_x = block(zero, tau_b, zero, tau_b) / 2.0
    within_y = block(tau_b, kappa_b, tau_b, kappa_b) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        term_x = np.where(n > 1, 2.0 * m / ((m + n) * (n - 1)) * within_x, 0.0)
        term_y = np.where(m > 1, 2.0 * n / ((m + n) * (m - 1)) * within_y, 0.0)
        q = 2.0 / (m + n) * between - term_x - term_y
    q = np.where(valid, q, -np.inf)
    i, j = np.unravel_index(int(np.argmax(q)), q.shape)
    return start + int(i) + 1, float(q[i, j])


def _segments(cuts: Sequence[int], start: int, stop: int) -> list[tuple[int, int]]:
    edges = [start, *sorted(cuts), stop]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _test(x: np.ndarray, before: tuple[int, int], after: tuple[int, int]) -> ChangePoint:
    left, right = x[before[0] : before[1]], x[after[0] : after[1]]
    _, p = pooled_t_test(left, right)
    mean_before, mean_after = float(left.mean()), float(right.mean())
    change = 100.0 * (mean_after / mean_before - 1.0) if mean_before else None
    return ChangePoint(
        index=after[0],
        p_value=p,
        mean_before=mean_before,
        mean_after=mean_after,
        change_pct=change,
        stddev_before=float(left.std(ddof=1)) if len(left) > 1 else 0.0,
        stddev_after=float(right.std(ddof=1)) if len(right) > 1 else 0.0,
    )


def _e_divisive(x: np.ndarray, start: int, stop: int, max_p: float) -> list[int]:
    """E-Divisive within ``x[start:stop]``: split at the best candidate while significant."""
    cuts: list[int] = []
    while True:
        best: tuple[int, float, tuple[int, int]] | None = None
        for seg in _segments(cuts, start, stop):
            cand = _best_split(x, *seg)
            if cand is not None and (best is None or cand[1] > best[1]):
                best = (cand[0], cand[1], seg)
        if best is None:
            return cuts
        tau, _, (a, b) = best
        # Otava's t-test replaces the permutation test of Matteson and James: the two sides
        # of the candidate within its own segment must differ in mean.
        if _test(x, (a, tau), (tau, b)).p_value > max_p:
            return cuts
        cuts.append(tau)


def _with_stats(x: np.ndarray, cuts: Sequence[int]) -> list[ChangePoint]:
    """Each cut tested between its neighbouring cuts (the intervals of Otava's merge)."""
    edges = [0, *cuts, len(x)]
    return [
        _test(x, (edges[i - 1], edges[i]), (edges[i], edges[i + 1]))
        for i in range(1, len(edges) - 1)
    ]


def detect_change_points(
    series: Sequence[float],
    p_value: float = 0.001,
    min_magnitude: float = 0.0,
    window: int = 50,
) -> list[ChangePoint]:
    """Change points of ``series`` by E-Divisive means with a t-test (Otava's method).

    Method (Fleming et al. 2023, arXiv:2301.03034, as implemented in Apache Otava's
    ``compute_change_points``), over E-Divisive means (Matteson and James 2014,
    doi:10.1080/01621459.2013.849605):

    1. Split: slide a window of ``window`` values in steps of ``window // 2``; in each,
       run E-Divisive means (recursive bisection at the split maximising the energy
       statistic Q-hat), keeping a split while a two-sample Student t-test between its two
       sides gives a p-value at most a relaxed threshold (10x ``p_value`` below 0.05, as
       Otava does). The union of all splits are the "weak" change points.
    2. Merge: test every weak change point between its neighbours; repeatedly drop the one
       with the largest p-value while it exceeds ``p_value``, then the one with the
       smallest magnitude while that is at most ``min_magnitude``, re-testing the others
       after each removal.

    ``min_magnitude`` is a fraction (0.05 = 5 %): the larger of the forward and backward
    relative change of the means. Returns change points sorted by index; ``index`` is the
    position of the first value of the new level. Unlike Otava, sample standard
    deviations (ddof=1) go into the t-test. Values must be finite.
    """
    if window < 2:
        raise ValueError(f"window must be at least 2, got {window}")
    if not 0.0 < p_value <= 1.0:
        raise ValueError(f"p_value must be in (0, 1], got {p_value}")
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValueError("series must be a flat sequence of finite numbers")
    if len(x) < 3:
        return []

    if p_value < 0.05:
        first_pass = p_value * 10
    elif p_value < 0.5:
        first_pass = p_value * 2
    else:
        first_pass = p_value

    # Split step.
    weak: set[int] = set()
    step = max(1, window // 2)
    start = 0
    while start < len(x):
        stop = min(start + window, len(x))
        found = _e_divisive(x, start, stop, first_pass)
        weak.update(found)
        start = max(max(found, default=0), start + step)

    # Merge step.
    cuts = sorted(weak)
    points = _with_stats(x, cuts)
    while points:
        weakest = max(range(len(points)), key=lambda i: points[i].p_value)
        if points[weakest].p_value <= p_value:
            weakest = min(range(len(points)), key=lambda i: points[i].magnitude)
            if points[weakest].magnitude > min_magnitude:
                break
        del cuts[weakest], points[weakest]
        # Only the two neighbours of the removed point see a different interval.
        edges = [0, *cuts, len(x)]
        for i in (weakest - 1, weakest):
            if 0 <= i < len(points):
                points[i] = _test(x, (edges[i], edges[i + 1]), (edges[i + 1], edges[i + 2]))
    return points


# ---------------------------------------------------------------------------------------
# Monotonic trend
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trend:
    """The Mann-Kendall test over a few runs: ``direction`` is rising, falling or steady."""

    direction: str
    s: int
    p_value: float
    n: int


def mann_kendall(values: Sequence[float], alpha: float = 0.05) -> Trend:
    """Mann-Kendall test for a monotonic trend (Mann 1945; Kendall 1975).

    S = sum over i < j of sign(x_j - x_i); under no trend S is about normal with variance
    (n(n-1)(2n+5) - sum over ties t(t-1)(2t+5)) / 18; Z uses the continuity correction.
    ``direction`` is "rising" or "falling" when the two-sided p-value is below ``alpha``,
    else "steady" (also for fewer than 4 values, where the test cannot reach 0.05).
    """
    x = [float(v) for v in values]
    n = len(x)
    if n < 4:
        return Trend("steady", 0, 1.0, n)
    s = sum((x[j] > x[i]) - (x[j] < x[i]) for i in range(n) for j in range(i + 1, n))
    ties: dict[float, int] = {}
    for v in x:
        ties[v] = ties.get(v, 0) + 1
    var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties.values())) / 18
    if var <= 0 or s == 0:
        return Trend("steady", s, 1.0, n)
    z = (s - 1) / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var)
    p = stats.normal_two_sided_p(z)
    if p >= alpha:
        return Trend("steady", s, p, n)
    return Trend("rising" if s > 0 else "falling", s, p, n)
