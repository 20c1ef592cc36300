# The two set-up commands: `make run` and `make test`. Both create the environment if missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint clean-venv browser servers stack

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# RUN_ARGS adds options, e.g. make run RUN_ARGS="--workers 2"
run: $(STAMP)
	$(BIN)/paybench run --profile smoke $(RUN_ARGS)

# The report's browser test needs Debian's chromium; install it when missing and we may.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing (apt-get install chromium); the browser test will be skipped"; fi; }

# The server-metrics tests start real servers from Debian's packages (tests/servers.py):
# install them when one is missing and we may, as for chromium.
SERVER_PACKAGES := redis-server postgresql postgresql-contrib prometheus \
  prometheus-node-exporter prometheus-redis-exporter prometheus-blackbox-exporter
SERVER_BINARIES := /usr/bin/redis-server /usr/bin/prometheus /usr/bin/prometheus-node-exporter \
  /usr/bin/prometheus-redis-exporter /usr/bin/prometheus-blackbox-exporter
servers:
	@missing=; for b in $(SERVER_BINARIES); do [ -x "$$b" ] || missing="$$missing $$b"; done; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgres"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      --no-install-recommends $(SERVER_PACKAGES) >/dev/null; \
	  else echo "missing:$$missing (apt-get install $(SERVER_PACKAGES)); the server tests will be skipped"; fi; fi

# The reference target on PostgreSQL and Redis, with Prometheus and the exporters, and a smoke
# run against it; everything is stopped at the end (harness/target/stack.py, docs/target.md).
stack: $(STAMP) servers
	$(BIN)/python -m harness.target.stack $(STACK_ARGS)

# Two pytest processes, a test file each at a time (module fixtures stay shared); the
# slowest tests are listed at the end.
PYTEST_ARGS ?= -q -n 2 --dist loadfile --durations=15

# lint runs first: a broken contract or a type error fails before the long test run.
# As root, the tests run in a network namespace of their own with only loopback up
# (tests/loopback_only.py): nothing a test does can reach another host, not even DNS.
test: $(STAMP) browser servers lint
	@if [ "$$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then \
	  echo "pytest in a network namespace with loopback only"; \
	  unshare -n $(BIN)/python tests/loopback_only.py $(BIN)/python -m pytest $(PYTEST_ARGS); \
	else $(BIN)/python -m pytest $(PYTEST_ARGS); fi

# The checks (docs/ARCHITECTURE.md, "Checks"): style, the import contracts, the types.
lint: $(STAMP)
	$(BIN)/ruff check harness locustfiles tests benchmarks
	$(BIN)/lint-imports --no-logo
	$(BIN)/mypy

clean-venv:
	rm -rf $(VENV)
