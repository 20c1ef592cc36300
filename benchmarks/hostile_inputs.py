"""How long paybench takes to accept or refuse hostile inputs, and what checking costs.

1. Every hostile budgets shape of tests/hostile/shapes.py (deep nesting, megabytes, alias
   and merge-key bombs, the most values per byte at the size limit, a catastrophic glob):
   ``load_budgets`` timed, best and worst of ``--repeat``. Target: each under 2 s.
2. A recording of an hour at 2 s intervals, 15 request names: reading paybench.hdr.json
   and checking every field; checking every histogram's layout and inflated size (the
   zip-bomb check, done before each decode); decoding every histogram, for scale.

    .venv/bin/python benchmarks/hostile_inputs.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.config import load_budgets
from harness.core.stats import decode_histogram
from harness.errors import PaybenchError
from harness.inputs import Field
from harness.recording import _checked_encoding, load_recording
from tests.hostile.runfolders import recording_doc
from tests.hostile.shapes import SHAPES


def _timed(call) -> tuple[float, str]:
    start = time.perf_counter()
    try:
        call()
        outcome = "accepted"
    except PaybenchError as e:
        outcome = "refused: " + e.message.split(": ", 2)[-1][:60]
    return time.perf_counter() - start, outcome


def budgets(repeat: int, folder: Path) -> None:
    print(f"{'budgets file':40} {'bytes':>10} {'best s':>7} {'worst s':>8}  outcome")
    for name, make in SHAPES.items():
        path = folder / "budgets.yaml"
        path.write_text(make(), encoding="utf-8")
        times = []
        for _ in range(repeat):
            elapsed, outcome = _timed(lambda p=path: load_budgets(p))
            times.append(elapsed)
        size = path.stat().st_size
        print(f"{name:40} {size:>10,} {min(times):7.3f} {max(times):8.3f}  {outcome}")


def recording(repeat: int, folder: Path) -> None:
    names = [("GET", f"/api/name-{i}") for i in range(15)]
    path = folder / "paybench.hdr.json"
    doc = recording_doc(names, intervals=1800, per_interval=30)
    path.write_text(json.dumps(doc), encoding="utf-8")
    encodings = [i["histogram"] for e in doc["entries"] for i in e["intervals"]]
    where = Field(str(path))
    load, check, decode = [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        load_recording(path)
        load.append(time.perf_counter() - start)
        start = time.perf_counter()
        for text in encodings:
            _checked_encoding(text, where)
        check.append(time.perf_counter() - start)
        start = time.perf_counter()
        for text in encodings:
            decode_histogram(text)
        decode.append(time.perf_counter() - start)
    size_mb = path.stat().st_size / 1e6
    print(f"\nrecording: {size_mb:.1f} MB, {len(encodings):,} interval histograms")
    print(f"  read it and check every field: best {min(load):.2f} s")
    print(f"  check every histogram's layout and inflated size: best {min(check):.2f} s")
    print(f"  decode every histogram (hdrh, as before): best {min(decode):.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        budgets(args.repeat, Path(tmp))
        recording(args.repeat, Path(tmp))


if __name__ == "__main__":
    main()
