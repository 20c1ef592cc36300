"""Real servers from Debian's packages, started on loopback: Redis, PostgreSQL, Prometheus
and its node, Redis and blackbox exporters.

The reference target's stack (``harness.target.stack``, ``make stack``) and the tests
(``tests/servers.py``) start them the same way: a free port on 127.0.0.1, a data folder
of their own, a log file, ready when they answer, stopped by PID (SIGTERM, SIGKILL if they
linger). Each also gets SIGTERM from the kernel when the process that started it dies, so
none outlives its run. As root, PostgreSQL (which refuses to run as root) runs as the
``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

from harness.errors import TargetError

REDIS_SERVER = "/usr/bin/redis-server"
PROMETHEUS = "/usr/bin/prometheus"
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
REDIS_EXPORTER = "/usr/bin/prometheus-redis-exporter"
BLACKBOX_EXPORTER = "/usr/bin/prometheus-blackbox-exporter"
POSTGRES_GLOB = "/usr/lib/postgresql/*/bin/postgres"
PACKAGES = (
    "redis-server postgresql postgresql-contrib prometheus prometheus-node-exporter "
    "prometheus-redis-exporter prometheus-blackbox-exporter"
)
LOOPBACK = "127.0.0.1"
POSTGRES_USER = "paybench"
POSTGRES_DB = "paybench"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_PR_SET_PDEATHSIG = 1


def postgres_bin_dir() -> Path | None:
    """The newest PostgreSQL's bin folder (``/usr/lib/postgresql/15/bin``), or None."""
    found = sorted(glob.glob(POSTGRES_GLOB), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def binary_paths() -> dict[str, str | None]:
    """What each server runs, None where it is not installed."""
    pg = postgres_bin_dir()
    paths: dict[str, str | None] = {
        "redis-server": REDIS_SERVER,
        "postgres": str(pg / "postgres") if pg else None,
        "prometheus": PROMETHEUS,
        "prometheus-node-exporter": NODE_EXPORTER,
        "prometheus-redis-exporter": REDIS_EXPORTER,
        "prometheus-blackbox-exporter": BLACKBOX_EXPORTER,
    }
    return {name: p if p and os.access(p, os.X_OK) else None for name, p in paths.items()}


def missing_binary(name: str) -> str | None:
    """None when server ``name`` can run, else the line saying how to install it."""
    if binary_paths().get(name) is not None:
        return None
    return f"{name} is not installed; run `make servers` as root (apt-get install {PACKAGES})"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec, after the change of user (which would reset it).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Server:
    """One server process: ``url``, ``port``, ``pid``; ``stop()`` is idempotent."""

    def __init__(
        self,
        name: str,
        url: str,
        port: int,
        proc: subprocess.Popen[bytes],
        folder: Path,
        log_path: Path,
        *,
        remove_folder: bool,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.url = url
        self.port = port
        self.pid = proc.pid
        self.folder = folder
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = proc
        self._remove_folder = remove_folder
        self._stop_signal = stop_signal

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(self._stop_signal)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if self._remove_folder:
            self._remove_folder = False
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{self.name} {self.url} pid {self.pid}>"


def _folder(parent: Path | None, name: str) -> tuple[Path, bool]:
    """A new folder for one server (under ``parent``, else temporary: removed at stop)."""
    if parent is None:
        return Path(tempfile.mkdtemp(prefix=f"paybench-{name}-")), True
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent)), False


def _log_tail(path: Path, count: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "no log"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"


def _start(
    name: str,
    command: Sequence[str],
    folder: Path,
    ready: Callable[[], bool],
    *,
    user: str | None = None,
    timeout_s: float = START_TIMEOUT_S,
) -> subprocess.Popen[bytes]:
    """Start ``command`` logging into ``folder``, wait until ``ready()``; TargetError if not."""
    if not command or not os.access(command[0], os.X_OK):
        raise TargetError(missing_binary(name) or f"{name}: cannot run {command[0]}")
    log_path = folder / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=folder,
            user=user,
            preexec_fn=_die_with_parent,
        )
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if proc.poll() is not None:
                raise TargetError(
                    f"{name} exited with code {proc.returncode} at start: "
                    f"{_log_tail(log_path)} (log: {log_path})"
                )
            if ready():
                return proc
            if time.monotonic() > deadline:
                raise TargetError(
                    f"{name} did not become ready within {timeout_s:g} s: "
                    f"{_log_tail(log_path)} (log: {log_path})"
                )
            time.sleep(0.05)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)
        raise


def _with_port_retry(start: Callable[[int], Server], attempts: int = 3) -> Server:
    """``start(port)`` on a free port; once more on another port if the first was taken."""
    for attempt in range(attempts):
        try:
            return start(free_port())
        except TargetError as exc:
            taken = "in use" in exc.message.lower() or "bind" in exc.message.lower()
            if not taken or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return check


