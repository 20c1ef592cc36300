"""Webhook load across workers, correct by construction: with no PhonePeWebhookSender user
anywhere (``--webhook-weight 0``), each worker's own deliverers (locustfiles/handoff.py)
still deliver the PhonePe callback of every order it made, and the counts stay exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core import catalogue
from harness.preflight import HEALTH_PATHS
from harness.target.process import ReferenceTarget
from tests.distributed.cluster import cluster
from tests.distributed.test_cluster import served

pytestmark = pytest.mark.e2e

CHECKOUT_USERS = 2


def test_every_order_gets_its_callback_from_its_own_worker_without_sender_users(
    tmp_path: Path,
) -> None:
    with ReferenceTarget() as target, cluster(tmp_path, target.url) as c:
        before = served(target.url)
        # One health prober (fixed count) and two checkout users over two workers; no senders.
        c.start_master(
            "--run-time", "6s", "--users", str(CHECKOUT_USERS + 1),
            env={"PAYBENCH_WEBHOOK_WEIGHT": "0"},
        )  # fmt: skip
        c.start_worker()
        c.start_worker()
        assert c.wait_master() == 0, c.text("master.out") + c.text("master.err")
        assert c.wait_workers() == [0, 0]
        after = served(target.url)
    summary = json.loads((c.run_dir() / "summary.json").read_text())
    whole = summary["whole_run"]
    assert whole["count"] + whole["cut_off"] == after - before - len(HEALTH_PATHS)
    rows = {row["name"]: row for row in summary["locust"]}
    assert "PhonePeWebhookSender" not in c.text("worker0.out") + c.text("worker1.out")
    initiated = rows[catalogue.INITIATE[1]]["count"] - rows[catalogue.INITIATE[1]]["failures"]
    delivered = sum(
        rows[name[1]]["count"] if name[1] in rows else 0
        for name in (catalogue.WEBHOOK_COMPLETED, catalogue.WEBHOOK_FAILED)
    )
    assert initiated >= CHECKOUT_USERS
    # Every order's callback went out, but those still due when the run stopped: at most
    # one journey per checkout user was that young.
    assert initiated - CHECKOUT_USERS <= delivered <= initiated, (initiated, delivered)
    webhook_failures = sum(
        rows[name[1]]["failures"]
        for name in (catalogue.WEBHOOK_COMPLETED, catalogue.WEBHOOK_FAILED)
        if name[1] in rows
    )
    assert webhook_failures == 0
    # Per-worker figures: summary.json (run.extra.distributed, versioned), HTML, Markdown.
    facts = summary["run"]["extra"]["distributed"]
    assert facts["format_version"] == 1
    workers = facts["workers"]
    assert len(workers) == 2
    # Each worker's requests (FLOW records included) as it declared them in its final data.
    assert all(w["requests"] == w["declared"]["requests"] > 0 for w in workers)
    for w in workers:
        assert w["cpu_samples"] > 0 and 0 <= w["cpu_mean_pct"] <= w["cpu_max_pct"]
        assert w["joined_epoch"] < w["final_epoch"]
    html = (c.run_dir() / "report.html").read_text()
    md = (c.run_dir() / "summary.md").read_text()
    assert '<section id="workers">' in html
    for w in workers:
        row = f"<tr><td>{w['name']}</td><td>accepted</td>"
        assert row in html, html[html.find('id="workers"') :][:2000]
        assert f"| {w['name']} | accepted |" in md, md
