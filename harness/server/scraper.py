"""Scraping the server-metrics sources around the load, into the run folder's server.jsonl.

``lifecycle.execute`` enters ``ServerScraping`` once the target is up and its preflight
passed, just before Locust starts, and leaves it once Locust has exited. Entering is the
server preflight:

- every source a budget reads answers (else TargetError, exit 3, naming the source);
- every series a budget's formula needs is there (else ConfigError, exit 2, naming the
  budget, the series and the closest names the source does have).

Then one thread per source scrapes it at the histogram interval (each scrape bounded by the
source's timeout; the ticks fall on the same interval boundaries as the recording's), and
every scrape is one line of server.jsonl: the values of the series the budgets read, or the
error of a scrape that failed. A Prometheus server is asked once the load is over, with a
range query over the run per series name. The first scrape is taken before the load starts,
the last after Locust has exited, so that the steady state is covered at both ends.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from harness.core.server_budgets import (
    TARGET_PROCESS_SOURCE,
    ServerBudget,
    ServerSection,
    SourceSpec,
    series_names,
)
from harness.core.server_regressions import ServerRegressionBudget
from harness.errors import ConfigError, TargetError
from harness.runfolder import SERVER_FILE, create_exclusive, write_error
from harness.server import SERVER_FORMAT, SERVER_FORMAT_VERSION
from harness.server.sources import (
    PostgresSource,
    PromQLSource,
    ScrapeError,
    Source,
    open_source,
    reference_target_pid,
)

# The histogram interval the recording uses unless the profile or PAYBENCH_INTERVAL says
# otherwise (harness.plugin.DEFAULT_INTERVAL_S; the plugin runs inside Locust only).
DEFAULT_INTERVAL_S = 2.0
INTERVAL_ENV = "PAYBENCH_INTERVAL"


def interval_for(settings: Mapping[str, str]) -> float:
    """The histogram interval of a run: the profile's ``paybench-interval``, else
    ``PAYBENCH_INTERVAL``, else the default (a value the plugin would refuse: the default)."""
    for text in (settings.get("paybench-interval"), os.environ.get(INTERVAL_ENV)):
        if text is None:
            continue
        try:
            value = float(text)
        except ValueError:
            continue
        if math.isfinite(value) and 0.1 <= value <= 60.0:
            return value
    return DEFAULT_INTERVAL_S


@dataclass
class _Job:
    name: str
    source: Source
    wanted: frozenset[str]


def _missing_message(
    b: ServerBudget | ServerRegressionBudget,
    name: str,
    where: str,
    have: set[str],
    source: Source,
    source_file: str,
) -> str:
    firsts = [series_names(f) for f in b.formulas]
    missing = next(n for n in firsts[0] if n not in have)
    others = [next((n for n in f if n not in have), f[0]) for f in firsts[1:]]
    nor = f" (nor {', '.join(others)})" if others else ""
    close = difflib.get_close_matches(missing, sorted(have), n=4, cutoff=0.5)
    for other in others:
        close += [
            c
            for c in difflib.get_close_matches(other, sorted(have), n=2, cutoff=0.5)
            if c not in close
        ]
    closest = (
        f"closest names it has: {', '.join(close[:5])}"
        if close
        else (f"it has {len(have)} series names, none close")
    )
    fix = "check what the source exposes, or budget another metric"
    if isinstance(source, PostgresSource) and missing.startswith("pg_stat_statements"):
        fix = (
            "install the pg_stat_statements extension in the database it connects to "
            "(CREATE EXTENSION pg_stat_statements; it needs shared_preload_libraries = "
            "'pg_stat_statements')"
        )
    return (
        f"{source_file}: {b.key_path}: source {name!r} ({where}) has no {missing}{nor}, "
        f"which {b.metric} needs; {closest}; {fix}"
    )


def resolve(
    section: ServerSection, name: str, source: Source, have: set[str], source_file: str
) -> frozenset[str]:
    """The series names to scrape from a source for its budgets (each budget's first formula
    the source can give); ConfigError naming the budget and the closest names otherwise."""
    wanted: set[str] = set()
    for b in section.budgets_on(name):
        for formula in b.formulas:
            names = set(series_names(formula))
            if names <= have:
                wanted |= names
                break
        else:
            raise ConfigError(_missing_message(b, name, source.where, have, source, source_file))
    return frozenset(wanted)


class ServerScraping:
    """The context manager around the load (see the module doc)."""

    def __init__(
        self,
        section: ServerSection,
        *,
        source_file: str,
        interval_s: float,
        target_url: str,
        target_kind: str,
        run_dir: Path,
    ) -> None:
        self.section = section
        self.source_file = source_file
        self.interval_s = interval_s
        self.target_url = target_url
        self.builtin = target_kind == "reference"
        self.path = run_dir / SERVER_FILE
        self.jobs: list[_Job] = []
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._write_failed: OSError | None = None
        self._started_epoch = 0.0

    # --- preflight ---

    def _open(self, spec: SourceSpec) -> Source:
        pid = None
        if spec.builtin and spec.name == TARGET_PROCESS_SOURCE:
            pid = reference_target_pid(self.target_url)
        return open_source(
            spec, target_url=self.target_url, target_pid=pid, source_file=self.source_file
        )

    def preflight(self) -> None:
        """Every source answers and has what its budgets read (module doc)."""
        for spec in self.section.used_sources(builtin_target=self.builtin):
            source = self._open(spec)
            self.jobs.append(_Job(spec.name, source, frozenset()))
            label = "built-in source" if spec.builtin else f"{spec.kind} source"
            where = spec.key_path or f"the {spec.name} source"
            try:
                have = source.names()
            except ScrapeError as exc:
                raise TargetError(
                    f"{self.source_file}: {where}: {label} {spec.name!r} ({source.where}) "
                    f"did not answer: {exc}; start it or fix its address (server budgets are "
                    "judged on it)"
                ) from None
            self.jobs[-1].wanted = resolve(self.section, spec.name, source, have, self.source_file)
            if isinstance(source, PromQLSource):
                try:
                    source.scrape(self.jobs[-1].wanted)
                except ScrapeError as exc:
                    raise TargetError(
                        f"{self.source_file}: {where}: Prometheus at {source.where} did not "
                        f"answer a query: {exc}"
                    ) from None

    # --- the file ---

    def _write(self, line: Mapping[str, Any]) -> None:
        data = (json.dumps(line, separators=(",", ":"), allow_nan=False) + "\n").encode("utf-8")
        with self._lock:
            if self._file is None or self._write_failed is not None:
                return
            try:
                self._file.write(data)
                self._file.flush()
            except OSError as exc:
                self._write_failed = exc

    def _scrape(self, job: _Job) -> None:
        started = time.time()
        try:
            values = job.source.scrape(job.wanted)
        except ScrapeError as exc:
            self._write(
                {"epoch": round(time.time(), 3), "source": job.name, "ok": False, "error": str(exc)}
            )
            return
        except Exception as exc:  # a client library's own failure: recorded, never a crash
            self._write(
                {
                    "epoch": round(time.time(), 3),
                    "source": job.name,
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            return
        # The values are of the moment between asking and the answer.
        epoch = (started + time.time()) / 2.0
        self._write({"epoch": round(epoch, 3), "source": job.name, "ok": True, "values": values})

    def _loop(self, job: _Job) -> None:
        interval = self.interval_s
        while True:
            now = time.time()
            tick = (math.floor(now / interval) + 1) * interval
            if self._stop.wait(max(0.0, tick - now)):
                return
            self._scrape(job)

    # --- the context manager ---

    def __enter__(self) -> ServerScraping:
        try:
            self.preflight()
            self._file = create_exclusive(self.path)
        except BaseException:
            self._close_sources()
            raise
        self._started_epoch = time.time()
        self._write(
            {
                "format": SERVER_FORMAT,
                "format_version": SERVER_FORMAT_VERSION,
                "interval_s": self.interval_s,
                "sources": {
                    job.name: {
                        "kind": job.source.spec.kind,
                        "where": job.source.where,
                        "series": sorted(job.wanted),
                    }
                    for job in self.jobs
                },
            }
        )
        for job in self.jobs:
            if isinstance(job.source, PromQLSource):
                continue  # asked once the load is over
            self._scrape(job)
            thread = threading.Thread(
                target=self._loop, args=(job,), name=f"paybench-scrape-{job.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        bound = max((j.source.spec.timeout_s for j in self.jobs), default=1.0) * 4 + 1.0
        deadline = time.monotonic() + bound
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            if exc_type is None:
                for job in self.jobs:
                    if isinstance(job.source, PromQLSource):
                        self._range(job, job.source)
                    else:
                        self._scrape(job)  # the last sample, after Locust has exited
        finally:
            self._close_sources()
            with self._lock:
                if self._file is not None:
                    try:
                        self._file.close()
                    except OSError as e:
                        self._write_failed = self._write_failed or e
                    self._file = None
        if self._write_failed is not None and exc_type is None:
            raise write_error(self.path, self._write_failed)

    def _range(self, job: _Job, source: PromQLSource) -> None:
        end = time.time()
        try:
            rows = source.range_samples(job.wanted, self._started_epoch, end, self.interval_s)
        except ScrapeError as exc:
            self._write(
                {
                    "epoch": round(end, 3),
                    "source": job.name,
                    "ok": False,
                    "error": f"range query: {exc}",
                }
            )
            return
        for epoch in sorted(rows):
            self._write({"epoch": epoch, "source": job.name, "ok": True, "values": rows[epoch]})

    def _close_sources(self) -> None:
        for job in self.jobs:
            try:
                job.source.close()
            except Exception:  # closing a client that failed: nothing left to do with it
                pass


def scraping_hook(
    section: ServerSection | None, *, source_file: str, interval_s: float
) -> Callable[[str, str, Path], ServerScraping] | None:
    """What ``RunSpec.around_load`` takes: None when no server budget is set."""
    if section is None or not section.budgets:
        return None

    def around_load(url: str, kind: str, run_dir: Path) -> ServerScraping:
        return ServerScraping(
            section,
            source_file=source_file,
            interval_s=interval_s,
            target_url=url,
            target_kind=kind,
            run_dir=run_dir,
        )

    return around_load
