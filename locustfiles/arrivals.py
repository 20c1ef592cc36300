"""Open-model arrivals: checkout journeys started at their intended times, whatever the API does.

``--arrival-rate 20/s`` or ``--arrival-stages "1m:10/s,5m:40/s"`` (``harness.core.arrivals``
has the syntax and the limits; docs/scenarios.md, "Arrival mode", the rest). Each Locust
process that runs users runs one scheduler greenlet: it takes its share of the arrival
sequence (``rate / processes``, phase offset by the worker index), sleeps until each
arrival's intended time and starts the journey in a gevent ``Pool`` of ``--max-in-flight``
greenlets. A full pool drops the arrival; one that starts over ``LATE_AFTER_S`` late is late;
both are counted and shipped with the paced users' counts (``harness.plugin``).

Every request of an arrival is recorded twice (``SlippedEvent``): under its own name from
the intended start (what a payer sees; budgets judge it), and as
``FLOW service time: <type> <name>`` from the actual send.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent import GreenletExit
from gevent.pool import Pool
from locust import events
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

from harness import plugin
from harness.core import arrivals as core

log = logging.getLogger("paybench.arrivals")

Journey = Callable[[Environment, float], None]


@events.init_command_line_parser.add_listener
def add_options(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--arrival-rate",
        type=str,
        env_var="PAYBENCH_ARRIVAL_RATE",
        default=None,
        include_in_web_ui=False,
        help="Open model: checkout journeys started per second whatever the API does (20/s, "
        "600/m); webhooks and health probes stay Locust users [env PAYBENCH_ARRIVAL_RATE]",
    )
    parser.add_argument(
        "--arrival-stages",
        type=str,
        env_var="PAYBENCH_ARRIVAL_STAGES",
        default=None,
        include_in_web_ui=False,
        help='Open model in stages held one after the other: "1m:10/s,5m:40/s" '
        "[env PAYBENCH_ARRIVAL_STAGES]",
    )
    parser.add_argument(
        "--max-in-flight",
        type=str,
        env_var="PAYBENCH_MAX_IN_FLIGHT",
        default=str(core.DEFAULT_MAX_IN_FLIGHT),
        include_in_web_ui=False,
        help="Open model: journeys running at once per Locust process; an arrival beyond it "
        f"is dropped [env PAYBENCH_MAX_IN_FLIGHT; default {core.DEFAULT_MAX_IN_FLIGHT}]",
    )


def plan(options: Any) -> tuple[tuple[core.Stage, ...] | None, int]:
    """(stages or None for a closed-loop run, max in flight); ``core.ArrivalError`` if bad."""
    stages = core.plan_stages(
        getattr(options, "arrival_rate", None), getattr(options, "arrival_stages", None)
    )
    limit = getattr(options, "max_in_flight", core.DEFAULT_MAX_IN_FLIGHT)
    return stages, core.parse_max_in_flight(limit)


def enabled(options: Any) -> bool:
    try:
        return plan(options)[0] is not None
    except core.ArrivalError:
        return False


class SlippedEvent:
    """Stands in for ``events.request`` on an arrival's client: every request twice."""

    def __init__(self, event: Any, slip_ms: float) -> None:
        self._event = event
        self.slip_ms = slip_ms

    def fire(self, *, reverse: bool = False, **meta: Any) -> None:
        service = dict(meta)
        service["request_type"] = "FLOW"
        service["name"] = f"{core.SERVICE_PREFIX}{meta['request_type']} {meta['name']}"
        service["exception"] = None  # the failure counts once, under the request's own name
        self._event.fire(reverse=reverse, **service)
        meta["response_time"] = meta["response_time"] + self.slip_ms
        self._event.fire(reverse=reverse, **meta)


class Scheduler:
    """One process's arrivals: intended times, the in-flight pool, the counts."""

    def __init__(
        self,
        environment: Environment,
        stages: tuple[core.Stage, ...],
        max_in_flight: int,
        journey: Journey,
        process_index: int = 0,
        processes: int = 1,
    ) -> None:
        self.environment = environment
        self.stages = stages
        self.journey = journey
        self.process_index = process_index
        self.processes = processes
        self.pool = Pool(max_in_flight)
        self.intended = 0
        self.dropped = 0
        self.late = 0
        self.greenlet: Any = None

    def start(self) -> None:
        self.greenlet = gevent.spawn(self.run)

    def stop(self) -> None:
        if self.greenlet is not None:
            self.greenlet.kill(block=False)
            self.greenlet = None
        self.pool.kill(block=False)
        self.publish()
        log.info(
            "paybench arrivals: process %d of %d: %d intended, %d dropped, %d late",
            self.process_index, self.processes, self.intended, self.dropped, self.late,
        )  # fmt: skip

    def run(self) -> None:
        start = time.time()
        for offset in core.intended_offsets(self.stages, self.process_index, self.processes):
            at = start + offset
            wait_s = at - time.time()
            if wait_s > 0:
                gevent.sleep(wait_s)
            self.intended += 1
            if self.pool.full():
                self.dropped += 1
            else:
                self.pool.spawn(self.one, at)
            self.publish()

    def one(self, intended_epoch: float) -> None:
        slip_s = max(0.0, time.time() - intended_epoch)
        if slip_s > core.LATE_AFTER_S:
            self.late += 1
        try:
            self.journey(self.environment, slip_s * 1000.0)
        except (GreenletExit, StopUser):
            pass
        except Exception:  # a journey bug must not end the arrivals: log it, go on
            log.exception("paybench arrivals: a checkout journey raised")

    def publish(self) -> None:
        """The counts, as rows beside the paced users' (the master sums the processes)."""
        recorder = plugin.current_recorder()
        if recorder is None:
            return
        n = self.intended
        recorder.arrival_totals = {
            core.DROPPED_CLASS: [1.0, 1, float(n), n - self.dropped],
            core.LATE_CLASS: [1.0, 1, float(n), n - self.late],
        }


_SCHEDULER: list[Scheduler] = []


def install(journey: Journey) -> None:
    """Start arrivals at each test start (if asked) in this process; ``payments`` calls it."""

    @events.init.add_listener
    def _check(environment: Environment, runner: Any = None, **_kw: Any) -> None:
        options = environment.parsed_options
        try:
            plan(options)
        except core.ArrivalError as exc:
            forked = bool(
                options is not None and options.worker and getattr(options, "processes", None)
            )
            if not forked:
                sys.stderr.write(f"paybench scenarios: {exc}\n")
            sys.exit(2)

    @events.test_start.add_listener
    def _start(environment: Environment, **_kw: Any) -> None:
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            return
        _stop()
        try:
            stages, limit = plan(environment.parsed_options)
        except core.ArrivalError as exc:
            log.error("paybench arrivals: %s; no arrivals in this test", exc)
            return
        if stages is None:
            return
        index, processes = 0, 1
        if isinstance(runner, WorkerRunner):
            processes = max(1, int(getattr(environment.parsed_options, "expect_workers", 1) or 1))
            index = max(0, runner.worker_index) % processes
        scheduler = Scheduler(environment, stages, limit, journey, index, processes)
        _SCHEDULER.append(scheduler)
        scheduler.start()

    @events.test_stopping.add_listener
    def _stopping(**_kw: Any) -> None:
        _stop()

    @events.test_stop.add_listener
    def _stopped(**_kw: Any) -> None:
        _stop()


def _stop() -> None:
    while _SCHEDULER:
        _SCHEDULER.pop().stop()
