"""The hand-off of orders from checkout users to the PhonePe webhook senders of one process.

A checkout user hands every order it created to this process's queue with the time its
callback is due (the payer's delay); a webhook sender takes the orders as they fall due.
Each Locust process (each ``--processes`` worker, each remote worker) has its own queue
and serves only its own orders: no order crosses processes, so nothing is shared over the
network. A gevent priority queue, so waiting for the next order costs no CPU.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

from gevent.queue import Empty, PriorityQueue

Kind = Literal["genuine", "duplicate"]

# Beyond this many undelivered orders the senders are hopelessly behind; refusing more
# keeps a long soak from growing memory without bound (the journeys say why they failed).
DEFAULT_CAPACITY = 50_000


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

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
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
        return True

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
            _, _, kind, order = self._queue.get_nowait()
        except Empty:
            return None
        return kind, order
