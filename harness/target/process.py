"""Start the reference target as a subprocess on a free loopback port, and stop it.

    with ReferenceTarget(overrides={"slowdown": 3.0}) as target:
        httpx.get(target.url + "/api/health")

The model (file + overrides) is validated here first, so a typo fails at once in the
caller's process; the child gets the merged model as one YAML file. The child binds port 0
itself and prints its URL; it also stops when this process goes away.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from harness.errors import ConfigError, TargetError
from harness.target import DATABASE_URL_ENV, REDIS_URL_ENV
from harness.target.server import URL_LINE_PREFIX
from harness.target.settings import TargetSettings, load_settings

_URL_LINE = re.compile(re.escape(URL_LINE_PREFIX) + r"(http://\S+)")
STOP_TIMEOUT_S = 8.0


class ReferenceTarget:
    """The reference target in a child process; ``url`` and ``pid`` once started."""

    def __init__(
        self,
        config: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        db: Path | None = None,
        log_path: Path | None = None,
        startup_timeout_s: float = 20.0,
        database_url: str | None = None,
        redis_url: str | None = None,
    ) -> None:
        self.config = config
        self.overrides = dict(overrides or {})
        self.db = db
        # Not given: from the environment (how `paybench run` reaches real back ends), but
        # a database only when no SQLite file is asked for either.
        if database_url is None and db is None:
            database_url = os.environ.get(DATABASE_URL_ENV) or None
        if redis_url is None:
            redis_url = os.environ.get(REDIS_URL_ENV) or None
        self.database_url = database_url
        self.redis_url = redis_url
        self.log_path = log_path
        self.startup_timeout_s = startup_timeout_s
        self.url = ""
        self.pid = 0
        self.settings: TargetSettings | None = None  # the effective model, once started
        self._proc: subprocess.Popen[bytes] | None = None
        self._temp_dir: Path | None = None
        self._log_offset = 0

    def start(self) -> ReferenceTarget:
        if self._proc is not None:
            return self
        # ConfigError here, in the caller's process, not in the child.
        settings = self.settings = load_settings(self.config, self.overrides)
        if self.database_url is not None and self.db is not None:
            raise ConfigError("target: give db (SQLite) or database_url (PostgreSQL), not both")
        self._temp_dir = Path(tempfile.mkdtemp(prefix="paybench-target-"))
        model_file = self._temp_dir / "model.yaml"
        model_file.write_text(yaml.safe_dump(settings.as_dict(), sort_keys=False), encoding="utf-8")
        db_path = self.db if self.db is not None else self._temp_dir / "target.db"
        log_path = self.log_path if self.log_path is not None else self._temp_dir / "target.log"
        command = [
            sys.executable,
            "-m",
            "harness.target",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--config",
            str(model_file),
            "--parent-pid",
            str(os.getpid()),
        ]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        # The URLs go by the environment: a password in them stays out of the process list.
        env.pop(DATABASE_URL_ENV, None)
        env.pop(REDIS_URL_ENV, None)
        if self.database_url is not None:
            env[DATABASE_URL_ENV] = self.database_url
        else:
            command += ["--db", str(db_path)]
        if self.redis_url is not None:
            env[REDIS_URL_ENV] = self.redis_url
        # A kept log may hold earlier runs: look for the URL only in what follows.
        self._log_offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.pid = self._proc.pid
        try:
            self.url = self._wait_for_url(log_path)
            self._wait_for_health(log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_url(self, log_path: Path) -> str:
        deadline = time.monotonic() + self.startup_timeout_s
        assert self._proc is not None
        while time.monotonic() < deadline:
            with open(log_path, "rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode("utf-8", errors="replace")
            match = _URL_LINE.search(text)
            if match:
                return match.group(1)
            if self._proc.poll() is not None:
                raise TargetError(
                    f"reference target exited with code {self._proc.returncode} at start: "
                    f"{_last_lines(text)} (log: {log_path})"
                )
            time.sleep(0.02)
        raise TargetError(
            f"reference target did not start within {self.startup_timeout_s:g} s (log: {log_path})"
        )

    def _wait_for_health(self, log_path: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        last = "no answer"
        assert self._proc is not None
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    raise TargetError(
                        f"reference target exited with code {self._proc.returncode} "
                        f"(log: {log_path})"
                    )
                try:
                    response = client.get(self.url + "/api/health")
                    # 503 is an answer too: a model with `down` set starts unhealthy on purpose.
                    if response.status_code in (200, 503):
                        return
                    last = f"HTTP {response.status_code}"
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                time.sleep(0.05)
        raise TargetError(
            f"reference target at {self.url} did not answer /api/health ({last}; log: {log_path})"
        )

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL if it lingers; remove the temporary files. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT_S)
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> ReferenceTarget:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        # Last resort for a caller that forgot stop(): never leave the child behind.
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"
