"""The reference payments API: a FastAPI app over a SQLite store and the behaviour model.

Every route runs its business work inside ``Runtime.service(route)``: wait for a slot of
the route group's capacity (an asyncio semaphore, FIFO), sleep the sampled service time,
maybe answer with an injected fault, then do the real work. Rejected input (bad JSON, bad
fields, wrong webhook authorization) is answered before that, without service time.
Every error body is JSON: ``{"error": "<code>", "message": "<what and how to fix>"}``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from harness.target import TARGET_VERSION, db
from harness.target.auth import is_authorized, webhook_authorization
from harness.target.cache import PlanCache
from harness.target.metrics import (
    CONTENT_TYPE,
    METRICS_PATH,
    UNMATCHED_ROUTE,
    ASGIApp,
    Message,
    Metrics,
    ObservedApp,
    Receive,
    Scope,
    Send,
)
from harness.target.settings import SERVICES, TargetSettings

MAX_BODY_BYTES = 64 * 1024
FINAL_STATES = ("COMPLETED", "FAILED")
HANDLED_EVENTS = ("checkout.order.completed", "checkout.order.failed")
# PhonePe's rule for merchantOrderId: at most 63 of [A-Za-z0-9_-].
MERCHANT_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
log = logging.getLogger("paybench.target")


def iso(epoch_s: float | None) -> str | None:
    """Epoch seconds -> ISO-8601 UTC with milliseconds and a Z."""
    if epoch_s is None:
        return None
    return (
        datetime.fromtimestamp(epoch_s, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


class InjectedFault(Exception):
    """Raised inside a service slot when the model injects an error."""


class ProviderUnavailable(Exception):
    """The simulated PhonePe is down (``down: [payment]``)."""


@dataclass(frozen=True)
class PayResult:
    order_id: str
    psp_state: str  # the state PhonePe will reach
    psp_final_at: float  # epoch seconds when it reaches it


class SimulatedPhonePe:
    """PhonePe's /checkout/v2/pay and order-status calls, in process, with their own latency.

    The payer's outcome is drawn at pay time from its own seeded generator and kept with
    the order, so it does not depend on how many latency draws other requests made.
    """

    def __init__(self, settings: TargetSettings) -> None:
        self.settings = settings
        self._latency_rng = random.Random(f"{settings.seed}:phonepe-latency")
        self._outcome_rng = random.Random(f"{settings.seed}:payment-outcomes")

    async def _call(self, name: str) -> float:
        started = time.perf_counter()
        delay_ms = self.settings.phonepe[name].sample_ms(self._latency_rng, self.settings.slowdown)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        if "payment" in self.settings.down:
            raise ProviderUnavailable
        return (time.perf_counter() - started) * 1000.0

    async def pay(self, created_at: float, expire_at: float) -> PayResult:
        await self._call("pay")
        model = self.settings.payment
        # Shaped like PhonePe's ids (OMO + time + digits); unique, not seeded.
        order_id = (
            "OMO"
            + datetime.fromtimestamp(created_at, UTC).strftime("%y%m%d%H%M%S")
            + (f"{secrets.randbelow(10**10):010d}")
        )
        if self._outcome_rng.random() < model.abandon_ratio:
            return PayResult(order_id, "FAILED", expire_at)
        payer_s = model.payer_time.sample_ms(self._outcome_rng) / 1000.0
        state = "COMPLETED" if self._outcome_rng.random() < model.success_ratio else "FAILED"
        return PayResult(order_id, state, min(created_at + payer_s, expire_at))

    async def order_status(self, order: db.Order) -> str:
        await self._call("order_status")
        return order.psp_state if time.time() >= order.psp_final_at else "PENDING"

    async def health(self) -> float:
        return await self._call("health")


def burn_cpu(cpu_ms: float) -> None:
    """Spin on this thread until it has used ``cpu_ms`` of CPU time (not wall time, so a busy
    machine does not shorten it): a CPU-bound handler holding the event loop and the GIL."""
    end = time.thread_time() + cpu_ms / 1000.0
    while time.thread_time() < end:
        pass


def share_draw(seed: int, name: str, item: str) -> float:
    """A number in [0, 1) fixed by (seed, name, item): the same order always draws the same,
    whatever else the target did before it."""
    digest = hashlib.sha256(f"{seed}:{name}:{item}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class Runtime:
    """Everything the routes share: settings, store, cache, counters, the model's state."""

    def __init__(
        self,
        settings: TargetSettings,
        store: db.Store,
        cache: PlanCache,
        metrics: Metrics,
        webhook_auth: str,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.cache = cache
        self.phonepe = SimulatedPhonePe(settings)
        self.webhook_auth = webhook_auth
        # One FIFO queue per route group (asyncio primitives bind to a loop only when used).
        self.semaphores = {
            group: asyncio.Semaphore(limit)
            for group, limit in settings.capacity.items()
            if limit is not None
        }
        self._latency_rng = random.Random(f"{settings.seed}:service-time")
        self._fault_rng = random.Random(f"{settings.seed}:faults")
        self._email_rng = random.Random(f"{settings.seed}:email-latency")
        self._started = time.monotonic()  # fault.from_s / until_s count from here

    def down(self, service: str) -> bool:
        return service in self.settings.down

    @asynccontextmanager
    async def service(self, route: str) -> AsyncIterator[None]:
        """Hold a slot of the route's group for the sampled service time, then the work."""
        model = self.settings.routes[route]
        group = model.group
        semaphore = self.semaphores.get(group)
        queued = self.metrics.queued.labels(group)
        in_service = self.metrics.in_service.labels(group)
        if semaphore is not None:
            queued.inc()
            try:
                await semaphore.acquire()
            finally:
                queued.dec()
        in_service.inc()
        try:
            delay_ms = model.latency.sample_ms(self._latency_rng, self.settings.slowdown)
            error_rate = self.settings.route_error_rate(route, time.monotonic() - self._started)
            fault = error_rate > 0 and self._fault_rng.random() < error_rate
            if delay_ms > 0:
                await asyncio.sleep(delay_ms / 1000.0)
            if model.cpu_ms > 0:
                burn_cpu(model.cpu_ms)
            if fault:
                self.metrics.injected_faults.labels(route).inc()
                raise InjectedFault(route)
            yield
        finally:
            in_service.dec()
            if semaphore is not None:
                semaphore.release()

    async def plans(self) -> list[dict[str, Any]]:
        """The active plans, through the cache (straight from the database when redis is
        down). With ``cache.plans_ttl_s`` 0 nothing is stored, so every read misses."""
        use_cache = not self.down("redis")
        if use_cache:
            cached = await self.cache.get("plans")
            self.metrics.cache_lookup(hit=cached is not None)
            if cached is not None:
                return list(cached)
        if self.down("database"):
            raise DatabaseDown
        plans = await self.store.run(db.list_plans)
        if use_cache:
            await self.cache.set("plans", plans, self.settings.plans_ttl_s)
        return plans

    async def finalize(
        self,
        merchant_order_id: str,
        state: str,
        source: str,
        event: str | None = None,
        amount: int | None = None,
    ) -> db.Finalized:
        """Move the order (once), count what happened and send its confirmation email."""
        skip = share_draw(self.settings.seed, "email-skip", merchant_order_id)
        write_email = skip >= self.settings.email.skip_share
        done = await self.store.run(
            db.finalize_order, merchant_order_id, state, source, event, amount, write_email
        )
        if done.result == "processed":
            self.metrics.transitions.labels(done.order.state, source).inc()
            if done.order.state == "COMPLETED":
                self.metrics.payments_completed.inc()
        if done.email_written:
            self.metrics.emails_written.inc()
            await self.send_email(merchant_order_id)
        return done

    async def send_email(self, merchant_order_id: str) -> None:
        """The simulated send of a confirmation email from the outbox. With ``email`` down
        it stays in the outbox, unsent."""
        if self.down("email"):
            return
        delay_ms = self.settings.email.send.sample_ms(self._email_rng, self.settings.slowdown)
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000.0)
        await self.store.run(db.mark_email_sent, merchant_order_id)
        self.metrics.emails_sent.inc()


