"""Exactly-once effects under concurrent requests: webhooks, reconciliation, idempotency keys."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from tests.target.conftest import AUTH, Running, webhook_body

CONCURRENCY = 50


async def _burst(
    url: str, count: int, method: str, path: str, **kwargs: Any
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:
        # Open the connections first so that the requests really overlap at the server.
        await asyncio.gather(*(client.get("/api/health") for _ in range(count)))
        start = asyncio.Event()

        async def one() -> httpx.Response:
            await start.wait()
            return await client.request(method, path, **kwargs)

        tasks = [asyncio.create_task(one()) for _ in range(count)]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*tasks)


def test_50_concurrent_deliveries_of_one_webhook_give_one_transition_and_one_email(
    target: Running,
) -> None:
    order = target.initiate("pro-yearly", "u-burst")
    moid = order["merchant_order_id"]
    body = webhook_body(moid, order["amount"], orderId=order["order_id"])
    responses = asyncio.run(
        _burst(target.url, CONCURRENCY, "POST", "/api/payments/v2/webhook", json=body, headers=AUTH)
    )
    results = Counter((r.status_code, r.json()["result"]) for r in responses)
    assert results == {(200, "processed"): 1, (200, "duplicate"): CONCURRENCY - 1}
    assert target.query(
        "SELECT count(*) FROM order_transitions WHERE merchant_order_id = ?", moid
    ) == [(1,)]
    assert target.query("SELECT count(*) FROM email_outbox WHERE merchant_order_id = ?", moid) == [
        (1,)
    ]
    assert target.query("SELECT count(*) FROM subscriptions WHERE merchant_order_id = ?", moid) == [
        (1,)
    ]
    assert target.query(
        "SELECT deliveries FROM webhook_events WHERE merchant_order_id = ?", moid
    ) == [(CONCURRENCY,)]


def test_concurrent_completed_and_failed_deliveries_give_one_final_state(target: Running) -> None:
    order = target.initiate("basic-monthly", "u-race")
    moid = order["merchant_order_id"]

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=target.url, timeout=30.0) as client:
            calls = [
                client.post(
                    "/api/payments/v2/webhook",
                    json=webhook_body(moid, order["amount"], "COMPLETED" if i % 2 else "FAILED"),
                    headers=AUTH,
                )
                for i in range(20)
            ]
            return await asyncio.gather(*calls)

    responses = asyncio.run(race())
    assert Counter(r.json()["result"] for r in responses)["processed"] == 1
    final = {r.json()["state"] for r in responses}
    assert len(final) == 1
    assert target.query(
        "SELECT count(*) FROM order_transitions WHERE merchant_order_id = ?", moid
    ) == [(1,)]
    emails = target.query("SELECT count(*) FROM email_outbox WHERE merchant_order_id = ?", moid)[0][
        0
    ]
    assert emails == (1 if final == {"COMPLETED"} else 0)


def test_concurrent_initiates_with_one_idempotency_key_create_one_order(target: Running) -> None:
    key = {"Idempotency-Key": "burst-key"}
    payload = {"plan_id": "pro-monthly", "user_id": "u-idem-burst"}
    responses = asyncio.run(
        _burst(target.url, 20, "POST", "/api/payments/v2/initiate", json=payload, headers=key)
    )
    statuses = Counter(r.status_code for r in responses)
    # The first creates the order; the others replay it (201) or are told it is in progress (409).
    assert set(statuses) <= {201, 409}
    created = {r.json()["merchant_order_id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert target.query("SELECT count(*) FROM orders WHERE user_id = 'u-idem-burst'") == [(1,)]
    replay = target.http.post("/api/payments/v2/initiate", json=payload, headers=key)
    assert replay.status_code == 201
    assert replay.json()["merchant_order_id"] in created


def test_concurrent_status_polls_reconcile_once(start_target: Callable[..., Running]) -> None:
    quick = start_target(
        {
            "payment.payer_time_median_s": 0.2,
            "payment.payer_time_p99_s": 0.2,
            "payment.success_ratio": 1.0,
        }
    )
    order = quick.initiate("basic-monthly", "u-poll")
    moid = order["merchant_order_id"]
    path = f"/api/payments/v2/status/{moid}"
    assert quick.http.get(path).json()["state"] == "PENDING"
    # Wait until the simulated PhonePe has settled the order (its time is in the database),
    # then let 30 polls race to reconcile it.
    [(final_at,)] = quick.query("SELECT psp_final_at FROM orders WHERE merchant_order_id = ?", moid)
    assert final_at - time.time() < 5.0
    while time.time() < final_at + 0.05:
        time.sleep(0.01)
    responses = asyncio.run(_burst(quick.url, 30, "GET", path))
    assert {r.json()["state"] for r in responses} == {"COMPLETED"}
    assert {r.json()["confirmed_by"] for r in responses} == {"reconciliation"}
    assert quick.query(
        "SELECT count(*) FROM order_transitions WHERE merchant_order_id = ?", moid
    ) == [(1,)]
    assert quick.query("SELECT count(*) FROM email_outbox WHERE merchant_order_id = ?", moid) == [
        (1,)
    ]
    sub = quick.http.get("/api/subscriptions/current", params={"user_id": "u-poll"})
    assert sub.status_code == 200
    # A webhook arriving after the reconciliation is acknowledged and changes nothing.
    late = quick.http.post(
        "/api/payments/v2/webhook", json=webhook_body(moid, order["amount"]), headers=AUTH
    )
    assert late.json()["result"] == "already_final"
    assert quick.query("SELECT count(*) FROM email_outbox WHERE merchant_order_id = ?", moid) == [
        (1,)
    ]
