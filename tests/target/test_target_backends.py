"""The reference target on PostgreSQL and Redis (real servers, tests/servers.py), and the
server-side series every backend exposes: cache hits and misses, query times, the pool,
emails per completed payment, CPU."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from harness.target import DATABASE_URL_ENV, REDIS_URL_ENV
from harness.target.app import share_draw
from harness.target.process import ReferenceTarget
from harness.target.servers import Server, free_port
from harness.target.stack import running_stack
from tests.servers import need
from tests.target.conftest import AUTH, SLOW_PAYER, Running, webhook_body
from tests.target.test_target_concurrency import _burst

# The journey must not outlive the cached catalogue, however slow the machine.
LONG_TTL = {"cache.plans_ttl_s": 3600}
SETS = [f"{key}={value}" for key, value in SLOW_PAYER.items()]


@pytest.fixture
def fresh_database(postgres_server: Server) -> Callable[[], str]:
    """A new, empty database on the session's PostgreSQL for each target."""

    def make() -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        admin = postgres_server.url.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return postgres_server.url.rsplit("/", 1)[0] + "/" + name

    return make


def delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def complete(running: Running, order: dict[str, object], state: str = "COMPLETED") -> None:
    body = webhook_body(str(order["merchant_order_id"]), int(str(order["amount"])), state)
    response = running.http.post("/api/payments/v2/webhook", json=body, headers=AUTH)
    assert response.json()["result"] == "processed", response.text


def test_a_checkout_journey_on_postgresql_and_redis(
    start_target: Callable[..., Running],
    fresh_database: Callable[[], str],
    redis_server: Server,
    request: pytest.FixtureRequest,
) -> None:
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/1"  # a Redis database of its own
    running = start_target(
        {**SLOW_PAYER, **LONG_TTL, "database.pool_size": 3},
        database_url=fresh_database(),
        redis_url=redis_url,
    )
    health = running.http.get("/api/health/database").json()
    assert (health["backend"], health["plans"]) == ("postgresql", 3)
    client = redis.Redis.from_url(redis_url)
    request.addfinalizer(client.close)
    redis_before = client.info("stats")
    before = running.metrics()
    for _ in range(3):
        assert len(running.http.get("/api/plans").json()["plans"]) == 3
    orders = [running.initiate("pro-monthly", f"pg-user-{i}") for i in range(3)]
    complete(running, orders[0])
    complete(running, orders[1])
    complete(running, orders[2], "FAILED")
    for order in orders:
        assert running.http.get(f"/api/payments/v2/status/{order['merchant_order_id']}").is_success
    sub = running.http.get("/api/subscriptions/current", params={"user_id": "pg-user-0"})
    assert sub.json()["merchant_order_id"] == orders[0]["merchant_order_id"]
    redis_health = running.http.get("/api/health/redis").json()
    assert (redis_health["kind"], redis_health["keys"]) == ("redis", 1)
    after = running.metrics()
    redis_after = client.info("stats")

    # The catalogue: one miss on the empty Redis, then hits (3 plans reads + 3 initiates).
    assert delta(before, after, "payments_cache_misses_total") == 1
    assert delta(before, after, "payments_cache_hits_total") == 5
    assert delta(before, after, "paybench_target_cache_hits_total") == 5
    # Redis's own count agrees (the health check's PING and DBSIZE are no key reads).
    for stat in ("keyspace_hits", "keyspace_misses"):
        assert redis_after[stat] - redis_before[stat] == (5 if stat == "keyspace_hits" else 1)
    cached = client.get("paybench:target:plans")
    assert cached is not None and len(json.loads(cached)) == 3
    # Emails per completed payment: one each, sent, in PostgreSQL's outbox.
    assert delta(before, after, "payments_completed_total") == 2
    assert delta(before, after, "payments_emails_sent_total") == 2
    assert running.query("SELECT count(*) FROM email_outbox WHERE sent_at IS NOT NULL") == [(2,)]
    assert running.query("SELECT count(*) FROM orders") == [(3,)]
    # Query times by operation, and the pool: its max is the setting, all opened.
    histogram = "payments_db_query_duration_seconds_count"
    assert delta(before, after, f'{histogram}{{operation="insert_order"}}') == 3
    assert delta(before, after, f'{histogram}{{operation="finalize_order"}}') == 3
    assert after[f'{histogram}{{operation="list_plans"}}'] >= 1
    assert after["db_client_connection_max"] == 3
    used, idle = (
        after['db_client_connection_count{state="used"}'],
        after['db_client_connection_count{state="idle"}'],
    )
    assert used + idle == 3
    assert after["process_resident_memory_bytes"] > 0


