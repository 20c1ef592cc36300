"""Paced users for the coordinated-omission tests: one iteration every PACING_S seconds.

``PACED_KIND=throughput`` uses ``constant_throughput(1 / PACING_S)``, ``declared`` a class
attribute ``paybench_pacing_s`` with a wait_time of its own; otherwise ``constant_pacing``.
"""

import os
import time

from locust import FastHttpUser, constant_pacing, constant_throughput, task

from harness import plugin  # noqa: F401  (registers --paybench-dir)

PACING_S = float(os.environ.get("PACING_S", "0.2"))
KIND = os.environ.get("PACED_KIND", "pacing")


def _own_schedule(user):
    # A home-made fixed schedule: sleep until the next multiple of PACING_S after the start.
    now = time.time()
    start = getattr(user, "_schedule_start", None)
    if start is None:
        start = user._schedule_start = now
    return max(0.0, PACING_S - ((now - start) % PACING_S))


class PacedUser(FastHttpUser):
    if KIND == "throughput":
        wait_time = constant_throughput(1.0 / PACING_S)
    elif KIND == "declared":
        paybench_pacing_s = PACING_S
        wait_time = _own_schedule
    else:
        wait_time = constant_pacing(PACING_S)

    @task
    def checkout(self):
        self.client.get("/api/plans")
        self.client.get("/api/status/1", name="/api/status/[id]")
