"""What the recording costs per request, in-process: ns per call of each per-request step.

    .venv/bin/python benchmarks/record_cost.py [--calls 200000] [--requests 2000] [--rounds 5]

Calls the recording's per-request steps ``--calls`` times with the arguments Locust passes
(FastHttpSession's ``request_meta``: four request names, a float response time, a response
object, no exception) and prints nanoseconds per call, the best of ``--rounds`` rounds:

- ``Recorder.on_request`` called directly, and through Locust's ``events.request.fire``
  (the cost of one more listener: fire with the recorder minus fire without it);
- the hand-over (``Recorder.take``, once per interval), shared out over its requests;
- the cut-off counting request wrapper (``_tracked``) around a request that does nothing;
- the interval tick (hand-over, merge, progress line, streamed write), shared out;
- the allow-list check (``_guarded_urlopen``), on every request wherever the plugin is;
- and the CPU of a real FastHttpSession GET on loopback (tests/plugin/loopback_server.py),
  bare and with each of the three per-request steps (listener, wrapper, allow-list check)
  on its own and together: in real requests they cost more than in hot loops.

The end-to-end figure, requests/s with and without the whole plugin, is overhead.py's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Locust (gevent's monkey-patching) before anything else that opens sockets.
from locust.contrib.fasthttp import FastHttpSession, LocustUserAgent  # noqa: E402
from locust.env import Environment  # noqa: E402

from harness import plugin  # noqa: E402

SERVER = ROOT / "tests" / "plugin" / "loopback_server.py"
NAMES = ("/api/plans", "/api/payments/v2/initiate", "/api/payments/v2/status", "/api/health")
INTERVAL_S = 2.0


class _Response:
    status_code = 200
    content = b'{"ok":true}'


def _metas(n: int) -> list[dict[str, object]]:
    """Locust's keyword arguments for n requests (built up front: not part of the cost)."""
    response = _Response()
    return [
        {
            "request_type": "GET" if i % 4 != 1 else "POST",
            "name": NAMES[i % 4],
            "context": {},
            "response": response,
            "exception": None,
            "start_time": 1764650000.0 + i * 1e-4,
            "url": "http://127.0.0.1:8089" + NAMES[i % 4],
            "response_length": 11,
            "response_time": 0.4 + (i % 997) * 0.013,
        }
        for i in range(n)
    ]