def test_the_urls_also_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, fresh_database: Callable[[], str], redis_server: Server
) -> None:
    """How `paybench run` starts the built-in target on real back ends (and `make stack`)."""
    monkeypatch.setenv(DATABASE_URL_ENV, fresh_database())
    monkeypatch.setenv(REDIS_URL_ENV, redis_server.url.rsplit("/", 1)[0] + "/2")
    with ReferenceTarget() as target:
        database = httpx.get(target.url + "/api/health/database").json()
        cache = httpx.get(target.url + "/api/health/redis").json()
    assert (database["backend"], cache["kind"]) == ("postgresql", "redis")


def test_exactly_once_holds_on_postgresql(
    start_target: Callable[..., Running], fresh_database: Callable[[], str]
) -> None:
    """READ COMMITTED, not SQLite's one writer at a time: the conditional UPDATE and the
    ON CONFLICT inserts still let exactly one of many concurrent requests win."""
    running = start_target(SLOW_PAYER, database_url=fresh_database())
    order = running.initiate("pro-yearly", "pg-burst")
    moid = order["merchant_order_id"]
    body = webhook_body(moid, order["amount"])
    hooks = asyncio.run(
        _burst(running.url, 20, "POST", "/api/payments/v2/webhook", json=body, headers=AUTH)
    )
    assert Counter(r.json()["result"] for r in hooks) == {"processed": 1, "duplicate": 19}
    assert running.query("SELECT count(*) FROM email_outbox WHERE merchant_order_id = ?", moid) == [
        (1,)
    ]
    key = {"Idempotency-Key": "pg-key-1"}
    pay = {"plan_id": "basic-monthly", "user_id": "pg-idem"}
    initiates = asyncio.run(
        _burst(running.url, 20, "POST", "/api/payments/v2/initiate", json=pay, headers=key)
    )
    statuses = Counter(r.status_code for r in initiates)
    assert set(statuses) <= {201, 409} and statuses[201] >= 1, statuses
    assert running.query("SELECT count(*) FROM orders WHERE user_id = 'pg-idem'") == [(1,)]
    assert len({r.json()["merchant_order_id"] for r in initiates if r.status_code == 201}) == 1


def test_skipped_emails_a_cache_that_always_misses_and_a_cpu_heavy_route(
    start_target: Callable[..., Running],
) -> None:
    running = start_target(
        {
            **SLOW_PAYER,
            "email.skip_share": 1.0,
            "cache.plans_ttl_s": 0,
            "routes.plans.cpu_ms": 50,
            "database.pool_size": 2,
        }
    )
    before = running.metrics()
    for _ in range(4):
        assert running.http.get("/api/plans").is_success
    complete(running, running.initiate("basic-monthly", "no-mail"))
    after = running.metrics()
    assert delta(before, after, "payments_cache_misses_total") == 5  # 4 reads + 1 initiate
    assert delta(before, after, "payments_cache_hits_total") == 0
    assert delta(before, after, "payments_completed_total") == 1
    assert delta(before, after, "payments_emails_sent_total") == 0
    assert delta(before, after, "paybench_target_emails_total") == 0
    assert running.query("SELECT count(*) FROM email_outbox") == [(0,)]
    # 4 requests that each burn 50 ms of the process's CPU time: at least 0.2 s of it.
    assert delta(before, after, "process_cpu_seconds_total") >= 0.2
    assert after["db_client_connection_max"] == 2


