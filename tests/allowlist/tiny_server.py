"""A tiny loopback HTTP/1.1 server of these tests' own: redirects, 404s, Basic auth, counts.

    python tests/allowlist/tiny_server.py [--others-redirect-to URL] [--basic USER:PASSWORD]
                                          [--no-health]

Binds 127.0.0.1 on a free port and prints ``PORT <n>`` once listening; stops on SIGTERM or
when its parent process is gone. Routes (any method):

- the four payments health endpoints: 200 ``{"status": "healthy"}`` (404 with --no-health)
- ``/ok`` and ``/echo``: 200; ``/missing``: 404
- ``/away``: 302 to ``http://elsewhere.invalid/``; ``/testnet``: 302 to ``http://192.0.2.1/``
  (TEST-NET-1, never routed); ``/allowed-away``: 302 to ``http://allowed.invalid/``;
  ``/local``: 302 to ``/ok`` (the same host)
- ``/needs-basic``: 200 with the ``--basic`` credentials, else 401
- ``/__seen``: ``{"paths": {path: count}, "authorization": {path: [header, ...]}}``
- anything else: 302 to ``--others-redirect-to`` when given, else 404

The load never goes anywhere but here: the tests that run it against a redirect to
another host run inside a network namespace of their own, where nothing else exists.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HEALTH_PATHS = (
    "/api/health",
    "/api/health/database",
    "/api/health/redis",
    "/api/payments/v2/health",
)
REDIRECTS = {
    "/away": "http://elsewhere.invalid/",
    "/testnet": "http://192.0.2.1/",
    "/allowed-away": "http://allowed.invalid/",
    "/local": "/ok",
}


class State:
    def __init__(self, others_redirect_to: str | None, basic: str | None, health: bool) -> None:
        self.others_redirect_to = others_redirect_to
        self.health = health
        self.expected_auth = (
            "Basic " + base64.b64encode(basic.encode()).decode() if basic is not None else None
        )
        self.lock = threading.Lock()
        self.paths: Counter[str] = Counter()
        self.authorization: dict[str, list[str | None]] = defaultdict(list)

    def seen(self) -> dict[str, Any]:
        with self.lock:
            return {"paths": dict(self.paths), "authorization": dict(self.authorization)}


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: Any = None, location: str | None = None) -> None:
            data = json.dumps(body if body is not None else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if location is not None:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            path = self.path.split("?", 1)[0]
            if path == "/__seen":
                self._answer(200, state.seen())
                return
            with state.lock:
                state.paths[path] += 1
                state.authorization[path].append(self.headers.get("Authorization"))
            if path in HEALTH_PATHS and state.health:
                self._answer(200, {"status": "healthy"})
            elif path in ("/ok", "/echo"):
                self._answer(200, {"ok": True})
            elif path == "/missing":
                self._answer(404, {"error": "not_found"})
            elif path in REDIRECTS:
                self._answer(302, location=REDIRECTS[path])
            elif path == "/needs-basic":
                ok = self.headers.get("Authorization") == state.expected_auth
                self._answer(200 if ok else 401)
            elif state.others_redirect_to:
                self._answer(302, location=state.others_redirect_to)
            else:
                self._answer(404, {"error": "not_found"})

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    return Handler


class Server:
    """The server in a thread of the calling process (for tests that need no namespace)."""

    def __init__(
        self, others_redirect_to: str | None = None, basic: str | None = None, health: bool = True
    ) -> None:
        self.state = State(others_redirect_to, basic, health)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(self.state))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def seen(self) -> dict[str, Any]:
        return self.state.seen()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--others-redirect-to", default=None)
    parser.add_argument("--basic", default=None, help="USER:PASSWORD that /needs-basic wants")
    parser.add_argument("--no-health", action="store_true", help="no health endpoints (404)")
    args = parser.parse_args()
    server = Server(args.others_redirect_to, args.basic, health=not args.no_health)
    parent = os.getppid()

    def stop(*_a: object) -> None:
        threading.Thread(target=server.httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)

    def watch_parent() -> None:
        # Never an orphan: a test that dies leaves no server behind.
        while os.getppid() == parent:
            time.sleep(0.5)
        stop()

    print(f"PORT {server.httpd.server_address[1]}", flush=True)
    threading.Thread(target=watch_parent, daemon=True).start()
    server.httpd.serve_forever()
    server.httpd.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
