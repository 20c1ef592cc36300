"""Open-model load: arrival rates, stages and each process's intended start times (pure).

``--arrival-rate 20/s`` starts 20 checkout journeys a second whatever the API does;
``--arrival-stages "1m:10/s,5m:40/s"`` holds 10/s for a minute, then 40/s for five.
Arrivals are evenly spaced (k6's constant-arrival-rate does the same): arrival ``k`` of a
stage that starts at ``T`` with rate ``r`` is intended at ``T + k / r``, so the number of
arrivals in any run time is known exactly. With ``P`` Locust processes, process ``i``
takes the arrivals ``i, i + P, i + 2P, ...`` of that one sequence: together the processes
give the whole rate, each its share, phases interleaved.

Both ``docs/scenarios.md`` ("Arrival mode") and the limits below are the documentation.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

# An arrival that starts more than this after its intended time counts as late.
LATE_AFTER_S = 0.1
# Above these shares of the intended arrivals the generator fell behind: UNRELIABLE.
DROPPED_LIMIT_PCT = 1.0
LATE_LIMIT_PCT = 5.0
MAX_RATE_PER_S = 10_000.0
DEFAULT_MAX_IN_FLIGHT = 1000
# The rows the plugin ships with the paced users' (harness.recording reads them by name).
DROPPED_CLASS = "arrivals (dropped)"
LATE_CLASS = "arrivals (late)"
# The second latency of every request an arrival makes: the service time, from the actual
# send, under this prefix (request type FLOW, so it never counts twice in the totals).
SERVICE_PREFIX = "service time: "

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|m|min|h))?\s*$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)?")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class ArrivalError(ValueError):
    """A bad rate, stage list or in-flight limit; the message names the option and the fix."""


@dataclass(frozen=True)
class Stage:
    duration_s: float  # math.inf for a constant --arrival-rate
    rate_per_s: float


def parse_rate(text: str, option: str = "--arrival-rate") -> float:
    """``20/s``, ``600/m``, ``20`` (per second) -> arrivals per second."""
    m = _RATE.match(str(text))
    if not m:
        raise ArrivalError(
            f"{option} {text!r} is not a rate; give arrivals per second or minute, e.g. 20/s "
            "or 600/m"
        )
    per = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}[m.group(2) or "s"]
    rate = float(m.group(1)) / per
    if not 0 < rate <= MAX_RATE_PER_S:
        raise ArrivalError(
            f"{option} {text!r}: the rate must be above 0 and at most {MAX_RATE_PER_S:g}/s"
        )
    return rate


def _duration(text: str, option: str) -> float:
    s = text.strip().replace(" ", "")
    pos, total = 0, 0.0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if not m or m.end() == pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
        pos = m.end()
    if not s or pos < len(s) or total <= 0:
        raise ArrivalError(
            f"{option}: {text!r} is not a duration above zero; use e.g. 30s, 5m or 1m30s"
        )
    return total


def parse_stages(text: str, option: str = "--arrival-stages") -> tuple[Stage, ...]:
    """``"1m:10/s,5m:40/s"`` -> stages held one after the other."""
    parts = [p for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ArrivalError(
            f"{option} {text!r} is empty; give DURATION:RATE,..., e.g. 1m:10/s,5m:40/s"
        )
    stages = []
    for part in parts:
        duration, sep, rate = part.partition(":")
        if not sep:
            raise ArrivalError(
                f"{option}: stage {part.strip()!r} lacks its rate; give DURATION:RATE, e.g. 1m:10/s"
            )
        stages.append(Stage(_duration(duration, option), parse_rate(rate, f"{option} stage")))
    return tuple(stages)


def parse_max_in_flight(text: str | int, option: str = "--max-in-flight") -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ArrivalError(f"{option} {text!r}: give a whole number of journeys, 1 or more")
    return value


def plan_stages(rate: str | None, stages: str | None) -> tuple[Stage, ...] | None:
    """The stages of ``--arrival-rate`` or ``--arrival-stages`` (not both); None: closed loop."""
    if rate and stages:
        raise ArrivalError(
            "--arrival-rate and --arrival-stages both set: give one (a constant rate, or stages)"
        )
    if rate:
        return (Stage(math.inf, parse_rate(rate)),)
    if stages:
        return parse_stages(stages)
    return None


def total_duration_s(stages: tuple[Stage, ...]) -> float:
    return sum(s.duration_s for s in stages)


def intended_offsets(
    stages: tuple[Stage, ...], process_index: int = 0, processes: int = 1
) -> Iterator[float]:
    """Seconds after the start at which this process's arrivals are intended, in order."""
    if processes < 1 or not 0 <= process_index < processes:
        raise ArrivalError(f"process {process_index} of {processes}: no such process")
    k = 0  # index of the arrival in the whole sequence, across stages and processes
    stage_start = 0.0
    for stage in stages:
        m = 0
        while True:
            offset = m / stage.rate_per_s
            if offset >= stage.duration_s:
                break
            if k % processes == process_index:
                yield stage_start + offset
            k += 1
            m += 1
        stage_start += stage.duration_s


def intended_count(stages: tuple[Stage, ...], elapsed_s: float) -> int:
    """Arrivals of all processes intended in ``[0, elapsed_s)`` (exact, for the tests)."""
    total, start = 0, 0.0
    for stage in stages:
        span = min(stage.duration_s, max(0.0, elapsed_s - start))
        if span <= 0:
            break
        total += math.ceil(span * stage.rate_per_s)
        start += stage.duration_s
    return total


