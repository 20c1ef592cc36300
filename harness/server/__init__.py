"""Server metrics: scraping the sources budgets.yaml declares, during the run, in the paybench
process (never inside Locust), into the run folder's ``server.jsonl``
(``runfolder.SERVER_FILE``); and reading that file back to judge the server budgets
(``harness.core.server_eval``).

- ``sources``: one client per kind of source (a Prometheus text endpoint, a Prometheus server,
  Redis, PostgreSQL, a local process), each giving the standard series names;
- ``scraper``: the server preflight (every source answers, every metric a budget needs is
  there), a thread per source at the histogram interval, ``server.jsonl``;
- ``results``: ``server.jsonl`` -> samples -> server BudgetResults for the verdict.

The file's format is documented in docs/ARCHITECTURE.md beside the other run-folder files.
"""

from __future__ import annotations

SERVER_FORMAT = "paybench-server-metrics"
SERVER_FORMAT_VERSION = 1
