"""ObservedApp, the ASGI wrapper that counts responses and caps bodies, on its own."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from harness.target.metrics import ASGIApp, Message, Metrics, ObservedApp, Receive, Scope, Send


async def _failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom in a handler")


async def _echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    message: Message = await receive()
    body = message.get("body", b"")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body[:10], "more_body": True})
    await send({"type": "http.response.body", "body": str(len(body)).encode(), "more_body": False})


def served(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    """paybench_target_requests_total by (method, route, status), from the registry."""
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == "paybench_target_requests_total"
    }


def _wrap(app: ASGIApp, metrics: Metrics, logged: list[BaseException]) -> ObservedApp:
    return ObservedApp(app, metrics, lambda scope: scope["path"], 100, logged.append)


async def _request(
    app: ObservedApp, method: str, path: str, content: bytes = b""
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://target.invalid") as client:
        return await client.request(method, path, content=content)


def test_an_exception_in_the_app_becomes_a_counted_json_500() -> None:
    metrics, logged = Metrics(), list[BaseException]()
    response = asyncio.run(_request(_wrap(_failing_app, metrics, logged), "GET", "/x"))
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "boom" not in response.text and "Traceback" not in response.text
    assert [str(e) for e in logged] == ["boom in a handler"]
    assert served(metrics) == {("GET", "/x", "500"): 1}
    assert metrics.value("paybench_target_requests_in_flight") == 0


def test_bodies_are_replayed_to_the_app_or_refused_over_the_limit() -> None:
    metrics, logged = Metrics(), list[BaseException]()
    app = _wrap(_echo_app, metrics, logged)
    ok = asyncio.run(_request(app, "POST", "/echo", b"y" * 100))
    assert ok.status_code == 200
    assert ok.text == "y" * 10 + "100"  # the whole body reached the app; two chunks counted once
    big = asyncio.run(_request(app, "POST", "/echo", b"y" * 101))
    assert big.status_code == 413
    assert served(metrics) == {("POST", "/echo", "200"): 1, ("POST", "/echo", "413"): 1}
    assert logged == []


def test_metrics_path_is_not_counted() -> None:
    metrics, logged = Metrics(), list[BaseException]()
    asyncio.run(_request(_wrap(_echo_app, metrics, logged), "GET", "/metrics"))
    assert served(metrics) == {}


def test_a_client_gone_mid_body_is_logged_in_one_line_and_not_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: a disconnect in the middle of a body reached the app as ClientDisconnect
    and was logged with a traceback; the app is not called at all now."""
    metrics, logged = Metrics(), list[BaseException]()
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    messages = [
        {"type": "http.request", "body": b'{"plan', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/payments/v2/initiate",
        "headers": [(b"content-length", b"50")],  # under the wrapper's cap of 100
    }
    with caplog.at_level(logging.WARNING, logger="paybench.target"):
        asyncio.run(_wrap(app, metrics, logged)(scope, receive, send))
    assert called == [] and sent == [] and logged == []
    assert [r.getMessage() for r in caplog.records] == [
        "client disconnected after 6 of 50 body bytes of POST /api/payments/v2/initiate; "
        "nothing was done"
    ]
    assert all(r.exc_info is None for r in caplog.records)
    assert served(metrics) == {} and metrics.value("paybench_target_requests_in_flight") == 0