def shortfall_reason(kind: str, intended: float, missed: int) -> str | None:
    """Why the arrivals cannot be trusted (``kind`` dropped or late), or None."""
    if intended <= 0:
        return None
    share = 100.0 * missed / intended
    limit = DROPPED_LIMIT_PCT if kind == "dropped" else LATE_LIMIT_PCT
    if share <= limit:
        return None
    fix = (
        "--max-in-flight was reached; raise it or lower the rate"
        if kind == "dropped"
        else f"they started over {LATE_AFTER_S * 1000:.0f} ms after their intended time; use "
        "more --workers or a lower rate"
    )
    return (
        f"arrivals {kind}: {missed} of {intended:.0f} ({share:.1f} % > {limit:g} %): the load "
        f"generator fell behind, not the API; {fix}"
    )


def locust_args(
    rate: str | None,
    stages: str | None,
    max_in_flight: str | None,
    profile: dict[str, str] | None = None,
    profile_path: str = "the profile",
) -> tuple[str, ...]:
    """Checked options of ``paybench run`` (over the profile's keys) -> Locust's arguments.

    The profile's ``arrival-rate``/``arrival-stages``/``max-in-flight`` are Locust's to read;
    they are checked here so that a mistake stops the run before it starts, naming the key.
    """
    settings = profile or {}
    for key in ("arrival-rate", "arrival-stages", "max-in-flight"):
        if key in settings:
            try:
                if key == "max-in-flight":
                    parse_max_in_flight(settings[key], key)
                elif key == "arrival-rate":
                    parse_rate(settings[key], key)
                else:
                    parse_stages(settings[key], key)
            except ArrivalError as exc:
                raise ArrivalError(f"{profile_path}: {exc}; fix the profile") from None
    args: list[str] = []
    if rate is not None or stages is not None:
        plan_stages(rate, stages)
        # One of them from the command line replaces the profile's either.
        args += [f"--arrival-rate={rate or ''}", f"--arrival-stages={stages or ''}"]
    elif settings.get("arrival-rate") and settings.get("arrival-stages"):
        raise ArrivalError(f"{profile_path}: arrival-rate and arrival-stages both set; keep one")
    if max_in_flight is not None:
        args.append(f"--max-in-flight={parse_max_in_flight(max_in_flight)}")
    return tuple(args)


# -- capacity by arrival rate (`paybench capacity --arrival-rate-steps`) ---------------------

# A step is carried when its completed checkouts/s reach this share of the offered rate.
CARRIED_SHARE = 0.95


@dataclass(frozen=True)
class RateStep:
    """One held arrival rate: what was offered, what completed, and the budgets' verdict."""

    offered_per_s: float
    served_per_s: float  # completed payment initiations per second over the steady part
    p95_ms: float | None  # initiation's p95 from the intended start
    budgets_hold: bool
    broken: str = ""  # the first broken budget, "" when they hold

    @property
    def carried(self) -> bool:
        return self.budgets_hold and self.served_per_s >= CARRIED_SHARE * self.offered_per_s

    @property
    def verdict(self) -> str:
        if self.carried:
            return "carried"
        return "saturated" if self.budgets_hold else "budget broken"


@dataclass(frozen=True)
class RateCapacity:
    steps: tuple[RateStep, ...]
    capacity_per_s: float | None  # the highest offered rate carried, steps in a row from the first
    saturation_per_s: float | None  # the most checkouts/s completed in any step
    first_not_carried: RateStep | None

    @property
    def sentence(self) -> str:
        if self.capacity_per_s is None:
            return "One instance carries none of the arrival rates tried: " + _why(
                self.first_not_carried
            )
        text = (
            f"One instance carries {self.capacity_per_s:g} checkouts/s arriving within the "
            f"budgets, and completes at most {self.saturation_per_s or 0.0:.1f} checkouts/s"
        )
        if self.first_not_carried is None:
            return text + "; every arrival rate tried was carried: step higher to find the knee"
        return (
            text
            + f"; at {self.first_not_carried.offered_per_s:g}/s "
            + _why(self.first_not_carried)
        )


def _why(step: RateStep | None) -> str:
    if step is None:
        return "no step ran"
    if not step.budgets_hold:
        return f"{step.broken} breaks"
    return (
        f"it completes only {step.served_per_s:.1f}/s (< {CARRIED_SHARE:.0%} of the rate): "
        "saturated, the queue grows"
    )


def rate_capacity(steps: tuple[RateStep, ...]) -> RateCapacity:
    """The open-model answer: carried steps in a row from the first, and the plateau."""
    capacity, first_not = None, None
    for step in steps:
        if not step.carried:
            first_not = step
            break
        capacity = step.offered_per_s
    saturation = max((s.served_per_s for s in steps), default=None)
    return RateCapacity(steps, capacity, saturation, first_not)


def parse_rate_steps(text: str, option: str = "--arrival-rate-steps") -> tuple[float, ...]:
    """``"10/s,15/s,20/s"`` -> rising arrival rates per second."""
    rates = tuple(parse_rate(p, option) for p in str(text).split(",") if p.strip())
    if not rates:
        raise ArrivalError(f"{option} {text!r} is empty; give rising rates, e.g. 10/s,20/s,30/s")
    if any(b <= a for a, b in itertools.pairwise(rates)):
        raise ArrivalError(f"{option} {text!r}: the rates must rise, e.g. 10/s,20/s,30/s")
    return rates
