"""The per-process hand-off queue between checkout users and webhook senders (gevent only)."""

from __future__ import annotations

import time

import gevent
import handoff


def _order(name: str) -> handoff.HandedOrder:
    return handoff.HandedOrder(
        merchant_order_id=name,
        order_id="OMO" + name,
        amount=19900,
        expire_at_ms=None,
        completed=True,
    )


def test_orders_come_out_by_due_time() -> None:
    queue = handoff.Handoff()
    late, early, redelivery = _order("late"), _order("early"), _order("again")
    assert queue.put(30.0, "genuine", late)
    assert queue.put(10.0, "genuine", early)
    assert queue.put(20.0, "duplicate", redelivery)
    assert len(queue) == 3
    assert queue.next_due(0.1) == 10.0
    assert queue.pop() == ("genuine", early)
    assert queue.pop() == ("duplicate", redelivery)
    assert queue.pop() == ("genuine", late)
    assert queue.pop() is None


def test_equal_due_times_keep_arrival_order_without_comparing_orders() -> None:
    queue = handoff.Handoff()
    first, second = _order("a"), _order("b")
    queue.put(5.0, "genuine", first)
    queue.put(5.0, "genuine", second)  # HandedOrder is not orderable: the sequence decides
    assert queue.pop() == ("genuine", first)
    assert queue.pop() == ("genuine", second)


def test_a_full_queue_refuses_and_counts() -> None:
    queue = handoff.Handoff(capacity=2)
    assert queue.put(1.0, "genuine", _order("a"))
    assert queue.put(2.0, "genuine", _order("b"))
    assert not queue.put(3.0, "genuine", _order("c"))
    assert queue.refused == 1
    assert len(queue) == 2


def test_an_empty_queue_waits_bounded_without_spinning() -> None:
    queue = handoff.Handoff()
    wall, cpu = time.monotonic(), time.process_time()
    assert queue.next_due(0.3) is None
    waited_s, cpu_s = time.monotonic() - wall, time.process_time() - cpu
    assert 0.25 <= waited_s < 2.0
    # A busy loop would burn about as much CPU as wall time; the queue sleeps instead.
    assert cpu_s < 0.1, cpu_s


def test_a_waiting_sender_wakes_when_an_order_arrives() -> None:
    queue = handoff.Handoff()
    order = _order("x")
    gevent.spawn_later(0.05, queue.put, 42.0, "genuine", order)
    started = time.monotonic()
    assert queue.next_due(5.0) == 42.0
    assert time.monotonic() - started < 2.0
    assert queue.pop() == ("genuine", order)
