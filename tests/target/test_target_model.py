"""The behaviour model, measured from outside: service time, capacity, faults, outcomes.

Timing assertions have wide margins (the machine is shared); every load is bounded in
count and time.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable

import httpx

from tests.target.conftest import AUTH, SLOW_PAYER, Running, webhook_body

SERVICE_S = 0.1
CAPACITY = 4
FIXED_PLANS = {"routes.plans.median_ms": SERVICE_S * 1000, "routes.plans.p99_ms": SERVICE_S * 1000}


def _timed_get(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    assert response.status_code == 200, response.text
    return time.perf_counter() - started


async def _saturate(url: str, path: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    """``total`` requests from ``concurrency`` workers; (elapsed s, per-request latencies)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        await asyncio.gather(*(client.get("/api/health") for _ in range(concurrency)))
        remaining = iter(range(total))

        async def worker() -> None:
            for _ in remaining:
                started = time.perf_counter()
                response = await client.get(path)
                assert response.status_code == 200
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout=30)
        return time.perf_counter() - started, latencies


def test_low_load_latency_is_at_least_the_service_time(
    start_target: Callable[..., Running],
) -> None:
    fixed = start_target(FIXED_PLANS)
    latencies = [_timed_get(fixed.http, "/api/plans") for _ in range(8)]
    assert min(latencies) >= SERVICE_S
    # And not much more when nothing queues (generous: the machine is shared).
    assert statistics.median(latencies) < SERVICE_S * 2


def test_capacity_n_with_service_time_s_serves_about_n_over_s(
    start_target: Callable[..., Running],
) -> None:
    limited = start_target({**FIXED_PLANS, "capacity.plans": CAPACITY})
    expected_rps = CAPACITY / SERVICE_S  # 40 requests/s
    total, concurrency = 120, 16  # about 3 s at the expected rate
    elapsed, latencies = asyncio.run(_saturate(limited.url, "/api/plans", total, concurrency))
    rps = total / elapsed
    assert abs(rps - expected_rps) / expected_rps <= 0.15, (
        f"{rps:.1f} req/s, expected {expected_rps}"
    )
    # The queue is real: with 16 clients and 4 slots a request waits about 3 service times.
    assert statistics.median(latencies) >= 2.5 * SERVICE_S
    # The queue drained and the slots were all given back.
    text = limited.http.get("/metrics").text
    assert 'paybench_target_queue_depth{group="plans"} 0' in text
    assert 'paybench_target_in_service{group="plans"} 0' in text


def test_slowdown_multiplies_service_times(start_target: Callable[..., Running]) -> None:
    slow = start_target({"slowdown": 3.0, "routes.plans.median_ms": 40, "routes.plans.p99_ms": 40})
    latencies = [_timed_get(slow.http, "/api/plans") for _ in range(4)]
    assert min(latencies) >= 0.12


def test_default_model_meets_the_checklist_with_a_wide_margin(target: Running) -> None:
    """Medians at low load under a quarter of each checklist limit."""
    http = target.http
    samples: dict[str, list[float]] = {
        "initiate": [],
        "status": [],
        "webhook": [],
        "plans": [],
        "health": [],
    }
    for i in range(10):
        started = time.perf_counter()
        order = target.initiate("basic-monthly", f"u-budget-{i}")
        samples["initiate"].append(time.perf_counter() - started)
        samples["status"].append(
            _timed_get(http, f"/api/payments/v2/status/{order['merchant_order_id']}")
        )
        started = time.perf_counter()
        response = http.post(
            "/api/payments/v2/webhook",
            json=webhook_body(order["merchant_order_id"], order["amount"]),
            headers=AUTH,
        )
        assert response.status_code == 200
        samples["webhook"].append(time.perf_counter() - started)
        samples["plans"].append(_timed_get(http, "/api/plans"))
        samples["health"].append(_timed_get(http, "/api/health"))
    limits_s = {"initiate": 2.0, "status": 1.0, "webhook": 0.5, "plans": 0.3, "health": 0.1}
    for name, values in samples.items():
        assert statistics.median(values) < limits_s[name] / 4, (name, values)
    # initiate includes the simulated PhonePe pay call: slower than a plain read.
    assert statistics.median(samples["initiate"]) > statistics.median(samples["health"])


