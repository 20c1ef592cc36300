"""The hand-off's own deliverers (locustfiles/handoff.py): a queued order always has one."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gevent

LOCUSTFILES = Path(__file__).resolve().parents[2] / "locustfiles"
if str(LOCUSTFILES) not in sys.path:
    sys.path.insert(0, str(LOCUSTFILES))

import handoff  # noqa: E402


def _order(name: str) -> handoff.HandedOrder:
    return handoff.HandedOrder(
        merchant_order_id=name, order_id="OMO" + name, amount=100, expire_at_ms=None,
        completed=True,
    )  # fmt: skip


def _pool(delivered: list[str]) -> handoff.Handoff:
    def deliverer(orders: handoff.Handoff) -> gevent.Greenlet:
        def loop() -> None:
            while not orders.closed:
                if orders.next_due(0.05) is not None and (item := orders.pop()):
                    delivered.append(item[1].merchant_order_id)

        return gevent.spawn(loop)

    return handoff.Handoff(deliverer=deliverer)


def test_the_first_order_starts_a_deliverer_and_is_delivered() -> None:
    delivered: list[str] = []
    orders = _pool(delivered)
    assert orders.pool_started == 0
    orders.put(time.monotonic(), "genuine", _order("a"))
    assert orders.pool_started == 1
    orders.put(time.monotonic(), "genuine", _order("b"))
    assert orders.pool_started == 1  # one is enough while it keeps up
    deadline = time.monotonic() + 30
    while len(delivered) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert delivered == ["a", "b"]
    orders.close()
    assert orders.pool == [] and orders.closed


def test_a_late_order_grows_the_pool_up_to_its_limit() -> None:
    orders = handoff.Handoff(deliverer=lambda _orders: gevent.spawn(gevent.sleep, 60))
    late = time.monotonic() - 10 * handoff.POOL_LAG_S
    for i in range(handoff.POOL_MAX + 5):
        orders.put(late, "genuine", _order(str(i)))
    for _ in range(handoff.POOL_MAX + 5):
        assert orders.pop() is not None
    assert len(orders.pool) == handoff.POOL_MAX
    orders.close()


def test_a_dead_deliverer_is_replaced_and_a_closed_queue_starts_none() -> None:
    orders = handoff.Handoff(deliverer=lambda _orders: gevent.spawn(lambda: None))
    orders.put(time.monotonic() + 60, "genuine", _order("a"))
    gevent.joinall(orders.pool)
    orders.put(time.monotonic() + 60, "genuine", _order("b"))
    assert orders.pool_started == 2
    orders.close()
    orders.put(time.monotonic(), "genuine", _order("c"))  # a killed delivery put back
    assert orders.pool_started == 2 and len(orders) == 3
