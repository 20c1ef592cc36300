"""Quantiles and tail probabilities of the Student t, normal and binomial distributions.

Every function states its convention in its name: ``*_quantile(p, ...)`` is the
p-quantile (the x with P(X <= x) = p), ``*_two_sided_p(x, ...)`` is P(|X| >= |x|),
``binomial_cdf(k, n, p)`` is P(X <= k). A two-sided 95 % critical value is therefore
``t_quantile(0.975, df)``, never ``t_quantile(0.95, df)``.

All of them are the functions behind scipy.stats' ``t``, ``norm`` and ``binom``, called
directly from scipy.special: ``stdtrit`` and ``stdtr`` (Student t), ``ndtri`` and ``ndtr``
(normal), and Boost's binomial CDF (the regularized incomplete beta function), which
evaluate to double precision; the answers are bit for bit those of ``scipy.stats.t.ppf``,
``norm.ppf``, ``binom.cdf`` and the others named below. scipy.special is imported on first
use (about 0.1 s) and scipy.stats never: importing scipy.stats takes 0.7 to 1 s, which
every judged run would pay, and neither the Locust processes (``harness.plugin`` imports
the histograms of this package) nor a CLI command that judges nothing should pay anything.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import ModuleType
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def _special() -> ModuleType:
    import scipy.special  # lazy: see the module docstring

    return scipy.special


@lru_cache(maxsize=1)
def _binom_cdf_ufunc() -> Any:
    """The ufunc ``scipy.stats.binom.cdf`` calls (``binom_gen._cdf``): P(X <= floor(k))."""
    _special()
    from scipy.special._ufuncs import _binom_cdf

    return _binom_cdf


def _check_probability(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"a quantile needs a probability strictly between 0 and 1, got {p}")


def _check_df(df: float) -> None:
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom: P(T <= x) = p.

    ``scipy.stats.t.ppf`` (``stdtrit``). E.g. ``t_quantile(0.975, 2)`` = 4.303 (the
    two-sided 95 % critical value of the published tables).
    """
    _check_probability(p)
    _check_df(df)
    return float(_special().stdtrit(df, p))


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (``2 * t.sf(|t|)``)."""
    _check_df(df)
    return float(min(1.0, 2.0 * _special().stdtr(df, -abs(t))))


def normal_quantile(p: float) -> float:
    """The p-quantile of the standard normal distribution (``scipy.stats.norm.ppf``).

    ``normal_quantile(0.975)`` = 1.95996.
    """
    _check_probability(p)
    return float(_special().ndtri(p))


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for the standard normal distribution (``2 * norm.sf(|z|)``)."""
    return float(min(1.0, 2.0 * _special().ndtr(-abs(z))))


def binomial_cdf(k: np.ndarray | int, n: int, p: float) -> np.ndarray:
    """P(X <= k) for X ~ Binomial(n, p), elementwise over ``k`` (``scipy.stats.binom.cdf``).

    Summed exactly through the regularized incomplete beta function (no normal
    approximation), so it holds for a million samples and p = 0.999 alike. As
    ``binom.cdf``: 0 below the support, 1 from ``n`` up.
    """
    if n < 0 or not 0.0 <= p <= 1.0 or math.isnan(p):
        raise ValueError(f"a binomial needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    k = np.asarray(k, dtype=np.float64)
    inside = _binom_cdf_ufunc()(np.floor(np.clip(k, 0, n)), n, p)
    return np.asarray(np.where(k >= n, 1.0, np.where(k < 0, 0.0, inside)), dtype=np.float64)