def _best_ns(rounds: int, n: int, run: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        run()
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def hook_costs(calls: int, rounds: int) -> list[tuple[str, float]]:
    metas = _metas(calls)
    env = Environment()
    event = env.events.request
    rows = []

    def direct() -> None:
        on_request = plugin.Recorder(INTERVAL_S, "local").on_request
        for meta in metas:
            on_request(**meta)

    rows.append(("Recorder.on_request, called directly", _best_ns(rounds, calls, direct)))

    def fired() -> None:
        for meta in metas:
            event.fire(**meta)

    bare = _best_ns(rounds, calls, fired)
    recorder = plugin.Recorder(INTERVAL_S, "local")
    event.add_listener(recorder.on_request)

    def fired_recorded() -> None:
        recorder.take(encode=False)  # each round starts from an empty interval
        fired()

    with_ = _best_ns(rounds, calls, fired_recorded)
    event.remove_listener(recorder.on_request)
    rows.append(("events.request.fire, no listener", bare))
    rows.append(("events.request.fire, the recorder listening", with_))
    rows.append(("  one more listener: the recorder's share", with_ - bare))

    # The hand-over: an interval of `calls` requests over four keys, made into histograms.
    def take(encode: bool) -> float:
        best = float("inf")
        for _ in range(rounds):
            r = plugin.Recorder(INTERVAL_S, "local")
            for meta in metas:
                r.on_request(**meta)
            t0 = time.perf_counter_ns()
            r.take(encode=encode)
            best = min(best, (time.perf_counter_ns() - t0) / calls)
        return best

    rows.append(("Recorder.take per request (local: histograms)", take(False)))
    rows.append(("Recorder.take per request (worker: encoded)", take(True)))
    return rows


def tick_cost(per_interval: int, rounds: int) -> list[tuple[str, float]]:
    """A local process's whole interval tick (plugin._tick: hand-over, merge, progress line,
    streamed write, CPU sample), shared out over the interval's requests."""
    metas = _metas(per_interval)
    with tempfile.TemporaryDirectory(prefix="paybench-record-cost-") as tmp:
        directory = Path(tmp)
        plugin._STATE.directory = directory
        plugin._STATE.environment = SimpleNamespace(runner=SimpleNamespace(user_count=50))
        plugin._STATE.role = "local"
        plugin._STATE.interval_s = INTERVAL_S
        plugin._STATE.test_start_epoch = time.time()
        plugin._STATE.cpu_sampler = plugin.CpuSampler()
        plugin._STATE.aggregator = plugin._streaming_aggregator()
        epoch = [1764650000.0]
        recorder = plugin.Recorder(INTERVAL_S, "local", clock=lambda: epoch[0])
        plugin._STATE.recorder = recorder
        best = float("inf")
        try:
            for _ in range(rounds * 3):
                for meta in metas:
                    recorder.on_request(**meta)
                epoch[0] += INTERVAL_S
                t0 = time.process_time_ns()
                plugin._tick()
                best = min(best, (time.process_time_ns() - t0) / per_interval)
        finally:
            plugin._STATE.aggregator.abandon()
            plugin._STATE = plugin._State()
    return [(f"interval tick per request ({per_interval} requests an interval)", best)]


class _Session:
    """A session whose request() does nothing, with FastHttpSession.request's parameters
    (so `_tracked` wraps it as it wraps FastHttpSession's)."""

    request_name = None

    def request(
        self,
        method: str,
        url: str,
        name: object = None,
        data: object = None,
        catch_response: object = False,
        stream: object = False,
        headers: object = None,
        auth: object = None,
        json: object = None,
        allow_redirects: object = True,
        context: object = None,
        **kwargs: object,
    ) -> None:
        return None

    def generic_request(self, method: str, url: str, *args: object, **kwargs: object) -> None:
        return None

    def urlopen(self, request: object) -> None:
        return None


class _Request:
    url_split = urllib.parse.urlsplit("http://127.0.0.1:8089/api/plans")


def wrapper_cost(calls: int, rounds: int) -> list[tuple[str, float]]:
    plain = _Session.request
    tracked = plugin._tracked(plain)
    session = _Session()
    recorder = plugin.Recorder(INTERVAL_S, "local")
    plugin._STATE.recorder = recorder

    def run_plain() -> None:
        for i in range(calls):
            plain(session, "GET", NAMES[i & 3])

    def run_tracked() -> None:
        recorder.started = {}
        for i in range(calls):
            tracked(session, "GET", NAMES[i & 3])

    generic_plain = _Session.generic_request
    generic = plugin._tracked(generic_plain)

    def run_generic_plain() -> None:
        for i in range(calls):
            generic_plain(session, "GET", NAMES[i & 3])

    def run_generic() -> None:
        recorder.started = {}
        for i in range(calls):
            generic(session, "GET", NAMES[i & 3])

    try:
        a = _best_ns(rounds, calls, run_plain)
        b = _best_ns(rounds, calls, run_tracked)
        e = _best_ns(rounds, calls, run_generic_plain)
        f = _best_ns(rounds, calls, run_generic)
    finally:
        plugin._STATE.recorder = None
    rows = [
        ("request wrapper (_tracked): its own cost", b - a),
        ("  (the generic wrapper, HttpSession's: for comparison)", f - e),
    ]

    # The allow-list check: not the recording, but on every request whenever the plugin is.
    request = _Request()
    plugin._GUARD.allowed = frozenset()  # and forget what was decided
    guarded = plugin._guarded_urlopen(_Session.urlopen)

    def run_open() -> None:
        for _ in range(calls):
            _Session.urlopen(session, request)

    def run_guarded() -> None:
        for _ in range(calls):
            guarded(session, request)

    c = _best_ns(rounds, calls, run_open)
    d = _best_ns(rounds, calls, run_guarded)
    rows.append(("allow-list check (_guarded_urlopen): its own cost", d - c))
    return rows


# Which of paybench's per-request steps a loopback round runs, bare first.
STEPS = {
    "bare": (),
    "+ listener": ("listener",),
    "+ request wrapper": ("wrapper",),
    "+ allow-list check": ("guard",),
    "all three (paybench)": ("listener", "wrapper", "guard"),
}


def loopback_cost(requests: int, rounds: int) -> list[tuple[str, float]]:
    """CPU per FastHttpSession GET on loopback with each step on its own and all together.

    Alternated round by round, the lowest quarter of ``rounds * 4`` rounds each: in a real
    request the steps cost more than in the hot loops above (caches, branch history)."""
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
    )
    plain_request, plain_open = FastHttpSession.request, LocustUserAgent._urlopen
    try:
        assert server.stdout is not None
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"
        env = Environment()
        session = FastHttpSession(url, env.events.request, user=None)
        recorder = plugin.Recorder(INTERVAL_S, "local")
        plugin._install_request_tracking()
        plugin._install_guards()
        wrapped_request, wrapped_open = FastHttpSession.request, LocustUserAgent._urlopen
        plugin._GUARD.allowed = frozenset()  # and forget what was decided

        def cpu_ns_per_request() -> float:
            # This process's CPU only: the server's time is another process's.
            t0 = time.process_time_ns()
            for _ in range(requests):
                session.get("/")
            return (time.process_time_ns() - t0) / requests

        def use(steps: tuple[str, ...]) -> None:
            wrapper, guard = "wrapper" in steps, "guard" in steps
            FastHttpSession.request = wrapped_request if wrapper else plain_request  # type: ignore[method-assign]
            LocustUserAgent._urlopen = wrapped_open if guard else plain_open  # type: ignore[method-assign]
            plugin._STATE.recorder = recorder if wrapper else None
            listening = recorder.on_request in env.events.request._handlers
            if "listener" in steps and not listening:
                env.events.request.add_listener(recorder.on_request)
            elif listening and "listener" not in steps:
                env.events.request.remove_listener(recorder.on_request)

        cpu_ns_per_request()  # connect and warm up
        seen: dict[str, list[float]] = {name: [] for name in STEPS}
        for _ in range(rounds * 4):
            for name, steps in STEPS.items():  # alternate: drifts fall on every variant
                use(steps)
                recorder.take(encode=False)
                recorder.started = {}
                seen[name].append(cpu_ns_per_request())
        use(())
        quarter = max(1, rounds)
        return [
            (f"FastHttpSession GET on loopback (CPU), {name}", sorted(v)[quarter - 1])
            for name, v in seen.items()
        ]
    finally:
        FastHttpSession.request, LocustUserAgent._urlopen = plain_request, plain_open  # type: ignore[method-assign]
        plugin._STATE.recorder = None
        server.terminate()
        server.wait(10)
        if server.stdout is not None:
            server.stdout.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=2000, help="loopback GETs per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--per-interval", type=int, default=20_000, help="requests an interval, for the tick"
    )
    args = parser.parse_args(argv)
    rows = hook_costs(args.calls, args.rounds)
    tick = tick_cost(args.per_interval, args.rounds)
    rows += tick
    rows += wrapper_cost(args.calls, args.rounds)
    rows += loopback_cost(args.requests, args.rounds)
    print(f"{args.calls} calls, best of {args.rounds} rounds; {args.requests} loopback GETs")
    width = max(len(name) for name, _ in rows)
    for name, ns in rows:
        print(f"{name:<{width}}  {ns:9.0f} ns")
    figures = dict(rows)
    added = sum(figures[name] for name in ADDED) + tick[0][1]
    bare = figures["FastHttpSession GET on loopback (CPU), bare"]
    real = figures["FastHttpSession GET on loopback (CPU), all three (paybench)"] - bare
    print(
        f"paybench's steps: {added:.0f} ns in hot loops, {real:.0f} ns in real requests, "
        f"against a bare request's {bare:.0f} ns of CPU: requests per CPU-second ratio "
        f"{bare / (bare + added):.3f} (hot loops) or {bare / (bare + real):.3f} (real requests)"
    )
    return 0


# The per-request steps the plugin adds to a request, besides the interval tick (which
# includes the hand-over, take).
ADDED = (
    "  one more listener: the recorder's share",
    "request wrapper (_tracked): its own cost",
    "allow-list check (_guarded_urlopen): its own cost",
)


if __name__ == "__main__":
    sys.exit(main())
