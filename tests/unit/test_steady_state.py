"""The steady-state window: from spawning complete plus the warm-up to the test's stop.

``results.read_run(run_dir, warmup_s)`` places the window; ``Recording.request_stats``
takes the intervals whose middle lies in it. Every case below is a run of literal epochs:
interval ``n`` is ``[START + n, START + n + 1)`` and holds one request of ``10 * (n + 1)`` ms,
so the fastest and slowest request of a window name its first and last interval. The run
stops at ``START + 10``; interval 10 holds a request that ended after the stop (a user
being stopped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.core.model import RequestStats
from harness.recording import load_recording
from harness.results import read_run
from tests.unit.folders import (
    HDR_FILE,
    INITIATE,
    PLANS,
    START,
    Requests,
    paybench_folder,
    write_recording,
    write_run_json,
)

LAST = 10  # the interval after the stop
ONE_PER_INTERVAL = tuple(Requests(PLANS, n, (10.0 * (n + 1),)) for n in range(LAST + 1))


def intervals_of(s: RequestStats | None) -> tuple[int, int] | None:
    """The first and last interval a window of ONE_PER_INTERVAL took (None: none)."""
    if s is None or s.count == 0:
        return None
    assert s.min_ms is not None and s.max_ms is not None
    first, last = round(s.min_ms / 10) - 1, round(s.max_ms / 10) - 1
    assert s.count == last - first + 1, "a window is a run of consecutive intervals"
    return first, last


def plans(stats: tuple[RequestStats, ...]) -> RequestStats | None:
    return next((s for s in stats if s.key == "GET /api/plans"), None)


@dataclass(frozen=True)
class Case:
    spawned_s: tuple[float, ...]  # spawning_complete moments, seconds after START
    warmup_s: float
    steady_start_s: float
    steady: tuple[int, int]  # first and last interval judged
    ramp: tuple[int, int] | None  # first and last interval reported apart


CASES = {
    "all users at once, no warm-up: no ramp": Case((0.0,), 0.0, 0.0, (0, LAST), None),
    "spawning complete at 2 s, no warm-up": Case((2.0,), 0.0, 2.0, (2, LAST), (0, 1)),
    "spawning complete at 2 s plus a 3 s warm-up": Case((2.0,), 3.0, 5.0, (5, LAST), (0, 4)),
    "boundary 4.7 s, after interval 4's middle: interval 4 is ramp": Case(
        (2.0,), 2.7, 4.7, (5, LAST), (0, 4)
    ),
    "boundary 4.3 s, before interval 4's middle: interval 4 is steady": Case(
        (2.0,), 2.3, 4.3, (4, LAST), (0, 3)
    ),
    "boundary exactly on interval 4's middle: interval 4 is steady": Case(
        (2.0,), 2.5, 4.5, (4, LAST), (0, 3)
    ),
    "several spawning_complete epochs (a load shape): the first one counts": Case(
        (2.0, 6.0, 8.0), 1.0, 3.0, (3, LAST), (0, 2)
    ),
    "warm-up longer than the run: judged from spawning complete": Case(
        (2.0,), 60.0, 2.0, (2, LAST), (0, 1)
    ),
    "warm-up leaving less than an interval: judged from spawning complete": Case(
        (2.0,), 7.5, 2.0, (2, LAST), (0, 1)
    ),
    "warm-up leaving exactly one interval: kept": Case((2.0,), 7.0, 9.0, (9, LAST), (0, 8)),
    "no spawning_complete (never finished spawning): the whole run": Case(
        (), 2.0, 0.0, (0, LAST), None
    ),
    "spawning complete less than an interval before the stop: the whole run": Case(
        (9.5,), 0.0, 0.0, (0, LAST), None
    ),
}


Folder = Callable[[tuple[float, ...]], Path]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Folder:
    """The run folder of ONE_PER_INTERVAL with spawning complete at these seconds (built
    once per module: reading never changes a folder)."""
    built: dict[tuple[float, ...], Path] = {}

    def get(spawned_s: tuple[float, ...]) -> Path:
        if spawned_s not in built:
            built[spawned_s] = paybench_folder(
                tmp_path_factory.mktemp("run"),
                ONE_PER_INTERVAL,
                spawned=[START + s for s in spawned_s],
            )
        return built[spawned_s]

    return get


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_the_steady_state_window(folder: Folder, case: Case) -> None:
    result = read_run(folder(case.spawned_s), case.warmup_s)

    assert result.steady_start_s == pytest.approx(case.steady_start_s)
    assert result.steady_end_s == pytest.approx(10.0)
    assert intervals_of(plans(result.requests)) == case.steady
    assert intervals_of(result.total) == case.steady
    assert intervals_of(plans(result.ramp)) == case.ramp
    # Budgets divide by the window's length: rps is per second of the steady state.
    assert result.total.duration_s == pytest.approx(10.0 - case.steady_start_s)
    ramp = plans(result.ramp)
    if case.ramp is not None:
        assert ramp is not None and ramp.duration_s == pytest.approx(case.steady_start_s)
    # The whole run stays whole, whatever the window.
    assert intervals_of(result.whole_run) == (0, LAST)


def test_no_warm_up_given_is_no_warm_up(folder: Folder) -> None:
    run_dir = folder((2.0,))
    assert read_run(run_dir).steady_start_s == read_run(run_dir, 0.0).steady_start_s == 2.0


def test_every_interval_is_in_the_ramp_or_the_steady_state_once(folder: Folder) -> None:
    run_dir = folder((2.0,))
    for tenths in range(0, 81):  # warm-ups of 0 to 8 s, a tenth of a second apart
        result = read_run(run_dir, tenths / 10)
        steady = intervals_of(result.total)
        ramp = intervals_of(plans(result.ramp))
        assert steady is not None and ramp is not None, tenths
        assert (ramp[0], ramp[1] + 1, steady[1]) == (0, steady[0], LAST), tenths


def test_an_interval_begun_before_the_test_start_is_ramp(tmp_path: Path) -> None:
    """The run starts 0.6 s into interval 0, whose middle lies before the start: a window
    from the test's start still takes it (it is the run's), and it is the ramp's."""
    start = START + 0.6
    run_dir = paybench_folder(
        tmp_path / "ramp", ONE_PER_INTERVAL, start=start, spawned=[start + 2.0], stop=start + 10
    )
    result = read_run(run_dir, 0.0)
    assert intervals_of(plans(result.ramp)) == (0, 2)  # interval 2's middle is start + 1.9
    assert intervals_of(result.total) == (3, LAST)

    whole = paybench_folder(
        tmp_path / "whole", ONE_PER_INTERVAL, start=start, spawned=[], stop=start + 10
    )
    assert intervals_of(read_run(whole, 0.0).total) == (0, LAST)


