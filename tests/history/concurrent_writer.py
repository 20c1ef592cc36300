"""Adds N runs to a history file, for the concurrent-writers test (run as a script).

Usage: concurrent_writer.py HISTORY GO_FILE PREFIX N OTHER_PREFIX. Prints "ready", waits
until GO_FILE exists (so that two writers start together), adds its first run, waits until
the other writer's first run is in the history too (so the two overlap whatever the
scheduler does), adds the rest, prints "added N".
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

# Run as a script: make the project root importable for ``tests.history.historydata``.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from harness.store import HistoryStore
from tests.history.historydata import make_run


def main() -> int:
    history, go, prefix, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    other = sys.argv[5]
    runs = [make_run(f"{prefix}-{i:03d}", seed=i, intervals=3, per_interval=20) for i in range(n)]
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            print("never told to go", file=sys.stderr)
            return 1
        time.sleep(0.005)
    store = HistoryStore(history)
    added = int(store.add_run(runs[0], None))
    while not any(r.run_id == f"{other}-000" for r in store.list_runs()):
        if time.monotonic() > deadline:
            print(f"never saw {other}-000", file=sys.stderr)
            return 1
        time.sleep(0.005)
    added += sum(store.add_run(run, None) for run in runs[1:])
    print(f"added {added}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
