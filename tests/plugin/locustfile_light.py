"""A light load generator: a few users that each wait 0.1 s between requests.

The Locust process is idle (waiting on its timers and the network) most of the time, so
other processes competing for the CPU must not make paybench call it saturated.
"""

from locust import FastHttpUser, constant, task

from harness import plugin  # noqa: F401  (registers --paybench-dir)


class Browser(FastHttpUser):
    wait_time = constant(0.1)

    @task
    def plans(self) -> None:
        self.client.get("/api/plans")
