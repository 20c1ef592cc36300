"""Benchmark: the error rates of a server regression budget (regressions.server).

A server metric has one value per run, so a ``significant`` regression budget on it is the
prediction-interval test of ``harness.core.server_regressions`` alone. Synthetic nights:
``n`` baseline runs drawn from a normal distribution with a coefficient of variation
``cv`` (the spread between runs), then one candidate run after a step of ``+step``; the
share of candidates the budget ``"+10% significant"`` breaks, judged by the real
``server_regressions.judge`` (step 0: false alarms). One night, no open regression, no
pooling of rising nights: the first night's figure. ``numpy.random.default_rng(1)``.

    nice -n -15 .venv/bin/python benchmarks/server_regression_gate.py [--trials 4000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.core.budgets import parse_budgets
from harness.core.model import Baseline
from harness.core.server_regressions import Measured, judge

BUDGET = """\
version: 1
regressions:
  server:
    target_process:
      cpu_ms_per_request: "+10% significant"
"""
KEY = "target_process (server)"
STEPS = (0.0, 0.10, 0.15, 0.20, 0.30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000)
    args = parser.parse_args()
    section = parse_budgets(BUDGET, "budgets.yaml").server
    assert section is not None
    (rb,) = section.regressions
    rng = np.random.default_rng(1)
    started = time.perf_counter()
    print(f"{rb.metric}: {rb.text!r}, {args.trials} trials per cell; share of runs broken")
    for cv in (0.03, 0.05, 0.10):
        for n in (5, 10):
            cells = []
            for step in STEPS:
                broken = 0
                for _ in range(args.trials):
                    values = tuple(float(x) for x in rng.normal(1.0, cv, n))
                    baseline = Baseline("b", tuple(map(str, range(n))), {KEY: {rb.metric: values}})
                    candidate = float(rng.normal(1.0 + step, cv))
                    broken += judge(rb, Measured(candidate), baseline).status == "fail"
                cells.append(f"+{step * 100:.0f} %: {100.0 * broken / args.trials:5.1f} %")
            print(f"runs differ by {cv * 100:2.0f} %, {n:2d} baseline runs | " + " | ".join(cells))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
