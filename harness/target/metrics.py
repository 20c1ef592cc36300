"""The target's metrics, exposed by ``prometheus_client`` in Prometheus text (format 0.0.4).

Each app has a ``CollectorRegistry`` of its own (never the global one), so several apps in
one process (the tests) do not collide. ``paybench_target_requests_total`` is incremented
by ``ObservedApp`` just before the last byte of each response is handed to the server, so
a client that has read a response always finds it counted; every request but ``GET
/metrics`` is counted, whatever its status (404, 413, 500 included). A client that goes
away before its body has arrived gets no response and is not counted: the log says so in
one line. The series under standard names (``payments_*``, OpenTelemetry's
``db_client_connection_*``, the process collector's ``process_*``) are the ones a server
metrics source reads from a production backend.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import ClientDisconnect

UNMATCHED_ROUTE = "unmatched"  # the one route label of every path no route matches
METRICS_PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Database operations take from tens of microseconds (a cached SQLite read) to seconds (a
# PostgreSQL lock wait): buckets from 0.25 ms to 10 s.
QUERY_BUCKETS_S = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
)  # fmt: skip

# The *_created series (each counter's creation time) would double the page for nothing a
# judge reads; this is prometheus_client's own switch, set once for the target process.
disable_created_metrics()

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


@dataclass(frozen=True)
class PoolStats:
    """The database connections of the store now: OpenTelemetry's db.client.connection.*."""

    used: int  # connections running a statement
    idle: int  # open connections waiting for work
    max: int  # the most the store opens
    pending: int  # operations waiting for a connection


class _PoolCollector(Collector):
    """db_client_connection_* read from the store at each scrape."""

    def __init__(self, read: Callable[[], PoolStats]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        stats = self._read()
        count = GaugeMetricFamily(
            "db_client_connection_count",
            "Database connections of the store, by state (used: running a statement).",
            labels=["state"],
        )
        count.add_metric(["used"], stats.used)
        count.add_metric(["idle"], stats.idle)
        yield count
        yield GaugeMetricFamily(
            "db_client_connection_max", "The most connections the store opens.", value=stats.max
        )
        yield GaugeMetricFamily(
            "db_client_connection_pending_requests",
            "Database operations waiting for a connection.",
            value=stats.pending,
        )


class Metrics:
    """The series of one target app, in a registry of its own.

    Counters and gauges are prometheus_client's (thread-safe: the database threads observe
    query times). ``cache_hits`` and ``cache_misses`` are also kept as plain numbers for
    ``/api/health/redis``.
    """

    def __init__(self, groups: Iterable[str] = ()) -> None:
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(
            "paybench_target_requests",
            "Requests served, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "paybench_target_requests_in_flight",
            "Requests being served now (queued included).",
            registry=registry,
        )
        self.queued = Gauge(
            "paybench_target_queue_depth",
            "Requests waiting for capacity, by route group.",
            ["group"],
            registry=registry,
        )
        self.in_service = Gauge(
            "paybench_target_in_service",
            "Requests holding capacity, by route group.",
            ["group"],
            registry=registry,
        )
        for group in sorted(groups):
            # Every group shows, at 0 too: "no queue" is a value, not a missing series.
            self.queued.labels(group)
            self.in_service.labels(group)
        self._hits_legacy = Counter(
            "paybench_target_cache_hits", "Plan cache hits (same as payments_cache_hits).",
            registry=registry,
        )  # fmt: skip
        self._misses_legacy = Counter(
            "paybench_target_cache_misses", "Plan cache misses (same as payments_cache_misses).",
            registry=registry,
        )  # fmt: skip
        self.injected_faults = Counter(
            "paybench_target_injected_faults",
            "Errors injected by error_rate, by route.",
            ["route"],
            registry=registry,
        )
        self.transitions = Counter(
            "paybench_target_order_transitions",
            "Orders moved out of PENDING, by final state and source.",
            ["state", "source"],
            registry=registry,
        )
        self.webhooks = Counter(
            "paybench_target_webhooks",
            "Authenticated webhook deliveries, by result.",
            ["result"],
            registry=registry,
        )
        self.emails_written = Counter(
            "paybench_target_emails",
            "Confirmation emails written to the outbox.",
            registry=registry,
        )
        self._hits = Counter(
            "payments_cache_hits", "Plan cache hits (the in-process cache or Redis).",
            registry=registry,
        )  # fmt: skip
        self._misses = Counter(
            "payments_cache_misses", "Plan cache misses (the in-process cache or Redis).",
            registry=registry,
        )  # fmt: skip
        self.emails_sent = Counter(
            "payments_emails_sent", "Confirmation emails sent.", registry=registry
        )
        self.payments_completed = Counter(
            "payments_completed", "Payments that reached COMPLETED.", registry=registry
        )
        self.query_duration = Histogram(
            "payments_db_query_duration_seconds",
            "Time of each database operation (its statements and transaction), by operation.",
            ["operation"],
            buckets=QUERY_BUCKETS_S,
            registry=registry,
        )
        ProcessCollector(registry=registry)
        self.cache_hits = 0
        self.cache_misses = 0

    def cache_lookup(self, hit: bool) -> None:
        if hit:
            self.cache_hits += 1
            self._hits.inc()
            self._hits_legacy.inc()
        else:
            self.cache_misses += 1
            self._misses.inc()
            self._misses_legacy.inc()

    def observe_query(self, operation: str, seconds: float) -> None:
        """One database operation's time (called from the database threads)."""
        self.query_duration.labels(operation).observe(seconds)

    def watch_pool(self, read: Callable[[], PoolStats]) -> None:
        """Expose the store's connections (``read`` is called at each scrape)."""
        self.registry.register(_PoolCollector(read))

    def value(self, name: str, **labels: str) -> float:
        """One sample's value now (0 when the series has no such sample yet)."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def render(self) -> bytes:
        return generate_latest(self.registry)


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
                    metrics.requests.labels(method, route, str(status["code"])).inc()
            await send(message)

        metrics.in_flight.inc()
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
                metrics.requests.labels(method, route, str(status["code"])).inc()
        finally:
            metrics.in_flight.dec()

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
