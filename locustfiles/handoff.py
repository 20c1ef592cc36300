"""The hand-off of orders from checkout users to the PhonePe webhook senders of one process.

A checkout user hands every order it created to this process's queue with the time its
callback is due (the payer's delay); a webhook sender takes the orders as they fall due.
Each Locust process (each ``--processes`` worker, each remote worker) has its own queue
and serves only its own orders: no order crosses processes, so nothing is shared over the
network. A gevent priority queue, so waiting for the next order costs no CPU.

Correct by construction: the queue owns a pool of deliverers (greenlets of the process,
not Locust users). The first order queued starts one, and a deliverer that takes an order
more than ``POOL_LAG_S`` late starts another (up to ``POOL_MAX``), so the pool follows the
order flow. Whatever users Locust deals to a process, an order never waits in a process
without a deliverer; PhonePeWebhookSender users, where they run, only add deliverers.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import gevent
from gevent.queue import Empty, PriorityQueue

Kind = Literal["genuine", "duplicate"]

# Beyond this many undelivered orders the senders are hopelessly behind; refusing more
# keeps a long soak from growing memory without bound (the journeys say why they failed).
DEFAULT_CAPACITY = 50_000
# A deliverer that takes an order this late starts another one, up to POOL_MAX per process:
# one deliverer keeps up with hundreds of callbacks a second against a healthy host, and
# a slow host needs more of them in flight.
POOL_LAG_S = 0.25
POOL_MAX = 32


@dataclass(eq=False)
class HandedOrder:
    """One order as both sides of the hand-off see it (same process, same object).

    The checkout user fills the first fields; the webhook sender records what its genuine
    callback got, so that a journey that never left PENDING can say why.
    """

    merchant_order_id: str
    order_id: str
    amount: int
    expire_at_ms: int | None
    completed: bool  # the outcome PhonePe's callback reports: COMPLETED, else FAILED
    callback: str | None = None  # None: not delivered yet; "accepted"; or why it was refused
    settled_state: str | None = None  # the order state the target answered the callback with
    body: bytes | None = None  # the genuine callback as sent, re-sent as is by a duplicate


class Handoff:
    """A per-process queue of (due time, order) for the webhook senders."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        deliverer: Callable[[Handoff], gevent.Greenlet] | None = None,
    ) -> None:
        self.capacity = capacity
        # Starts one deliverer greenlet for this queue; None: only sender users deliver.
        self._deliverer = deliverer
        self.pool: list[gevent.Greenlet] = []
        self.pool_started = 0  # deliverers ever started, since the test started
        self.closed = False
        self._queue: PriorityQueue = PriorityQueue()
        # The sequence number breaks ties of due time, so orders are never compared.
        self._sequence = itertools.count()
        self.senders = 0  # webhook senders running in this process now
        self.senders_started = 0  # ... and ever, since the test started
        self.refused = 0  # orders not queued because the queue was full

    def __len__(self) -> int:
        return self._queue.qsize()

    def put(self, due_s: float, kind: Kind, order: HandedOrder) -> bool:
        """Queue ``order`` for delivery at monotonic time ``due_s``; False when full."""
        if self._queue.qsize() >= self.capacity:
            self.refused += 1
            return False
        self._queue.put_nowait((due_s, next(self._sequence), kind, order))
        if all(g.dead for g in self.pool):
            self._grow()
        return True

    def _grow(self) -> None:
        if self._deliverer is None or self.closed:
            return
        self.pool = [g for g in self.pool if not g.dead]
        if len(self.pool) < POOL_MAX:
            self.pool.append(self._deliverer(self))
            self.pool_started += 1

    def taken(self, due_s: float) -> None:
        """A deliverer took an order due at ``due_s``: late by more than ``POOL_LAG_S``, the
        pool grows by one (a dead deliverer is replaced the same way)."""
        if time.monotonic() - due_s > POOL_LAG_S or any(g.dead for g in self.pool):
            self._grow()

    def close(self) -> None:
        """The run is stopping: stop the pool now. A callback in flight stays unanswered
        and counts as cut off, like a Locust user's request killed at stop."""
        self.closed = True
        pool, self.pool = self.pool, []
        gevent.killall(pool, block=True, timeout=5)

    def next_due(self, timeout_s: float) -> float | None:
        """The due time of the earliest order, waiting up to ``timeout_s`` for one; None if
        none came. Never busy: the greenlet sleeps in the queue until an order arrives."""
        queue = self._queue
        if queue.qsize():  # the common case under load: no timer to arm
            return queue.peek_nowait()[0]
        if timeout_s <= 0:
            return None
        try:
            due_s, _, _, _ = queue.peek(timeout=timeout_s)
        except Empty:
            return None
        return due_s

    def pop(self) -> tuple[Kind, HandedOrder] | None:
        """The earliest order, without waiting (None if another sender took it first)."""
        try:
            due_s, _, kind, order = self._queue.get_nowait()
        except Empty:
            return None
        self.taken(due_s)
        return kind, order
