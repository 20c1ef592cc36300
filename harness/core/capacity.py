"""Capacity planning over a stepped run: the budget capacity, the knee, a scalability fit.

Pure: every function takes values and returns values (no files, no clock, no subprocess).
``harness.commands.capacity`` cuts a stepped Locust run into ``Step`` values and calls
``analyse``; ``harness.report.capacity`` renders the ``CapacityAnalysis`` it returns.

What "throughput" means here. A step measures two rates over its steady part:

- ``checkout_rps``: payment initiations per second (``POST /api/payments/v2/initiate``),
  one per checkout started. This is the business figure the capacity review asks for
  ("checkouts/s"), and it is the *basis* of the analysis whenever the run made checkouts:
  the knee, the fit and the capacity are in checkouts/s.
- ``throughput_rps``: every HTTP request per second (checkout journey, webhooks, health
  probes together; the ``FLOW`` pseudo-requests that time a whole journey are not requests
  and are left out). It is reported next to the checkouts. A run without any initiation
  (another locustfile) falls back to it as the basis, in "requests/s".

The headroom is always in requests/s: ``capacity.expected_peak_rps`` in budgets.yaml (and
``--expected-peak-rps``) is the whole traffic at the expected peak, so it is compared with
the requests/s the instance served at the capacity step.

The checkouts are the basis because the payment path is what saturates first and what the
review is about; the total also grows with the health probes and webhook senders, which
do not queue behind a saturated checkout route, so it has no clean knee of its own.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from harness.core import catalogue
from harness.core import metrics as registry
from harness.core.format import fmt_pct, fmt_rps, fmt_value
from harness.core.model import (
    AGGREGATE_KEY,
    Budget,
    BudgetResult,
    RequestStats,
    Verdict,
    request_key,
)

CHECKOUT_KEY = request_key(*catalogue.INITIATE)
FLOW_TYPE = catalogue.FLOW_CHECKOUT[0]
STEP_PERCENTILES = (50.0, 95.0, 99.0)

Basis = Literal["checkouts", "requests"]
BASIS_UNIT: Mapping[str, str] = {"checkouts": "checkouts/s", "requests": "requests/s"}

# The plain names the review sentence uses for the paybench request keys.
PLAIN_NAMES: Mapping[str, str] = {
    request_key(*catalogue.PLANS): "plan loading",
    request_key(*catalogue.INITIATE): "payment initiation",
    request_key(*catalogue.STATUS): "status checks",
    request_key(*catalogue.SUBSCRIPTION): "the current subscription",
    request_key(*catalogue.WEBHOOK_COMPLETED): "webhook processing (completed)",
    request_key(*catalogue.WEBHOOK_FAILED): "webhook processing (failed)",
    request_key(*catalogue.WEBHOOK_DUPLICATE): "webhook processing (duplicate)",
    request_key(*catalogue.WEBHOOK_FORGED): "webhook processing (forged)",
    request_key(*catalogue.HEALTH): "the health check",
    request_key(*catalogue.HEALTH_DATABASE): "the database health check",
    request_key(*catalogue.HEALTH_REDIS): "the redis health check",
    request_key(*catalogue.HEALTH_PAYMENTS): "the payments health check",
    request_key(*catalogue.FLOW_CHECKOUT): "the checkout flow",
    AGGREGATE_KEY: "all requests",
    # The built-in target's server sources (a declared one keeps its name: "redis (server)").
    "target_process (server)": "the API process",
    "target (server)": "the API",
}


def plain_name(key: str) -> str:
    """``"POST /api/payments/v2/initiate"`` -> ``"payment initiation"``; others unchanged."""
    return PLAIN_NAMES.get(key, key)


def budget_phrase(metric: str, key: str) -> str:
    """``("p95", "POST /api/payments/v2/initiate")`` -> ``"p95 of payment initiation"``."""
    found = registry.lookup(metric)
    return f"{found.phrase if found else metric} of {plain_name(key)}"


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class BrokenBudget:
    """One budget that did not hold in a step."""

    what: str  # "p95 of payment initiation"
    key_path: str  # as in budgets.yaml
    measured: float | None
    unit: str  # "ms", "%", ...
    limit_text: str  # as written, "< 2s"
    margin_pct: float | None  # negative: how far past the limit, in percent of it
    server: bool = False  # a server budget (budgets.yaml's server:)

    def __str__(self) -> str:
        measured = "no value" if self.measured is None else fmt_value(self.measured, self.unit)
        return f"{self.what} {measured} (budget {self.limit_text})"


@dataclass(frozen=True)
class Step:
    """One load step, measured over its steady part (the ramp to its user count left out).

    ``percentiles_ms`` maps a request key (and ``AGGREGATE_KEY``) to ``{"p50", "p95",
    "p99"}``. ``broken`` lists the budgets that failed, worst margin first; a budget
    without samples in the step is neither held nor broken.
    """

    users: int
    duration_s: float
    throughput_rps: float  # every HTTP request (flows left out)
    checkout_rps: float  # payment initiations
    percentiles_ms: Mapping[str, Mapping[str, float]]
    error_rate_pct: float | None
    budgets_held: bool
    broken: tuple[BrokenBudget, ...] = ()
    mean_ms: float | None = None  # every HTTP request together
    start_s: float = 0.0  # seconds since the run started, where the steady part begins
    requests: int = 0
    # The cost figure: the target process' CPU seconds per checkout over the steady part
    # (server.jsonl's process_cpu_seconds_total); None without it or without checkouts.
    cpu_s_per_checkout: float | None = None

    def rate(self, basis: Basis) -> float:
        return self.checkout_rps if basis == "checkouts" else self.throughput_rps

    @property
    def worst_margin_pct(self) -> float | None:
        margins = [b.margin_pct for b in self.broken if b.margin_pct is not None]
        return min(margins) if margins else None


def broken_budgets(verdict: Verdict) -> tuple[BrokenBudget, ...]:
    """The absolute budgets that failed in ``verdict``, worst margin first.

    "no samples" is not a break (a short step may see no webhook of one kind), nor is "no
    data" (a server source that stopped answering tells nothing of the load), and
    regression budgets do not apply to a single step. Server budgets break like any other.
    """
    broken = [
        _broken(r) for r in verdict.results if r.status == "fail" and isinstance(r.budget, Budget)
    ]
    return tuple(sorted(broken, key=lambda b: math.inf if b.margin_pct is None else b.margin_pct))


def _broken(result: BudgetResult) -> BrokenBudget:
    budget = result.budget
    assert isinstance(budget, Budget)
    return BrokenBudget(
        what=budget_phrase(budget.metric, result.request_key),
        key_path=budget.key_path,
        measured=result.measured,
        unit=budget.unit,
        limit_text=budget.text,
        margin_pct=result.margin_pct,
        server=budget.key_path.startswith("server."),
    )


def step_from_stats(
    *,
    users: int,
    requests: Sequence[RequestStats],
    verdict: Verdict | None,
    start_s: float = 0.0,
) -> Step:
    """A ``Step`` from the per-request statistics of its steady window and their verdict.

    ``verdict`` None: no budgets were judged (every step counts as held).
    """
    http = [r for r in requests if r.request_type != FLOW_TYPE and r.name != AGGREGATE_KEY]
    duration_s = max((r.duration_s for r in requests), default=0.0)
    count = sum(r.count for r in http)
    failures = sum(r.failures for r in http)
    timed = [(r.avg_ms, r.count) for r in http if r.avg_ms is not None and r.count]
    mean_ms = sum(a * c for a, c in timed) / sum(c for _, c in timed) if timed else None
    checkout = next((r for r in http if r.key == CHECKOUT_KEY), None)
    percentiles: dict[str, dict[str, float]] = {}
    for r in requests:
        values = {registry.percentile_name(p): r.percentile_ms(p) for p in STEP_PERCENTILES}
        if all(v is not None for v in values.values()):
            percentiles[r.key] = {k: float(v) for k, v in values.items() if v is not None}
    broken = broken_budgets(verdict) if verdict is not None else ()
    return Step(
        users=users,
        duration_s=duration_s,
        throughput_rps=count / duration_s if duration_s > 0 else 0.0,
        checkout_rps=checkout.rps if checkout is not None else 0.0,
        percentiles_ms=percentiles,
        error_rate_pct=100.0 * failures / count if count else None,
        budgets_held=not broken,
        broken=broken,
        mean_ms=mean_ms,
        start_s=start_s,
        requests=count,
    )


def choose_basis(steps: Sequence[Step]) -> Basis:
    """Checkouts/s when the run made checkouts, else every request per second."""
    return "checkouts" if any(s.checkout_rps > 0 for s in steps) else "requests"


# --------------------------------------------------------------------------- the USL fit


@dataclass(frozen=True)
class UslFit:
    """Universal Scalability Law parameters fitted to throughput against concurrency.

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)): ``lambda_rps`` is the
    throughput of one user, ``sigma`` the contention (serialised share of the work),
    ``kappa`` the coherency penalty (crosstalk that makes throughput fall past the peak).
    """

    lambda_rps: float
    sigma: float
    kappa: float
    r_squared: float
    points: int
    max_users: int  # the most users measured, to tell a prediction from an extrapolation

    def predict(self, users: float) -> float:
        n = float(users)
        return self.lambda_rps * n / (1.0 + self.sigma * (n - 1.0) + self.kappa * n * (n - 1.0))

    @property
    def peak_users(self) -> float | None:
        """N* = sqrt((1 - sigma) / kappa); None when kappa is 0 (no peak, only a ceiling)."""
        if self.kappa <= 0:
            return None
        return max(1.0, math.sqrt(max(0.0, 1.0 - self.sigma) / self.kappa))

    @property
    def peak_rps(self) -> float | None:
        """X(N*), the highest throughput the fitted curve reaches."""
        n = self.peak_users
        return None if n is None else self.predict(n)

    @property
    def ceiling_rps(self) -> float | None:
        """lambda / sigma: the asymptote when kappa is 0 and sigma > 0 (Amdahl's limit)."""
        if self.kappa > 0 or self.sigma <= 0:
            return None
        return self.lambda_rps / self.sigma

    @property
    def extrapolated(self) -> bool:
        """The predicted peak lies well beyond the measured users: take it as a hint."""
        n = self.peak_users
        return n is None or n > 1.5 * self.max_users


def fit_usl(users: Sequence[float], throughput_rps: Sequence[float]) -> UslFit | None:
    """Least-squares fit of Gunther's Universal Scalability Law, sigma and kappa >= 0.

    Method: N. J. Gunther, *Guerrilla Capacity Planning* (Springer, 2007), ch. 4-6:
    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1)), peak at
    N* = sqrt((1 - sigma) / kappa). The fit minimises the squared error of X itself (not
    of Gunther's linearised N/X, which weights the light-load points too heavily). For
    fixed (sigma, kappa) the model is linear in lambda, so lambda has a closed form and
    only (sigma, kappa) are searched ("variable projection", Golub & Pereyra, SIAM J.
    Numer. Anal. 10(2), 1973): a log-spaced grid over sigma in [0, 1] and kappa in
    [0, 1] (zero included, which keeps both constraints exact), refined around the best
    point until it stops moving. Deterministic; no starting guess to get wrong.

    None when fewer than three distinct user counts have a positive throughput.
    """
    pairs = sorted((float(n), float(x)) for n, x in zip(users, throughput_rps, strict=True))
    pairs = [(n, x) for n, x in pairs if n >= 1 and x > 0 and math.isfinite(x)]
    if len({n for n, _ in pairs}) < 3:
        return None
    n = np.array([p[0] for p in pairs])
    x = np.array([p[1] for p in pairs])
    n_max = float(n.max())

    # The terms matter once sigma ~ 1/N and kappa ~ 1/N^2: scale the grids to the data.
    sig_lo, kap_lo = 1e-4 / n_max, 1e-4 / n_max**2
    sig_log = (math.log10(sig_lo), 0.0)
    kap_log = (math.log10(kap_lo), 0.0)
    best = (0.0, 0.0)
    best_sse = math.inf
    width = 1.0  # share of each log range searched around the best point
    for _ in range(40):
        sig = _grid(sig_log, best[0], width)
        kap = _grid(kap_log, best[1], width)
        sse, _lam = _usl_sse(n, x, sig, kap)
        i, j = np.unravel_index(int(np.argmin(sse)), sse.shape)
        if sse[i, j] <= best_sse:
            best, best_sse = (float(sig[i]), float(kap[j])), float(sse[i, j])
        width *= 0.5
    sse, lam = _usl_sse(n, x, np.array([best[0]]), np.array([best[1]]))
    sst = float(((x - x.mean()) ** 2).sum())
    return UslFit(
        lambda_rps=float(lam[0, 0]),
        sigma=best[0],
        kappa=best[1],
        r_squared=1.0 - float(sse[0, 0]) / sst if sst > 0 else 1.0,
        points=len(pairs),
        max_users=int(n_max),
    )


def _grid(log_range: tuple[float, float], centre: float, width: float) -> np.ndarray:
    """Zero plus 33 log-spaced values: the whole range, or ``width`` of it around centre."""
    lo, hi = log_range
    if width >= 1.0:
        values = np.logspace(lo, hi, 33)
    else:
        c = math.log10(centre) if centre > 0 else lo
        half = (hi - lo) * width / 2.0
        values = np.logspace(max(lo, c - half), min(hi, c + half), 33)
    return np.concatenate(([0.0], values))


def _usl_sse(
    n: np.ndarray, x: np.ndarray, sig: np.ndarray, kap: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Squared error and best lambda for every (sigma, kappa) on the grid."""
    g = n / (1.0 + sig[:, None, None] * (n - 1.0) + kap[None, :, None] * n * (n - 1.0))
    sxg = (x * g).sum(axis=-1)
    sgg = (g * g).sum(axis=-1)
    lam = sxg / sgg
    return (x * x).sum() - sxg * sxg / sgg, lam


# --------------------------------------------------------------------------- knee, capacity


@dataclass(frozen=True)
class Saturation:
    """Where throughput stops growing while latency rises (the knee), or why not found."""

    reached: bool
    knee: Step | None  # the first step on the plateau
    rate: float | None  # the plateau's throughput on the analysis basis
    peak: Step | None  # the step with the highest throughput
    note: str


def find_saturation(
    steps: Sequence[Step], basis: Basis, *, tolerance: float = 0.05, min_latency_rise: float = 0.1
) -> Saturation:
    """The knee: the first step within ``tolerance`` of the highest throughput, when later
    steps with more users got less than half of the linear gain and latency rose.

    Closed-loop users obey Little's law: once the server saturates, more users can only
    lengthen the cycle, so the response time (the aggregate mean) must rise. Throughput
    that stops growing while latency stays flat points at the load generator instead,
    and is not called saturation. The plateau's throughput is the median of the steps
    from the knee on that lie within ``tolerance`` of the highest: robust to one noisy
    step in either direction.
    """
    ordered = sorted(steps, key=lambda s: s.users)
    if not ordered:
        return Saturation(False, None, None, None, "no step was measured")
    rates = [s.rate(basis) for s in ordered]
    top = max(rates)
    peak = ordered[rates.index(top)]
    last = ordered[-1]
    if len(ordered) < 3 or top <= 0:
        return Saturation(
            False, None, None, peak, f"not reached up to {last.users} users (too few steps)"
        )
    k = next(i for i, r in enumerate(rates) if r >= (1.0 - tolerance) * top)
    knee = ordered[k]
    if k == len(ordered) - 1:
        return Saturation(False, None, None, peak, f"not reached up to {last.users} users")
    user_growth = last.users / knee.users - 1.0
    later_best = max(rates[k + 1 :])
    if later_best >= rates[k] * (1.0 + 0.5 * user_growth):
        return Saturation(False, None, None, peak, f"not reached up to {last.users} users")
    before, after = _latency(knee), _latency(last)
    if before is not None and after is not None and after < before * (1.0 + min_latency_rise):
        return Saturation(
            False,
            None,
            None,
            peak,
            f"throughput stopped growing at {knee.users} users but latency did not rise: "
            "the limit is probably the load generator, not the target",
        )
    plateau = [r for r in rates[k:] if r >= (1.0 - tolerance) * top]
    return Saturation(True, knee, statistics.median(plateau), peak, "")


def _latency(step: Step) -> float | None:
    if step.mean_ms is not None:
        return step.mean_ms
    return step.percentiles_ms.get(AGGREGATE_KEY, {}).get("p50")


@dataclass(frozen=True)
class Capacity:
    """The budget capacity: the best held step below the first step that broke a budget."""

    held: Step | None  # None: the first step already broke a budget (or no step)
    first_broken: Step | None  # None: no budget broke in any step
    held_again: tuple[int, ...] = ()  # user counts that held again after the first break


def find_capacity(steps: Sequence[Step], basis: Basis) -> Capacity:
    """The highest throughput at which every budget held, and the first step that broke one.

    Only steps with fewer users than the first broken step count: a step that holds
    again after a break (noise, a lucky window) does not raise the capacity, it is
    reported so that a reader can look at it.
    """
    ordered = sorted(steps, key=lambda s: s.users)
    first_broken = next((s for s in ordered if not s.budgets_held), None)
    limit = first_broken.users if first_broken is not None else math.inf
    below = [s for s in ordered if s.users < limit]
    held = max(below, key=lambda s: s.rate(basis), default=None)
    again = tuple(s.users for s in ordered if s.users > limit and s.budgets_held)
    return Capacity(held, first_broken, again)


def headroom(capacity_rate: float | None, expected_peak_rate: float | None) -> float | None:
    """Capacity over the expected peak (same unit): 3.1 means 3.1x the peak."""
    if capacity_rate is None or not expected_peak_rate or expected_peak_rate <= 0:
        return None
    return capacity_rate / expected_peak_rate


# --------------------------------------------------------------------------- the steps in time


def steps_plan(start_users: int, step_users: int, max_users: int) -> tuple[int, ...]:
    """The user count of each step: start, start + step, ... and ``max_users`` last.

    The same arithmetic as the ``steps`` load shape (``locustfiles/scenario_rules.py``),
    which runs inside Locust and cannot be imported here.
    """
    counts = list(range(start_users, max_users + 1, step_users))
    if not counts or counts[-1] != max_users:
        counts.append(max_users)
    return tuple(counts)


@dataclass(frozen=True)
class StepWindow:
    """Where one step's steady part lies in time (epoch seconds)."""

    index: int
    users: int
    planned_start_epoch: float  # when the shape asked for this step's users
    start_epoch: float  # the steady part: the users reached and settled
    end_epoch: float


def settle_time_s(step_time_s: float) -> float:
    """How long after its users are reached a step counts as steady: a quarter of the
    step, at least a second (closed-loop users need a journey or two to spread out)."""
    return max(1.0, step_time_s / 4.0)


def step_windows(
    *,
    origin_epoch: float,
    counts: Sequence[int],
    step_time_s: float,
    interval_s: float,
    stop_epoch: float | None = None,
    users: Sequence[tuple[float, int]] = (),
    settle_s: float | None = None,
    min_steady_s: float = 1.0,
) -> tuple[StepWindow, ...]:
    """The steady part of every step that ran long enough, cut on interval boundaries.

    Step k is planned for ``[origin + k T, origin + (k + 1) T)``. Its steady part starts
    ``settle_s`` after the user count was reached (from the ``users`` samples, epoch and
    count; the shape's tick and ramp take up to about two seconds) and ends with the step
    or at ``stop_epoch``. Both ends are rounded inwards to whole recording intervals, so
    that the requests counted and the duration divided by cover the same time. A step
    whose steady part is shorter than ``min_steady_s`` (cut by an early stop) is left out.
    """
    settle = settle_time_s(step_time_s) if settle_s is None else settle_s
    samples = sorted(users)
    windows = []
    for k, count in enumerate(counts):
        planned = origin_epoch + k * step_time_s
        end = planned + step_time_s
        if stop_epoch is not None:
            end = min(end, stop_epoch)
        reached = next((e for e, u in samples if e >= planned and u >= count), None)
        if reached is None or reached > end:
            reached = planned  # no samples: the shape's own promise
        start = max(planned, reached) + settle
        # Epochs / interval are ~1e9: an epsilon of a millionth of an interval (well above
        # the float resolution there) keeps a boundary from moving by a whole interval.
        start = math.ceil(start / interval_s - 1e-6) * interval_s
        end = math.floor(end / interval_s + 1e-6) * interval_s
        if end - start >= max(min_steady_s, interval_s) - 1e-9:
            windows.append(StepWindow(k, count, planned, start, end))
    return tuple(windows)


# --------------------------------------------------------------------------- stopping


StopReason = Literal["budgets broken", "errors climbing", "throughput flat", "max users"]


@dataclass(frozen=True)
class StopRules:
    """When a stepped run has seen enough (every figure is per step)."""

    max_users: int
    broken_steps: int = 2  # budgets broken in this many steps in a row
    clear_margin_pct: float = -25.0  # ... or once, past the limit by a quarter of it or more
    error_rate_pct: float = 5.0  # errors at or above this and higher than the step before
    flat_steps: int = 2  # this many steps in a row without a new high of throughput
    flat_gain: float = 0.03  # a new high beats the best so far by this share


@dataclass(frozen=True)
class StopDecision:
    reason: StopReason
    users: int  # the step that decided it
    message: str


def stop_decision(steps: Sequence[Step], rules: StopRules, basis: Basis) -> StopDecision | None:
    """Whether to stop after the steps measured so far (in the order they ran); None: go on.

    Checked in this order: the budgets broke clearly (``broken_steps`` steps in a row, or
    one step past a limit by ``-clear_margin_pct`` percent), the error rate climbs past
    ``error_rate_pct``, throughput made no new high (by ``flat_gain``) for ``flat_steps``
    steps while users grew, or the last step reached ``max_users``.
    """
    if not steps:
        return None
    last = steps[-1]
    if not last.budgets_held:
        run = 0
        for s in reversed(steps):
            if s.budgets_held:
                break
            run += 1
        worst = last.worst_margin_pct
        if run >= rules.broken_steps or (worst is not None and worst <= rules.clear_margin_pct):
            first = last.broken[0]
            return StopDecision("budgets broken", last.users, f"{first} at {last.users} users")
    if len(steps) >= 2 and last.error_rate_pct is not None:
        previous = steps[-2].error_rate_pct or 0.0
        if last.error_rate_pct >= rules.error_rate_pct and last.error_rate_pct > previous:
            return StopDecision(
                "errors climbing",
                last.users,
                f"error rate {fmt_pct(last.error_rate_pct)} at {last.users} users "
                f"(was {fmt_pct(previous)})",
            )
    if len(steps) > rules.flat_steps:
        rates = [s.rate(basis) for s in steps]
        best_before = max(rates[: -rules.flat_steps])
        recent = rates[-rules.flat_steps :]
        grew = last.users > steps[-rules.flat_steps - 1].users
        if grew and best_before > 0 and max(recent) < best_before * (1.0 + rules.flat_gain):
            return StopDecision(
                "throughput flat",
                last.users,
                f"no new high of {BASIS_UNIT[basis]} in {rules.flat_steps} steps "
                f"(best {fmt_rps(best_before)} {BASIS_UNIT[basis]})",
            )
    if last.users >= rules.max_users:
        return StopDecision("max users", last.users, f"reached --max-users {rules.max_users}")
    return None


# --------------------------------------------------------------------------- the answer


@dataclass(frozen=True)
class CapacityAnalysis:
    """Everything the capacity review needs, in the analysis basis (see the module doc)."""

    steps: tuple[Step, ...]
    basis: Basis
    capacity: Capacity
    saturation: Saturation
    fit: UslFit | None
    expected_peak_rps: float | None  # every request, requests/s
    headroom: float | None  # requests/s at the capacity step over the expected peak
    sentence: str
    stop: StopDecision | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def unit(self) -> str:
        return BASIS_UNIT[self.basis]

    @property
    def is_lower_bound(self) -> bool:
        """No budget broke and throughput did not saturate: the capacity lies higher."""
        return self.capacity.first_broken is None and not self.saturation.reached

    @property
    def capacity_rate(self) -> float | None:
        held = self.capacity.held
        return None if held is None else held.rate(self.basis)


def analyse(
    steps: Sequence[Step],
    *,
    expected_peak_rps: float | None = None,
    stop: StopDecision | None = None,
) -> CapacityAnalysis:
    """The capacity, the knee, the USL fit, the headroom and the review sentence."""
    ordered = tuple(sorted(steps, key=lambda s: s.users))
    basis = choose_basis(ordered)
    capacity = find_capacity(ordered, basis)
    saturation = find_saturation(ordered, basis)
    fit = fit_usl([s.users for s in ordered], [s.rate(basis) for s in ordered])
    served = None if capacity.held is None else capacity.held.throughput_rps
    ratio = headroom(served, expected_peak_rps)
    notes: list[str] = []
    if capacity.held_again:
        users = ", ".join(str(u) for u in capacity.held_again)
        notes.append(
            f"the budgets held again at {users} users after the first break: "
            "the first break counts, look at those steps"
        )
    if fit is not None and fit.r_squared < 0.8:
        notes.append(f"the USL fit is poor (R² {fit.r_squared:.2f}): read its peak as a rough hint")
    if stop is not None and stop.reason == "max users" and not saturation.reached:
        notes.append("raise --max-users to find the knee")
    partial = CapacityAnalysis(
        steps=ordered,
        basis=basis,
        capacity=capacity,
        saturation=saturation,
        fit=fit,
        expected_peak_rps=expected_peak_rps,
        headroom=ratio,
        sentence="",
        stop=stop,
        notes=tuple(notes),
    )
    return CapacityAnalysis(**{**partial.__dict__, "sentence": review_sentence(partial)})


def review_sentence(a: CapacityAnalysis) -> str:
    """The plain sentence for the capacity review.

    "One instance holds the budgets up to about 240 checkouts/s (1,900 requests/s, 120
    users), 3.1x the expected peak of 610 requests/s; p95 of payment initiation is the
    first to break (2,410 ms, budget < 2s) at 140 users."
    """
    unit = a.unit
    held, broke = a.capacity.held, a.capacity.first_broken
    if not a.steps:
        return "No step was measured: there is no capacity to report."
    if held is None:
        assert broke is not None
        return (
            f"The budgets broke already at the first step ({broke.users} users, about "
            f"{_about(broke.rate(a.basis))} {unit}): {_first_break(broke)}; "
            "start lower with --start-users."
        )
    extra = f"{_about(held.throughput_rps)} requests/s, " if a.basis == "checkouts" else ""
    where = f"({extra}{held.users} users)"
    rate = _about(held.rate(a.basis))
    # Neither a break nor a knee: the capacity is only a lower bound, and so is the headroom.
    lower_bound = a.is_lower_bound
    if broke is not None:
        head = f"One instance holds the budgets up to about {rate} {unit} {where}"
    elif not lower_bound:
        head = f"One instance holds the budgets up to its saturation, about {rate} {unit} {where}"
    else:
        head = f"One instance holds the budgets up to at least {rate} {unit} {where}"
    if a.headroom is not None and a.expected_peak_rps is not None:
        peak = f"the expected peak of {_about(a.expected_peak_rps)} requests/s"
        if a.headroom >= 1.0:
            head += f", {'at least ' if lower_bound else ''}{a.headroom:.1f}x {peak}"
        elif lower_bound:
            head += f", at least {a.headroom:.1f}x {peak}: not yet shown to reach it"
        else:
            head += f", only {a.headroom:.1f}x {peak}: below the expected peak"
    last = a.steps[-1].users
    if broke is not None:
        text = f"{head}; {_first_break(broke)} at {broke.users} users"
        if broke.broken[0].server:
            # "the API process crosses 70 % CPU at about 180 checkouts/s"
            text += f", about {_about(broke.rate(a.basis))} {unit}"
        text += "."
    elif not lower_bound:
        text = f"{head}; no budget broke up to {last} users."
    else:
        text = f"{head}; capacity not reached up to {last} users (no budget broke, no knee)."
    cost = held.cpu_s_per_checkout
    if cost is not None and a.basis == "checkouts":
        text += f" Each checkout costs the API process about {_about(cost * 1000.0)} CPU ms"
        text += f" at {held.users} users."
    if a.expected_peak_rps is None:
        text += (
            " No expected peak was given (--expected-peak-rps, or capacity.expected_peak_rps"
            " in budgets.yaml), so no headroom is stated."
        )
    return text


def _first_break(step: Step) -> str:
    first = step.broken[0]
    measured = "" if first.measured is None else f"{fmt_value(first.measured, first.unit)}, "
    text = f"{first.what} is the first to break ({measured}budget {first.limit_text})"
    if len(step.broken) > 1:
        text += f", with {len(step.broken) - 1} more"
    return text


def _about(value: float) -> str:
    """Two significant figures, with thousands separators: 238.4 -> "240", 4.37 -> "4.4"."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    digits = 1 - math.floor(math.log10(abs(value)))
    text = f"{round(value, digits):,.{max(0, digits)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
