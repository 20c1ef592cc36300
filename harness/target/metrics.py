"""The target's own counters and their Prometheus text exposition (format 0.0.4).

Hand-written rather than ``prometheus_client``: a dozen series, one process, no extra
dependency. ``paybench_target_requests_total`` is incremented by ``ObservedApp`` just
before the last byte of each response is handed to the server, so a client that has read a
response always finds it counted; every request but ``GET /metrics`` is counted, whatever
its status (404, 413, 500 included). A client that goes away before its body has arrived
gets no response and is not counted: the log says so in one line.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import psutil
from starlette.requests import ClientDisconnect

UNMATCHED_ROUTE = "unmatched"  # the one route label of every path no route matches
METRICS_PATH = "/metrics"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
log = logging.getLogger("paybench.target")


class _Gone:
    """The client disconnected before its whole body arrived."""

    def __init__(self, received: int, declared: bytes | None) -> None:
        self.received = received
        self.declared = declared

    def describe(self, scope: Scope) -> str:
        of = f" of {self.declared.decode('latin-1')}" if self.declared else ""
        return (
            f"client disconnected after {self.received}{of} body bytes of "
            f"{scope['method']} {scope['path']}; nothing was done"
        )


class Metrics:
    """Counters and gauges of one target process. Touched only on the event loop thread."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str]] = Counter()  # (method, route, status)
        self.in_flight = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.queued: Counter[str] = Counter()  # route group -> waiting for capacity
        self.in_service: Counter[str] = Counter()  # route group -> holding capacity
        self.injected_faults: Counter[str] = Counter()  # route name
        self.transitions: Counter[tuple[str, str]] = Counter()  # (to_state, source)
        self.webhooks: Counter[str] = Counter()  # result
        self.emails = 0
        self._process = psutil.Process(os.getpid())
        self._started_epoch = self._process.create_time()

    def render(self, groups: list[str]) -> str:
        out: list[str] = []

        def family(name: str, kind: str, help_text: str) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")

        family(
            "paybench_target_requests_total",
            "counter",
            "Requests served, by method, route template and status.",
        )
        for (method, route, status), count in sorted(self.requests.items()):
            labels = _labels(method=method, route=route, status=status)
            out.append(f"paybench_target_requests_total{{{labels}}} {count}")
        family(
            "paybench_target_requests_in_flight",
            "gauge",
            "Requests being served now (queued included).",
        )
        out.append(f"paybench_target_requests_in_flight {self.in_flight}")
        family(
            "paybench_target_queue_depth", "gauge", "Requests waiting for capacity, by route group."
        )
        for group in groups:
            out.append(
                f"paybench_target_queue_depth{{{_labels(group=group)}}} {self.queued[group]}"
            )
        family("paybench_target_in_service", "gauge", "Requests holding capacity, by route group.")
        for group in groups:
            out.append(
                f"paybench_target_in_service{{{_labels(group=group)}}} {self.in_service[group]}"
            )
        family("paybench_target_cache_hits_total", "counter", "Cache (Redis stand-in) hits.")
        out.append(f"paybench_target_cache_hits_total {self.cache_hits}")
        family("paybench_target_cache_misses_total", "counter", "Cache (Redis stand-in) misses.")
        out.append(f"paybench_target_cache_misses_total {self.cache_misses}")
        family(
            "paybench_target_injected_faults_total",
            "counter",
            "Errors injected by error_rate, by route.",
        )
        for route, count in sorted(self.injected_faults.items()):
            out.append(f"paybench_target_injected_faults_total{{{_labels(route=route)}}} {count}")
        family("paybench_target_order_transitions_total", "counter", "Orders moved out of PENDING.")
        for (state, source), count in sorted(self.transitions.items()):
            out.append(
                "paybench_target_order_transitions_total"
                f"{{{_labels(state=state, source=source)}}} {count}"
            )
        family(
            "paybench_target_webhooks_total",
            "counter",
            "Authenticated webhook deliveries, by result.",
        )
        for result, count in sorted(self.webhooks.items()):
            out.append(f"paybench_target_webhooks_total{{{_labels(result=result)}}} {count}")
        family(
            "paybench_target_emails_total", "counter", "Confirmation emails written to the outbox."
        )
        out.append(f"paybench_target_emails_total {self.emails}")
        cpu = self._process.cpu_times()
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        )
        out.append(f"process_cpu_seconds_total {cpu.user + cpu.system:.6f}")
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        out.append(f"process_resident_memory_bytes {self._process.memory_info().rss}")
        family(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
        )
        out.append(f"process_start_time_seconds {self._started_epoch:.3f}")
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return ",".join(f'{name}="{_escape(str(value))}"' for name, value in labels.items())


class ObservedApp:
    """ASGI wrapper: counts every response, keeps the in-flight gauge, caps request bodies.

    Bodies are read here, up to ``max_body_bytes``; a longer one gets a JSON 413 without
    reaching the app. Any exception that escapes the app becomes a JSON 500 (the traceback
    goes to the server log, never to the client).
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        route_of: Callable[[Scope], str],
        max_body_bytes: int,
        log_exception: Callable[[BaseException], None],
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of
        self.max_body_bytes = max_body_bytes
        self.log_exception = log_exception

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        route = self.route_of(scope)
        metrics = self.metrics
        status = {"code": 0, "counted": False}

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Counted before the last chunk leaves: whoever has the response sees it counted.
                if not status["counted"]:
                    status["counted"] = True
                    metrics.requests[(method, route, str(status["code"]))] += 1
            await send(message)

        metrics.in_flight += 1
        try:
            body_receive = await self._buffer_body(scope, receive)
            if isinstance(body_receive, _Gone):
                # A client's doing, not the target's: one line, no traceback, no response.
                log.warning("%s", body_receive.describe(scope))
                return
            if body_receive is None:
                limit = self.max_body_bytes
                await _send_json(
                    observed_send,
                    413,
                    {
                        "error": "payload_too_large",
                        "message": f"request body over {limit} bytes ({limit // 1024} KiB)",
                    },
                )
                return
            try:
                await self.app(scope, body_receive, observed_send)
            except ClientDisconnect:
                log.warning(
                    "client disconnected during %s %s; nothing more was done",
                    scope["method"],
                    scope["path"],
                )
            except Exception as exc:
                self.log_exception(exc)
                if status["code"] == 0:
                    await _send_json(
                        observed_send,
                        500,
                        {
                            "error": "internal_error",
                            "message": "the target failed on this request; see its log",
                        },
                    )
            if not status["counted"] and status["code"]:
                # The app broke off mid-response: count what the client was told.
                status["counted"] = True
                metrics.requests[(method, route, str(status["code"]))] += 1
        finally:
            metrics.in_flight -= 1

    async def _buffer_body(self, scope: Scope, receive: Receive) -> Receive | _Gone | None:
        """A receive() that replays the whole body, None when it is over the limit, or
        ``_Gone`` when the client left before sending all of it."""
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        # A declared length over the limit is refused without reading the body.
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            return None
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS") and length is None:
            return receive
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return _Gone(size, length)
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body_bytes:
                return None
            chunks.append(body)
            if not message.get("more_body", False):
                break
        payload = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return await receive()

        return replay


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data, "more_body": False})
