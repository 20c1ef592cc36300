"""Fixtures shared by every test folder."""

# Real Redis, PostgreSQL, Prometheus and exporters (redis_server, postgres_server, ...).
pytest_plugins = ["tests.servers"]
