"""A tiny locustfile for the plugin's tests: FastHttpUsers against the loopback server.

With ``RAW_SAMPLES_DIR`` set, every response time Locust reports is also appended, raw, to
``<dir>/samples-<pid>.txt`` (one ``type<TAB>name<TAB>ms<TAB>end_epoch`` line each), so a
test can pool the samples of every process and compare them with the merged histograms.
With ``BURN_CPU_MS`` set, each task first spins the CPU that long (a saturated generator).
"""

import os
import time

from locust import FastHttpUser, between, constant, events, task

from harness import plugin  # noqa: F401  (registers --paybench-dir)

RAW_DIR = os.environ.get("RAW_SAMPLES_DIR")
BURN_S = float(os.environ.get("BURN_CPU_MS", "0")) / 1000.0
SLOW_EVERY = int(os.environ.get("SLOW_EVERY", "0"))

_raw_file = None


if RAW_DIR:

    @events.request.add_listener
    def _raw(request_type, name, response_time, **_kw):
        global _raw_file
        if _raw_file is None:
            _raw_file = open(
                os.path.join(RAW_DIR, f"samples-{os.getpid()}.txt"), "a", buffering=1 << 16
            )
        _raw_file.write(f"{request_type}\t{name}\t{response_time!r}\t{time.time()!r}\n")

    @events.quit.add_listener
    def _close(**_kw):
        if _raw_file is not None:
            _raw_file.flush()


class Shopper(FastHttpUser):
    wait_time = constant(0) if not BURN_S else between(0, 0)

    @task(3)
    def plans(self):
        if BURN_S:
            deadline = time.perf_counter() + BURN_S
            while time.perf_counter() < deadline:
                pass
        self.client.get("/api/plans")

    @task(1)
    def status(self):
        self.client.get(f"/api/status/{time.time_ns() % 1000}", name="/api/status/[id]")