def test_error_rate_one_fails_every_business_request_but_not_health(
    start_target: Callable[..., Running],
) -> None:
    broken = start_target({"error_rate": 1.0, **SLOW_PAYER})
    http = broken.http
    for response in (
        http.get("/api/plans"),
        http.post("/api/payments/v2/initiate", json={"plan_id": "basic-monthly", "user_id": "u"}),
        http.get("/api/payments/v2/status/PBany"),
        http.get("/api/subscriptions/current", params={"user_id": "u"}),
        http.post("/api/payments/v2/webhook", json=webhook_body("PBany", 19900), headers=AUTH),
    ):
        assert response.status_code == 500, response.text
        assert response.json()["error"] == "injected_fault"
    assert http.get("/api/health").json()["status"] == "healthy"
    assert http.get("/api/health/database").status_code == 200
    assert broken.query("SELECT count(*) FROM orders") == [(0,)]
    text = http.get("/metrics").text
    assert 'paybench_target_injected_faults_total{route="initiate"} 1' in text


def test_error_rate_is_a_share_and_a_route_can_have_its_own(
    start_target: Callable[..., Running],
) -> None:
    flaky = start_target({"error_rate": 0.3, "routes.webhook.error_rate": 0.0, "seed": 7})
    codes = Counter(flaky.http.get("/api/plans").status_code for _ in range(100))
    assert set(codes) == {200, 500}
    assert 15 <= codes[500] <= 45, codes
    webhook_codes = {
        flaky.http.post(
            "/api/payments/v2/webhook", json=webhook_body("PBnone", 19900), headers=AUTH
        ).status_code
        for _ in range(20)
    }
    assert webhook_codes == {404}


def test_a_service_marked_down_makes_health_503(start_target: Callable[..., Running]) -> None:
    degraded = start_target({"down": ["redis", "email"]})
    response = degraded.http.get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["services"] == {
        "database": "healthy",
        "redis": "unhealthy",
        "email": "unhealthy",
        "payment": "healthy",
    }
    assert degraded.http.get("/api/health/redis").status_code == 503
    assert degraded.http.get("/api/health/database").status_code == 200
    # Without the cache the catalogue still comes from the database.
    assert degraded.http.get("/api/plans").status_code == 200
    assert degraded.http.get("/api/plans").status_code == 200
    assert "paybench_target_cache_hits_total 0" in degraded.http.get("/metrics").text


def test_database_down(start_target: Callable[..., Running]) -> None:
    no_db = start_target({"down": ["database"]})
    body = no_db.http.get("/api/health").json()
    assert body["services"]["database"] == "unhealthy"
    assert no_db.http.get("/api/health/database").status_code == 503
    response = no_db.http.post(
        "/api/payments/v2/initiate", json={"plan_id": "basic-monthly", "user_id": "u"}
    )
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"


def test_payment_provider_down(start_target: Callable[..., Running]) -> None:
    no_psp = start_target({"down": ["payment"]})
    assert no_psp.http.get("/api/health").json()["services"]["payment"] == "unhealthy"
    assert no_psp.http.get("/api/payments/v2/health").status_code == 503
    key = {"Idempotency-Key": "psp-down"}
    payload = {"plan_id": "basic-monthly", "user_id": "u"}
    response = no_psp.http.post("/api/payments/v2/initiate", json=payload, headers=key)
    assert response.status_code == 502
    assert response.json()["error"] == "payment_provider_unavailable"
    # The failed first attempt released its key: the retry is a fresh attempt, not a 409.
    assert (
        no_psp.http.post("/api/payments/v2/initiate", json=payload, headers=key).status_code == 502
    )
    assert no_psp.query("SELECT count(*) FROM orders") == [(0,)]


def test_payer_outcome_and_expiry_settle_orders_by_reconciliation(
    start_target: Callable[..., Running],
) -> None:
    declined = start_target(
        {
            "payment.success_ratio": 0.0,
            "payment.payer_time_median_s": 0.1,
            "payment.payer_time_p99_s": 0.1,
        }
    )
    abandoned = start_target({"payment.abandon_ratio": 1.0, "payment.expire_after_s": 1})
    for running in (declined, abandoned):
        order = running.initiate("basic-monthly", "u-outcome")
        path = f"/api/payments/v2/status/{order['merchant_order_id']}"
        deadline = time.monotonic() + 5.0
        state = "PENDING"
        while state == "PENDING" and time.monotonic() < deadline:
            state = running.http.get(path).json()["state"]
            time.sleep(0.05)  # poll interval
        assert state == "FAILED"
        assert running.query("SELECT count(*) FROM email_outbox") == [(0,)]
        assert running.http.get(path).json()["confirmed_by"] == "reconciliation"
