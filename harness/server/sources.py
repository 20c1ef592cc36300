"""One client per kind of server-metrics source; each gives the exporters' standard names.

A source answers two questions: ``names()`` (at preflight: which series names it has) and
``scrape(wanted)`` (each interval: the value of every series of those names, keyed by
``series_text``). Both are bounded by the source's timeout and raise ``ScrapeError`` with one
line when the source does not answer. ``where`` names the source without credentials.

- ``prometheus``: a Prometheus text endpoint (an exporter, the target's /metrics), parsed with
  ``prometheus_client.parser``; optional Basic auth from the environment variables the
  budgets file names; ``{target}`` in its URL is the run's target (a blackbox_exporter
  probe of it), and a page saying ``probe_success 0`` is a failed probe, not an answer;
- ``promql``: a Prometheus server; ``names`` from its label API, samples by range queries
  (``/api/v1/query_range``) over the run once the load is over (``range_samples``);
- ``redis``: ``INFO`` through redis-py, as redis_exporter names it;
- ``postgres``: pg_stat_database, pg_stat_activity, max_connections and (where the extension
  is installed) pg_stat_statements through psycopg 3, as postgres_exporter names them;
- ``process``: a process on this machine by PID (psutil): CPU seconds and resident memory,
  its children included, as prometheus_client's process collector names them, and the
  machine's memory as node_exporter does (``node_memory_MemTotal_bytes``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from harness.core.server_budgets import SourceSpec, series_text
from harness.errors import ConfigError, TargetError

# Steps per range query (Prometheus answers at most 11,000 points per series).
RANGE_POINTS = 10_000
# Exporters answer in milliseconds; a text page larger than this is not a metrics page.
MAX_PAGE_BYTES = 32 * 1024 * 1024
_SAMPLE_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
# blackbox_exporter answers 200 for a failed probe too; only probe_success tells.
_PROBE_SUCCESS = re.compile(r"^probe_success(?:\{[^}\n]*\})?[ \t]+(\S+)", re.M)
TARGET_PLACEHOLDER = "{target}"
_FAMILY_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


class ScrapeError(Exception):
    """A source did not answer as it should; the message is one line."""


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _why(exc: BaseException) -> str:
    text = _one_line(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def redacted_url(url: str) -> str:
    """``url`` without user info (the file never holds a password; this drops the name too)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def _credential(spec: SourceSpec, key: str, source_file: str) -> str | None:
    env = getattr(spec, key)
    if env is None:
        return None
    value = os.environ.get(env)
    if value is None:
        raise ConfigError(
            f"{source_file}: {spec.key_path}.{key}: the environment variable {env} is not set; "
            f"export it (it holds the {key.split('_')[0]} for source {spec.name!r})"
        )
    return value


class Source(Protocol):
    spec: SourceSpec
    where: str

    def names(self) -> set[str]: ...

    def scrape(self, wanted: frozenset[str]) -> dict[str, float]: ...

    def close(self) -> None: ...


