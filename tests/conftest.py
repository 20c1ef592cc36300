"""Fixtures shared by every test folder."""

import signal

# Tests stop the processes they start with SIGINT, as a user's Ctrl-C would. Run in the
# background by a shell without job control, pytest starts with SIGINT ignored, and so would
# every process it starts: take SIGINT back, so that children get its default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Real Redis, PostgreSQL, Prometheus and exporters (redis_server, postgres_server, ...).
pytest_plugins = ["tests.servers"]
