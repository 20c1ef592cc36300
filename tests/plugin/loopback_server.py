"""A small, fast HTTP/1.1 server for loopback measurement tests and benchmarks.

    python tests/plugin/loopback_server.py [--latency-median-ms 150 --latency-sigma 0.6]
                                           [--seed 1] [--parent-pid PID]

Binds 127.0.0.1 on a free port and prints ``PORT <n>`` once listening. Every request but
``GET /__count`` is counted the moment its headers have arrived (so a request whose client
gave up waiting is counted too); ``GET /__count`` answers ``{"total": n, "by_path": {...}}``.
With ``--latency-median-ms`` each answer (but those to paths under ``/fast``) is delayed by
a seeded lognormal draw, so a run has a known latency distribution. One asyncio protocol,
no framework: it answers tens of thousands of small requests per second, well above one
Locust process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import signal
import sys
from collections import Counter

BODY = b'{"ok":true}'
OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class Counts:
    def __init__(self) -> None:
        self.by_path: Counter[str] = Counter()

    def snapshot(self) -> bytes:
        body = json.dumps({"total": sum(self.by_path.values()), "by_path": self.by_path}).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        return head.encode() + b"\r\n\r\n" + body


class Http(asyncio.Protocol):
    def __init__(self, counts: Counts, delay: random.Random | None, median_s: float, sigma: float):
        self.counts = counts
        self.delay = delay
        self.mu = math.log(median_s) if median_s > 0 else 0.0
        self.sigma = sigma
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            lower = head.lower()
            at = lower.find(b"content-length:")
            if at >= 0:
                line_end = lower.find(b"\r\n", at)
                length = int(lower[at + 15 : line_end if line_end >= 0 else None].strip())
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            request_line = head.split(b"\r\n", 1)[0].split(b" ")
            method = request_line[0].decode()
            path = request_line[1].decode() if len(request_line) > 1 else "/"
            if method == "GET" and path == "/__count":
                self.reply(self.counts.snapshot())
                continue
            self.counts.by_path[f"{method} {path}"] += 1
            if self.delay is None or path.startswith("/fast"):
                self.reply(OK)
            else:
                wait_s = self.delay.lognormvariate(self.mu, self.sigma)
                asyncio.get_running_loop().call_later(wait_s, self.reply, OK)

    def reply(self, response: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(response)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    counts = Counts()
    delay = random.Random(args.seed) if args.latency_median_ms > 0 else None
    server = await loop.create_server(
        lambda: Http(counts, delay, args.latency_median_ms / 1000.0, args.latency_sigma),
        "127.0.0.1",
        0,
        backlog=1024,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    watcher = loop.create_task(_watch_parent(args.parent_pid, stop)) if args.parent_pid else None
    await stop
    if watcher is not None:
        watcher.cancel()
    server.close()


async def _watch_parent(pid: int, stop: asyncio.Future[None]) -> None:
    # Never outlive the test or benchmark that started us.
    while not stop.done():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            stop.set_result(None)
            return
        await asyncio.sleep(1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-median-ms", type=float, default=0.0)
    parser.add_argument("--latency-sigma", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--parent-pid", type=int, default=0)
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
