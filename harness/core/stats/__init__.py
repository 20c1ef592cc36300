"""The statistics of the harness: one home for each idea (pure: values in, values out).

- `histogram`: the one latency histogram type, `Histogram` (HDR buckets of nanoseconds,
  read in milliseconds), its encoding, merge and bucket layout;
- `distributions`: Student t, normal and binomial quantiles and tail probabilities
  (scipy.special, the functions behind scipy.stats), each function with one convention
  named in it;
- `intervals`: confidence intervals of percentiles and means (order statistics, moving-block
  bootstrap, normal), Wilson's interval of a proportion, the prediction interval of a series;
- `significance`: the one test of "is the candidate significantly above its baseline".

Callers use ``from harness.core import stats`` and ``stats.X``; numpy, hdrh and (lazily)
scipy are the only imports, so ``harness.plugin`` can use it inside Locust processes.
"""

from harness.core.stats.distributions import (
    binomial_cdf,
    normal_quantile,
    normal_two_sided_p,
    t_quantile,
    t_two_sided_p,
)
from harness.core.stats.histogram import (
    HIGHEST_TRACKABLE_NS,
    LOWEST_TRACKABLE_NS,
    NS_PER_MS,
    SIGNIFICANT_FIGURES,
    UNIT,
    BucketLayout,
    Histogram,
    bucket_layout,
    decode_histogram,
    encode_histogram,
    histogram_from_ms,
    merge_histograms,
    ms_to_ns_array,
    new_histogram,
    percentile_ms,
)
from harness.core.stats.intervals import (
    BOOTSTRAP_RESAMPLES,
    MAX_BOOTSTRAP_BLOCKS,
    METHOD_BLOCK_BOOTSTRAP,
    METHOD_NORMAL,
    METHOD_ORDER_STATISTIC,
    MIN_BOOTSTRAP_INTERVALS,
    ConfidenceInterval,
    mean_ci,
    order_statistic_ranks,
    percentile_ci,
    prediction_interval,
    wilson_interval,
)
from harness.core.stats.significance import (
    METHOD_NONE,
    METHOD_PREDICTION_INTERVAL,
    MIN_PREDICTION_RUNS,
    Significance,
    above_baseline,
    own_standard_error,
    samples_for_half_width,
)

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "HIGHEST_TRACKABLE_NS",
    "LOWEST_TRACKABLE_NS",
    "MAX_BOOTSTRAP_BLOCKS",
    "METHOD_BLOCK_BOOTSTRAP",
    "METHOD_NONE",
    "METHOD_NORMAL",
    "METHOD_ORDER_STATISTIC",
    "METHOD_PREDICTION_INTERVAL",
    "MIN_BOOTSTRAP_INTERVALS",
    "MIN_PREDICTION_RUNS",
    "NS_PER_MS",
    "SIGNIFICANT_FIGURES",
    "UNIT",
    "BucketLayout",
    "ConfidenceInterval",
    "Histogram",
    "Significance",
    "above_baseline",
    "binomial_cdf",
    "bucket_layout",
    "decode_histogram",
    "encode_histogram",
    "histogram_from_ms",
    "mean_ci",
    "merge_histograms",
    "ms_to_ns_array",
    "new_histogram",
    "normal_quantile",
    "normal_two_sided_p",
    "order_statistic_ranks",
    "own_standard_error",
    "percentile_ci",
    "percentile_ms",
    "prediction_interval",
    "samples_for_half_width",
    "t_quantile",
    "t_two_sided_p",
    "wilson_interval",
]
