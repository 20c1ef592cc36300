"""harness.core.stats distributions against published tables and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.core import stats

# Two-sided 5 % and 1 % critical values of Student's t, from the published tables
# (e.g. NIST/SEMATECH e-Handbook of Statistical Methods, 1.3.6.7.2).
T_TABLE = [
    (1, 0.975, 12.7062047),
    (2, 0.975, 4.30265273),
    (4, 0.975, 2.77644511),
    (9, 0.975, 2.26215716),
    (10, 0.975, 2.22813885),
    (29, 0.975, 2.04522964),
    (10, 0.995, 3.16927267),
    (29, 0.995, 2.75638590),
    (5, 0.95, 2.01504837),  # one-sided 5 %
]


@pytest.mark.parametrize(("df", "p", "t"), T_TABLE)
def test_t_quantile_matches_the_published_table(df: int, p: float, t: float) -> None:
    assert stats.t_quantile(p, df) == pytest.approx(t, rel=1e-8)
    # The lower tail is the mirror image: the p-quantile convention, not a critical value.
    assert stats.t_quantile(1.0 - p, df) == pytest.approx(-t, rel=1e-8)


@pytest.mark.parametrize(("df", "p", "t"), T_TABLE)
def test_t_two_sided_p_inverts_the_table(df: int, p: float, t: float) -> None:
    two_sided = 2.0 * (1.0 - p)
    assert stats.t_two_sided_p(t, df) == pytest.approx(two_sided, rel=1e-6)
    assert stats.t_two_sided_p(-t, df) == pytest.approx(two_sided, rel=1e-6)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0, 2.0, 5.0, 30.0, 500.0])
def test_t_two_sided_p_matches_closed_forms(t: float) -> None:
    # df = 1 is the Cauchy distribution; df = 2 has P = 1 - |t| / sqrt(2 + t^2).
    assert stats.t_two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-9)
    assert stats.t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)


def test_t_at_the_edges() -> None:
    assert stats.t_two_sided_p(0.0, 5) == 1.0
    assert stats.t_two_sided_p(math.inf, 3) == 0.0
    assert stats.t_two_sided_p(1.95996398, 1e7) == pytest.approx(0.05, rel=1e-6)  # normal limit
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.t_two_sided_p(1.0, 0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        stats.t_quantile(1.0, 5)
    with pytest.raises(ValueError, match="degrees of freedom"):
        stats.t_quantile(0.975, 0)


@pytest.mark.parametrize(
    ("p", "z"),
    [(0.5, 0.0), (0.95, 1.644853627), (0.975, 1.959963985), (0.995, 2.575829304)],
)
def test_normal_quantile_matches_the_published_table(p: float, z: float) -> None:
    assert stats.normal_quantile(p) == pytest.approx(z, abs=1e-9)
    assert stats.normal_two_sided_p(z) == pytest.approx(2 * (1 - p), rel=1e-8, abs=1e-15)
    assert stats.normal_two_sided_p(-z) == pytest.approx(2 * (1 - p), rel=1e-8, abs=1e-15)


def test_normal_quantile_refuses_a_certainty() -> None:
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        stats.normal_quantile(0.0)


@pytest.mark.parametrize(("n", "p"), [(10, 0.5), (20, 0.5), (37, 0.9), (60, 0.1), (5, 0.99)])
def test_binomial_cdf_equals_the_exact_sum(n: int, p: float) -> None:
    k = np.arange(n + 1)
    exact = np.cumsum([math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)])
    assert stats.binomial_cdf(k, n, p) == pytest.approx(exact, rel=1e-10, abs=1e-300)


def test_binomial_cdf_matches_a_published_value_and_the_edges() -> None:
    # P(X <= 5) for Binomial(20, 0.5) = 21700 / 2^20 (binomial tables: 0.0207).
    assert float(stats.binomial_cdf(5, 20, 0.5)) == pytest.approx(21700 / 2**20, rel=1e-12)
    assert stats.binomial_cdf(np.array([0, 3]), 3, 0.0).tolist() == [1.0, 1.0]
    assert stats.binomial_cdf(np.array([2, 3]), 3, 1.0).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="binomial"):
        stats.binomial_cdf(1, 10, 1.5)
