"""Fixtures for the reference target's tests: real targets in subprocesses, on loopback."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.target.auth import (
    DEFAULT_WEBHOOK_PASSWORD,
    DEFAULT_WEBHOOK_USERNAME,
    webhook_authorization,
)
from harness.target.process import ReferenceTarget

AUTH = {"Authorization": webhook_authorization(DEFAULT_WEBHOOK_USERNAME, DEFAULT_WEBHOOK_PASSWORD)}
# Orders stay PENDING until a webhook arrives: the payer never finishes within a test.
SLOW_PAYER = {"payment.payer_time_median_s": 3600, "payment.payer_time_p99_s": 3600}


class Running:
    """A started ReferenceTarget with an httpx client and read access to its database
    (the SQLite file, or the PostgreSQL database of ``database_url``)."""

    def __init__(self, target: ReferenceTarget, db: Path, database_url: str | None = None) -> None:
        self.target = target
        self.url = target.url
        self.db = db
        self.database_url = database_url
        self.http = httpx.Client(base_url=target.url, timeout=10.0)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        if self.database_url is not None:
            import psycopg

            with psycopg.connect(self.database_url, autocommit=True) as conn:
                return conn.execute(sql.replace("?", "%s"), args).fetchall()
        with closing(sqlite3.connect(self.db, timeout=10)) as conn:
            return conn.execute(sql, args).fetchall()

    def metrics(self) -> dict[str, float]:
        """Every sample of /metrics by its name and labels in canonical text form
        (``name{a="x",b="y"}``, labels sorted)."""
        text = self.http.get("/metrics").text
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def initiate(self, plan_id: str = "basic-monthly", user_id: str = "user-1") -> dict[str, Any]:
        response = self.http.post(
            "/api/payments/v2/initiate", json={"plan_id": plan_id, "user_id": user_id}
        )
        assert response.status_code == 201, response.text
        return response.json()

    def metrics_total(self) -> int:
        """The sum of paybench_target_requests_total over every label set."""
        text = self.http.get("/metrics").text
        return sum(
            int(float(line.rsplit(" ", 1)[1]))
            for line in text.splitlines()
            if line.startswith("paybench_target_requests_total{")
        )


def webhook_body(
    merchant_order_id: str, amount: int, state: str = "COMPLETED", **payload: Any
) -> dict[str, Any]:
    event = "checkout.order.completed" if state == "COMPLETED" else "checkout.order.failed"
    return {
        "event": event,
        "type": "CHECKOUT_ORDER_COMPLETED" if state == "COMPLETED" else "CHECKOUT_ORDER_FAILED",
        "payload": {
            "merchantId": "PAYBENCH",
            "merchantOrderId": merchant_order_id,
            "state": state,
            "amount": amount,
            **payload,
        },
    }


@pytest.fixture(scope="session")
def start_target(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Running]]:
    """start_target(overrides, config, database_url, redis_url) -> Running; every target is
    stopped at the end."""
    started: list[Running] = []

    def start(
        overrides: dict[str, Any] | None = None,
        config: Path | None = None,
        database_url: str | None = None,
        redis_url: str | None = None,
    ) -> Running:
        folder = tmp_path_factory.mktemp("target")
        db = folder / "target.db"
        target = ReferenceTarget(
            config=config,
            overrides=overrides,
            db=None if database_url else db,
            log_path=folder / "target.log",
            database_url=database_url,
            redis_url=redis_url,
        )
        target.start()
        running = Running(target, db, database_url)
        started.append(running)
        return running

    try:
        yield start
    finally:
        for running in started:
            running.http.close()
            running.target.stop()


@pytest.fixture(scope="session")
def target(start_target: Callable[..., Running]) -> Running:
    """The default model, but for a payer that never pays (orders move by webhook only)."""
    return start_target(SLOW_PAYER)