# --- Redis --------------------------------------------------------------------------------


def start_redis(parent: Path | None = None, *, maxmemory_mb: int = 256) -> Server:
    """redis-server on 127.0.0.1, in memory only (no RDB, no AOF); url redis://...:PORT/0."""

    def start(port: int) -> Server:
        folder, remove = _folder(parent, "redis")

        def ready() -> bool:
            try:
                with socket.create_connection((LOOPBACK, port), timeout=1.0) as sock:
                    sock.sendall(b"PING\r\n")
                    return sock.recv(16).startswith(b"+PONG")
            except OSError:
                return False

        command = [
            REDIS_SERVER,
            "--bind", LOOPBACK,
            "--port", str(port),
            "--dir", str(folder),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--maxmemory", f"{maxmemory_mb}mb",
            "--loglevel", "warning",
        ]  # fmt: skip
        try:
            proc = _start("redis-server", command, folder, ready)
        except BaseException:
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        url = f"redis://{LOOPBACK}:{port}/0"
        return Server(
            "redis-server", url, port, proc, folder, folder / "redis-server.log",
            remove_folder=remove,
        )  # fmt: skip

    return _with_port_retry(start)


# --- PostgreSQL ---------------------------------------------------------------------------


def start_postgres(
    parent: Path | None = None,
    *,
    durable: bool = True,
    max_connections: int = 100,
) -> Server:
    """A new PostgreSQL cluster (initdb) on 127.0.0.1 with pg_stat_statements loaded and
    created in database ``paybench``; url postgresql://paybench@127.0.0.1:PORT/paybench.

    Trust authentication on TCP loopback only (no Unix socket). ``durable=False`` turns off
    fsync and synchronous commit: faster for tests, not for measuring a database.
    """
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise TargetError(missing_binary("postgres") or "postgres missing")
    user = None
    if os.geteuid() == 0:
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise TargetError(
                "postgres refuses to run as root and there is no `postgres` user; "
                f"apt-get install postgresql creates it ({PACKAGES})"
            ) from None
        user = "postgres"

    def start(port: int) -> Server:
        folder, remove = _folder(parent, "postgres")
        data = folder / "data"
        try:
            if user is not None:
                os.chown(folder, pw.pw_uid, pw.pw_gid)
            init = subprocess.run(
                [
                    str(bin_dir / "initdb"), "-D", str(data), "-U", POSTGRES_USER,
                    "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
                ],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                cwd=folder,
                user=user,
                timeout=START_TIMEOUT_S,
                check=False,
            )  # fmt: skip
            if init.returncode != 0:
                tail = " | ".join(init.stderr.decode(errors="replace").strip().splitlines()[-3:])
                raise TargetError(f"initdb failed in {data}: {tail}")
            settings = {
                "listen_addresses": LOOPBACK,
                "port": str(port),
                "unix_socket_directories": "",
                "max_connections": str(max_connections),
                "shared_preload_libraries": "pg_stat_statements",
                "pg_stat_statements.track": "all",
            }
            if not durable:
                settings |= {"fsync": "off", "synchronous_commit": "off",
                             "full_page_writes": "off"}  # fmt: skip
            command = [str(bin_dir / "postgres"), "-D", str(data)]
            for key, value in settings.items():
                command += ["-c", f"{key}={value}"]
            admin_url = f"postgresql://{POSTGRES_USER}@{LOOPBACK}:{port}/postgres"
            proc = _start("postgres", command, folder, _postgres_ready(admin_url), user=user)
        except BaseException:
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        url = f"postgresql://{POSTGRES_USER}@{LOOPBACK}:{port}/{POSTGRES_DB}"
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for every client to leave).
        server = Server(
            "postgres", url, port, proc, folder, folder / "postgres.log",
            remove_folder=remove, stop_signal=signal.SIGINT,
        )  # fmt: skip
        try:
            _create_database(admin_url, url)
        except BaseException:
            server.stop()
            raise
        return server

    return _with_port_retry(start)