def _finite(values: Iterable[tuple[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in values:
        v = float(value)
        if math.isfinite(v):
            out[key] = out.get(key, 0.0) + v
    return out


# --- a Prometheus text endpoint --------------------------------------------------------------


def family_names(text: str) -> set[str]:
    """Every series name a text page has, those of families without samples yet included
    (a labelled counter appears at its first increment)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        for suffix in _FAMILY_SUFFIXES.get(family.type, ()):
            names.add(family.name + suffix)
        names.update(s.name for s in family.samples)
    return names


def page_values(text: str, wanted: frozenset[str]) -> dict[str, float]:
    """The samples of a text page whose name is wanted, by ``series_text``.

    Only the wanted lines are parsed: node_exporter's page has a thousand series, a budget
    reads a few.
    """
    keep = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE_NAME.match(line)
        if m is not None and m.group(0) in wanted:
            keep.append(line)
    if not keep:
        return {}
    families = text_string_to_metric_families("\n".join(keep) + "\n")
    return _finite(
        (series_text(s.name, s.labels), s.value)
        for family in families
        for s in family.samples
        if s.name in wanted
    )


def probe_failure(text: str) -> str | None:
    """The line saying a blackbox_exporter probe failed (``probe_success 0``), else None.

    A failed probe's ``probe_duration_seconds`` is how long failing took (a refused
    connection is fast): judged as a latency, it would pass.
    """
    m = _PROBE_SUCCESS.search(text) if "probe_success" in text else None
    if m is None:
        return None
    try:
        if float(m.group(1)) >= 1.0:
            return None
    except ValueError:
        return None  # the parser names what is wrong with the page
    code = re.search(r"^probe_http_status_code[ \t]+(\S+)", text, re.M)
    status = f", probe_http_status_code {code.group(1)}" if code else ""
    return f"the probe failed (probe_success 0{status})"


class PrometheusSource:
    """A Prometheus text endpoint: ``url`` is whole, or a path joined to the target."""

    def __init__(self, spec: SourceSpec, url: str, source_file: str) -> None:
        self.spec = spec
        self.url = url
        self.where = redacted_url(url)
        user = _credential(spec, "username_env", source_file)
        password = _credential(spec, "password_env", source_file)
        auth = (user or "", password or "") if user is not None or password is not None else None
        self._client = httpx.Client(
            timeout=httpx.Timeout(spec.timeout_s), auth=auth, follow_redirects=False
        )

    def _page(self) -> str:
        try:
            response = self._client.get(self.url, headers={"Accept": "text/plain"})
        except httpx.HTTPError as exc:
            raise ScrapeError(_why(exc)) from None
        if response.status_code != 200:
            raise ScrapeError(f"HTTP {response.status_code} from {self.where}")
        if len(response.content) > MAX_PAGE_BYTES:
            raise ScrapeError(f"{self.where} answered more than {MAX_PAGE_BYTES // 2**20} MiB")
        failed = probe_failure(response.text)
        if failed is not None:
            debug = ("&" if "?" in self.where else "?") + "debug=true"
            raise ScrapeError(f"{failed}; open {self.where}{debug} to see why")
        return response.text

    def names(self) -> set[str]:
        text = self._page()
        try:
            return family_names(text)
        except ValueError as exc:
            raise ScrapeError(f"not Prometheus text format ({_why(exc)})") from None

    def scrape(self, wanted: frozenset[str]) -> dict[str, float]:
        text = self._page()
        try:
            return page_values(text, wanted)
        except ValueError as exc:
            raise ScrapeError(f"not Prometheus text format ({_why(exc)})") from None

    def close(self) -> None:
        self._client.close()


# --- a Prometheus server ---------------------------------------------------------------------


class PromQLSource:
    """A Prometheus server: names from its label API, samples by range queries afterwards."""

    def __init__(self, spec: SourceSpec, source_file: str) -> None:
        assert spec.url is not None
        self.spec = spec
        self.base = spec.url.rstrip("/")
        match = ",".join(m.text for m in spec.match)
        self.match = match
        self.where = redacted_url(self.base) + (f" {{{match}}}" if match else "")
        user = _credential(spec, "username_env", source_file)
        password = _credential(spec, "password_env", source_file)
        auth = (user or "", password or "") if user is not None or password is not None else None
        self._client = httpx.Client(
            timeout=httpx.Timeout(spec.timeout_s), auth=auth, follow_redirects=False
        )

    def _get(self, path: str, params: Mapping[str, Any], timeout_s: float | None = None) -> Any:
        try:
            response = self._client.get(
                self.base + path,
                params=params,
                timeout=httpx.Timeout(timeout_s) if timeout_s else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            raise ScrapeError(_why(exc)) from None
        try:
            body = response.json()
        except ValueError:
            raise ScrapeError(f"HTTP {response.status_code}, not a Prometheus API answer") from None
        if (
            response.status_code != 200
            or not isinstance(body, dict)
            or body.get("status") != "success"
        ):
            error = body.get("error") if isinstance(body, dict) else None
            raise ScrapeError(f"HTTP {response.status_code}: {_one_line(error or body)}")
        return body.get("data")

    def names(self) -> set[str]:
        params = {"match[]": f"{{{self.match}}}"} if self.match else {}
        data = self._get("/api/v1/label/__name__/values", params)
        if not isinstance(data, list):
            raise ScrapeError("the label API answered no list of names")
        return {str(n) for n in data}

    def scrape(self, wanted: frozenset[str]) -> dict[str, float]:
        """An instant query of every wanted name: whether the server still answers."""
        data = self._get("/api/v1/query", {"query": self._query(wanted)})
        return _finite(
            (_promql_key(item.get("metric", {})), float(item["value"][1]))
            for item in (data or {}).get("result", [])
        )

    def _query(self, wanted: Iterable[str]) -> str:
        names = "|".join(re.escape(n) for n in sorted(wanted))
        extra = f",{self.match}" if self.match else ""
        return f'{{__name__=~"{names}"{extra}}}'

    def range_samples(
        self, wanted: frozenset[str], start: float, end: float, step_s: float
    ) -> dict[float, dict[str, float]]:
        """epoch -> series -> value over [start, end] at ``step_s`` (one query per name and
        per part of at most RANGE_POINTS steps: Prometheus refuses more than 11,000)."""
        out: dict[float, dict[str, float]] = {}
        parts = []
        begin = start
        while begin <= end:
            last = min(end, begin + (RANGE_POINTS - 1) * step_s)
            parts.append((begin, last))
            begin = last + step_s
        for name in sorted(wanted):
            for first, last in parts:
                self._range_part(out, name, first, last, step_s)
        return out

    def _range_part(
        self, out: dict[float, dict[str, float]], name: str, start: float, end: float, step: float
    ) -> None:
        data = self._get(
            "/api/v1/query_range",
            {"query": self._query([name]), "start": start, "end": end, "step": step},
            timeout_s=max(self.spec.timeout_s, 10.0),
        )
        for item in (data or {}).get("result", []):
            key = _promql_key(item.get("metric", {}))
            for t, v in item.get("values", []):
                value = float(v)
                if math.isfinite(value):
                    row = out.setdefault(float(t), {})
                    row[key] = row.get(key, 0.0) + value

    def close(self) -> None:
        self._client.close()


def _promql_key(labels: Mapping[str, str]) -> str:
    rest = {k: v for k, v in labels.items() if k != "__name__"}
    return series_text(labels.get("__name__", ""), rest)


# --- Redis -----------------------------------------------------------------------------------

# INFO field -> redis_exporter's name (redis_exporter's metricMapGauges/Counters;
# total_system_memory only with its --include-system-metrics).
REDIS_NAMES = {
    "uptime_in_seconds": "redis_uptime_in_seconds",
    "connected_clients": "redis_connected_clients",
    "blocked_clients": "redis_blocked_clients",
    "used_memory": "redis_memory_used_bytes",
    "used_memory_rss": "redis_memory_used_rss_bytes",
    "maxmemory": "redis_memory_max_bytes",
    "total_system_memory": "redis_total_system_memory_bytes",
    "keyspace_hits": "redis_keyspace_hits_total",
    "keyspace_misses": "redis_keyspace_misses_total",
    "evicted_keys": "redis_evicted_keys_total",
    "expired_keys": "redis_expired_keys_total",
    "total_commands_processed": "redis_commands_processed_total",
    "total_connections_received": "redis_connections_received_total",
    "rejected_connections": "redis_rejected_connections_total",
    "used_cpu_sys": "redis_cpu_sys_seconds_total",
    "used_cpu_user": "redis_cpu_user_seconds_total",
}


def redis_values(info: Mapping[str, Any]) -> dict[str, float]:
    """``INFO`` as redis-py parses it -> redis_exporter's names."""
    out: list[tuple[str, float]] = [("redis_up", 1.0)]
    for field_name, name in REDIS_NAMES.items():
        value = info.get(field_name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((name, float(value)))
    for db, stats in info.items():
        if re.fullmatch(r"db\d+", str(db)) and isinstance(stats, Mapping) and "keys" in stats:
            out.append((series_text("redis_db_keys", {"db": str(db)}), float(stats["keys"])))
    return _finite(out)


class RedisSource:
    def __init__(self, spec: SourceSpec, source_file: str) -> None:
        import redis

        assert spec.url is not None
        self.spec = spec
        self.where = redacted_url(spec.url)
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            spec.url,
            socket_timeout=spec.timeout_s,
            socket_connect_timeout=spec.timeout_s,
            username=_credential(spec, "username_env", source_file),
            password=_credential(spec, "password_env", source_file),
            retry_on_timeout=False,
        )

    def _info(self) -> Mapping[str, Any]:
        try:
            return self._client.info()
        except self._errors as exc:
            raise ScrapeError(_why(exc)) from None

    def names(self) -> set[str]:
        return {key.split("{")[0] for key in redis_values(self._info())}

    def scrape(self, wanted: frozenset[str]) -> dict[str, float]:
        return {k: v for k, v in redis_values(self._info()).items() if k.split("{")[0] in wanted}

    def close(self) -> None:
        self._client.close()


# --- PostgreSQL ------------------------------------------------------------------------------

# Marked so that the statistics of paybench's own queries can be left out of
# pg_stat_statements' figures.
_MARK = "/* paybench server metrics */"
_DATABASE_COLUMNS = (
    "numbackends",
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "deadlocks",
    "temp_bytes",
)
_DATABASE_SQL = (
    f"{_MARK} SELECT datid::text, datname, {', '.join(_DATABASE_COLUMNS)} "
    "FROM pg_stat_database WHERE datname IS NOT NULL"
)
_ACTIVITY_SQL = (
    f"{_MARK} SELECT coalesce(datname, ''), coalesce(state, ''), count(*) FROM pg_stat_activity "
    "WHERE backend_type = 'client backend' GROUP BY 1, 2"
)
_MAX_CONNECTIONS_SQL = f"{_MARK} SELECT current_setting('max_connections')::float8"
_HAS_STATEMENTS_SQL = (
    f"{_MARK} SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"
)
# Summed per user and database: one series per statement would grow without bound.
_STATEMENTS_SQL = (
    f"{_MARK} SELECT coalesce(pg_get_userbyid(s.userid)::text, ''), d.datname, sum(s.calls), "
    "sum(s.total_exec_time) / 1000.0, sum(s.rows) FROM pg_stat_statements s "
    "JOIN pg_database d ON d.oid = s.dbid WHERE s.query NOT LIKE '/* paybench server metrics%' "
    "GROUP BY 1, 2"
)
STATEMENTS_NAMES = (
    "pg_stat_statements_calls_total",
    "pg_stat_statements_seconds_total",
    "pg_stat_statements_rows_total",
)


class PostgresSource:
    """One connection, kept between scrapes (reconnected after a failure)."""

    def __init__(self, spec: SourceSpec, source_file: str) -> None:
        assert spec.url is not None
        self.spec = spec
        self.where = redacted_url(spec.url)
        self._password = _credential(spec, "password_env", source_file)
        self._conn: Any = None
        self._statements: bool | None = None

    def _connect(self) -> Any:
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        timeout_ms = max(1, round(self.spec.timeout_s * 1000))
        kwargs: dict[str, Any] = {
            "autocommit": True,
            # libpq counts whole seconds, at least 2.
            "connect_timeout": max(2, math.ceil(self.spec.timeout_s)),
            "options": f"-c statement_timeout={timeout_ms}",
            "application_name": "paybench-server-metrics",
        }
        if self._password is not None:
            kwargs["password"] = self._password
        try:
            self._conn = psycopg.connect(self.spec.url or "", **kwargs)
        except psycopg.Error as exc:
            raise ScrapeError(_why(exc)) from None
        return self._conn

    def _rows(self) -> dict[str, float]:
        import psycopg

        conn = self._connect()
        out: list[tuple[str, float]] = [("pg_up", 1.0)]
        try:
            with conn.cursor() as cur:
                cur.execute(_DATABASE_SQL)
                for datid, datname, *values in cur.fetchall():
                    labels = {"datid": datid, "datname": datname}
                    for column, value in zip(_DATABASE_COLUMNS, values, strict=True):
                        if value is not None:
                            out.append((series_text(f"pg_stat_database_{column}", labels), value))
                cur.execute(_ACTIVITY_SQL)
                for datname, state, count in cur.fetchall():
                    labels = {"datname": datname, "state": state}
                    out.append((series_text("pg_stat_activity_count", labels), count))
                cur.execute(_MAX_CONNECTIONS_SQL)
                out.append(("pg_settings_max_connections", cur.fetchone()[0]))
                if self._statements is None:
                    cur.execute(_HAS_STATEMENTS_SQL)
                    self._statements = bool(cur.fetchone()[0])
                if self._statements:
                    cur.execute(_STATEMENTS_SQL)
                    for user, datname, calls, seconds, rows in cur.fetchall():
                        labels = {"datname": datname, "user": user}
                        for name, value in zip(
                            STATEMENTS_NAMES, (calls, seconds, rows), strict=True
                        ):
                            out.append((series_text(name, labels), float(value or 0)))
        except psycopg.Error as exc:
            self.close()
            raise ScrapeError(_why(exc)) from None
        return _finite((k, float(v)) for k, v in out)

    @property
    def has_statements(self) -> bool:
        return bool(self._statements)

    def names(self) -> set[str]:
        return {key.split("{")[0] for key in self._rows()}

    def scrape(self, wanted: frozenset[str]) -> dict[str, float]:
        return {k: v for k, v in self._rows().items() if k.split("{")[0] in wanted}

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # closing a broken connection: nothing left to do with it
                pass


# --- a local process -------------------------------------------------------------------------


def read_pid_file(path: str) -> int:
    """The first line of a PID file (PostgreSQL's postmaster.pid holds more lines)."""
    try:
        first = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[:1]
    except OSError as exc:
        raise ScrapeError(f"cannot read the PID file {path} ({exc.strerror or exc})") from None
    if not first or not first[0].strip().isdigit():
        raise ScrapeError(f"the PID file {path} does not start with a process id")
    return int(first[0].strip())


class ProcessSource:
    """A process by PID and (unless ``children: false``) its children, as one."""

    def __init__(self, spec: SourceSpec, pid: int | None = None) -> None:
        self.spec = spec
        self._pid = pid if pid is not None else spec.pid
        self.where = f"pid {self._pid}" if self._pid else f"pid file {spec.pid_file}"
        self._process: psutil.Process | None = None
        self._machine_bytes = float(psutil.virtual_memory().total)  # it does not change

    def _proc(self) -> psutil.Process:
        if self._process is not None:
            return self._process
        pid = self._pid if self._pid is not None else read_pid_file(self.spec.pid_file or "")
        try:
            self._process = psutil.Process(pid)
        except psutil.Error as exc:
            raise ScrapeError(f"no process {pid} ({_why(exc)})") from None
        self.where = f"pid {pid}"
        return self._process

    def _values(self) -> dict[str, float]:
        proc = self._proc()
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                # Children already waited for are in children_*; live ones are added below.
                cpu = times.user + times.system + times.children_user + times.children_system
                memory = proc.memory_info()
                rss, vms = memory.rss, memory.vms
                fds = proc.num_fds()
                threads = proc.num_threads()
            if not proc.is_running():
                raise psutil.NoSuchProcess(proc.pid)
        except psutil.Error as exc:
            raise ScrapeError(f"process {proc.pid} is gone or unreadable ({_why(exc)})") from None
        count = 1
        if self.spec.children:
            try:
                children = proc.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                try:
                    t = child.cpu_times()
                    m = child.memory_info()
                except psutil.Error:
                    continue  # gone in between: its time is in the parent's children_* now
                cpu += t.user + t.system
                rss += m.rss
                vms += m.vms
                count += 1
        return {
            "process_cpu_seconds_total": cpu,
            "process_resident_memory_bytes": float(rss),
            "process_virtual_memory_bytes": float(vms),
            "process_open_fds": float(fds),
            "process_threads": float(threads),
            "process_count": float(count),
            "node_memory_MemTotal_bytes": self._machine_bytes,
        }

    def names(self) -> set[str]:
        return set(self._values())

    def scrape(self, wanted: frozenset[str]) -> dict[str, float]:
        return {k: v for k, v in self._values().items() if k in wanted}

    def close(self) -> None:
        self._process = None


# --- the built-in target's process ------------------------------------------------------------


def reference_target_pid(url: str) -> int:
    """The PID of the built-in target this process started, found by its listening port
    among this process' children (``harness.target.process.ReferenceTarget``)."""
    port = urlsplit(url).port
    candidates = []
    for child in psutil.Process().children(recursive=False):
        try:
            if "harness.target" not in child.cmdline():
                continue
            candidates.append(child)
            for conn in child.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return child.pid
        except psutil.Error:
            continue
    if len(candidates) == 1:
        return candidates[0].pid
    raise TargetError(
        f"cannot find the process of the built-in target at {url} among paybench's children "
        f"({len(candidates)} candidates); the target_process source needs it"
    )


def open_source(
    spec: SourceSpec, *, target_url: str | None, target_pid: int | None, source_file: str
) -> Source:
    """The client of a source; a path URL is joined to ``target_url``, and ``{target}`` in a
    URL is ``target_url`` (a probe of the built-in target, whose port is chosen at start)."""
    if spec.kind == "prometheus":
        url = spec.url or "/metrics"
        if TARGET_PLACEHOLDER in url:
            if target_url is None:
                raise ConfigError(
                    f"{source_file}: {spec.key_path or 'sources.' + spec.name}.url: {url} names "
                    "{target}, and this run has no target URL; write the URL it probes"
                )
            url = url.replace(TARGET_PLACEHOLDER, target_url.rstrip("/"))
        if url.startswith("/"):
            if target_url is None:
                raise ConfigError(
                    f"{source_file}: {spec.key_path or 'sources.' + spec.name}.url: {url} is a "
                    "path on the target, and this run has no target URL; write a whole URL"
                )
            url = target_url.rstrip("/") + url
        return PrometheusSource(spec, url, source_file)
    if spec.kind == "promql":
        return PromQLSource(spec, source_file)
    if spec.kind == "redis":
        return RedisSource(spec, source_file)
    if spec.kind == "postgres":
        return PostgresSource(spec, source_file)
    return ProcessSource(spec, pid=target_pid if spec.builtin else None)
