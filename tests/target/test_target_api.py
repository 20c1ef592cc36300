"""Contract tests of the reference target's endpoints, against a real subprocess."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from datetime import datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from harness import __version__
from tests.target.conftest import AUTH, Running, webhook_body

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def assert_json_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert body["message"]
    assert "Traceback" not in response.text
    return body


# --- health -------------------------------------------------------------------------------


def test_health_has_exactly_the_documented_shape(target: Running) -> None:
    response = target.http.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp", "version", "services"}
    assert body["status"] == "healthy"
    assert body["version"] == __version__
    assert body["services"] == {
        "database": "healthy",
        "redis": "healthy",
        "email": "healthy",
        "payment": "healthy",
    }
    assert ISO_UTC.match(body["timestamp"]), body["timestamp"]
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0


def test_database_health_runs_a_real_query(target: Running) -> None:
    body = target.http.get("/api/health/database").json()
    assert body["status"] == "healthy"
    assert body["journal_mode"] == "wal"
    assert body["plans"] == 3
    assert body["latency_ms"] > 0
    assert body["query_ms"] <= body["latency_ms"]


def test_redis_health_reports_cache_hits_and_size(target: Running) -> None:
    before = target.http.get("/api/health/redis").json()
    target.http.get("/api/plans")
    target.http.get("/api/plans")
    after = target.http.get("/api/health/redis").json()
    assert after["status"] == "healthy"
    assert after["keys"] == 1
    assert after["hits"] + after["misses"] == before["hits"] + before["misses"] + 2
    assert after["hits"] >= before["hits"] + 1
    assert 0.0 < after["hit_rate"] <= 1.0


def test_payments_health_checks_the_simulated_phonepe_link(target: Running) -> None:
    body = target.http.get("/api/payments/v2/health").json()
    assert body["status"] == "healthy"
    assert body["mode"] == "simulated"
    assert body["latency_ms"] > 0


# --- catalogue and checkout ----------------------------------------------------------------


def test_plans_lists_the_catalogue_in_order(target: Running) -> None:
    response = target.http.get("/api/plans")
    assert response.status_code == 200
    plans = response.json()["plans"]
    assert [p["id"] for p in plans] == ["basic-monthly", "pro-monthly", "pro-yearly"]
    assert plans[0] == {
        "id": "basic-monthly",
        "name": "Basic (monthly)",
        "amount": 19900,
        "currency": "INR",
        "period_days": 30,
    }


def test_initiate_creates_a_pending_order(target: Running) -> None:
    response = target.http.post(
        "/api/payments/v2/initiate", json={"plan_id": "pro-monthly", "user_id": "u-init"}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["state"] == "PENDING"
    assert body["amount"] == 49900
    assert re.match(r"^[A-Za-z0-9_-]{1,63}$", body["merchant_order_id"])
    assert body["order_id"].startswith("OMO")
    assert body["redirect_url"].startswith("https://phonepe.invalid/")
    assert ISO_UTC.match(body["expire_at"])
    rows = target.query(
        "SELECT state, amount, user_id FROM orders WHERE merchant_order_id = ?",
        body["merchant_order_id"],
    )
    assert rows == [("PENDING", 49900, "u-init")]


def test_initiate_accepts_an_integer_user_id(target: Running) -> None:
    response = target.http.post(
        "/api/payments/v2/initiate", json={"plan_id": "basic-monthly", "user_id": 42}
    )
    assert response.status_code == 201
    order = target.http.get(f"/api/payments/v2/status/{response.json()['merchant_order_id']}")
    assert order.json()["user_id"] == "42"


def test_initiate_rejects_bad_input_with_json_4xx(target: Running) -> None:
    url = "/api/payments/v2/initiate"
    headers = {"content-type": "application/json"}
    assert_json_error(
        target.http.post(url, content=b"{not json", headers=headers), 400, "malformed_json"
    )
    assert_json_error(
        target.http.post(url, content=b"\xff\xfe", headers=headers), 400, "malformed_json"
    )
    assert_json_error(target.http.post(url, json=[1, 2]), 400, "invalid_request")
    assert_json_error(target.http.post(url, json={"user_id": "u"}), 422, "invalid_field")
    assert_json_error(
        target.http.post(url, json={"plan_id": 7, "user_id": "u"}), 422, "invalid_field"
    )
    assert_json_error(
        target.http.post(url, json={"plan_id": "basic-monthly", "user_id": True}),
        422,
        "invalid_field",
    )
    assert_json_error(
        target.http.post(url, json={"plan_id": "basic-monthly", "user_id": ["u"]}),
        422,
        "invalid_field",
    )
    body = assert_json_error(
        target.http.post(url, json={"plan_id": "gold", "user_id": "u"}), 422, "unknown_plan"
    )
    assert "gold" in body["message"]


def test_initiate_with_an_idempotency_key_returns_the_same_order(target: Running) -> None:
    url = "/api/payments/v2/initiate"
    payload = {"plan_id": "basic-monthly", "user_id": "u-idem"}
    first = target.http.post(url, json=payload, headers={"Idempotency-Key": "key-1"})
    again = target.http.post(url, json=payload, headers={"Idempotency-Key": "key-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = target.http.post(url, json=payload, headers={"Idempotency-Key": "key-2"})
    assert other.json()["merchant_order_id"] != first.json()["merchant_order_id"]
    reused = target.http.post(
        url,
        json={"plan_id": "pro-yearly", "user_id": "u-idem"},
        headers={"Idempotency-Key": "key-1"},
    )
    assert_json_error(reused, 422, "idempotency_key_reused")
    assert target.query("SELECT count(*) FROM orders WHERE user_id = 'u-idem'") == [(2,)]


def test_status_reports_the_order(target: Running) -> None:
    order = target.initiate("pro-yearly", "u-status")
    response = target.http.get(f"/api/payments/v2/status/{order['merchant_order_id']}")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "PENDING"
    assert body["amount"] == 499900
    assert body["order_id"] == order["order_id"]
    assert body["completed_at"] is None
    assert ISO_UTC.match(body["created_at"]) and ISO_UTC.match(body["updated_at"])


def test_status_of_an_unknown_order_is_404(target: Running) -> None:
    assert_json_error(target.http.get("/api/payments/v2/status/PBnope"), 404, "order_not_found")
    assert_json_error(target.http.get("/api/payments/v2/status/a%20b"), 404, "order_not_found")


# --- the webhook ---------------------------------------------------------------------------


def test_webhook_completes_the_order_once_with_one_email(target: Running) -> None:
    order = target.initiate("pro-monthly", "u-hook")
    moid = order["merchant_order_id"]
    body = webhook_body(moid, order["amount"], orderId=order["order_id"], paymentDetails=[])
    first = target.http.post("/api/payments/v2/webhook", json=body, headers=AUTH)
    assert first.status_code == 200
    assert first.json() == {"result": "processed", "merchant_order_id": moid, "state": "COMPLETED"}
    second = target.http.post("/api/payments/v2/webhook", json=body, headers=AUTH)
    assert second.status_code == 200
    assert second.json()["result"] == "duplicate"
    status = target.http.get(f"/api/payments/v2/status/{moid}").json()
    assert status["state"] == "COMPLETED"
    assert status["confirmed_by"] == "webhook"
    assert ISO_UTC.match(status["completed_at"])
    sub = target.http.get("/api/subscriptions/current", params={"user_id": "u-hook"})
    assert sub.status_code == 200
    assert sub.json()["plan_id"] == "pro-monthly"
    assert sub.json()["status"] == "ACTIVE"
    assert sub.json()["merchant_order_id"] == moid
    assert target.query("SELECT count(*) FROM email_outbox WHERE merchant_order_id = ?", moid) == [
        (1,)
    ]
    assert target.query(
        "SELECT to_state FROM order_transitions WHERE merchant_order_id = ?", moid
    ) == [("COMPLETED",)]
    assert target.query(
        "SELECT deliveries FROM webhook_events WHERE merchant_order_id = ?", moid
    ) == [(2,)]


def test_webhook_failed_moves_to_failed_without_email_or_subscription(target: Running) -> None:
    order = target.initiate("basic-monthly", "u-fail")
    moid = order["merchant_order_id"]
    response = target.http.post(
        "/api/payments/v2/webhook", json=webhook_body(moid, order["amount"], "FAILED"), headers=AUTH
    )
    assert response.json()["result"] == "processed"
    assert target.http.get(f"/api/payments/v2/status/{moid}").json()["state"] == "FAILED"
    assert target.query("SELECT count(*) FROM email_outbox WHERE merchant_order_id = ?", moid) == [
        (0,)
    ]
    none = target.http.get("/api/subscriptions/current", params={"user_id": "u-fail"})
    assert_json_error(none, 404, "no_active_subscription")
    # A late "completed" for a FAILED order changes nothing: final states are final.
    late = target.http.post(
        "/api/payments/v2/webhook", json=webhook_body(moid, order["amount"]), headers=AUTH
    )
    assert late.status_code == 200
    assert late.json() == {"result": "already_final", "merchant_order_id": moid, "state": "FAILED"}


def test_webhook_without_valid_authorization_is_401_and_writes_nothing(target: Running) -> None:
    order = target.initiate("basic-monthly", "u-forged")
    moid = order["merchant_order_id"]
    body = webhook_body(moid, order["amount"])
    url = "/api/payments/v2/webhook"
    assert_json_error(target.http.post(url, json=body), 401, "unauthorized")
    forged = {"Authorization": "0" * 64}
    assert_json_error(target.http.post(url, json=body, headers=forged), 401, "unauthorized")
    # The header carries the bare digest: a scheme prefix is a different value.
    prefixed = {"Authorization": "SHA256 " + AUTH["Authorization"]}
    assert_json_error(target.http.post(url, json=body, headers=prefixed), 401, "unauthorized")
    # Authorization is checked before the body is parsed.
    assert_json_error(target.http.post(url, content=b"{bad"), 401, "unauthorized")
    assert target.query("SELECT state FROM orders WHERE merchant_order_id = ?", moid) == [
        ("PENDING",)
    ]
    assert target.query(
        "SELECT count(*) FROM webhook_events WHERE merchant_order_id = ?", moid
    ) == [(0,)]


def test_webhook_malformed_body_is_400(target: Running) -> None:
    url = "/api/payments/v2/webhook"
    assert_json_error(target.http.post(url, content=b"{bad", headers=AUTH), 400, "malformed_json")
    cases = [
        [],
        {"payload": {}},
        {"event": "checkout.order.completed"},
        {"event": "checkout.order.completed", "payload": []},
        {"event": "checkout.order.completed", "payload": {"state": "COMPLETED", "amount": 1}},
        {"event": "checkout.order.completed", "payload": {"merchantOrderId": "x", "amount": 1}},
        {
            "event": "checkout.order.completed",
            "payload": {"merchantOrderId": "x", "state": "COMPLETED"},
        },
        webhook_body("x", 19900)
        | {"payload": {"merchantOrderId": "x", "state": "COMPLETED", "amount": "19900"}},
        webhook_body("x", 19900)
        | {"payload": {"merchantOrderId": "x", "state": "COMPLETED", "amount": True}},
    ]
    for case in cases:
        assert_json_error(target.http.post(url, json=case, headers=AUTH), 400, "invalid_webhook")


def test_webhook_for_an_unknown_order_is_404_and_writes_nothing(target: Running) -> None:
    response = target.http.post(
        "/api/payments/v2/webhook", json=webhook_body("PBunknown", 19900), headers=AUTH
    )
    assert_json_error(response, 404, "unknown_order")
    assert target.query(
        "SELECT count(*) FROM webhook_events WHERE merchant_order_id = 'PBunknown'"
    ) == [(0,)]


def test_webhook_amount_or_order_id_mismatch_is_409_and_writes_nothing(target: Running) -> None:
    order = target.initiate("pro-monthly", "u-mismatch")
    moid = order["merchant_order_id"]
    url = "/api/payments/v2/webhook"
    body = assert_json_error(
        target.http.post(url, json=webhook_body(moid, 100), headers=AUTH), 409, "amount_mismatch"
    )
    assert "49900" in body["message"]
    wrong_id = webhook_body(moid, order["amount"], orderId="OMOother")
    assert_json_error(target.http.post(url, json=wrong_id, headers=AUTH), 409, "order_id_mismatch")
    assert target.query("SELECT state FROM orders WHERE merchant_order_id = ?", moid) == [
        ("PENDING",)
    ]
    assert target.query(
        "SELECT count(*) FROM webhook_events WHERE merchant_order_id = ?", moid
    ) == [(0,)]


def test_webhook_events_it_does_not_handle_are_acknowledged_and_ignored(target: Running) -> None:
    order = target.initiate("basic-monthly", "u-ignored")
    moid = order["merchant_order_id"]
    refund = {
        "event": "pg.refund.completed",
        "payload": {"merchantOrderId": moid, "state": "COMPLETED", "amount": 19900},
    }
    pending = webhook_body(moid, order["amount"], "PENDING")
    for body in (refund, pending):
        response = target.http.post("/api/payments/v2/webhook", json=body, headers=AUTH)
        assert response.status_code == 200
        assert response.json()["result"] == "ignored"
    assert target.query("SELECT state FROM orders WHERE merchant_order_id = ?", moid) == [
        ("PENDING",)
    ]


# --- subscriptions, errors, metrics --------------------------------------------------------


def test_current_subscription_needs_a_user_id(target: Running) -> None:
    assert_json_error(target.http.get("/api/subscriptions/current"), 400, "invalid_request")
    assert_json_error(
        target.http.get("/api/subscriptions/current", params={"user_id": "x" * 65}),
        400,
        "invalid_request",
    )
    assert_json_error(
        target.http.get("/api/subscriptions/current", params={"user_id": "nobody"}),
        404,
        "no_active_subscription",
    )


def test_a_newer_subscription_supersedes_the_active_one(target: Running) -> None:
    for plan in ("basic-monthly", "pro-yearly"):
        order = target.initiate(plan, "u-upgrade")
        target.http.post(
            "/api/payments/v2/webhook",
            json=webhook_body(order["merchant_order_id"], order["amount"]),
            headers=AUTH,
        )
    current = target.http.get("/api/subscriptions/current", params={"user_id": "u-upgrade"}).json()
    assert current["plan_id"] == "pro-yearly"
    rows = target.query(
        "SELECT plan_id, status FROM subscriptions WHERE user_id = 'u-upgrade' ORDER BY id"
    )
    assert rows == [("basic-monthly", "SUPERSEDED"), ("pro-yearly", "ACTIVE")]


def test_unknown_routes_and_methods_get_json_errors(target: Running) -> None:
    assert_json_error(target.http.get("/api/nothing"), 404, "not_found")
    assert_json_error(target.http.get("/"), 404, "not_found")
    assert_json_error(target.http.delete("/api/plans"), 405, "method_not_allowed")
    assert_json_error(target.http.get("/api/payments/v2/webhook"), 405, "method_not_allowed")


def _chunks(total: int) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(8192, total - sent)
        sent += piece
        yield b" " * piece


def test_bodies_over_64_kib_get_413(target: Running) -> None:
    url = "/api/payments/v2/initiate"
    big = b'{"plan_id": "basic-monthly", "user_id": "u", "pad": "' + b"x" * 70_000 + b'"}'
    assert_json_error(target.http.post(url, content=big), 413, "payload_too_large")
    # Without Content-Length (chunked) the limit holds too.
    assert_json_error(target.http.post(url, content=_chunks(70_000)), 413, "payload_too_large")
    assert_json_error(
        target.http.post("/api/payments/v2/webhook", content=big, headers=AUTH),
        413,
        "payload_too_large",
    )
    # Exactly 64 KiB is allowed.
    head = b'{"plan_id": "basic-monthly", "user_id": "u-64k", "pad": "'
    exact = head + b"x" * (65536 - len(head) - 2) + b'"}'
    assert len(exact) == 65536
    assert target.http.post(url, content=exact).status_code == 201


def test_metrics_count_every_request_but_metrics_itself(target: Running) -> None:
    before = target.metrics_total()
    target.http.get("/metrics")
    order = target.initiate("basic-monthly", "u-metrics")
    requests = [
        ("GET", "/api/health", None),
        ("GET", "/api/plans", None),
        ("GET", f"/api/payments/v2/status/{order['merchant_order_id']}", None),
        ("GET", "/api/payments/v2/status/PBnone", None),
        ("GET", "/no/such/route", None),
        ("DELETE", "/api/plans", None),
        ("POST", "/api/payments/v2/webhook", b"{}"),
        ("POST", "/api/payments/v2/initiate", b"x" * 70_000),
        ("POST", "/api/payments/v2/initiate", b"[]"),
    ]
    for method, path, content in requests:
        target.http.request(method, path, content=content)
    assert target.metrics_total() == before + 1 + len(requests)
    text = target.http.get("/metrics").text
    assert "# TYPE paybench_target_requests_total counter" in text
    assert re.search(
        r'paybench_target_requests_total\{method="GET",'
        r'route="/api/payments/v2/status/\{merchant_order_id\}",status="404"\} [1-9]',
        text,
    )
    assert re.search(
        r'paybench_target_requests_total\{method="GET",route="unmatched",status="404"\} [1-9]', text
    )
    assert re.search(r'route="/api/payments/v2/initiate",status="413"\} [1-9]', text)
    assert re.search(r'route="/api/plans",status="405"\} [1-9]', text)
    assert 'route="/metrics"' not in text
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.labels
    }
    assert samples["paybench_target_requests_in_flight"] == 0
    assert samples["paybench_target_cache_hits_total"] >= 1
    assert samples["paybench_target_cache_misses_total"] >= 1
    assert samples["process_cpu_seconds_total"] > 0
    assert samples["process_resident_memory_bytes"] > 10_000_000


def test_keep_alive_responses_do_not_wait_for_a_delayed_ack(target: Running) -> None:
    """Regression: without TCP_NODELAY on the accepted sockets (asyncio sets it only when the
    listening socket's proto is TCP), each keep-alive response stalled ~40 ms (Nagle + ACK)."""
    latencies = []
    for _ in range(20):
        started = time.perf_counter()
        target.http.post("/api/payments/v2/webhook", json=webhook_body("PBnone", 1), headers=AUTH)
        latencies.append(time.perf_counter() - started)
    assert statistics.median(latencies) < 0.030, latencies
