"""Load shapes that a profile chooses with ``shape = spike|stress|steps`` (option ``--shape``).

Every class here is ``abstract = True``: Locust would otherwise take the first shape class
it finds in a locustfile and drive every run with it, even with no ``--shape``.
``payments.py`` imports this module (not its classes) and installs the chosen shape itself
in its ``init`` listener, so no shape is active unless one is asked for.

The arithmetic is in ``scenario_rules`` (pure, unit-tested); these classes read the
options at every tick, so a shape started from the web UI uses the values shown there.
"""

from __future__ import annotations

from argparse import Namespace

import scenario_rules as rules
from locust import LoadTestShape


class PaybenchShape(LoadTestShape):
    """A shape that knows which options it needs (``problem`` says what is missing)."""

    abstract = True

    def _options(self) -> Namespace:
        assert self.runner is not None and self.runner.environment.parsed_options is not None
        return self.runner.environment.parsed_options

    def problem(self, options: Namespace) -> str | None:
        return None


class SpikeShape(PaybenchShape):
    """A fifth of ``--users`` for 30 % of ``--run-time``, all of them at once for 20 %,
    a fifth again for the last 50 % (recovery), then the run stops."""

    abstract = True  # chosen by --shape only, see the module docstring
    use_common_options = True

    def problem(self, options: Namespace) -> str | None:
        if not options.num_users or not options.run_time:
            return "--shape spike needs --users (the peak) and --run-time (the whole spike test)"
        return None

    def tick(self) -> tuple[int, float] | None:
        options = self._options()
        return rules.spike_tick(self.get_run_time(), options.num_users, options.run_time)


class StressShape(PaybenchShape):
    """Users grow linearly from 1 to ``--users`` over ``--run-time``, then the run stops."""

    abstract = True
    use_common_options = True

    def problem(self, options: Namespace) -> str | None:
        if not options.num_users or not options.run_time:
            return "--shape stress needs --users (where the ramp ends) and --run-time (its length)"
        return None

    def tick(self) -> tuple[int, float] | None:
        options = self._options()
        return rules.ramp_tick(self.get_run_time(), options.num_users, options.run_time)


class StepsShape(PaybenchShape):
    """``--step-start-users``, then ``--step-users`` more every ``--step-time`` up to
    ``--step-max-users``; each step is reached within about a second and held; the run
    stops after the last step. ``--users`` and ``--run-time`` do not apply."""

    abstract = True

    def problem(self, options: Namespace) -> str | None:
        try:
            rules.steps_plan(options.step_start_users, options.step_users, options.step_max_users)
        except ValueError as exc:
            return f"--shape steps: {exc} (--step-start-users, --step-users, --step-max-users)"
        if not options.step_time > 0:
            return f"--shape steps: --step-time must be above 0 seconds, got {options.step_time!r}"
        return None

    def tick(self) -> tuple[int, float] | None:
        options = self._options()
        counts = rules.steps_plan(
            options.step_start_users, options.step_users, options.step_max_users
        )
        return rules.steps_tick(self.get_run_time(), counts, options.step_time)


SHAPES: dict[str, type[PaybenchShape]] = {
    "spike": SpikeShape,
    "stress": StressShape,
    "steps": StepsShape,
}
