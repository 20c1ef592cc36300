"""What the allow-list check costs a request in the load generator, without the network.

    .venv/bin/python benchmarks/allowlist_cost.py [--calls 200000]

harness.plugin checks the host before every connection a session opens: FastHttpSession's
``LocustUserAgent._urlopen`` and HttpSession's ``send`` are wrapped. This times each wrapper
around a no-op against the no-op alone, for a host already decided (the steady state: one
dictionary lookup), and prints microseconds per request (best of 5 repeats). For scale: a
FastHttpUser request costs about 115 us of CPU, an HttpUser one about 480 us
(docs/performance.md).
"""

from __future__ import annotations

import argparse
import timeit

# First: importing Locust monkey-patches ssl, which must happen before requests is imported.
from harness import plugin


def _best_us(fn: object, calls: int) -> float:
    return min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e6  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    import requests
    from geventhttpclient.useragent import CompatRequest

    def noop(_self: object, _request: object, **_kw: object) -> None:
        return None

    fast_request = CompatRequest("http://127.0.0.1:8089/api/plans", method="GET")
    plain_request = requests.Request("GET", "http://127.0.0.1:8089/api/plans").prepare()
    urlopen = plugin._guarded_urlopen(noop)
    send = plugin._guarded_send(noop)
    base = _best_us(lambda: noop(None, fast_request), args.calls)
    fast = _best_us(lambda: urlopen(None, fast_request), args.calls) - base
    plain = _best_us(lambda: send(None, plain_request), args.calls) - base
    print(f"FastHttpSession (_urlopen): {fast:.2f} us per request")
    print(f"HttpSession (send):         {plain:.2f} us per request")


if __name__ == "__main__":
    main()
