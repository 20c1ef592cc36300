"""``make stack`` / ``python -m harness.target.stack``: the reference target on real parts.

Starts Redis, PostgreSQL (with pg_stat_statements), the node and Redis exporters and a
Prometheus that scrapes them every second; then runs ``paybench run --profile smoke`` with
the built-in target on that PostgreSQL and Redis (``PAYBENCH_TARGET_DATABASE_URL`` and
``PAYBENCH_TARGET_REDIS_URL``, which the target reads as ``--database-url`` and
``--redis-url``), prints what the database and Redis hold after it, and stops everything by
PID, last started first. Options after ``--`` go to ``paybench run``. ``--serve`` starts
the same servers and a reference target of its own on them, scraped by Prometheus too, and
waits for Ctrl-C instead of running (the URLs are printed).

Exit code: the run's; 3 when a server cannot start (one line naming it and its log), 130
on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click
import httpx

from harness.errors import EXIT_INTERRUPTED, PaybenchError
from harness.target import DATABASE_URL_ENV, REDIS_URL_ENV, servers
from harness.target.process import ReferenceTarget

SCRAPE_INTERVAL_S = 1.0


def _say(line: str) -> None:
    click.echo(f"paybench stack: {line}", err=True)


@dataclass(frozen=True)
class StackUrls:
    redis: str
    postgres: str
    prometheus: str
    node_exporter: str
    redis_exporter: str
    target: str | None  # only with --serve: the stack's own target


@contextlib.contextmanager
def running_stack(
    folder: Path, target_settings: Sequence[str], own_target: bool
) -> Iterator[StackUrls]:
    """Start the servers (and, ``own_target``, a reference target on them); stop them all."""
    from harness.target.settings import parse_override

    overrides = dict(parse_override(text) for text in target_settings)
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(servers.start_redis(folder))
        _say(f"redis-server {redis_server.url} (pid {redis_server.pid})")
        # As root PostgreSQL runs as `postgres`, which may not enter `folder`: a temporary one.
        postgres = stack.enter_context(servers.start_postgres(None))
        _say(f"postgres {postgres.url} (pid {postgres.pid}, data {postgres.folder})")
        node = stack.enter_context(servers.start_node_exporter(folder))
        redis_exporter = stack.enter_context(servers.start_redis_exporter(redis_server.url, folder))
        _say(f"exporters {node.url} (node), {redis_exporter.url} (redis)")
        jobs = {"node": node.url, "redis": redis_exporter.url}
        target_url = None
        if own_target:
            target = stack.enter_context(
                ReferenceTarget(
                    overrides=overrides,
                    log_path=folder / "target.log",
                    database_url=postgres.url,
                    redis_url=redis_server.url,
                )
            )
            target_url = target.url
            jobs["paybench-target"] = target.url + "/metrics"
            _say(f"reference target {target.url} (pid {target.pid}, log {folder / 'target.log'})")
        prometheus = stack.enter_context(
            servers.start_prometheus(jobs, folder, interval_s=SCRAPE_INTERVAL_S)
        )
        _say(f"prometheus {prometheus.url} (pid {prometheus.pid}), scraping {', '.join(jobs)}")
        _wait_for_scrapes(prometheus.url, jobs=len(jobs))
        try:
            yield StackUrls(
                redis=redis_server.url,
                postgres=postgres.url,
                prometheus=prometheus.url,
                node_exporter=node.url,
                redis_exporter=redis_exporter.url,
                target=target_url,
            )
        finally:
            _say("stopping everything")


def _wait_for_scrapes(prometheus_url: str, jobs: int, timeout_s: float = 20.0) -> None:
    """Until Prometheus has scraped every job once (so the run's first seconds are in it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            targets = httpx.get(prometheus_url + "/api/v1/targets", timeout=2.0).json()
            active = targets["data"]["activeTargets"]
            if len(active) >= jobs and all(t["health"] == "up" for t in active):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    _say(f"warning: Prometheus did not see all {jobs} scrape targets up within {timeout_s:g} s")


def backend_figures(postgres_url: str, redis_url: str) -> list[str]:
    """What the run left in PostgreSQL and Redis: proof that the target used them."""
    import psycopg
    import redis

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        orders, completed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'COMPLETED') FROM orders"
        ).fetchone() or (0, 0)
        emails, sent = conn.execute(
            "SELECT count(*), count(sent_at) FROM email_outbox"
        ).fetchone() or (0, 0)
        calls, total_ms = conn.execute(
            "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0) "
            "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"
        ).fetchone() or (0, 0.0)
    client = redis.Redis.from_url(redis_url)
    try:
        stats = client.info("stats")
    finally:
        client.close()
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    mean = f", mean {float(total_ms) / int(calls):.3f} ms" if calls else ""
    rate = f" ({100 * hits / (hits + misses):.1f} % hits)" if hits + misses else ""
    return [
        f"PostgreSQL: {orders} orders, {completed} completed; {emails} confirmation emails "
        f"in the outbox, {sent} sent",
        f"PostgreSQL: {calls} statements (pg_stat_statements){mean}",
        f"Redis: {hits} keyspace hits, {misses} misses{rate}",
    ]


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--profile", default="smoke", show_default=True, help="Load profile of the run.")
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the logs, the Redis folder and Prometheus's data here [default: temporary].",
)
@click.option(
    "--target-set",
    "target_settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set a key of the target's model, e.g. email.skip_share=0.3 (repeatable).",
)
@click.option("--serve", is_flag=True, help="Start the stack and wait for Ctrl-C; no run.")
@click.argument("run_args", nargs=-1, type=click.UNPROCESSED)
def stack_command(
    profile: str,
    folder: Path | None,
    target_settings: tuple[str, ...],
    serve: bool,
    run_args: tuple[str, ...],
) -> None:
    """The reference target on PostgreSQL and Redis, with Prometheus and the exporters,
    and a paybench run on it. Options after -- go to `paybench run`."""
    with contextlib.ExitStack() as cleanup:
        if folder is None:
            temporary = tempfile.TemporaryDirectory(prefix="paybench-stack-")
            folder = Path(cleanup.enter_context(temporary))
        folder.mkdir(parents=True, exist_ok=True)
        code = _stack(folder, profile, target_settings, serve, run_args)
    sys.exit(code)


def _stack(
    folder: Path,
    profile: str,
    target_settings: Sequence[str],
    serve: bool,
    run_args: Sequence[str],
) -> int:
    # SIGTERM stops the stack as Ctrl-C does: everything started is stopped by PID.
    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        with running_stack(folder, target_settings, own_target=serve) as urls:
            if serve:
                _say("serving; Ctrl-C stops everything")
                signal.pause()
                return 0
            sets = [arg for text in target_settings for arg in ("--target-set", text)]
            command = [
                sys.executable, "-m", "harness", "run", "--profile", profile, "--no-history",
                *sets, *run_args,
            ]  # fmt: skip
            env = dict(os.environ, **{DATABASE_URL_ENV: urls.postgres, REDIS_URL_ENV: urls.redis})
            _say(
                f"running: {DATABASE_URL_ENV}={urls.postgres} {REDIS_URL_ENV}={urls.redis} "
                "paybench " + " ".join(command[3:])
            )
            done = subprocess.run(command, stdin=subprocess.DEVNULL, env=env, check=False)
            for line in backend_figures(urls.postgres, urls.redis):
                _say(line)
            return done.returncode
    except PaybenchError as exc:
        click.echo(f"paybench stack: error: {exc.message}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    stack_command(prog_name="python -m harness.target.stack")
