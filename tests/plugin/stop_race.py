"""Locust, as a library, stopping a user that wakes up between the stop and the kill.

    python tests/plugin/stop_race.py HOST RUN_DIR {fast,http}

``User.stop`` kills an idle (waiting) user, but the ``GreenletExit`` only lands on a later
turn of the event loop. A user whose wait ended just before (its wake-up already queued)
runs first and starts its next request. This script makes that happen every time: the
user waits on an event, which is set right before ``User.stop``, so the wake-up is queued
ahead of the kill. It prints one JSON line: whether the user woke up and is dead, and
what paybench's recording (``RUN_DIR/paybench.hdr.json``) counted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import gevent
from gevent.event import Event
from locust import FastHttpUser, HttpUser, events
from locust.env import Environment
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_WAITING

from harness import plugin  # noqa: F401  (the listeners under test)
from harness.recording import HDR_FILE, load_recording

HOST, RUN_DIR, KIND = sys.argv[1], Path(sys.argv[2]), sys.argv[3]

READY = Event()  # the user sent its first request and waits
WAKE = Event()  # the user's wait is over


def race(user: FastHttpUser | HttpUser) -> None:
    user.client.get("/first")  # also leaves a pooled connection to reuse
    user._state = LOCUST_STATE_WAITING  # what Locust's own wait sets
    READY.set()
    WAKE.wait()
    user.woke = True
    user._state = LOCUST_STATE_RUNNING
    user.client.get("/second")  # the kill is already on its way


class FastRacer(FastHttpUser):
    tasks = (race,)
    woke = False


class HttpRacer(HttpUser):
    tasks = (race,)
    woke = False


def main() -> None:
    user_class = FastRacer if KIND == "fast" else HttpRacer
    options = SimpleNamespace(paybench_dir=str(RUN_DIR), paybench_interval=1.0)
    env = Environment(user_classes=[user_class], host=HOST, events=events, parsed_options=options)
    runner = env.create_local_runner()
    events.init.fire(environment=env, runner=runner, web_ui=None)
    runner.start(1, spawn_rate=1)
    if not READY.wait(timeout=20):
        raise SystemExit("the user never sent its first request")
    user = next(iter(runner.user_greenlets)).args[0]
    WAKE.set()  # queues the user's wake-up ...
    killed_at_once = user.stop()  # ... ahead of the kill User.stop schedules (idle user)
    runner.quit()  # test_stop: paybench counts what is still pending as cut off
    events.quit.fire(exit_code=0)  # paybench writes its file
    recording = load_recording(RUN_DIR / HDR_FILE)
    count = sum(e.count for e in recording.entries)
    cut_off = sum(e.cut_off for e in recording.entries)
    print(
        json.dumps(
            {
                "killed_at_once": killed_at_once,
                "woke": user.woke,
                "dead": user.greenlet.dead,
                "count": count,
                "cut_off": cut_off,
            }
        )
    )
    gevent.sleep(0)


if __name__ == "__main__":
    main()
