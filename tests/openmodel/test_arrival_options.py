"""Arrival options: the pure parsing and schedule, and bad options ending with exit 2."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from harness.core import arrivals
from harness.core.arrivals import ArrivalError, Stage
from tests.e2e.helpers import paybench


def test_rates_and_stages_parse() -> None:
    assert arrivals.parse_rate("20/s") == 20.0
    assert arrivals.parse_rate("600/m") == 10.0
    assert arrivals.parse_rate("2.5") == 2.5
    assert arrivals.parse_stages("1m:10/s, 5m:40/s") == (Stage(60.0, 10.0), Stage(300.0, 40.0))
    assert arrivals.plan_stages("5/s", None) == (Stage(math.inf, 5.0),)
    assert arrivals.plan_stages(None, None) is None


@pytest.mark.parametrize(
    ("rate", "stages", "message"),
    [
        ("fast", None, "--arrival-rate 'fast' is not a rate"),
        ("0/s", None, "--arrival-rate '0/s': the rate must be above 0"),
        (None, "1m", "--arrival-stages: stage '1m' lacks its rate"),
        (None, "soon:10/s", "--arrival-stages: 'soon' is not a duration"),
        ("5/s", "1m:10/s", "--arrival-rate and --arrival-stages both set"),
    ],
)
def test_bad_plans_name_the_option(rate: str | None, stages: str | None, message: str) -> None:
    with pytest.raises(ArrivalError, match="^" + message.replace("(", r"\(")):
        arrivals.plan_stages(rate, stages)


def test_processes_share_the_sequence_exactly() -> None:
    """Three processes together give the one sequence: every arrival once, in phase."""
    stages = (Stage(2.0, 10.0), Stage(1.0, 30.0))
    whole = list(arrivals.intended_offsets(stages))
    assert len(whole) == arrivals.intended_count(stages, 3.0) == 50
    shares = [list(arrivals.intended_offsets(stages, i, 3)) for i in range(3)]
    assert sorted(itertools.chain(*shares)) == whole
    assert [len(s) for s in shares] == [17, 17, 16]
    assert shares[1][0] == pytest.approx(0.1)


def test_shortfall_reasons() -> None:
    assert arrivals.shortfall_reason("dropped", 1000, 10) is None  # 1 %: at the limit
    reason = arrivals.shortfall_reason("dropped", 1000, 11)
    assert reason is not None and "11 of 1000 (1.1 % > 1 %)" in reason
    assert arrivals.shortfall_reason("late", 100, 5) is None
    assert arrivals.shortfall_reason("late", 0, 0) is None


@pytest.mark.parametrize(
    ("options", "line"),
    [
        (("--arrival-rate", "lots"), "--arrival-rate 'lots' is not a rate"),
        (("--arrival-rate", "5/s", "--arrival-stages", "1m:5/s"), "both set"),
        (("--arrival-rate", "5/s", "--max-in-flight", "0"), "--max-in-flight '0'"),
    ],
)
def test_bad_options_exit_2(tmp_path: Path, options: tuple[str, ...], line: str) -> None:
    r = paybench("run", "--out", str(tmp_path / "reports"), "--no-history", *options)
    assert r.returncode == 2, r.stderr[-2000:]
    assert line in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "reports" / "runs").exists()


def test_bad_profile_key_exits_2(tmp_path: Path) -> None:
    assert arrivals.locust_args(None, None, None, {"arrival-rate": "9/s"}, "p.conf") == ()
    with pytest.raises(ArrivalError, match=r"^p.conf: max-in-flight 'x': .*; fix the profile$"):
        arrivals.locust_args(None, None, None, {"max-in-flight": "x"}, "p.conf")
    assert arrivals.locust_args(None, "1m:5/s", "7", {"arrival-rate": "9/s"}) == (
        "--arrival-rate=",
        "--arrival-stages=1m:5/s",
        "--max-in-flight=7",
    )


def test_rate_capacity_carried_in_a_row_and_the_plateau() -> None:
    steps = (
        arrivals.RateStep(10.0, 10.0, 105.0, True),
        arrivals.RateStep(18.0, 17.6, 130.0, True),  # 97.8 %: carried
        arrivals.RateStep(22.0, 19.4, 900.0, True),  # 88 %: saturated
        arrivals.RateStep(26.0, 19.5, 2600.0, False, "POST /api/payments/v2/initiate p95"),
    )
    answer = arrivals.rate_capacity(steps)
    assert answer.capacity_per_s == 18.0
    assert answer.saturation_per_s == 19.5
    assert answer.first_not_carried == steps[2]
    assert "carries 18 checkouts/s" in answer.sentence
    assert "at 22/s it completes only 19.4/s" in answer.sentence
    broken = arrivals.rate_capacity(steps[3:])
    assert broken.capacity_per_s is None
    assert broken.sentence.endswith("POST /api/payments/v2/initiate p95 breaks")
    assert arrivals.parse_rate_steps("10/s, 20/s") == (10.0, 20.0)
    with pytest.raises(ArrivalError, match="the rates must rise"):
        arrivals.parse_rate_steps("20/s,10/s")


def test_bad_rate_steps_exit_2(tmp_path: Path) -> None:
    r = paybench("capacity", "--arrival-rate-steps", "20/s,10/s", "--out", str(tmp_path))
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip() == (
        "paybench: error: --arrival-rate-steps '20/s,10/s': the rates must rise, "
        "e.g. 10/s,20/s,30/s"
    )