class DatabaseDown(Exception):
    """The model marks the database down (``down: [database]``)."""


def order_json(order: db.Order) -> dict[str, Any]:
    return {
        "merchant_order_id": order.merchant_order_id,
        "order_id": order.order_id,
        "state": order.state,
        "amount": order.amount,
        "currency": order.currency,
        "plan_id": order.plan_id,
        "user_id": order.user_id,
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
        "completed_at": iso(order.completed_at),
        "expire_at": iso(order.expire_at),
        "confirmed_by": order.confirmed_by,
    }


def initiate_json(order: db.Order) -> dict[str, Any]:
    return {
        "merchant_order_id": order.merchant_order_id,
        "order_id": order.order_id,
        "state": order.state,
        "amount": order.amount,
        "currency": order.currency,
        "plan_id": order.plan_id,
        # A host under .invalid: a simulated pay page that nothing can reach by accident.
        "redirect_url": f"https://phonepe.invalid/checkout/v2/pay/{order.order_id}",
        "expire_at": iso(order.expire_at),
    }


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]}... does not fit a double")
    return value


def _parse_json(raw: bytes) -> Any:
    """The document, or ``_MALFORMED`` for anything that is not strict JSON paybench can hold:
    bad syntax or UTF-8, NaN/Infinity (Python's extension), a number that overflows a
    double, an integer of more digits than Python converts (4300: a ValueError, not a
    JSONDecodeError), nesting deeper than the recursion limit."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return _MALFORMED


_MALFORMED = object()


# The model's name of each route, by the path it is served on (latency_factor's groups).
ROUTE_OF_PATH = {
    "/api/health": "health",
    "/api/health/database": "health_database",
    "/api/health/redis": "health_redis",
    "/api/payments/v2/health": "payments_health",
    "/api/plans": "plans",
    "/api/payments/v2/initiate": "initiate",
    "/api/payments/v2/status/{merchant_order_id}": "status",
    "/api/payments/v2/webhook": "webhook",
    "/api/subscriptions/current": "subscriptions",
}


class LatencyFactorApp:
    """ASGI wrapper: each response starts ``factor`` times as late as the app had it ready.

    The time from the request reaching the app to its response starting is measured and
    the start held back by (factor - 1) times it, so whatever the app spends (queueing,
    service time, the database, the framework) grows by the factor; only what happens
    before the app (the socket, HTTP parsing) and in the client does not. The wait comes
    after the work, outside the route group's capacity slot: the queueing stays as it was.
    ``clock`` (seconds) and ``sleep`` are the event loop's, or a test's.
    """

    def __init__(
        self,
        app: ASGIApp,
        factor_of: Callable[[Scope], float],
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.app = app
        self.factor_of = factor_of
        self.clock = clock
        self.sleep = sleep

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        factor = self.factor_of(scope) if scope["type"] == "http" else 1.0
        if factor == 1.0:
            await self.app(scope, receive, send)
            return
        started = self.clock()

        async def held_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra_s = (factor - 1.0) * (self.clock() - started)
                if extra_s > 0:
                    await self.sleep(extra_s)
            await send(message)

        await self.app(scope, receive, held_send)


def create_app(
    settings: TargetSettings,
    store: db.Store,
    cache: PlanCache,
    webhook_credentials: tuple[str, str],
) -> ASGIApp:
    """The ASGI app: FastAPI routes wrapped by the counting, body-capping ``ObservedApp``
    and, when the model sets a ``latency_factor`` above 1, by ``LatencyFactorApp``."""
    metrics = Metrics(settings.capacity)
    store.observe = metrics.observe_query
    metrics.watch_pool(store.pool_stats)
    rt = Runtime(settings, store, cache, metrics, webhook_authorization(*webhook_credentials))
    app = FastAPI(
        title="paybench reference target",
        version=TARGET_VERSION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = rt

    @app.exception_handler(InjectedFault)
    async def injected(_: Request, exc: InjectedFault) -> JSONResponse:
        return error(
            500,
            "injected_fault",
            f"error injected by the target model on route '{exc}' (error_rate)",
        )

    @app.exception_handler(DatabaseDown)
    async def database_down(_: Request, __: DatabaseDown) -> JSONResponse:
        return error(
            503,
            "database_unavailable",
            "the database is down (target model: down includes database)",
        )

    @app.exception_handler(ProviderUnavailable)
    async def provider_down(_: Request, __: ProviderUnavailable) -> JSONResponse:
        return error(
            502,
            "payment_provider_unavailable",
            "PhonePe is unreachable (target model: down includes payment)",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error(404, "not_found", f"no route {request.method} {request.url.path}")
        if exc.status_code == 405:
            return error(
                405, "method_not_allowed", f"{request.method} is not allowed on {request.url.path}"
            )
        return error(exc.status_code, "http_error", str(exc.detail))

    @app.exception_handler(Exception)
    async def crashed(_: Request, __: Exception) -> JSONResponse:
        # The traceback goes to the log (ObservedApp), never into the response.
        return error(500, "internal_error", "the target failed on this request; see its log")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error(400, "invalid_request", "; ".join(str(e.get("msg")) for e in exc.errors()))

    # --- health -------------------------------------------------------------------------

    @app.get("/api/health")
    async def health() -> JSONResponse:
        async with rt.service("health"):
            # PhonePe is not called here (that is /api/payments/v2/health): this check stays
            # a few milliseconds, as load balancers expect.
            services = {name: "unhealthy" if rt.down(name) else "healthy" for name in SERVICES}
            if services["database"] == "healthy":
                try:
                    await asyncio.wait_for(store.run(db.select_one), timeout=2.0)
                except Exception:  # a failing database is what this endpoint reports
                    log.exception("health: database query failed")
                    services["database"] = "unhealthy"
            if services["redis"] == "healthy":
                try:
                    await asyncio.wait_for(rt.cache.ping(), timeout=2.0)
                except Exception:  # a failing Redis too
                    log.exception("health: cache ping failed")
                    services["redis"] = "unhealthy"
            healthy = all(state == "healthy" for state in services.values())
            body = {
                "status": "healthy" if healthy else "unhealthy",
                "timestamp": iso(time.time()),
                "version": TARGET_VERSION,
                "services": services,
            }
            return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/api/health/database")
    async def health_database() -> JSONResponse:
        async with rt.service("health_database"):
            if rt.down("database"):
                return JSONResponse(
                    {"status": "unhealthy", "error": "database marked down by the target model"},
                    status_code=503,
                )
            started = time.perf_counter()
            try:
                info = await asyncio.wait_for(store.run(db.ping), timeout=2.0)
            except Exception as exc:
                log.exception("health: database query failed")
                return JSONResponse(
                    {"status": "unhealthy", "error": f"query failed: {type(exc).__name__}"},
                    status_code=503,
                )
            latency_ms = round((time.perf_counter() - started) * 1000.0, 3)
            return JSONResponse({"status": "healthy", "latency_ms": latency_ms, **info})

    @app.get("/api/health/redis")
    async def health_redis() -> JSONResponse:
        async with rt.service("health_redis"):
            if rt.down("redis"):
                return JSONResponse(
                    {"status": "unhealthy", "error": "cache marked down by the target model"},
                    status_code=503,
                )
            try:
                await asyncio.wait_for(rt.cache.ping(), timeout=2.0)
                keys = await asyncio.wait_for(rt.cache.size(), timeout=2.0)
            except Exception as exc:
                log.exception("health: cache ping failed")
                return JSONResponse(
                    {"status": "unhealthy", "error": f"ping failed: {type(exc).__name__}"},
                    status_code=503,
                )
            lookups = metrics.cache_hits + metrics.cache_misses
            return JSONResponse(
                {
                    "status": "healthy",
                    "kind": rt.cache.kind,
                    "keys": keys,
                    "hits": metrics.cache_hits,
                    "misses": metrics.cache_misses,
                    "hit_rate": round(metrics.cache_hits / lookups, 4) if lookups else None,
                }
            )

    @app.get("/api/payments/v2/health")
    async def health_payments() -> JSONResponse:
        async with rt.service("payments_health"):
            try:
                latency_ms = await rt.phonepe.health()
            except ProviderUnavailable:
                return JSONResponse(
                    {
                        "status": "unhealthy",
                        "provider": "phonepe",
                        "mode": "simulated",
                        "error": "PhonePe marked down by the target model",
                    },
                    status_code=503,
                )
            return JSONResponse(
                {
                    "status": "healthy",
                    "provider": "phonepe",
                    "mode": "simulated",
                    "latency_ms": round(latency_ms, 3),
                }
            )

    # --- catalogue, checkout ------------------------------------------------------------

    @app.get("/api/plans")
    async def plans() -> JSONResponse:
        async with rt.service("plans"):
            return JSONResponse({"plans": await rt.plans()})

    @app.post("/api/payments/v2/initiate")
    async def initiate(request: Request) -> JSONResponse:
        body = _parse_json(await request.body())
        if body is _MALFORMED:
            return error(
                400,
                "malformed_json",
                'the body is not valid JSON; send {"plan_id": ..., "user_id": ...}',
            )
        if not isinstance(body, dict):
            return error(
                400,
                "invalid_request",
                'the body must be a JSON object {"plan_id": ..., "user_id": ...}',
            )
        plan_id, user_id = body.get("plan_id"), body.get("user_id")
        if not isinstance(plan_id, str) or not plan_id or len(plan_id) > 64:
            return error(
                422,
                "invalid_field",
                "plan_id must be a non-empty string (an id from GET /api/plans)",
                field="plan_id",
            )
        if isinstance(user_id, int) and not isinstance(user_id, bool):
            user_id = str(user_id)
        if not isinstance(user_id, str) or not user_id or len(user_id) > 64:
            return error(
                422,
                "invalid_field",
                "user_id must be a string of 1-64 characters or an integer",
                field="user_id",
            )
        # Input is checked before taking a service slot: a rejected request costs no
        # service time, as in a real validation layer.
        key = request.headers.get("idempotency-key")
        if key is not None and not (0 < len(key) <= 255):
            return error(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 characters")
        async with rt.service("initiate"):
            plan = next((p for p in await rt.plans() if p["id"] == plan_id), None)
            if plan is None:
                return error(
                    422,
                    "unknown_plan",
                    f"no plan '{plan_id}'; GET /api/plans lists the plans",
                    field="plan_id",
                )
            if rt.down("database"):
                raise DatabaseDown
            if key is not None:
                # The key is reserved in its own transaction before PhonePe is called, so a
                # concurrent retry is told "in progress" instead of paying a second time.
                request_hash = hashlib.sha256(json.dumps([plan_id, user_id]).encode()).hexdigest()
                outcome, existing = await store.run(db.reserve_idempotency_key, key, request_hash)
                if outcome == "replay":
                    order = await store.run(db.get_order, existing)
                    # insert_order writes the order and the key's order id in one
                    # transaction, and orders are never deleted: a replayed key has its order.
                    assert order is not None
                    return JSONResponse(
                        initiate_json(order),
                        status_code=201,
                        headers={"Idempotent-Replayed": "true"},
                    )
                if outcome == "mismatch":
                    return error(
                        422,
                        "idempotency_key_reused",
                        "this Idempotency-Key was used with another body; use a new key",
                    )
                if outcome == "in_progress":
                    return error(
                        409,
                        "idempotency_key_in_progress",
                        "a request with this Idempotency-Key is still in progress; retry later",
                    )
            try:
                created = time.time()
                expire_at = created + settings.payment.expire_after_s
                pay = await rt.phonepe.pay(created, expire_at)
                order = db.Order(
                    # Not from the seeded generator: ids stay unique across restarts on a kept --db.
                    merchant_order_id="PB" + uuid.uuid4().hex,
                    order_id=pay.order_id,
                    user_id=user_id,
                    plan_id=plan_id,
                    amount=plan["amount"],
                    currency=plan["currency"],
                    state="PENDING",
                    created_at=created,
                    updated_at=created,
                    expire_at=expire_at,
                    completed_at=None,
                    confirmed_by=None,
                    psp_state=pay.psp_state,
                    psp_final_at=pay.psp_final_at,
                )
                await store.run(db.insert_order, order, key)
            except BaseException:
                if key is not None:
                    # A retry with the same key must be able to succeed.
                    await store.run(db.release_idempotency_key, key)
                raise
            return JSONResponse(initiate_json(order), status_code=201)

    @app.get("/api/payments/v2/status/{merchant_order_id}")
    async def status(merchant_order_id: str) -> JSONResponse:
        async with rt.service("status"):
            if rt.down("database"):
                raise DatabaseDown
            order = None
            if MERCHANT_ORDER_ID.match(merchant_order_id):
                order = await store.run(db.get_order, merchant_order_id)
            if order is None:
                return error(404, "order_not_found", f"no order '{merchant_order_id}'")
            if order.state == "PENDING" and not rt.down("payment"):
                # No webhook yet: reconcile with PhonePe's order status, as the docs ask.
                psp_state = await rt.phonepe.order_status(order)
                if psp_state in FINAL_STATES:
                    done = await rt.finalize(merchant_order_id, psp_state, "reconciliation")
                    order = done.order
            return JSONResponse(order_json(order))

    @app.post("/api/payments/v2/webhook")
    async def webhook(request: Request) -> JSONResponse:
        # Authorization first: a forged delivery does not even get its body parsed.
        if not is_authorized(request.headers.get("authorization"), rt.webhook_auth):
            return error(
                401,
                "unauthorized",
                "missing or wrong Authorization header: expected sha256hex(username:password)",
            )
        body = _parse_json(await request.body())
        if body is _MALFORMED:
            return error(400, "malformed_json", "the body is not valid JSON")
        problem = _webhook_problem(body)
        if problem:
            return error(400, "invalid_webhook", problem)
        event, payload = body["event"], body["payload"]
        merchant_order_id, state, amount = (
            payload["merchantOrderId"],
            payload["state"],
            payload["amount"],
        )
        async with rt.service("webhook"):
            # PhonePe: decide on payload.state; acknowledge what needs no action, or it retries.
            if event not in HANDLED_EVENTS or state not in FINAL_STATES:
                metrics.webhooks.labels("ignored").inc()
                return JSONResponse(
                    {
                        "result": "ignored",
                        "message": f"event {event!r} with state {state!r} needs no action",
                    }
                )
            if rt.down("database"):
                raise DatabaseDown
            order = await store.run(db.get_order, merchant_order_id)
            if order is None:
                metrics.webhooks.labels("unknown_order").inc()
                return error(
                    404, "unknown_order", f"no order '{merchant_order_id}'; nothing was written"
                )
            if amount != order.amount:
                metrics.webhooks.labels("amount_mismatch").inc()
                return error(
                    409,
                    "amount_mismatch",
                    f"payload amount {amount} differs from the order's {order.amount} paise; "
                    "nothing was written",
                )
            order_id = payload.get("orderId")
            if order_id is not None and order_id != order.order_id:
                metrics.webhooks.labels("order_id_mismatch").inc()
                return error(
                    409,
                    "order_id_mismatch",
                    f"payload orderId {order_id!r} is not this order's; nothing was written",
                )
            done = await rt.finalize(merchant_order_id, state, "webhook", event, amount)
            metrics.webhooks.labels(done.result).inc()
            return JSONResponse(
                {
                    "result": done.result,
                    "merchant_order_id": merchant_order_id,
                    "state": done.order.state,
                }
            )

    @app.get("/api/subscriptions/current")
    async def current_subscription(request: Request) -> JSONResponse:
        user_id = request.query_params.get("user_id")
        if not user_id or len(user_id) > 64:
            return error(400, "invalid_request", "give ?user_id=<1-64 characters>")
        async with rt.service("subscriptions"):
            if rt.down("database"):
                raise DatabaseDown
            sub = await store.run(db.current_subscription, user_id)
            if sub is None:
                return error(
                    404, "no_active_subscription", f"user '{user_id}' has no active subscription"
                )
            return JSONResponse(
                {
                    "user_id": sub.user_id,
                    "plan_id": sub.plan_id,
                    "status": sub.status,
                    "merchant_order_id": sub.merchant_order_id,
                    "started_at": iso(sub.started_at),
                    "expires_at": iso(sub.expires_at),
                }
            )

    @app.get(METRICS_PATH)
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    routes = list(app.router.routes)

    def route_of(scope: Scope) -> str:
        partial = None
        # starlette's BaseRoute declares no path; every route of this app (APIRoute) has one.
        for route in routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route.path  # type: ignore[attr-defined]
            if match == Match.PARTIAL and partial is None:
                partial = route.path  # type: ignore[attr-defined]
        return partial or UNMATCHED_ROUTE

    def log_exception(exc: BaseException) -> None:
        log.error("unhandled error", exc_info=exc)

    observed = ObservedApp(app, metrics, route_of, MAX_BODY_BYTES, log_exception)
    if all(f == 1.0 for f in settings.latency_factor.values()):
        return observed

    def factor_of(scope: Scope) -> float:
        route = ROUTE_OF_PATH.get(route_of(scope))
        return 1.0 if route is None else settings.route_latency_factor(route)

    return LatencyFactorApp(observed, factor_of)


def _webhook_problem(body: Any) -> str | None:
    """What is wrong with a webhook body, or None. Extra fields are fine (PhonePe adds some)."""
    if not isinstance(body, dict):
        return 'the body must be a JSON object {"event": ..., "payload": {...}}'
    if not isinstance(body.get("event"), str) or not body["event"]:
        return "'event' must be a non-empty string"
    payload = body.get("payload")
    if not isinstance(payload, dict):
        return "'payload' must be an object"
    if not isinstance(payload.get("merchantOrderId"), str) or not payload["merchantOrderId"]:
        return "'payload.merchantOrderId' must be a non-empty string"
    if not isinstance(payload.get("state"), str) or not payload["state"]:
        return "'payload.state' must be a non-empty string"
    amount = payload.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int):
        return "'payload.amount' must be an integer (paise)"
    if (
        "orderId" in payload
        and payload["orderId"] is not None
        and not isinstance(payload["orderId"], str)
    ):
        return "'payload.orderId' must be a string"
    return None
