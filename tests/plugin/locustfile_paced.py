"""Paced users for the coordinated-omission test.

``SlowPaced`` wants an iteration every 0.1 s but each takes ~0.3 s (two slow requests): it
falls far behind its schedule. ``FastPaced`` wants 2 iterations/s of fast requests and
keeps up. ``DeclaredPaced`` paces itself and declares it with ``paybench_pacing_s``.
"""

import time

from locust import FastHttpUser, constant_pacing, constant_throughput, task

from harness import plugin  # noqa: F401  (registers --paybench-dir)


class SlowPaced(FastHttpUser):
    wait_time = constant_pacing(0.1)

    @task
    def checkout(self):
        self.client.get("/slow/initiate")
        self.client.get("/slow/status/1", name="/slow/status/[id]")


class FastPaced(FastHttpUser):
    wait_time = constant_throughput(2)

    @task
    def plans(self):
        self.client.get("/fast/plans")


def _every_quarter_second(user):
    # A home-made fixed schedule: sleep until the next quarter second since the user began.
    start = user.__dict__.setdefault("_schedule_start", time.time())
    return 0.25 - ((time.time() - start) % 0.25)


class DeclaredPaced(FastHttpUser):
    paybench_pacing_s = 0.25
    wait_time = _every_quarter_second

    @task
    def health(self):
        self.client.get("/fast/health")
