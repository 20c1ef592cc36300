"""Real servers for the tests: Redis, PostgreSQL, Prometheus and its exporters on loopback.

Session-scoped fixtures (registered for every test by ``tests/conftest.py``); each server is
started once, on a free 127.0.0.1 port with a temporary folder, and stopped by PID at the
end (``harness.target.servers`` does the starting). A server whose package is missing skips
its tests, but only when we are not root: as root ``make test`` installs the packages
(``make servers``), so a missing one there is a failure.

    def test_x(redis_server, postgres_server):      # .url, .port, .pid
        ...
    def test_y(prometheus_server, node_exporter):
        prom = prometheus_server([node_exporter.url])  # or {"job": url}; .url
    def test_z(blackbox_exporter):                   # .url + "/probe?module=http_2xx&target=..."
        ...
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest

from harness.target import servers
from harness.target.servers import Server

PrometheusFactory = Callable[[Mapping[str, str] | Sequence[str]], Server]


def need(name: str) -> None:
    """Skip (not root) or fail (root: make servers should have installed it) without ``name``."""
    problem = servers.missing_binary(name)
    if problem is None:
        return
    if os.geteuid() == 0:
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    need("redis-server")
    with servers.start_redis() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    need("postgres")
    # Not durable: fsync off makes the cluster start and write fast; tests time nothing.
    with servers.start_postgres(durable=False) as server:
        yield server


@pytest.fixture(scope="session")
def node_exporter() -> Iterator[Server]:
    need("prometheus-node-exporter")
    with servers.start_node_exporter() as server:
        yield server


@pytest.fixture(scope="session")
def redis_exporter(redis_server: Server) -> Iterator[Server]:
    need("prometheus-redis-exporter")
    with servers.start_redis_exporter(redis_server.url) as server:
        yield server


@pytest.fixture(scope="session")
def blackbox_exporter() -> Iterator[Server]:
    """blackbox_exporter with modules http_2xx and tcp_connect (its config in a tmp folder)."""
    need("prometheus-blackbox-exporter")
    with servers.start_blackbox_exporter() as server:
        yield server


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[PrometheusFactory]:
    """prometheus_server(targets) -> a Prometheus scraping those URLs every second.

    ``targets``: metrics URLs (jobs ``target0``, ``target1``, ...) or ``{job: url}``.
    Every server it started is stopped at the end of the session.
    """
    need("prometheus")
    started: list[Server] = []

    def start(targets: Mapping[str, str] | Sequence[str]) -> Server:
        server = servers.start_prometheus(targets, interval_s=1.0)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
