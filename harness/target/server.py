"""Serve the reference target with uvicorn in the foreground, on loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import uvicorn

from harness.errors import ConfigError
from harness.target import db as dbmod
from harness.target.app import create_app
from harness.target.auth import webhook_credentials
from harness.target.cache import PlanCache, RedisCache, TTLCache, check_redis
from harness.target.settings import load_settings

URL_LINE_PREFIX = "paybench target: serving on "
LOOPBACK_NAMES = ("localhost",)


def check_loopback(host: str) -> str:
    """The address to bind for ``host``; ConfigError unless it is a loopback address."""
    if host.lower() in LOOPBACK_NAMES:
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ConfigError(
            f"target --host {host}: the reference target serves on loopback only "
            "(127.0.0.0/8, ::1 or localhost); it is not for production"
        )
    return str(address)


def check_database_url(url: str, db: Path | None) -> None:
    """ConfigError unless ``url`` is a PostgreSQL URL and no --db is given with it."""
    if db is not None:
        raise ConfigError(
            "target: give --db (SQLite) or --database-url (PostgreSQL), not both"
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            f"target --database-url {dbmod.redact(url)}: give postgresql://USER@HOST:PORT/DB "
            "(SQLite is the default: --db PATH)"
        )


def url_for(address: str, port: int) -> str:
    return f"http://[{address}]:{port}" if ":" in address else f"http://{address}:{port}"


def bind(address: str, port: int) -> socket.socket:
    """A listening TCP socket; a port in use or refused is a ConfigError."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP,
    # and without it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"target port {port} on {address} is already in use; "
                "choose another --port or --port 0"
            ) from None
        raise ConfigError(
            f"target cannot listen on {address}:{port} ({exc.strerror}); choose another --port"
        ) from None
    sock.set_inheritable(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the URL once listening and leaving signals to us."""

    def __init__(
        self,
        config: uvicorn.Config,
        on_started: Callable[[], None],
        parent_pid: int | None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._on_started = on_started
        self._parent_pid = parent_pid
        self._on_shutdown = on_shutdown
        self._watchdog: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_started()
            if self._parent_pid is not None:
                self._watchdog = asyncio.create_task(self._watch_parent())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets=sockets)
        if self._on_shutdown is not None:
            # Still in the serving loop: the Redis client's connections close in their loop.
            await self._on_shutdown()

    async def _watch_parent(self) -> None:
        # Started by ReferenceTarget: stop when that process is gone, never an orphan.
        while not self.should_exit:
            if os.getppid() != self._parent_pid:
                logging.getLogger("paybench.target").warning("parent process gone; stopping")
                self.should_exit = True
                return
            await asyncio.sleep(0.5)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which would kill
        # the process before serve() removes its temporary database; end normally instead.
        # SIGHUP (terminal closed) gets the same graceful stop.
        if sys.platform == "win32":
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def serve(
    host: str,
    port: int,
    config: Path | None,
    db: Path | None,
    overrides: Mapping[str, Any],
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    parent_pid: int | None = None,
) -> None:
    """Run the target in the foreground until SIGINT/SIGTERM; print its URL once listening.

    The state goes to PostgreSQL at ``database_url``, else to the SQLite file ``db`` (None:
    a temporary one, removed at exit); the plan cache to Redis at ``redis_url``, else to an
    in-process map. Raises ConfigError on a non-loopback host, a port in use, a bad model
    file or override, an unusable database or an unreachable Redis.
    """
    address = check_loopback(host)
    if not 0 <= port <= 65535:
        raise ConfigError(f"target --port {port}: give 0..65535 (0 picks a free port)")
    settings = load_settings(config, overrides)
    if database_url is not None:
        check_database_url(database_url, db)
    if redis_url is not None:
        check_redis(redis_url)
    temp_dir = None
    if db is None and database_url is None:
        temp_dir = Path(tempfile.mkdtemp(prefix="paybench-target-"))
        db_path = temp_dir / "target.db"
    else:
        db_path = Path(db or "")
        if database_url is None and not db_path.parent.is_dir():
            raise ConfigError(f"target --db {db}: the folder {db_path.parent} does not exist")
    try:
        store: dbmod.Store
        if database_url is not None:
            dbmod.initialize_postgres(database_url, settings.plans)
            sock = bind(address, port)
            try:
                store = dbmod.PostgresStore(database_url, settings.pool_size)
            except BaseException:
                sock.close()
                raise
            database = f"PostgreSQL {dbmod.redact(database_url)}"
        else:
            dbmod.initialize(db_path, settings.plans)
            sock = bind(address, port)
            store = dbmod.SqliteStore(db_path, settings.pool_size)
            where = "temporary, removed at exit" if temp_dir else "kept"
            database = f"{db_path} ({where})"
        try:
            cache: PlanCache = TTLCache() if redis_url is None else RedisCache(redis_url)
            app = create_app(settings, store, cache, webhook_credentials())
            url = url_for(address, sock.getsockname()[1])
            cached = "in process" if redis_url is None else f"Redis {dbmod.redact(redis_url)}"

            def announce() -> None:
                print(f"{URL_LINE_PREFIX}{url}", flush=True)
                print(
                    f"paybench target: database {database}; cache {cached}; "
                    f"model: {settings.source}",
                    flush=True,
                )

            uv_config = uvicorn.Config(
                app,
                interface="asgi3",
                loop="asyncio",
                http="h11",
                lifespan="off",
                access_log=False,
                log_level="warning",
                timeout_graceful_shutdown=3,
                timeout_keep_alive=30,
            )
            _Server(uv_config, announce, parent_pid, cache.close).run(sockets=[sock])
        finally:
            sock.close()
            store.close()
    finally:
        if temp_dir is not None:
            shutil.rmtree(temp_dir, ignore_errors=True)
