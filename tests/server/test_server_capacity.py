"""Server budgets in capacity: each step judged on them, the answer naming a server break,
CPU seconds per checkout as the cost figure (harness.core.capacity, `paybench capacity`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.commands.capacity import capacity
from harness.core.capacity import BrokenBudget, Step, analyse
from harness.core.server_eval import Sample, SourceData, Window, cpu_seconds

CPU_BREAK = BrokenBudget(
    what="CPU (percent of one core) of the API process",
    key_path="server.target_process.cpu_percent",
    measured=84.0,
    unit="%",
    limit_text="< 70%",
    margin_pct=-20.0,
    server=True,
)


def step(users: int, checkouts: float, *, cost: float | None = None, broke: bool = False) -> Step:
    return Step(
        users=users,
        duration_s=5.0,
        throughput_rps=8 * checkouts,
        checkout_rps=checkouts,
        percentiles_ms={},
        error_rate_pct=0.0,
        budgets_held=not broke,
        broken=(CPU_BREAK,) if broke else (),
        cpu_s_per_checkout=cost,
    )


def test_the_answer_names_a_server_break_with_its_rate_and_the_cost_per_checkout() -> None:
    a = analyse(
        [step(10, 60.0, cost=0.004), step(20, 120.0, cost=0.0042), step(30, 181.0, broke=True)]
    )
    assert a.sentence == (
        "One instance holds the budgets up to about 120 checkouts/s (960 requests/s, 20 users); "
        "CPU (percent of one core) of the API process is the first to break (84.0 %, budget "
        "< 70%) at 30 users, about 180 checkouts/s. Each checkout costs the API process about "
        "4.2 CPU ms at 20 users. No expected peak was given (--expected-peak-rps, or "
        "capacity.expected_peak_rps in budgets.yaml), so no headroom is stated."
    )


def test_the_cpu_seconds_of_a_window_are_the_process_counter_change_over_it() -> None:
    t0 = 1_764_650_000.0
    rows = [
        Sample(t0 + t, {"process_cpu_seconds_total": 100.0 + 0.25 * t}) for t in range(-2, 13, 2)
    ]
    data = {"target_process": SourceData("target_process", "process", "pid 1", tuple(rows))}
    assert cpu_seconds(data, Window(t0, t0 + 10.0, 2.0)) == pytest.approx(2.5)
    gone = {"target_process": SourceData("target_process", "process", "pid 1", (rows[0],))}
    assert cpu_seconds(gone, Window(t0, t0 + 10.0, 2.0)) is None
    assert cpu_seconds({}, Window(t0, t0 + 10.0, 2.0)) is None


@pytest.mark.e2e
def test_a_cpu_heavy_target_makes_the_capacity_answer_name_the_cpu_budget(tmp_path: Path) -> None:
    # As in test_run_server_cli: a limit a CPU-heavy target breaks on any machine, busy or not.
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        "version: 1\n"
        'requests:\n  "POST /api/payments/v2/initiate": {p95: "< 30s"}\n'
        'server:\n  target_process: {cpu_percent: "< 15%"}\n',
        encoding="utf-8",
    )
    burn = {f"routes.{route}.cpu_ms": 100 for route in ("plans", "status", "health")}
    result = capacity(
        host=None,
        budgets_path=budgets,
        start_users=2,
        step_users=2,
        step_time_s=5.0,
        max_users=4,
        expected_peak_rps=None,
        out=tmp_path / "reports",
        target_overrides=burn,
        # Short journeys, so that every step makes checkouts to count the cost against.
        scenario_options={"time-scale": "0.02", "payer-delay": "5", "think-time": "0.2"},
    )
    a = result.analysis
    broke = a.capacity.first_broken
    assert broke is not None, a.sentence
    assert broke.broken[0].key_path == "server.target_process.cpu_percent", a.sentence
    assert broke.broken[0].measured is not None and broke.broken[0].measured > 15.0
    assert "CPU (percent of one core) of the API process is the first to break" in a.sentence
    if a.capacity.held is not None:  # it held at the first step: the rate where it broke
        assert f"at {broke.users} users, about " in a.sentence
    # The cost figure of every step that made checkouts: the target process' CPU per checkout.
    costs = [s.cpu_s_per_checkout for s in a.steps if s.checkout_rps > 0]
    assert costs and all(c is not None and c > 0 for c in costs), a.steps
    assert "CPU ms per checkout" in (result.run_dir / "capacity.md").read_text(encoding="utf-8")
    assert (result.run_dir / "server.jsonl").exists()
    # No capacity at all (the first step broke) is exit 1; a capacity without a peak is 0.
    assert result.exit_code == (1 if a.capacity.held is None else 0)
