"""harness.plugin's Recorder driven by a clock of given epochs, without Locust running.

    python tests/plugin/recorder_clock.py INTERVAL_S

Reads a JSON list of epochs on stdin, records one request at each (the clock answering
them in order) and prints one JSON line: the requests per interval index the Recorder
handed over, and the index ``int(epoch * (1 / INTERVAL_S))`` of each epoch (the rule of
the recording format), so a test can compare them. Run as a script: importing
harness.plugin imports Locust, which monkey-patches the interpreter with gevent.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter

from harness import plugin


def main() -> None:
    interval_s = float(sys.argv[1])
    epochs = [float(e) for e in json.load(sys.stdin)]
    clock = iter(epochs).__next__
    recorder = plugin.Recorder(interval_s, "local", clock=clock)
    for n in range(len(epochs)):
        recorder.on_request("GET", "/api/plans", 1.0 + n % 7, 11, None, None, None, None, None)
    recorded: Counter[int] = Counter()
    for row in recorder.take(encode=False)["entries"]:
        recorded[row[2]] += row[3]
    per_s = 1.0 / interval_s
    expected = Counter(int(e * per_s) for e in epochs)
    bounds = []
    for index in sorted(expected):
        lo, hi = plugin._interval_bounds(index, per_s, interval_s)
        bounds.append(
            [
                int(lo * per_s) == index,
                int(math.nextafter(lo, -math.inf) * per_s) == index - 1,
                int(math.nextafter(hi, -math.inf) * per_s) == index,
                int(hi * per_s) == index + 1,
            ]
        )
    print(
        json.dumps(
            {
                "recorded": sorted(recorded.items()),
                "expected": sorted(expected.items()),
                "bounds_exact": bounds,
            }
        )
    )


if __name__ == "__main__":
    main()
