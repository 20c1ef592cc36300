"""FastHttpUsers against the reference target (plans and health), for the completeness test."""

from locust import FastHttpUser, constant, task

from harness import plugin  # noqa: F401  (registers --paybench-dir)


class Browser(FastHttpUser):
    wait_time = constant(0)

    @task(3)
    def plans(self):
        self.client.get("/api/plans")

    @task(1)
    def health(self):
        self.client.get("/api/health")
