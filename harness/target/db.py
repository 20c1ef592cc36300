"""The reference target's state: a real SQLite file in WAL mode.

Every statement runs in a small pool of threads, each with its own connection, so the
event loop never waits on the disk. Writers use ``BEGIN IMMEDIATE`` (the write lock is
taken up front, so two writers never deadlock upgrading a read lock) and ``busy_timeout``.
Exactly-once effects rest on the database, not on Python locks: a webhook event is a row
under a UNIQUE key, and an order leaves PENDING through a conditional UPDATE whose row count
says who won.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import ConfigError
from harness.target.settings import Plan

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS plans (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    amount INTEGER NOT NULL,          -- paise
    currency TEXT NOT NULL,
    period_days INTEGER NOT NULL,
    position INTEGER NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS orders (
    merchant_order_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL UNIQUE,    -- PhonePe's id for the order
    user_id TEXT NOT NULL,
    plan_id TEXT NOT NULL REFERENCES plans(id),
    amount INTEGER NOT NULL,          -- paise
    currency TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('PENDING', 'COMPLETED', 'FAILED')),
    created_at REAL NOT NULL,         -- epoch seconds
    updated_at REAL NOT NULL,
    expire_at REAL NOT NULL,
    completed_at REAL,
    confirmed_by TEXT,                -- 'webhook' or 'reconciliation'
    psp_state TEXT NOT NULL,          -- the simulated PhonePe side: final state ...
    psp_final_at REAL NOT NULL        -- ... and when PhonePe reaches it
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    request_hash TEXT NOT NULL,
    merchant_order_id TEXT,           -- NULL while the first request is in progress
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS order_transitions (
    merchant_order_id TEXT PRIMARY KEY REFERENCES orders(merchant_order_id),
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    source TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_events (
    id INTEGER PRIMARY KEY,
    merchant_order_id TEXT NOT NULL,
    event TEXT NOT NULL,
    state TEXT NOT NULL,
    amount INTEGER NOT NULL,
    result TEXT NOT NULL,
    deliveries INTEGER NOT NULL,
    first_received_at REAL NOT NULL,
    last_received_at REAL NOT NULL,
    UNIQUE (merchant_order_id, event, state)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    merchant_order_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,             -- ACTIVE, SUPERSEDED
    started_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS subscriptions_by_user ON subscriptions (user_id, status);
CREATE TABLE IF NOT EXISTS email_outbox (
    id INTEGER PRIMARY KEY,
    merchant_order_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    template TEXT NOT NULL,
    subject TEXT NOT NULL,
    created_at REAL NOT NULL,
    sent_at REAL
);
"""


@dataclass(frozen=True)
class Order:
    merchant_order_id: str
    order_id: str
    user_id: str
    plan_id: str
    amount: int
    currency: str
    state: str
    created_at: float
    updated_at: float
    expire_at: float
    completed_at: float | None
    confirmed_by: str | None
    psp_state: str
    psp_final_at: float


@dataclass(frozen=True)
class Subscription:
    user_id: str
    plan_id: str
    merchant_order_id: str
    status: str
    started_at: float
    expires_at: float


@dataclass(frozen=True)
class Finalized:
    """What a webhook delivery or a reconciliation did to an order."""

    result: str  # processed, duplicate, already_final
    order: Order
    email_written: bool = False


def connect(path: Path) -> sqlite3.Connection:
    # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # NORMAL is safe with WAL (no corruption; a power cut may lose the last commits) and
    # spares an fsync per transaction.
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def initialize(path: Path, plans: Iterable[Plan]) -> None:
    """Create or check the schema, switch to WAL, write the plan catalogue. Raises ConfigError."""
    try:
        conn = connect(path)
    except sqlite3.OperationalError as exc:
        raise ConfigError(
            f"target database {path}: cannot open it ({exc}); give a writable path"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"target database {path}: not a usable SQLite database ({exc}); give a new path "
            "or a database this target wrote"
        ) from None
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"target database {path}: schema version {version} is newer than this paybench "
                f"supports ({SCHEMA_VERSION}); upgrade paybench or use another --db"
            )
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise ConfigError(f"target database {path}: cannot switch to WAL mode (got {mode})")
        conn.execute("BEGIN IMMEDIATE")
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        # Plans no longer in the model are deactivated, not deleted: orders refer to them.
        conn.execute("UPDATE plans SET active = 0")
        for position, plan in enumerate(plans):
            conn.execute(
                "INSERT INTO plans (id, name, amount, currency, period_days, position, active) "
                "VALUES (?, ?, ?, 'INR', ?, ?, 1) "
                "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                "amount = excluded.amount, period_days = excluded.period_days, "
                "position = excluded.position, active = 1",
                (plan.id, plan.name, plan.amount, plan.period_days, position),
            )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"target database {path}: not a usable SQLite database ({exc}); give a new path or "
            "a database this target wrote"
        ) from None
    finally:
        conn.close()


