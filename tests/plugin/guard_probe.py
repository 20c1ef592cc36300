"""harness.plugin's request wrapper and allow-list check on a real FastHttpSession, without
a Locust run.

    python tests/plugin/guard_probe.py URL

URL is a loopback server (tests/plugin/loopback_server.py). Sends a fixed sequence of
requests through FastHttpSession with paybench's wrapper and allow-list installed, and
prints one JSON line: each step's outcome (``ok``, or the error Locust reported), and the
Recorder's started/completed counts. Run as a script: importing harness.plugin imports
Locust, which monkey-patches the interpreter with gevent.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse

from locust.contrib.fasthttp import FastHttpSession
from locust.env import Environment

from harness import plugin

OTHER = "staging.invalid"  # not loopback, never resolved: refused before any connection


def main() -> None:
    url = sys.argv[1]
    port = urllib.parse.urlsplit(url).port
    plugin._install_request_tracking()
    plugin._install_guards()
    env = Environment()
    recorder = plugin.Recorder(2.0, "local")
    plugin._STATE.recorder = recorder
    env.events.request.add_listener(recorder.on_request)
    errors: list[str | None] = []
    env.events.request.add_listener(
        lambda exception=None, **_kw: errors.append(None if exception is None else str(exception))
    )
    session = FastHttpSession(url, env.events.request, user=None)
    plugin._GUARD.allowed = frozenset()
    steps: list[tuple[str, str | None]] = []

    def get(label: str, target: str, **kwargs: object) -> None:
        session.get(target, **kwargs)
        steps.append((label, errors[-1]))

    get("loopback", "/")
    get("other host after loopback", f"http://{OTHER}:{port}/")
    get("the other host again", f"http://{OTHER}:{port}/", name="again")
    get("loopback again, named, with headers", "/", name="plans", headers={"X-Probe": "1"})
    # The loopback address with user:pw before it: refused for its credentials, never sent.
    with_credentials = urllib.parse.urlunsplit(("http", f"user:pw@127.0.0.1:{port}", "/", "", ""))
    get("loopback, credentials in the URL", with_credentials)
    get("loopback by name", f"http://localhost:{port}/")
    # Allowed for a while: it passes (and fails to resolve: no name service here) ...
    plugin._GUARD.allowed = frozenset({OTHER})
    get("other host while allowed", f"http://{OTHER}:{port}/")
    passed_while_allowed = f"{OTHER}:{port}" in plugin._GUARD.passed
    # ... and a new list forgets it.
    plugin._GUARD.allowed = frozenset()
    get("other host, no longer allowed", f"http://{OTHER}:{port}/")
    get("loopback, extra keyword", "/", name="with-kw", params={"a": "1"})
    started = sum(recorder.started.values())
    stop = time.time()
    cut_off = recorder.cut_off_pending(stop)
    print(
        json.dumps(
            {
                "steps": steps,
                "passed_while_allowed": passed_while_allowed,
                "started": started,
                "cut_off": cut_off,
                "requests": len(errors),
            }
        )
    )


if __name__ == "__main__":
    main()
