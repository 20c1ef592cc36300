"""latency_factor: a route group's whole latency times a factor (the calibrated step).

The wrapper on its own with a clock and a sleep the test controls (no timing), the model
key, and a real target with the factor set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.target.app import ROUTE_OF_PATH, LatencyFactorApp
from harness.target.metrics import Message, Receive, Scope, Send
from harness.target.settings import ROUTE_GROUPS, load_settings
from tests.target.conftest import Running


class FakeTime:
    """A clock the app under test advances; sleeps are recorded and advance it too."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def app_taking(fake: FakeTime, work_s: float) -> Callable[[Scope, Receive, Send], Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        fake.now += work_s  # queueing, service time, the database: all of it
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"{}", "more_body": False})

    return app


def serve(app: LatencyFactorApp, path: str = "/api/payments/v2/initiate") -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "method": "POST"}, receive, send))
    return sent


def test_the_response_starts_factor_times_as_late_as_the_app_had_it_ready() -> None:
    fake = FakeTime()
    factors = {"/api/payments/v2/initiate": 1.15}
    app = LatencyFactorApp(
        app_taking(fake, 0.040),
        lambda scope: factors.get(scope["path"], 1.0),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    started = fake.now
    sent = serve(app)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert fake.slept == [pytest.approx(0.006)]  # (1.15 - 1) x 40 ms, once, before the start
    assert fake.now - started == pytest.approx(0.046)  # the whole latency x 1.15
    fake.slept.clear()
    serve(app, "/api/plans")  # another group: factor 1, nothing added
    assert fake.slept == []


def test_the_factor_is_a_model_key_per_route_group_and_never_below_one() -> None:
    settings = load_settings(overrides={"latency_factor.checkout": 1.15})
    assert settings.route_latency_factor("initiate") == 1.15
    assert settings.route_latency_factor("plans") == 1.0
    assert settings.as_dict()["latency_factor"]["checkout"] == 1.15
    assert load_settings().latency_factor == dict.fromkeys(set(ROUTE_GROUPS.values()), 1.0)
    with pytest.raises(ConfigError, match=r"'latency_factor.checkout' is 0.9; it must be >= 1.0"):
        load_settings(overrides={"latency_factor.checkout": 0.9})
    # Every route the model knows is found by the path it is served on.
    assert sorted(ROUTE_OF_PATH.values()) == sorted(ROUTE_GROUPS)


def test_a_target_with_a_factor_serves_the_checkout_as_before(
    start_target: Callable[..., Running],
) -> None:
    running = start_target({"latency_factor.checkout": 2.0, "latency_factor.plans": 1.5})
    assert running.target.settings is not None
    assert running.target.settings.latency_factor["checkout"] == 2.0
    order = running.initiate()
    assert order["state"] == "PENDING"
    assert running.http.get("/api/plans").status_code == 200
    assert running.http.get("/api/health").json()["status"] == "healthy"