def _statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction first; run the statements one by one.
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class Store:
    """Runs functions ``fn(conn, *args)`` on a pool of threads with a connection each."""

    # A few threads: WAL readers run side by side; writers wait on SQLite's lock
    # (busy_timeout), never on the event loop.
    def __init__(self, path: Path, threads: int = 4) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="paybench-db")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        return fn(self._conn(), *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(self._call, fn, args))

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


# --- the statements; each takes the thread's connection first ------------------------------


def ping(conn: sqlite3.Connection) -> dict[str, Any]:
    started = time.perf_counter()
    plans = conn.execute("SELECT count(*) FROM plans WHERE active = 1").fetchone()[0]
    orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return {
        "query_ms": round((time.perf_counter() - started) * 1000.0, 3),
        "plans": plans,
        "orders": orders,
        "journal_mode": mode,
    }


def select_one(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT 1").fetchone()[0]


def list_plans(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT id, name, amount, currency, period_days FROM plans "
        "WHERE active = 1 ORDER BY position"
    ).fetchall()
    return [dict(row) for row in rows]


def get_order(conn: sqlite3.Connection, merchant_order_id: str) -> Order | None:
    row = conn.execute(
        "SELECT * FROM orders WHERE merchant_order_id = ?", (merchant_order_id,)
    ).fetchone()
    return Order(**dict(row)) if row is not None else None


def insert_order(conn: sqlite3.Connection, order: Order, idempotency_key: str | None) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO orders (merchant_order_id, order_id, user_id, plan_id, amount, currency, "
            "state, created_at, updated_at, expire_at, completed_at, confirmed_by, psp_state, "
            "psp_final_at) VALUES (:merchant_order_id, :order_id, :user_id, :plan_id, :amount, "
            ":currency, :state, :created_at, :updated_at, :expire_at, :completed_at, "
            ":confirmed_by, :psp_state, :psp_final_at)",
            order.__dict__,
        )
        # The order and its key commit together: a replay never finds a key without its order.
        if idempotency_key is not None:
            conn.execute(
                "UPDATE idempotency_keys SET merchant_order_id = ? WHERE key = ?",
                (order.merchant_order_id, idempotency_key),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def reserve_idempotency_key(
    conn: sqlite3.Connection, key: str, request_hash: str
) -> tuple[str, str | None]:
    """('new' | 'replay' | 'in_progress' | 'mismatch', merchant_order_id of a replay)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT request_hash, merchant_order_id FROM idempotency_keys WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            conn.execute(
                "INSERT INTO idempotency_keys (key, request_hash, merchant_order_id, created_at) "
                "VALUES (?, ?, NULL, ?)",
                (key, request_hash, time.time()),
            )
            outcome: tuple[str, str | None] = ("new", None)
        elif row["request_hash"] != request_hash:
            outcome = ("mismatch", None)
        elif row["merchant_order_id"] is None:
            outcome = ("in_progress", None)
        else:
            outcome = ("replay", row["merchant_order_id"])
        conn.execute("COMMIT")
        return outcome
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def release_idempotency_key(conn: sqlite3.Connection, key: str) -> None:
    """Forget a key whose first request failed, so that a retry can succeed."""
    conn.execute("DELETE FROM idempotency_keys WHERE key = ? AND merchant_order_id IS NULL", (key,))


def finalize_order(
    conn: sqlite3.Connection,
    merchant_order_id: str,
    state: str,
    source: str,
    event: str | None = None,
    amount: int | None = None,
) -> Finalized:
    """Move a PENDING order to ``state`` once; on COMPLETED activate and write one email.

    A webhook delivery (``event`` given) is first recorded under UNIQUE(order, event, state):
    a second delivery finds the row and changes nothing else. The move itself is
    ``UPDATE ... WHERE state = 'PENDING'``: of any number of concurrent callers, exactly one
    sees a row count of 1, and only that one activates the subscription and writes the email.
    """
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    try:
        if event is not None:
            cursor = conn.execute(
                "INSERT INTO webhook_events (merchant_order_id, event, state, amount, result, "
                "deliveries, first_received_at, last_received_at) "
                "VALUES (?, ?, ?, ?, 'received', 1, ?, ?) "
                "ON CONFLICT (merchant_order_id, event, state) DO NOTHING",
                (merchant_order_id, event, state, amount, now, now),
            )
            if cursor.rowcount == 0:
                conn.execute(
                    "UPDATE webhook_events SET deliveries = deliveries + 1, last_received_at = ? "
                    "WHERE merchant_order_id = ? AND event = ? AND state = ?",
                    (now, merchant_order_id, event, state),
                )
                order = get_order(conn, merchant_order_id)
                conn.execute("COMMIT")
                assert order is not None
                return Finalized("duplicate", order)
        moved = conn.execute(
            "UPDATE orders SET state = ?, updated_at = ?, completed_at = ?, confirmed_by = ? "
            "WHERE merchant_order_id = ? AND state = 'PENDING'",
            (state, now, now, source, merchant_order_id),
        ).rowcount
        email = False
        if moved:
            conn.execute(
                "INSERT INTO order_transitions "
                "(merchant_order_id, from_state, to_state, source, at) "
                "VALUES (?, 'PENDING', ?, ?, ?)",
                (merchant_order_id, state, source, now),
            )
            if state == "COMPLETED":
                email = _activate(conn, merchant_order_id, now)
        result = "processed" if moved else "already_final"
        if event is not None:
            conn.execute(
                "UPDATE webhook_events SET result = ? "
                "WHERE merchant_order_id = ? AND event = ? AND state = ?",
                (result, merchant_order_id, event, state),
            )
        order = get_order(conn, merchant_order_id)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    assert order is not None
    return Finalized(result, order, email)


def _activate(conn: sqlite3.Connection, merchant_order_id: str, now: float) -> bool:
    order = conn.execute(
        "SELECT o.user_id, o.plan_id, p.name, p.period_days "
        "FROM orders o JOIN plans p ON p.id = o.plan_id "
        "WHERE o.merchant_order_id = ?",
        (merchant_order_id,),
    ).fetchone()
    conn.execute(
        "UPDATE subscriptions SET status = 'SUPERSEDED' WHERE user_id = ? AND status = 'ACTIVE'",
        (order["user_id"],),
    )
    conn.execute(
        "INSERT INTO subscriptions "
        "(user_id, plan_id, merchant_order_id, status, started_at, expires_at) "
        "VALUES (?, ?, ?, 'ACTIVE', ?, ?)",
        (
            order["user_id"],
            order["plan_id"],
            merchant_order_id,
            now,
            now + order["period_days"] * 86400.0,
        ),
    )
    # UNIQUE(merchant_order_id) is the second guard: never two confirmation emails per order.
    written = conn.execute(
        "INSERT INTO email_outbox (merchant_order_id, user_id, template, subject, created_at) "
        "VALUES (?, ?, 'payment_confirmation', ?, ?) ON CONFLICT (merchant_order_id) DO NOTHING",
        (merchant_order_id, order["user_id"], f"Your {order['name']} subscription is active", now),
    ).rowcount
    return written == 1


def current_subscription(conn: sqlite3.Connection, user_id: str) -> Subscription | None:
    row = conn.execute(
        "SELECT user_id, plan_id, merchant_order_id, status, started_at, expires_at "
        "FROM subscriptions WHERE user_id = ? AND status = 'ACTIVE' AND expires_at > ? "
        "ORDER BY started_at DESC, id DESC LIMIT 1",
        (user_id, time.time()),
    ).fetchone()
    return Subscription(**dict(row)) if row is not None else None
