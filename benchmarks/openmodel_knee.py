"""The knee of a target of known capacity, open model against closed loop.

    nice -n -15 .venv/bin/python benchmarks/openmodel_knee.py [--run-time 15]

The reference target serves payment initiation with 2 slots of a fixed 100 ms (the target
sleeps): capacity N/S = 20 checkouts/s. One `paybench run` per step: open model at 0.5x to
1.2x of it (`--arrival-rate`), then closed loop at 10 to 40 users (think time as the smoke
profile's). Per step it prints the served checkouts/s over the steady part (2 s after the
start to 1 s before the end), initiation's p95 (from the intended start in the open model)
and its service-time p95, and the dropped and late arrivals. docs/capacity.md quotes it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.core import arrivals  # noqa: E402
from harness.recording import HDR_FILE, load_recording  # noqa: E402

SLOTS, SERVICE_MS = 2, 100.0
CAPACITY = SLOTS * 1000.0 / SERVICE_MS
INITIATE = "POST /api/payments/v2/initiate"
SERVICE = f"FLOW {arrivals.SERVICE_PREFIX}{INITIATE}"
BUDGETS = 'version: 1\nrequests:\n  "POST /api/payments/v2/initiate": {p95: "< 60s"}\n'
TARGET = (
    f"capacity: {{checkout: {SLOTS}}}\n"
    f"routes: {{initiate: {{median_ms: {SERVICE_MS:g}, p99_ms: {SERVICE_MS:g}}}}}\n"
    "phonepe: {pay: {median_ms: 0, p99_ms: 0}}\n"
)


def step(where: Path, run_time_s: int, *options: str) -> str:
    where.mkdir(parents=True)
    (where / "budgets.yaml").write_text(BUDGETS, encoding="utf-8")
    (where / "target.yaml").write_text(TARGET, encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--budgets", str(where / "budgets.yaml"),
         "--target-config", str(where / "target.yaml"), "--run-time", f"{run_time_s}s",
         "--out", str(where), "--no-history", *options],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PAYBENCH_INTERVAL": "1"},
    )  # fmt: skip
    run_dir = next((where / "runs").iterdir())
    rec = load_recording(run_dir / HDR_FILE)
    start, stop = rec.test_start_epoch + 2, rec.test_stop_epoch - 1
    stats = {f"{s.request_type} {s.name}": s for s in rec.request_stats(start, stop)}
    initiate = stats[INITIATE]
    served = initiate.count / (len(initiate.interval_histograms) * rec.interval_s)
    service = stats.get(SERVICE)
    counts = {c.user_class: c for c in rec.paced.user_classes}
    missed = ""
    if arrivals.DROPPED_CLASS in counts:
        d, late = counts[arrivals.DROPPED_CLASS], counts[arrivals.LATE_CLASS]
        missed = (
            f"{round(d.intended_iterations) - d.achieved_iterations} dropped, "
            f"{round(late.intended_iterations) - late.achieved_iterations} late"
        )
    p95 = initiate.percentile_ms(95) or 0.0
    svc = f"{service.percentile_ms(95) or 0.0:8.0f}" if service else "       -"
    return (
        f"{served:7.1f} /s  p95 {p95:8.0f} ms  service p95 {svc} ms  {missed} (exit {r.returncode})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-time", type=int, default=15)
    args = parser.parse_args()
    print(f"target: {SLOTS} slots x {SERVICE_MS:g} ms = {CAPACITY:g} checkouts/s")
    with tempfile.TemporaryDirectory() as tmp:
        for share in (0.5, 0.8, 0.9, 1.0, 1.1, 1.2):
            rate = share * CAPACITY
            line = step(Path(tmp, f"open{share}"), args.run_time, "--arrival-rate", f"{rate:g}/s")
            print(f"open   {rate:5.1f}/s ({share:.1f}x): {line}", flush=True)
        for users in (10, 20, 30, 40):
            n = str(users)
            line = step(Path(tmp, f"closed{n}"), args.run_time, "--users", n, "--spawn-rate", n)
            print(f"closed {users:3d} users      : {line}", flush=True)


if __name__ == "__main__":
    main()