def _postgres_ready(admin_url: str) -> Callable[[], bool]:
    import psycopg

    def check() -> bool:
        try:
            with psycopg.connect(admin_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    return check


def _create_database(admin_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{POSTGRES_DB}"')
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


# --- Prometheus and the exporters ---------------------------------------------------------


def start_node_exporter(parent: Path | None = None) -> Server:
    """prometheus-node-exporter on 127.0.0.1; url http://127.0.0.1:PORT/metrics."""

    def start(port: int) -> Server:
        folder, remove = _folder(parent, "node-exporter")
        url = f"http://{LOOPBACK}:{port}/metrics"
        command = [
            NODE_EXPORTER,
            f"--web.listen-address={LOOPBACK}:{port}",
            f"--collector.textfile.directory={folder}",
            "--log.level=warn",
        ]
        try:
            proc = _start("prometheus-node-exporter", command, folder, _http_ready(url))
        except BaseException:
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return Server(
            "prometheus-node-exporter", url, port, proc, folder,
            folder / "prometheus-node-exporter.log", remove_folder=remove,
        )  # fmt: skip

    return _with_port_retry(start)


def start_redis_exporter(redis_url: str, parent: Path | None = None) -> Server:
    """prometheus-redis-exporter for ``redis_url`` on 127.0.0.1; url http://127.0.0.1:PORT/metrics."""

    def start(port: int) -> Server:
        folder, remove = _folder(parent, "redis-exporter")
        url = f"http://{LOOPBACK}:{port}/metrics"
        command = [
            REDIS_EXPORTER,
            f"-redis.addr={redis_url}",
            f"-web.listen-address={LOOPBACK}:{port}",
        ]
        try:
            proc = _start("prometheus-redis-exporter", command, folder, _http_ready(url))
        except BaseException:
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return Server(
            "prometheus-redis-exporter", url, port, proc, folder,
            folder / "prometheus-redis-exporter.log", remove_folder=remove,
        )  # fmt: skip

    return _with_port_retry(start)


# Modules of blackbox_exporter's own example config, over IPv4 (loopback is 127.0.0.1).
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
"""


def start_blackbox_exporter(parent: Path | None = None) -> Server:
    """prometheus-blackbox-exporter on 127.0.0.1 with modules http_2xx and tcp_connect;
    url http://127.0.0.1:PORT (probe with ``/probe?module=http_2xx&target=URL``)."""

    def start(port: int) -> Server:
        folder, remove = _folder(parent, "blackbox-exporter")
        url = f"http://{LOOPBACK}:{port}"
        try:
            config = folder / "blackbox.yml"
            config.write_text(BLACKBOX_CONFIG, encoding="utf-8")
            command = [
                BLACKBOX_EXPORTER,
                f"--config.file={config}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--log.level=warn",
            ]
            proc = _start(
                "prometheus-blackbox-exporter", command, folder, _http_ready(url + "/metrics")
            )
        except BaseException:
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return Server(
            "prometheus-blackbox-exporter", url, port, proc, folder,
            folder / "prometheus-blackbox-exporter.log", remove_folder=remove,
        )  # fmt: skip

    return _with_port_retry(start)


def prometheus_config(targets: Mapping[str, str], interval_s: float = 1.0) -> str:
    """A prometheus.yml scraping each ``job name -> http://127.0.0.1:PORT/PATH`` every interval."""
    lines = [
        "global:",
        f"  scrape_interval: {interval_s:g}s",
        f"  scrape_timeout: {interval_s:g}s",
        f"  evaluation_interval: {interval_s:g}s",
        "scrape_configs:",
    ]
    for job, target_url in targets.items():
        parsed = httpx.URL(target_url)
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.port is None:
            raise TargetError(
                f"prometheus target {target_url!r}: give http://127.0.0.1:PORT/PATH with a port"
            )
        host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
        lines += [
            f"  - job_name: {_yaml_string(job)}",
            f"    scheme: {parsed.scheme}",
            f"    metrics_path: {_yaml_string(parsed.path or '/metrics')}",
            "    static_configs:",
            f"      - targets: [{_yaml_string(f'{host}:{parsed.port}')}]",
        ]
    return "\n".join(lines) + "\n"


def _yaml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def scrape_jobs(targets: Mapping[str, str] | Sequence[str]) -> dict[str, str]:
    """Job names for the targets: a mapping's keys, else ``target0``, ``target1``, ..."""
    if isinstance(targets, Mapping):
        return {str(job): str(url) for job, url in targets.items()}
    return {f"target{index}": str(url) for index, url in enumerate(targets)}


def start_prometheus(
    targets: Mapping[str, str] | Sequence[str],
    parent: Path | None = None,
    *,
    interval_s: float = 1.0,
) -> Server:
    """A Prometheus server scraping ``targets`` every ``interval_s``; url http://127.0.0.1:PORT."""
    jobs = scrape_jobs(targets)

    def start(port: int) -> Server:
        folder, remove = _folder(parent, "prometheus")
        url = f"http://{LOOPBACK}:{port}"
        try:
            config = folder / "prometheus.yml"
            config.write_text(prometheus_config(jobs, interval_s), encoding="utf-8")
            command = [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ]
            proc = _start("prometheus", command, folder, _http_ready(url + "/-/ready"))
        except BaseException:
            if remove:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        return Server(
            "prometheus", url, port, proc, folder, folder / "prometheus.log",
            remove_folder=remove,
        )  # fmt: skip

    return _with_port_retry(start)
