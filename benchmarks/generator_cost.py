"""Generator CPU per request: paybench's checkout mix against a bare FastHttpUser.

    .venv/bin/python benchmarks/generator_cost.py [--users 60] [--window 10] [--repeat 5] [--record]

Starts the reference target on loopback with every service time at zero, then, in turns:

1. the checkout mix: ``locustfiles/payments.py`` (checkout users, webhook senders, health
   prober; PhonePe's schedule compressed 200 times, no think time);
2. ``benchmarks/bare_locustfile.py``: the same requests (methods, paths, bodies and
   proportions measured in run 1) from a FastHttpUser with no scenario logic, paced to the
   request rate run 1 reached, so both pay the same fixed overheads per second.

Each is one bounded headless Locust process; ``cpu_probe.py`` (loaded beside it) reads the
process's CPU time and request count over a window after the warm-up. The figure is CPU
seconds per HTTP request (FLOW entries are not requests); the scenario logic (validation,
hand-off, templating) may add at most 25 % to the bare figure. Prints both, and the ratio;
exits 1 above the budget. ``--record`` runs both with ``harness.plugin`` recording too.

60 users keep the generator busy (about 2,000 requests/s, 40 % of a core): at a few hundred
requests/s the CPU per request is dominated by event-loop wake-ups, whose number depends on
the traffic's timing pattern more than on the scenario logic, and the figures scatter.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.core import catalogue
from harness.target.auth import webhook_authorization, webhook_credentials
from harness.target.process import ReferenceTarget
from harness.target.settings import ROUTE_GROUPS

ROOT = Path(__file__).resolve().parent.parent
PAYMENTS = ROOT / "locustfiles" / "payments.py"
BARE = ROOT / "benchmarks" / "bare_locustfile.py"
PROBE = ROOT / "benchmarks" / "cpu_probe.py"
BUDGET_RATIO = 1.25
WARMUP_S = 2.0
RUN_TIMEOUT_S = 120.0

# Zero service time everywhere: the target answers as fast as it can, the generator's
# own cost is what differs between the two runs.
FAST_TARGET = {
    **{f"routes.{route}.{q}": 0 for route in ROUTE_GROUPS for q in ("median_ms", "p99_ms")},
    # Orders settle only by the scenario's webhooks, never by the target's own payer model:
    # the bare run's status checks then hit a PENDING order, as most of the scenario's do.
    "payment.payer_time_median_s": 3000,
    "payment.payer_time_p99_s": 3000,
    "payment.expire_after_s": 3600,
    **{
        f"phonepe.{c}.{q}": 0
        for c in ("pay", "order_status", "health")
        for q in ("median_ms", "p99_ms")
    },
}
SCENARIO_KNOBS = ("--time-scale", "0.005", "--think-time", "0", "--health-interval", "1")


@dataclass(frozen=True)
class Measurement:
    cpu_s: float
    requests: int
    wall_s: float
    counts: dict[tuple[str, str], int]

    @property
    def us_per_request(self) -> float:
        return 1e6 * self.cpu_s / self.requests

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s


def run_locust(
    locustfile: Path, host: str, users: int, window_s: float, work: Path, tag: str,
    args: tuple[str, ...] = (), env: dict[str, str] | None = None, record: bool = False,
) -> Measurement:  # fmt: skip
    """One bounded headless Locust process with the CPU probe beside the locustfile."""
    probe_out = work / f"{tag}.probe.json"
    run_time_s = int(WARMUP_S + window_s + 3)
    command = [
        sys.executable, "-m", "locust", "--headless", "--only-summary",
        "-f", f"{locustfile},{PROBE}", "--host", host,
        "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{run_time_s}s",
        "--json-file", str(work / tag), "--exit-code-on-error", "0", *args,
    ]  # fmt: skip
    if record:
        command += ["--paybench-dir", str(work / f"{tag}.paybench")]
    probe_env = {
        "PAYBENCH_PROBE_OUT": str(probe_out),
        "PAYBENCH_PROBE_WARMUP_S": str(WARMUP_S),
        "PAYBENCH_PROBE_WINDOW_S": str(window_s),
    }
    proc = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        env={**os.environ, **probe_env, **(env or {})},
    )  # fmt: skip
    if proc.returncode != 0 or not probe_out.exists():
        sys.exit(
            f"generator_cost: the {tag} run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    probe = json.loads(probe_out.read_text())
    stats = json.loads(Path(f"{work / tag}.json").read_text())  # Locust appends .json
    counts = {(e["method"], e["name"]): e["num_requests"] for e in stats}
    return Measurement(probe["cpu_s"], int(probe["requests"]), probe["wall_s"], counts)


@dataclass(frozen=True)
class Fixtures:
    """A PENDING order, a paid one and its subscription: every bare request gets a 2xx."""

    pending_order_id: str
    user_id: str
    initiate_body: str
    webhook_body: str
    authorization: str


def prepare(url: str) -> Fixtures:
    with httpx.Client(base_url=url, timeout=10.0) as client:
        plan = client.get("/api/plans").json()["plans"][0]
        user_id = "bench-user"
        initiate_body = json.dumps({"plan_id": plan["id"], "user_id": user_id})
        order = client.post(
            "/api/payments/v2/initiate",
            content=initiate_body,
            headers={"Content-Type": "application/json"},
        ).json()
        webhook_body = json.dumps(
            {
                "event": "checkout.order.completed",
                "payload": {
                    "merchantOrderId": order["merchant_order_id"],
                    "orderId": order["order_id"],
                    "state": "COMPLETED",
                    "amount": order["amount"],
                },
            }
        )
        pending = client.post(
            "/api/payments/v2/initiate",
            content=initiate_body,
            headers={"Content-Type": "application/json"},
        ).json()
        authorization = webhook_authorization(*webhook_credentials())
        client.post(
            "/api/payments/v2/webhook",
            content=webhook_body,
            headers={"Authorization": authorization, "Content-Type": "application/json"},
        ).raise_for_status()
    return Fixtures(
        pending["merchant_order_id"],
        user_id,
        initiate_body,
        webhook_body,
        authorization,
    )


def bare_mix(counts: dict[tuple[str, str], int], fx: Fixtures) -> list[dict[str, object]]:
    """The scenario's requests as plain ones, in the proportions the scenario sent them."""
    json_headers = {"Content-Type": "application/json"}
    webhook = {
        "method": "POST",
        "path": "/api/payments/v2/webhook",
        "body": fx.webhook_body,
        # A forged one gets the right signature too: a bare user counts a 401 as a failure.
        "headers": {**json_headers, "Authorization": fx.authorization},
    }
    concrete = {
        catalogue.PLANS: {"method": "GET", "path": "/api/plans"},
        catalogue.INITIATE: {
            "method": "POST",
            "path": "/api/payments/v2/initiate",
            "body": fx.initiate_body,
            # No Idempotency-Key: every one creates an order, as the scenario's do.
            "headers": json_headers,
        },
        catalogue.STATUS: {
            "method": "GET",
            "path": f"/api/payments/v2/status/{fx.pending_order_id}",
        },
        catalogue.SUBSCRIPTION: {
            "method": "GET",
            "path": f"/api/subscriptions/current?user_id={fx.user_id}",
        },
        catalogue.WEBHOOK_COMPLETED: webhook,
        catalogue.WEBHOOK_FAILED: webhook,
        catalogue.WEBHOOK_DUPLICATE: webhook,
        catalogue.WEBHOOK_FORGED: webhook,
        catalogue.HEALTH: {"method": "GET", "path": "/api/health"},
        catalogue.HEALTH_DATABASE: {"method": "GET", "path": "/api/health/database"},
        catalogue.HEALTH_REDIS: {"method": "GET", "path": "/api/health/redis"},
        catalogue.HEALTH_PAYMENTS: {"method": "GET", "path": "/api/payments/v2/health"},
    }
    http = {key: n for key, n in counts.items() if key in concrete and n > 0}
    total = sum(http.values())
    # A cycle of about 500 requests keeps even the rarest kind in it.
    return [{**concrete[key], "weight": max(1, round(500 * n / total))} for key, n in http.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=60, help="users per run (default 60)")
    parser.add_argument("--window", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--repeat", type=int, default=5, help="pairs of runs (median taken)")
    parser.add_argument("--record", action="store_true", help="with harness.plugin recording")
    args = parser.parse_args(argv)

    scenario_runs: list[Measurement] = []
    bare_runs: list[Measurement] = []
    with (
        tempfile.TemporaryDirectory(prefix="paybench-gencost-") as tmp,
        ReferenceTarget(overrides=FAST_TARGET) as target,
    ):
        work = Path(tmp)
        fixtures = prepare(target.url)
        for i in range(args.repeat):
            scenario = run_locust(
                PAYMENTS, target.url, args.users, args.window, work, f"scenario{i}",
                SCENARIO_KNOBS, record=args.record,
            )  # fmt: skip
            mix = bare_mix(scenario.counts, fixtures)
            bare = run_locust(
                BARE, target.url, args.users, args.window, work, f"bare{i}", record=args.record,
                env={
                    "PAYBENCH_BARE_MIX": json.dumps(mix),
                    "PAYBENCH_BARE_RPS_PER_USER": f"{scenario.rps / args.users:.3f}",
                },
            )  # fmt: skip
            if abs(bare.rps / scenario.rps - 1) > 0.05:
                print(
                    f"  (pair {i + 1}: the bare run reached {bare.rps:.0f} requests/s, not the "
                    f"scenario's {scenario.rps:.0f}: fewer users or a faster target compare better)"
                )
            scenario_runs.append(scenario)
            bare_runs.append(bare)
            ratio = scenario.us_per_request / bare.us_per_request
            print(
                f"pair {i + 1}: scenario {scenario.us_per_request:6.1f} us/request at "
                f"{scenario.rps:6.0f} requests/s; bare {bare.us_per_request:6.1f} us/request at "
                f"{bare.rps:6.0f} requests/s; ratio {ratio:.3f}"
            )

    scenario_us = statistics.median(m.us_per_request for m in scenario_runs)
    bare_us = statistics.median(m.us_per_request for m in bare_runs)
    ratios = [
        s.us_per_request / b.us_per_request for s, b in zip(scenario_runs, bare_runs, strict=True)
    ]
    ratio = statistics.median(ratios)
    recording = "with harness.plugin recording" if args.record else "Locust's own stats only"
    print(
        f"\ngenerator CPU per HTTP request, one Locust process, {args.users} users, "
        f"{args.window:g} s windows, median of {args.repeat} ({recording}):"
    )
    print(f"  checkout mix (locustfiles/payments.py)  {scenario_us:7.1f} us/request")
    print(f"  bare FastHttpUser, same requests         {bare_us:7.1f} us/request")
    print(f"  ratio                                    {ratio:7.3f}  (budget {BUDGET_RATIO})")
    if ratio > BUDGET_RATIO:
        print(f"over budget: the scenario logic adds more than {BUDGET_RATIO - 1:.0%}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
