"""What scraping server metrics costs: paybench's CPU per scrape, and the generator's throughput.

    .venv/bin/python benchmarks/scrape_cost.py [--scrapes 200] [--pairs 4] [--seconds 8]

1. CPU per scrape, per kind of source, in this process (the paybench process scrapes the
   same way, a thread per source): the reference target's /metrics with the series the
   shipped budgets read, its process by PID, node_exporter's page with the host metrics,
   Redis' INFO and PostgreSQL's statistics (those three when their Debian packages are
   installed: harness.target.servers starts them on loopback). Each is scraped ``--scrapes``
   times in batches; the median batch gives CPU and wall milliseconds per scrape, and the
   share of one core at the default 2 s interval.
2. The load generator's throughput with and without the scraping: a bare FastHttpUser
   (benchmarks/overhead.py's ``one_run``, no paybench plugin, 50 users) against a fast
   loopback server, while this process scrapes every source above at ``--interval`` (or
   not), pinned to the generator's core (the worst case); interleaved pairs (ABBA),
   median ratio of requests/s.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.core.budgets import parse_budgets  # noqa: E402
from harness.core.server_budgets import ServerSection  # noqa: E402
from harness.server.scraper import ServerScraping, resolve  # noqa: E402
from harness.server.sources import Source, open_source, reference_target_pid  # noqa: E402
from harness.target import servers  # noqa: E402
from harness.target.process import ReferenceTarget  # noqa: E402

_spec = importlib.util.spec_from_file_location("overhead", ROOT / "benchmarks" / "overhead.py")
assert _spec is not None and _spec.loader is not None
overhead = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(overhead)

BATCHES = 5


def _budgets(urls: dict[str, str]) -> ServerSection:
    sources = ["sources:"]
    server = [
        "server:",
        '  target: {cache_hit_rate: "> 80%", query_time_avg: "< 100ms", '
        'pool_usage_percent: "< 80%", emails_per_completed_payment: {run: ">= 0.99"}}',
        '  target_process: {cpu_percent: "< 70%", memory_percent: {max: "< 80%"}}',
    ]
    kinds = {"node": "prometheus", "redis": "redis", "db": "postgres"}
    wanted = {
        "node": '{host_cpu_percent: "< 70%", host_memory_percent: "< 80%", '
        'disk_io_time_avg: "< 80ms"}',
        "redis": '{cache_hit_rate: "> 80%", memory_percent: {max: "< 80%"}}',
        "db": '{query_time_avg: "< 100ms", pool_usage_percent: "< 80%"}',
    }
    for name, url in urls.items():
        sources.append(f'  {name}: {{kind: {kinds[name]}, url: "{url}"}}')
        server.append(f"  {name}: {wanted[name]}")
    text = "version: 1\n" + ("\n".join(sources) + "\n" if urls else "") + "\n".join(server)
    section = parse_budgets(text + "\n", "scrape_cost").server
    assert section is not None
    return section


@contextlib.contextmanager
def _servers(skip: list[str]) -> Iterator[dict[str, str]]:
    """The optional servers that are installed, started on loopback."""
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        for name, binary, start in (
            ("node", "prometheus-node-exporter", servers.start_node_exporter),
            ("redis", "redis-server", servers.start_redis),
            ("db", "postgres", lambda: servers.start_postgres(durable=False)),
        ):
            problem = servers.missing_binary(binary)
            if problem is not None:
                skip.append(f"{name}: {problem}")
                continue
            urls[name] = stack.enter_context(start()).url
        yield urls


def _opened(section: ServerSection, target: ReferenceTarget) -> list[tuple[Source, frozenset[str]]]:
    out = []
    for spec in section.used_sources(builtin_target=True):
        pid = reference_target_pid(target.url) if spec.name == "target_process" else None
        source = open_source(spec, target_url=target.url, target_pid=pid, source_file="-")
        out.append((source, resolve(section, spec.name, source, source.names(), "-")))
    return out


def cpu_per_scrape(sources: list[tuple[Source, frozenset[str]]], scrapes: int) -> None:
    print(f"CPU per scrape ({scrapes} scrapes per source, median of {BATCHES} batches)")
    print(
        f"{'source':<28} {'series':>6} {'values':>6} {'CPU ms':>7} {'wall ms':>8}"
        f" {'core % at 2 s':>14}"
    )
    for source, wanted in sources:
        per_batch = max(1, scrapes // BATCHES)
        cpu, wall = [], []
        values = 0
        for _ in range(BATCHES):
            c0, w0 = time.thread_time(), time.perf_counter()
            for _ in range(per_batch):
                values = len(source.scrape(wanted))
            cpu.append((time.thread_time() - c0) * 1000 / per_batch)
            wall.append((time.perf_counter() - w0) * 1000 / per_batch)
        c, w = statistics.median(cpu), statistics.median(wall)
        label = f"{source.spec.name} ({source.spec.kind})"
        print(
            f"{label:<28} {len(wanted):>6} {values:>6} {c:7.2f} {w:8.2f} {c / 2000 * 100:13.3f} %"
        )


def throughput(section: ServerSection, target: ReferenceTarget, args: argparse.Namespace) -> None:
    server = subprocess.Popen(
        [sys.executable, str(overhead.SERVER), "--parent-pid", str(os.getpid())],
        stdout=subprocess.PIPE,
        text=True,
    )
    cores = sorted(os.sched_getaffinity(0))
    ratios, cpu_ratios = [], []
    try:
        overhead._pin(server.pid, 1, True)
        url = f"http://127.0.0.1:{int(server.stdout.readline().split()[1])}"
        print(
            f"\ngenerator throughput, {args.pairs} pairs of {args.seconds} s, 50 users, scraping "
            f"every {args.interval:g} s on the generator's core"
        )
        print(
            f"{'pair':>4} {'req/s without':>14} {'with':>8} {'ratio':>6}"
            f"   {'req/CPU-s without':>18} {'with':>8} {'ratio':>6}"
        )
        with tempfile.TemporaryDirectory(prefix="paybench-scrape-cost-") as tmp:
            locustfile = Path(tmp) / "bare.py"
            locustfile.write_text(overhead.LOCUSTFILE)
            psutil.Process().cpu_affinity(cores[:1])
            for pair in range(args.pairs):
                result = {}
                for scraping in (False, True) if pair % 2 == 0 else (True, False):
                    work = Path(tmp) / f"{pair}-{scraping}"
                    run_dir = Path(tmp) / f"scrape-{pair}-{scraping}"
                    run_dir.mkdir()
                    around = (
                        ServerScraping(
                            section,
                            source_file="-",
                            interval_s=args.interval,
                            target_url=target.url,
                            target_kind="reference",
                            run_dir=run_dir,
                        )
                        if scraping
                        else contextlib.nullcontext()
                    )
                    with around:
                        result[scraping] = overhead.one_run(
                            locustfile, url, work, False, args.seconds, 50, True
                        )
                ratios.append(result[True][0] / result[False][0])
                cpu_ratios.append(result[True][1] / result[False][1])
                print(
                    f"{pair + 1:>4} {result[False][0]:14.0f} {result[True][0]:8.0f}"
                    f" {ratios[-1]:6.3f}   {result[False][1]:18.0f} {result[True][1]:8.0f}"
                    f" {cpu_ratios[-1]:6.3f}"
                )
    finally:
        psutil.Process().cpu_affinity(cores)
        server.terminate()
        server.wait(10)
        server.stdout.close()
    print(
        f"median ratio of requests/s with/without scraping: {statistics.median(ratios):.3f} "
        f"(range {min(ratios):.3f}-{max(ratios):.3f})"
    )
    print(
        f"median ratio of requests per Locust CPU-second: {statistics.median(cpu_ratios):.3f} "
        f"(range {min(cpu_ratios):.3f}-{max(cpu_ratios):.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    skipped: list[str] = []
    with _servers(skipped) as urls, ReferenceTarget() as target:
        section = _budgets(urls)
        sources = _opened(section, target)
        for note in skipped:
            print(f"not measured: {note}")
        cpu_per_scrape(sources, args.scrapes)
        for source, _ in sources:
            source.close()
        if args.pairs:
            throughput(section, target, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
