"""The open-model capacity report's context: ``paybench capacity --arrival-rate-steps``.

``build_arrival_capacity_context`` turns the answer (``harness.core.arrivals.RateCapacity``)
and what its steps do not carry (each step's service-time p95, the run's dropped and late
arrivals) into the flat values capacity.html and capacity.md show. Pure: values in, values
out; ``harness.report.arrival_capacity_render`` draws the charts and writes the files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.core.arrivals import CARRIED_SHARE, RateCapacity, RateStep

UNIT = "checkouts/s"


@dataclass(frozen=True)
class ArrivalCounts:
    """The run's arrivals, whole-run totals (the recording keeps no per-step counts)."""

    intended: int
    dropped: int
    late: int


@dataclass(frozen=True)
class ArrivalStepRow:
    offered_per_s: float
    completed_per_s: float
    completed_pct: float | None  # completed/s as a share of the offered rate
    p95_ms: float | None  # payment initiation, from the intended start (what a payer sees)
    service_p95_ms: float | None  # payment initiation, from the actual send
    dropped: int | None  # None: not known for this step alone (see ArrivalCapacityContext)
    late: int | None
    budgets_hold: bool
    broken: str
    verdict: str  # "carried", "saturated" or "budget broken"
    marks: tuple[str, ...]  # "capacity", "saturation", "stopped here"


@dataclass(frozen=True)
class ArrivalCapacityContext:
    title: str
    sentence: str
    unit: str
    capacity_per_s: float | None  # the highest offered rate carried
    saturation_per_s: float | None  # the most checkouts/s completed in any step
    first_not_carried_per_s: float | None
    first_not_carried_verdict: str | None
    first_not_carried_broken: str
    carried_pct: float  # the share of the rate a carried step must complete
    every_step_carried: bool
    stop_text: str | None
    reasons: tuple[str, ...]  # why the generator cannot be trusted (UNRELIABLE)
    counts: ArrivalCounts | None
    counts_per_step: bool  # the dropped and late columns hold each step's own counts
    notes: tuple[str, ...]
    facts: tuple[tuple[str, str], ...]
    steps: tuple[ArrivalStepRow, ...]
    has_service: bool  # some step has a service-time p95


def build_arrival_capacity_context(
    answer: RateCapacity,
    *,
    service_p95_ms: Sequence[float | None] = (),
    counts: ArrivalCounts | None = None,
    stopped_after: RateStep | None = None,
    reasons: Sequence[str] = (),
    facts: Sequence[tuple[str, str]] = (),
    title: str = "paybench capacity (arrival rate)",
) -> ArrivalCapacityContext:
    """Everything the two pages and the charts show, as plain values (pure).

    ``service_p95_ms`` is aligned with ``answer.steps`` (missing entries are unknown).
    Dropped and late arrivals are counted over the whole run: a step's own count is known
    only when the run had none (every step 0) or had one step; otherwise the columns stay
    empty and a note gives the totals.
    """
    steps = answer.steps
    per_step = counts is not None and (
        len(steps) == 1 or (counts.dropped == 0 and counts.late == 0)
    )
    saturation_index = (
        max(range(len(steps)), key=lambda i: steps[i].served_per_s) if steps else None
    )
    rows = []
    for i, s in enumerate(steps):
        marks = []
        if answer.capacity_per_s is not None and s.offered_per_s == answer.capacity_per_s:
            marks.append("capacity")
        if i == saturation_index:
            marks.append("saturation")
        if stopped_after is not None and s.offered_per_s == stopped_after.offered_per_s:
            marks.append("stopped here")
        rows.append(
            ArrivalStepRow(
                offered_per_s=s.offered_per_s,
                completed_per_s=s.served_per_s,
                completed_pct=(
                    100.0 * s.served_per_s / s.offered_per_s if s.offered_per_s > 0 else None
                ),
                p95_ms=s.p95_ms,
                service_p95_ms=service_p95_ms[i] if i < len(service_p95_ms) else None,
                dropped=(counts.dropped if per_step and counts is not None else None),
                late=(counts.late if per_step and counts is not None else None),
                budgets_hold=s.budgets_hold,
                broken=s.broken,
                verdict=s.verdict,
                marks=tuple(marks),
            )
        )
    notes = []
    if counts is not None and not per_step:
        notes.append(
            f"Over the whole run {counts.dropped} of {counts.intended} arrivals were dropped and "
            f"{counts.late} started late; the recording counts them per run, not per step."
        )
    if any(r.service_p95_ms is None for r in rows) and any(
        r.service_p95_ms is not None for r in rows
    ):
        notes.append("A step without a service-time p95 completed no payment initiation.")
    first = answer.first_not_carried
    return ArrivalCapacityContext(
        title=title,
        sentence=answer.sentence,
        unit=UNIT,
        capacity_per_s=answer.capacity_per_s,
        saturation_per_s=answer.saturation_per_s,
        first_not_carried_per_s=None if first is None else first.offered_per_s,
        first_not_carried_verdict=None if first is None else first.verdict,
        first_not_carried_broken="" if first is None else first.broken,
        carried_pct=100.0 * CARRIED_SHARE,
        every_step_carried=bool(steps) and first is None,
        stop_text=(
            None
            if stopped_after is None
            else f"after {stopped_after.offered_per_s:g}/s ({stopped_after.verdict}): no "
            "higher rate can change the answer"
        ),
        reasons=tuple(reasons),
        counts=counts,
        counts_per_step=per_step,
        notes=tuple(notes),
        facts=tuple(facts),
        steps=tuple(rows),
        has_service=any(r.service_p95_ms is not None for r in rows),
    )