def test_with_email_down_the_outbox_keeps_the_email_unsent(
    start_target: Callable[..., Running],
) -> None:
    running = start_target({**SLOW_PAYER, "down": ["email"]})
    before = running.metrics()
    complete(running, running.initiate("basic-monthly", "mail-down"))
    after = running.metrics()
    assert delta(before, after, "payments_completed_total") == 1
    assert delta(before, after, "paybench_target_emails_total") == 1
    assert delta(before, after, "payments_emails_sent_total") == 0
    assert running.query("SELECT count(*) FROM email_outbox WHERE sent_at IS NULL") == [(1,)]


def test_the_email_skip_draw_is_a_fixed_share_of_orders() -> None:
    draws = [share_draw(1, "email-skip", f"PB{i:032x}") for i in range(2000)]
    assert draws == [share_draw(1, "email-skip", f"PB{i:032x}") for i in range(2000)]
    assert 0.27 < sum(d < 0.3 for d in draws) / len(draws) < 0.33


@pytest.mark.parametrize(
    ("option", "url", "message"),
    [
        ("--database-url", "postgresql://nobody@127.0.0.1:{port}/x", "cannot connect"),
        ("--database-url", "sqlite:///state.db", "give postgresql://USER@HOST:PORT/DB"),
        ("--redis-url", "redis://127.0.0.1:{port}/0", "no answer to PING"),
    ],
)
def test_an_unreachable_backend_is_one_line_and_exit_2(option: str, url: str, message: str) -> None:
    command = [sys.executable, "-m", "harness.target", "--port", "0"]
    done = subprocess.run(
        [*command, option, url.format(port=free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and option in lines[0], lines


def test_the_stack_serves_the_target_to_prometheus(tmp_path: Path) -> None:
    """`make stack --serve`'s wiring: Prometheus scrapes the target's prometheus_client page
    (so the exposition is one a real Prometheus takes) and sees a skipped email."""
    for name in ("redis-server", "postgres", "prometheus", "prometheus-node-exporter",
                 "prometheus-redis-exporter"):  # fmt: skip
        need(name)
    with running_stack(tmp_path, [*SETS, "email.skip_share=1.0"], own_target=True) as urls:
        assert urls.target is not None
        with httpx.Client(base_url=urls.target, timeout=10.0) as http:
            order = http.post(
                "/api/payments/v2/initiate", json={"plan_id": "basic-monthly", "user_id": "stack"}
            ).json()
            body = webhook_body(order["merchant_order_id"], order["amount"])
            assert http.post("/api/payments/v2/webhook", json=body, headers=AUTH).is_success
        query = "payments_completed_total - on() payments_emails_sent_total"
        deadline = time.monotonic() + 30
        value = None
        while time.monotonic() < deadline:
            answer = httpx.get(urls.prometheus + "/api/v1/query", params={"query": query}).json()
            result = answer["data"]["result"]
            value = float(result[0]["value"][1]) if result else None
            if value == 1.0:
                break
            time.sleep(0.2)
        assert value == 1.0  # one completed payment, no email sent


def test_paybench_run_loads_the_built_in_target_on_postgresql_and_redis(
    fresh_database: Callable[[], str], redis_server: Server, tmp_path: Path
) -> None:
    """`paybench run --target-database-url/--target-redis-url`: the journeys land in the real
    database, and run.json says which back ends the run measured (no password in it)."""
    url = fresh_database()
    out = tmp_path / "reports"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--profile",
            "smoke",
            "--run-time",
            "4s",
            "--users",
            "2",
            "--out",
            str(out),
            "--no-history",
            "--target-database-url",
            url,
            "--target-redis-url",
            redis_server.url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode in (0, 1), r.stdout[-3000:] + r.stderr[-3000:]
    (run_dir,) = (out / "runs").iterdir()
    backend = json.loads((run_dir / "run.json").read_text())["extra"]["target_backend"]
    assert backend["database"].startswith("postgresql://") and backend["cache"].startswith(
        "redis://127.0.0.1"
    )
    with psycopg.connect(url) as conn:
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert orders is not None and orders[0] > 0
