"""Quantiles and tail probabilities of the Student t, normal and binomial distributions.

Every function states its convention in its name: ``*_quantile(p, ...)`` is the
p-quantile (the x with P(X <= x) = p), ``*_two_sided_p(x, ...)`` is P(|X| >= |x|),
``binomial_cdf(k, n, p)`` is P(X <= k). A two-sided 95 % critical value is therefore
``t_quantile(0.975, df)``, never ``t_quantile(0.95, df)``.

All of them are scipy.stats (``scipy.stats.t``, ``norm`` and ``binom``, which evaluate
the regularized incomplete beta function and the normal integral to double precision with
Boost and Cephes). scipy.stats is imported on first use: importing it takes about 0.7 s,
which neither the Locust processes (``harness.plugin`` imports the histograms of this
package) nor a CLI command that judges nothing should pay.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import ModuleType

import numpy as np


@lru_cache(maxsize=1)
def _scipy_stats() -> ModuleType:
    import scipy.stats  # lazy: see the module docstring

    return scipy.stats


def _check_probability(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs a probability strictly between 0 and 1, got {p}")


def _check_df(df: float) -> None:
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom: P(T <= x) = p.

    ``scipy.stats.t.ppf``. E.g. ``t_quantile(0.975, 2)`` = 4.303 (the two-sided 95 %
    critical value of the published tables).
    """
    _check_probability(p)
    _check_df(df)
    return float(_scipy_stats().t.ppf(p, df))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (``2 * t.sf(|t|)``)."""
    _check_df(df)
    return float(min(1.0, 2.0 * _scipy_stats().t.sf(abs(t), df)))


def normal_quantile(p: float) -> float:
    """The p-quantile of the standard normal distribution (``scipy.stats.norm.ppf``).

    ``normal_quantile(0.975)`` = 1.95996.
    """
    _check_probability(p)
    return float(_scipy_stats().norm.ppf(p))


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for the standard normal distribution (``2 * norm.sf(|z|)``)."""
    return float(min(1.0, 2.0 * _scipy_stats().norm.sf(abs(z))))


def binomial_cdf(k: np.ndarray | int, n: int, p: float) -> np.ndarray:
    """P(X <= k) for X ~ Binomial(n, p), elementwise over ``k`` (``scipy.stats.binom.cdf``).

    Summed exactly through the regularized incomplete beta function (no normal
    approximation), so it holds for a million samples and p = 0.999 alike.
    """
    if n < 0 or not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"a binomial needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    return np.asarray(_scipy_stats().binom.cdf(k, n, p), dtype=np.float64)
