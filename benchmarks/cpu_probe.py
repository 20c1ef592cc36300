"""Measures the CPU time of the Locust process it is loaded into, per HTTP request.

Loaded as a second locustfile by ``generator_cost.py`` (``-f payments.py,cpu_probe.py``):
it defines no users. After ``PAYBENCH_PROBE_WARMUP_S`` of spawning complete it reads the
process's CPU time (user + system, ``getrusage``) and the number of HTTP requests Locust
counted; ``PAYBENCH_PROBE_WINDOW_S`` later it reads both again and writes the difference to
``PAYBENCH_PROBE_OUT`` as JSON. A window inside the run leaves start-up and shutdown out.
"""

from __future__ import annotations

import json
import os
import resource
import time
from typing import Any

import gevent
from locust import events

_environment: Any = None


def _http_requests() -> int:
    # FLOW entries are journeys, not requests: only what went over the wire counts.
    stats = _environment.runner.stats
    return sum(e.num_requests for (_name, method), e in stats.entries.items() if method != "FLOW")


def _snapshot() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
        "voluntary_switches": usage.ru_nvcsw,
        "requests": _http_requests(),
        "wall_s": time.monotonic(),
    }


def _measure(warmup_s: float, window_s: float, out: str) -> None:
    gevent.sleep(warmup_s)
    first = _snapshot()
    gevent.sleep(window_s)
    last = _snapshot()
    result = {key: last[key] - first[key] for key in first}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f)


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    global _environment
    _environment = environment


@events.spawning_complete.add_listener
def _on_spawned(**_kwargs: Any) -> None:
    out = os.environ.get("PAYBENCH_PROBE_OUT")
    if out:
        warmup_s = float(os.environ.get("PAYBENCH_PROBE_WARMUP_S", "2"))
        window_s = float(os.environ.get("PAYBENCH_PROBE_WINDOW_S", "6"))
        gevent.spawn(_measure, warmup_s, window_s, out)
