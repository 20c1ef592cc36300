"""The bare generator that ``generator_cost.py`` compares the scenarios with.

One FastHttpUser that sends the same requests as the checkout mix (same methods, paths,
bodies and proportions, given by the benchmark in ``PAYBENCH_BARE_MIX``) with none of the
scenario logic: no response checks, no JSON parsing, no hand-off, no templating. Its pace is
``PAYBENCH_BARE_RPS_PER_USER`` requests per second per user, so both runs cost the same
fixed overheads per second.
"""

from __future__ import annotations

import json
import os
import random

import gevent
from locust import FastHttpUser, constant_throughput, task

# The same recording as payments.py: idle without --paybench-dir, measured with --record.
from harness import plugin  # noqa: F401

_MIX = json.loads(os.environ.get("PAYBENCH_BARE_MIX", "[]"))
# One cycle of requests in the mix's proportions; each user starts at a random place in it.
_CYCLE = [
    (
        item["method"],
        item["path"],
        item.get("body", "").encode() or None,
        item.get("headers") or None,
    )
    for item in _MIX
    for _ in range(item["weight"])
]


_RATE = float(os.environ.get("PAYBENCH_BARE_RPS_PER_USER", "10"))


class BareUser(FastHttpUser):
    wait_time = constant_throughput(_RATE)

    def on_start(self) -> None:
        self.position = random.randrange(len(_CYCLE))
        # Users spawned together would stay in phase and share every wake-up of the event
        # loop, which no real set of clients does (nor the scenario's): spread them out.
        gevent.sleep(random.random() / _RATE)

    @task
    def send(self) -> None:
        method, path, body, headers = _CYCLE[self.position % len(_CYCLE)]
        self.position += 1
        self.client.request(method, path, data=body, headers=headers)
