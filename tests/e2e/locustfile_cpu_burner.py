"""A deliberately saturated load generator: every task spins the CPU before its request.

Used by the end-to-end test of "unreliable measurement": the latencies such a generator
reports include its own queueing, so paybench must refuse to pass or fail the run.
"""

import time

from locust import FastHttpUser, constant, task

from harness import plugin  # noqa: F401  (exact recording; registers --paybench-dir)

BURN_S = 0.05


class Burner(FastHttpUser):
    wait_time = constant(0)

    @task
    def plans(self) -> None:
        deadline = time.perf_counter() + BURN_S
        while time.perf_counter() < deadline:
            pass
        self.client.get("/api/plans")
