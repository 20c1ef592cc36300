"""``paybench worker``: Locust as a worker of a remote ``paybench run --master``.

The worker runs the same locustfile with paybench's plugin; the master sends it the host,
the users, the run time and paybench's options, checks it in the handshake
(harness.distributed) and merges its data. Locust's log goes to this process's output.

Exit codes (Locust's own in brackets):

  0  the master ended the run and let the worker go [0]
  2  the master refused this worker: another paybench, Locust, Python or scenario files
     [82, set by harness.distributed]
  3  the master refused it for its clock or called the run off [83]; the master could not
     be reached, or Locust failed [any other code]
  130 interrupted (Ctrl-C or SIGTERM: the worker sends its data and leaves)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from types import FrameType

from harness.commands import Reply
from harness.distributed import STATUS_FILE_ENV, WORKER_REFUSED_EXIT
from harness.errors import EXIT_INTERRUPTED, EXIT_OK, ConfigError, TargetError
from harness.locust_run import build_worker_command, parse_address
from harness.profiles import DEFAULT_LOCUSTFILE

DEFAULT_MASTER_PORT = 5557


def worker(*, master: str, locustfile: Path | None = None, processes: int = 0) -> Reply:
    """Run the worker until the master lets it go; its exit code as above."""
    host, port = parse_address(master, DEFAULT_MASTER_PORT, "--master")
    locustfile = locustfile or DEFAULT_LOCUSTFILE
    if not locustfile.is_file():
        raise ConfigError(f"locustfile {locustfile} does not exist; check --locustfile")
    cmd = build_worker_command(locustfile, host, port, processes)
    with tempfile.TemporaryDirectory(prefix="paybench-worker-") as tmp:
        status = Path(tmp) / "status.json"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", STATUS_FILE_ENV: str(status)}
        try:
            proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        except OSError as e:
            raise TargetError(f"could not start Locust ({cmd[0]}): {e.strerror}") from None
        interrupted = _forward_signals_until_exit(proc)
        code = proc.returncode
        refused = _read_status(status)
    if interrupted:
        return Reply(
            ("paybench worker: interrupted; its data was sent to the master",), EXIT_INTERRUPTED
        )
    if code == 0:
        return Reply((f"paybench worker: the run on {host}:{port} ended",), EXIT_OK)
    for ours, locusts in WORKER_REFUSED_EXIT.items():
        if code == locusts:
            reason = refused or "the master refused this worker (see the log above)"
            raise (ConfigError if ours == 2 else TargetError)(f"master {host}:{port}: {reason}")
    raise TargetError(
        f"Locust's worker exited with code {code}: the master at {host}:{port} could not be "
        "reached (is `paybench run --master` running there, with --master-bind on an "
        "address this machine reaches?) or Locust failed; see its log above"
    )


def _forward_signals_until_exit(proc: subprocess.Popen[bytes]) -> bool:
    """Wait for Locust; SIGINT/SIGTERM go to it once (it then sends its data and quits)."""
    got: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        got.append(signum)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                proc.wait()
                break
            except KeyboardInterrupt:
                forward(signal.SIGINT, None)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return bool(got)


def _read_status(path: Path) -> str | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    reason = document.get("reason") if isinstance(document, dict) else None
    return str(reason) if reason else None