def test_requests_ending_after_the_stop_and_cut_offs_are_steady_state(tmp_path: Path) -> None:
    """What the users being stopped did, and what was in flight at the stop, belongs to the
    steady state (the window reaches the stop), never to the ramp."""
    requests = (
        *ONE_PER_INTERVAL,
        Requests(INITIATE, LAST, (), cut_off=3),
        Requests(INITIATE, 11, (500.0,)),  # ended 1.2 s after the stop
    )
    run_dir = paybench_folder(tmp_path / "run", requests, spawned=[START + 2.0])
    result = read_run(run_dir, 1.0)
    initiate = next(s for s in result.requests if s.key == "POST /api/payments/v2/initiate")
    assert (initiate.count, initiate.cut_off, initiate.max_ms) == (1, 3, 500.0)
    assert result.total.cut_off == 3
    assert sum(s.cut_off for s in result.ramp) == 0


@pytest.mark.parametrize(
    ("saturated_at_s", "unreliable"),
    [(1.05, False), (2.95, False), (3.05, True), (9.05, True)],
    ids=["in the ramp", "just before the window", "at the window's start", "near the stop"],
)
def test_generator_saturation_counts_inside_the_steady_state_only(
    tmp_path: Path, saturated_at_s: float, unreliable: bool
) -> None:
    cpu = [(START + s + 0.05, 30.0) for s in range(10)]
    cpu = [c for c in cpu if abs(c[0] - (START + saturated_at_s)) > 0.5]
    cpu.append((START + saturated_at_s, 97.0))
    run_dir = paybench_folder(
        tmp_path / "run", ONE_PER_INTERVAL, spawned=[START + 2.0], cpu=sorted(cpu)
    )
    result = read_run(run_dir, 1.0)  # steady from 3 s
    reasons = [r for r in result.unreliable_reasons if "saturated" in r]
    assert bool(reasons) is unreliable
    if unreliable:
        assert "CPU 97 %" in reasons[0]


# -- the windows of a recording ------------------------------------------------------------

WINDOWS = {
    "middles in [2.5, 5.5): intervals 2 to 4": (2.5, 5.5, (2, 4)),
    "middles in [2.4, 5.6): intervals 2 to 5": (2.4, 5.6, (2, 5)),
    "from before the start: the first intervals, whatever their middle": (-5.0, 3.0, (0, 2)),
    "to the stop: the requests that ended after it too": (7.0, 10.0, (7, LAST)),
    "past the stop": (7.0, 30.0, (7, LAST)),
    "an empty window": (3.0, 3.0, None),
}


@pytest.mark.parametrize(("start_s", "end_s", "taken"), WINDOWS.values(), ids=WINDOWS.keys())
def test_recording_windows_take_intervals_by_their_middle(
    tmp_path: Path, start_s: float, end_s: float, taken: tuple[int, int] | None
) -> None:
    path = write_recording(tmp_path, ONE_PER_INTERVAL)
    assert path.name == HDR_FILE
    rec = load_recording(path)
    window = (START + start_s, START + end_s)
    assert intervals_of(plans(rec.request_stats(*window))) == taken
    assert intervals_of(rec.aggregate(*window)) == taken


def test_a_run_json_does_not_move_the_window(tmp_path: Path) -> None:
    """The window comes from the recording's epochs, not from run.json's planned times."""
    run_dir = tmp_path / "run"
    write_run_json(run_dir, run_time_s=600.0, users=1000, spawn_rate=1.0)
    write_recording(run_dir, ONE_PER_INTERVAL, spawned=[START + 2.0])
    result = read_run(run_dir, 1.0)
    assert (result.steady_start_s, result.steady_end_s) == (3.0, 10.0)
