"""A master and 2 workers at different addresses: each worker in a network namespace the
test makes (`ip netns` + veth, root only), the master listening on the test's own veth
address. The counts stay exact and both workers are named with their figures."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from harness.preflight import HEALTH_PATHS
from harness.target.process import ReferenceTarget
from tests.distributed import netns
from tests.distributed.cluster import cluster
from tests.distributed.test_cluster import served

pytestmark = pytest.mark.e2e


def test_two_workers_in_their_own_namespaces_count_exactly(tmp_path: Path) -> None:
    why = netns.usable()
    if why:
        pytest.skip(why)
    with (
        netns.worker_namespaces(2) as (master_address, names),
        ReferenceTarget() as target,
    ):
        port = urlsplit(target.url).port
        assert port is not None
        bridges = [netns.LoopbackBridge(name, port) for name in names]
        try:
            with cluster(tmp_path, target.url, bind=master_address) as c:
                before = served(target.url)
                c.start_master("--run-time", "5s")
                for name in names:
                    c.start_worker(namespace=name)
                assert c.wait_master() == 0, c.text("master.out") + c.text("master.err")
                assert c.wait_workers() == [0, 0], c.text("worker0.out") + c.text("worker1.out")
                after = served(target.url)
        finally:
            for bridge in bridges:
                bridge.close()
    summary = json.loads((c.run_dir() / "summary.json").read_text())
    whole = summary["whole_run"]
    assert whole["count"] > 0
    assert whole["count"] + whole["cut_off"] == after - before - len(HEALTH_PATHS)
    workers = summary["run"]["extra"]["distributed"]["workers"]
    assert [w["status"] for w in workers] == ["accepted", "accepted"]
    assert all(w["requests"] == w["declared"]["requests"] > 0 for w in workers)
