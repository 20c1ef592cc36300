"""Locust across machines: the handshake before any load, each worker's clock offset, and
the end-of-run barrier that checks the totals (see docs/distributed.md).

Runs inside the Locust processes of ``paybench run --master`` and ``paybench worker``
(``harness.plugin`` calls ``install`` from its ``init`` listener), over Locust's own
custom messages, all registered with ``concurrent=True`` so that a slow handler never holds
up Locust's receive loop and its heartbeats:

1. every worker, once connected, sends ``paybench_hello``: paybench's version, Locust's,
   Python's, and the SHA-256 of the scenario files (the locustfile and the modules beside it
   that it imported);
2. the master compares them with its own, then measures the worker's clock offset NTP-style
   (``PING_ROUNDS`` round trips of ``paybench_ping``/``paybench_pong``; the round with the
   least delay gives the offset) and answers ``paybench_handshake``: accepted, or refused
   with the reason;
3. the master holds the start (inside ``init``, before Locust's headless start) until
   ``--expect-workers`` workers are accepted; a refused worker, or too few workers within
   ``--expect-workers-max-wait``, ends the master before any request with the exit code
   of the refusal and the reason in ``paybench.distributed.json`` (read by
   ``harness.lifecycle`` into run.json's ``extra.distributed`` and the error line);
4. at ``test_stop``, after the plugin has waited for every worker's final data, the master
   checks that each worker's own count of what it sent equals what the master received from
   it, and that the merged recording holds their sum; a worker that never answered,
   vanished mid-run or disagrees becomes a warning of the recording, which makes the run
   UNRELIABLE (exit 3) and names the worker.

Nothing here imports Locust or gevent (``harness.lifecycle`` reads the facts file from the
paybench process, where they may not be imported): the runner is used through its own
methods, and ``time.sleep`` is gevent's inside Locust (Locust monkey-patches the process).

Test-only environment variables, read by workers only and by nothing else of paybench
(never set them in a real run):

``PAYBENCH_TEST_WORKER_VERSION``   the paybench version the worker reports in its hello
``PAYBENCH_TEST_CLOCK_OFFSET_S``   seconds added to every clock reading the worker reports
``PAYBENCH_TEST_FINAL_DELAY_S``    seconds the worker waits before it sends its final data
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import EXIT_UNJUDGEABLE, EXIT_USAGE

logger = logging.getLogger("paybench")

FACTS_FILE = "paybench.distributed.json"  # in the master's run folder
FACTS_VERSION = 1
MSG_HELLO = "paybench_hello"  # worker -> master: what it runs
MSG_PING = "paybench_ping"  # master -> worker: the master's send time
MSG_PONG = "paybench_pong"  # worker -> master: the ping's time, the worker's receive and send
MSG_VERDICT = "paybench_handshake"  # master -> worker: accepted or refused, and why

# A worker whose clock is further than this from the master's is refused: the recording's
# intervals are cut on each worker's wall clock, and 250 ms is an eighth of the default
# 2-s interval. Refused with exit 3 (the environment is wrong, not the command: the fix is
# time synchronisation on the machines, and the same command then works).
MAX_CLOCK_OFFSET_S = 0.25
PING_ROUNDS = 8
PONG_TIMEOUT_S = 2.0
DEFAULT_EXPECT_WAIT_S = 120.0  # when Locust's --expect-workers-max-wait is 0

# A worker the master refused exits with one of these (``paybench worker`` maps them back
# to 2 and 3): Locust's own codes are 0, 1, 2 and 255, and its 2 means a crash.
WORKER_REFUSED_EXIT = {EXIT_USAGE: 82, EXIT_UNJUDGEABLE: 83}
# Where a worker writes the master's refusal, for ``paybench worker``'s one line.
STATUS_FILE_ENV = "PAYBENCH_WORKER_STATUS_FILE"

TEST_VERSION_ENV = "PAYBENCH_TEST_WORKER_VERSION"
TEST_CLOCK_OFFSET_ENV = "PAYBENCH_TEST_CLOCK_OFFSET_S"
TEST_FINAL_DELAY_ENV = "PAYBENCH_TEST_FINAL_DELAY_S"

# What must be equal on the master and every worker, and how each is named in a refusal.
CHECKED = (
    ("paybench", "paybench version"),
    ("locust", "Locust version"),
    ("python", "Python version"),
    ("scenario_sha256", "scenario files (SHA-256)"),
)


# -- what a process runs -----------------------------------------------------------------------


def scenario_files(locustfiles: Iterable[str], modules: Mapping[str, Any]) -> list[Path]:
    """The locustfiles and the modules beside them that they imported (``sys.modules``)."""
    files = [Path(f).resolve() for f in locustfiles if f and Path(f).is_file()]
    folders = {f.parent for f in files}
    for module in list(modules.values()):
        name = getattr(module, "__file__", None)
        if not isinstance(name, str) or not name.endswith(".py"):
            continue
        path = Path(name).resolve()
        if path.parent in folders and path not in files:
            files.append(path)
    return sorted(set(files))


def scenario_hash(files: Iterable[Path]) -> str:
    """SHA-256 over each file's name and content, in name order."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode("utf-8") + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()


def local_facts(environment: Any, worker: bool) -> dict[str, Any]:
    """This process's versions and scenario hash (a worker's test-only version included)."""
    try:
        from importlib import metadata

        locust_version = metadata.version("locust")
    except Exception:
        locust_version = "unknown"
    locustfiles = getattr(environment, "parsed_locustfiles", None) or []
    if not locustfiles:
        option = getattr(getattr(environment, "parsed_options", None), "locustfile", None)
        locustfiles = [f for f in str(option or "").split(",") if f]
    files = scenario_files(locustfiles, sys.modules)
    version = __version__
    if worker and os.environ.get(TEST_VERSION_ENV):
        version = os.environ[TEST_VERSION_ENV]
    return {
        "paybench": version,
        "locust": locust_version,
        "python": platform.python_version(),
        "scenario_sha256": scenario_hash(files),
        "scenario_files": [f.name for f in files],
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
    }


def differences(mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> list[str]:
    """What differs, as ``<what> <theirs> (master: <mine>)``."""
    found = []
    for key, label in CHECKED:
        a, b = mine.get(key), theirs.get(key)
        if a != b:
            if key == "scenario_sha256":
                a, b = str(a)[:12], str(b)[:12]
            found.append(f"{label} {b} (master: {a})")
    return found


def clock_estimate(rounds: Iterable[tuple[float, float, float, float]]) -> tuple[float, float]:
    """(offset_s, delay_s) of the round trip with the least delay (NTP, RFC 5905 §8).

    Each round is (t1 master send, t2 worker receive, t3 worker send, t4 master receive);
    offset = ((t2 - t1) + (t3 - t4)) / 2 is the worker's clock minus the master's, and
    delay = (t4 - t1) - (t3 - t2) bounds its error to half of it.
    """
    best: tuple[float, float] | None = None
    for t1, t2, t3, t4 in rounds:
        delay = (t4 - t1) - (t3 - t2)
        offset = ((t2 - t1) + (t3 - t4)) / 2
        if best is None or delay < best[1]:
            best = (offset, delay)
    if best is None:
        raise ValueError("no round trip")
    return best


def merged_counts(aggregator: Any) -> tuple[int, int] | None:
    """(requests completed, cut off) over the whole run in the master's Aggregator."""
    if aggregator is None:
        return None
    wholes = [entry.whole for entry in aggregator.entries.values()]
    return sum(w.count for w in wholes), sum(w.cut_off for w in wholes)


def present(runner: Any, client_id: str) -> bool:
    """The worker is connected and not missing (its heartbeats have not stopped)."""
    clients = getattr(runner, "clients", None)
    node = clients.get(client_id) if clients is not None else None
    return node is not None and getattr(node, "state", None) != "missing"


def payload_counts(payload: Mapping[str, Any] | None) -> tuple[int, int]:
    """(requests completed, requests cut off) in one of the plugin's payloads."""
    count = cut_off = 0
    for row in (payload or {}).get("entries", ()) or ():
        with contextlib.suppress(IndexError, TypeError, ValueError):
            count += int(row[3])
            cut_off += int(row[5])
    return count, cut_off


# -- the state of this process -----------------------------------------------------------------


@dataclass
class WorkerSeen:
    """A worker as the master saw it."""

    client_id: str
    index: int
    joined_epoch: float
    facts: dict[str, Any] = field(default_factory=dict)
    status: str = "handshaking"  # handshaking, accepted, refused
    problem: str | None = None
    offset_s: float | None = None
    delay_s: float | None = None
    rounds: int = 0
    requests: int = 0  # received from it
    cut_off: int = 0
    reports: int = 0
    declared: dict[str, int] | None = None  # its own count, from its final data
    # What had arrived with the final data (later reports, e.g. at quit, are not in its count).
    requests_at_final: int = 0
    cut_off_at_final: int = 0
    reports_at_final: int = 0
    final_epoch: float | None = None
    last_heard_epoch: float | None = None
    # Its CPU, from the samples harness.plugin puts in every report (percent of one core).
    cpu_samples: int = 0
    cpu_sum_pct: float = 0.0
    cpu_max_pct: float | None = None

    def add_cpu(self, payload: Mapping[str, Any]) -> None:
        for row in payload.get("cpu", ()) or ():
            with contextlib.suppress(TypeError, ValueError, IndexError):
                pct = float(row[1])
                self.cpu_samples += 1
                self.cpu_sum_pct += pct
                self.cpu_max_pct = pct if self.cpu_max_pct is None else max(self.cpu_max_pct, pct)

    @property
    def name(self) -> str:
        host = self.facts.get("hostname")
        where = f" ({host}, pid {self.facts.get('pid')})" if host else f" ({self.client_id})"
        return f"worker-{self.index}{where}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "client_id": self.client_id,
            "hostname": self.facts.get("hostname"),
            "pid": self.facts.get("pid"),
            "status": self.status,
            "problem": self.problem,
            "joined_epoch": self.joined_epoch,
            "final_epoch": self.final_epoch,
            "last_heard_epoch": self.last_heard_epoch,
            "clock_offset_ms": None if self.offset_s is None else round(self.offset_s * 1e3, 3),
            "clock_delay_ms": None if self.delay_s is None else round(self.delay_s * 1e3, 3),
            "clock_rounds": self.rounds,
            "requests": self.requests,
            "cut_off": self.cut_off,
            "reports": self.reports,
            "cpu_mean_pct": round(self.cpu_sum_pct / self.cpu_samples, 1)
            if self.cpu_samples
            else None,
            "cpu_max_pct": None if self.cpu_max_pct is None else round(self.cpu_max_pct, 1),
            "cpu_samples": self.cpu_samples,
            "declared": self.declared,
            "versions": {k: self.facts.get(k) for k, _ in CHECKED},
        }


@dataclass
class _Dist:
    role: str = "local"
    environment: Any = None
    directory: Path | None = None
    warn: Callable[[str], None] | None = None
    merged: Callable[[], tuple[int, int] | None] | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    workers: dict[str, WorkerSeen] = field(default_factory=dict)
    pongs: dict[tuple[str, int], tuple[float, float, float, float]] = field(default_factory=dict)
    refusal: tuple[int, str] | None = None
    started: bool = False
    checked: bool = False
    # worker side
    sent_requests: int = 0
    sent_cut_off: int = 0
    sent_reports: int = 0


_D = _Dist()


def _now() -> float:
    return time.time()


def _worker_now() -> float:
    """A worker's clock reading, shifted by the test-only offset."""
    return time.time() + _env_float(TEST_CLOCK_OFFSET_ENV)


def _env_float(name: str) -> float:
    try:
        return float(os.environ.get(name, "") or 0.0)
    except ValueError:
        return 0.0


def install(
    environment: Any,
    role: str,
    directory: Path | None,
    warn: Callable[[str], None],
    aggregator: Callable[[], Any],
) -> None:
    """Called by the plugin's ``init``: the handshake messages, and on a master, the wait
    for the expected workers (which may end this process: SystemExit with the exit code).

    ``warn`` records a reason the run is unreliable; ``aggregator`` gives the master's
    ``harness.recording.Aggregator`` (None before the test starts).
    """
    _D.role, _D.environment, _D.directory = role, environment, directory
    _D.warn, _D.merged = warn, lambda: merged_counts(aggregator())
    runner = environment.runner
    hooks = environment.events
    if role == "master":
        _D.facts = local_facts(environment, worker=False)
        runner.register_message(MSG_HELLO, _on_hello, concurrent=True)
        runner.register_message(MSG_PONG, _on_pong, concurrent=True)
        hooks.worker_report.add_listener(_on_worker_report)
        hooks.test_start.add_listener(_on_master_test_start)
        hooks.test_stop.add_listener(_on_master_test_stop)
        options = getattr(environment, "parsed_options", None)
        if getattr(options, "headless", False) and directory is not None:
            _hold_start(runner, options)
    elif role == "worker":
        runner.register_message(MSG_PING, _on_ping, concurrent=True)
        runner.register_message(MSG_VERDICT, _on_verdict, concurrent=True)
        hooks.report_to_master.add_listener(_on_report_to_master)
        runner.send_message(MSG_HELLO, local_facts(environment, worker=True))


# -- master ------------------------------------------------------------------------------------


def _index(runner: Any, client_id: str) -> int:
    try:
        return int(runner.get_worker_index(client_id))
    except Exception:
        return len(_D.workers)


def _on_hello(environment: Any, msg: Any, **_kw: Any) -> None:
    runner = environment.runner
    client_id = str(msg.node_id)
    worker = WorkerSeen(client_id, _index(runner, client_id), joined_epoch=_now())
    worker.facts = dict(msg.data or {})
    worker.last_heard_epoch = worker.joined_epoch
    _D.workers[client_id] = worker
    differ = differences(_D.facts, worker.facts)
    if differ:
        _refuse(
            runner,
            worker,
            EXIT_USAGE,
            f"{worker.name} runs {'; '.join(differ)}: master and workers must run the same "
            "paybench, Locust, Python and scenario files; deploy the same build everywhere",
        )
        return
    rounds = []
    for seq in range(PING_ROUNDS):
        t1 = _now()
        runner.send_message(MSG_PING, {"seq": seq, "t1": t1}, client_id)
        deadline = time.monotonic() + PONG_TIMEOUT_S
        while (client_id, seq) not in _D.pongs and time.monotonic() < deadline:
            time.sleep(0.002)
        pong = _D.pongs.pop((client_id, seq), None)
        if pong is not None:
            rounds.append(pong)
    if not rounds:
        _refuse(
            runner,
            worker,
            EXIT_UNJUDGEABLE,
            f"{worker.name} answered none of {PING_ROUNDS} clock pings within "
            f"{PONG_TIMEOUT_S:g} s each; check the network between master and worker",
        )
        return
    worker.offset_s, worker.delay_s = clock_estimate(rounds)
    worker.rounds = len(rounds)
    if abs(worker.offset_s) > MAX_CLOCK_OFFSET_S:
        _refuse(
            runner,
            worker,
            EXIT_UNJUDGEABLE,
            f"{worker.name}'s clock is {worker.offset_s * 1e3:+.0f} ms off the master's "
            f"(limit {MAX_CLOCK_OFFSET_S * 1e3:.0f} ms, round trip "
            f"{worker.delay_s * 1e3:.1f} ms): its intervals would land in the wrong "
            "seconds; synchronise the clocks (NTP, chrony) and run again",
        )
        return
    worker.status = "accepted"
    runner.send_message(
        MSG_VERDICT,
        {"accepted": True, "offset_ms": round(worker.offset_s * 1e3, 3)},
        client_id,
    )
    logger.info(
        "paybench: %s accepted (clock offset %+.1f ms, round trip %.1f ms)",
        worker.name,
        worker.offset_s * 1e3,
        worker.delay_s * 1e3,
    )


def _on_pong(environment: Any, msg: Any, **_kw: Any) -> None:
    t4 = _now()
    data = msg.data or {}
    try:
        key = (str(msg.node_id), int(data["seq"]))
        _D.pongs[key] = (float(data["t1"]), float(data["t2"]), float(data["t3"]), t4)
    except (KeyError, TypeError, ValueError):
        logger.warning("paybench: a malformed clock pong from %s was ignored", msg.node_id)


def _refuse(runner: Any, worker: WorkerSeen, code: int, message: str) -> None:
    worker.status, worker.problem = "refused", message
    logger.error("paybench: refused %s", message)
    runner.send_message(
        MSG_VERDICT, {"accepted": False, "code": code, "reason": message}, worker.client_id
    )
    if _D.started:
        # Joined after the start: it gets no users from us, and the run says so.
        runner.send_message("quit", None, worker.client_id)
        if _D.warn is not None:
            _D.warn(f"a worker joined during the run and was refused: {message}")
    elif _D.refusal is None:
        _D.refusal = (code, message)


def _hold_start(runner: Any, options: Any) -> None:
    """Wait until the expected workers are accepted; else end this process before load."""
    expected = int(getattr(options, "expect_workers", 1) or 1)
    wait_s = float(getattr(options, "expect_workers_max_wait", 0) or 0) or DEFAULT_EXPECT_WAIT_S
    where = (
        f"{getattr(options, 'master_bind_host', '*')}:{getattr(options, 'master_bind_port', '')}"
    )
    logger.info("paybench: waiting up to %g s for %d worker(s) at %s", wait_s, expected, where)
    deadline = time.monotonic() + wait_s
    while True:
        if _D.refusal is not None:
            _call_off(runner, *_D.refusal)
        accepted = [w for w in _D.workers.values() if w.status == "accepted"]
        if len(accepted) >= expected:
            return
        if time.monotonic() > deadline:
            joined = len(runner.clients) if hasattr(runner, "clients") else len(_D.workers)
            names = ", ".join(w.name for w in accepted) or "none accepted"
            _call_off(
                runner,
                EXIT_UNJUDGEABLE,
                f"only {joined} of {expected} worker(s) joined the master at {where} within "
                f"{wait_s:g} s ({names}); start them with `paybench worker --master "
                "HOST:PORT`, check that they reach this address, or lower --expect-workers",
            )
        time.sleep(0.05)


def _call_off(runner: Any, code: int, message: str) -> None:
    """No load: tell every worker why, write the facts, end the master with ``code``."""
    _D.refusal = (code, message)
    logger.error("paybench: the run is called off before any request: %s", message)
    for worker in _D.workers.values():
        if worker.status != "refused":
            runner.send_message(
                MSG_VERDICT,
                {"accepted": False, "code": code, "reason": f"the master called it off: {message}"},
                worker.client_id,
            )
    _write_facts()
    time.sleep(0.2)  # the verdicts leave before Locust's quit
    with contextlib.suppress(Exception):
        runner.quit()
    raise SystemExit(code)


def _on_master_test_start(**_kw: Any) -> None:
    _D.started = True


def _on_worker_report(client_id: str, data: Mapping[str, Any], **_kw: Any) -> None:
    worker = _D.workers.get(str(client_id))
    if worker is None:
        return
    worker.last_heard_epoch = _now()
    payload = data.get("paybench")
    if payload:
        count, cut_off = payload_counts(payload)
        worker.requests += count
        worker.cut_off += cut_off
        worker.reports += 1
        worker.add_cpu(payload)


def on_final_received(client_id: str, payload: Mapping[str, Any] | None) -> None:
    """Master: a worker's final data (the plugin's ``paybench_final``), after it is merged."""
    worker = _D.workers.get(str(client_id))
    if worker is None or not payload:
        return
    count, cut_off = payload_counts(payload)
    worker.requests += count
    worker.cut_off += cut_off
    worker.reports += 1
    worker.add_cpu(payload)
    worker.final_epoch = worker.last_heard_epoch = _now()
    worker.requests_at_final, worker.cut_off_at_final = worker.requests, worker.cut_off
    worker.reports_at_final = worker.reports
    totals = payload.get("totals")
    if isinstance(totals, Mapping):
        with contextlib.suppress(TypeError, ValueError):
            worker.declared = {k: int(totals[k]) for k in ("requests", "cut_off", "reports")}


def _on_master_test_stop(**_kw: Any) -> None:
    """After the plugin's wait for final data: every worker answered, and the sums agree."""
    if _D.checked:
        return
    _D.checked = True
    problems = end_problems(list(_D.workers.values()), _D.merged() if _D.merged else None)
    for problem in problems:
        logger.warning("paybench: %s", problem)
        if _D.warn is not None:
            _D.warn(problem)
    _write_facts(problems)


def end_problems(workers: list[WorkerSeen], merged: tuple[int, int] | None) -> list[str]:
    """Why the counts of a distributed run cannot be trusted, naming the workers."""
    problems = []
    received = [0, 0]
    for w in workers:
        if w.status != "accepted":
            continue
        received[0] += w.requests
        received[1] += w.cut_off
        if w.final_epoch is None:
            heard = w.last_heard_epoch
            ago = f", last heard {_now() - heard:.0f} s before the check" if heard else ""
            problems.append(
                f"{w.name} never sent its final counts (it vanished mid-run or did not "
                f"answer{ago}): its requests since its last report are missing; "
                f"{w.requests} of its requests were counted"
            )
            continue
        d = w.declared
        if d is None:
            problems.append(f"{w.name} sent no totals with its final data (an older paybench)")
        elif (d["requests"], d["cut_off"]) != (w.requests_at_final, w.cut_off_at_final):
            problems.append(
                f"{w.name}'s totals disagree: it sent {d['requests']} requests "
                f"(+{d['cut_off']} cut off) in {d['reports']} reports, the master received "
                f"{w.requests_at_final} (+{w.cut_off_at_final}) in {w.reports_at_final}"
            )
    if merged is not None and tuple(merged) != tuple(received):
        problems.append(
            f"the merged recording holds {merged[0]} requests (+{merged[1]} cut off) but the "
            f"workers' data add up to {received[0]} (+{received[1]})"
        )
    return problems


def _write_facts(problems: list[str] | None = None) -> None:
    if _D.directory is None:
        return
    document = {
        "format_version": FACTS_VERSION,
        "max_clock_offset_ms": MAX_CLOCK_OFFSET_S * 1e3,
        "master": {k: _D.facts.get(k) for k, _ in CHECKED},
        "workers": [w.to_json() for w in _D.workers.values()],
        "refused": None
        if _D.refusal is None
        else {"code": _D.refusal[0], "message": _D.refusal[1]},
        "problems": problems or [],
    }
    try:
        _D.directory.mkdir(parents=True, exist_ok=True)
        tmp = _D.directory / (FACTS_FILE + ".tmp")
        tmp.write_text(json.dumps(document, indent=1), encoding="utf-8")
        tmp.replace(_D.directory / FACTS_FILE)
    except OSError as e:
        logger.error("paybench: could not write %s: %s", FACTS_FILE, e)


# -- worker ------------------------------------------------------------------------------------


def _on_ping(environment: Any, msg: Any, **_kw: Any) -> None:
    t2 = _worker_now()
    data = msg.data or {}
    reply = {"seq": data.get("seq"), "t1": data.get("t1"), "t2": t2}
    reply["t3"] = _worker_now()
    environment.runner.send_message(MSG_PONG, reply)


def _on_verdict(environment: Any, msg: Any, **_kw: Any) -> None:
    data = msg.data or {}
    if data.get("accepted"):
        offset = data.get("offset_ms")
        logger.info("paybench: the master accepted this worker (clock offset %s ms)", offset)
        return
    code = int(data.get("code") or EXIT_USAGE)
    reason = str(data.get("reason") or "no reason given")
    logger.error("paybench: the master refused this worker: %s", reason)
    status = os.environ.get(STATUS_FILE_ENV)
    if status:
        with contextlib.suppress(OSError):
            Path(status).write_text(json.dumps({"code": code, "reason": reason}), "utf-8")
    environment.process_exit_code = WORKER_REFUSED_EXIT.get(code, WORKER_REFUSED_EXIT[EXIT_USAGE])
    with contextlib.suppress(Exception):
        environment.runner.quit()


def _on_report_to_master(client_id: str, data: Mapping[str, Any], **_kw: Any) -> None:
    # Runs after the plugin's listener, which put its payload in the report.
    payload = data.get("paybench")
    if payload:
        count, cut_off = payload_counts(payload)
        _D.sent_requests += count
        _D.sent_cut_off += cut_off
        _D.sent_reports += 1


def on_send_final(payload: dict[str, Any]) -> None:
    """Worker: the plugin's final data is about to leave: add this worker's own totals."""
    count, cut_off = payload_counts(payload)
    _D.sent_requests += count
    _D.sent_cut_off += cut_off
    _D.sent_reports += 1
    payload["totals"] = {
        "requests": _D.sent_requests,
        "cut_off": _D.sent_cut_off,
        "reports": _D.sent_reports,
    }
    delay = _env_float(TEST_FINAL_DELAY_ENV)
    if delay > 0:
        time.sleep(delay)


# -- the paybench process: what the master left in the run folder ------------------------------


def read_facts(run_dir: Path) -> dict[str, Any] | None:
    """The master's facts file, or None when it wrote none (or it is unreadable)."""
    try:
        document = json.loads((run_dir / FACTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def refusal(facts: Mapping[str, Any] | None) -> tuple[int, str] | None:
    """(exit code, message) when the master called the run off before any request."""
    refused = (facts or {}).get("refused")
    if not isinstance(refused, Mapping):
        return None
    code = refused.get("code")
    code = code if code in (EXIT_USAGE, EXIT_UNJUDGEABLE) else EXIT_UNJUDGEABLE
    return int(code), str(refused.get("message") or "the master refused the run")


def worker_lines(facts: Mapping[str, Any] | None) -> list[str]:
    """One line per worker for the CLI: requests, clock offset, when it joined and left."""
    lines = []
    for w in (facts or {}).get("workers", ()) or ():
        if not isinstance(w, Mapping):
            continue
        offset, delay = w.get("clock_offset_ms"), w.get("clock_delay_ms") or 0.0
        clock = "clock not measured" if offset is None else f"clock {offset:+.1f} ms"
        if offset is not None:
            clock += f" (±{delay / 2:.1f})"
        line = f"  {w.get('name')}: {w.get('status')}, {clock}"
        if w.get("status") == "accepted":
            final = w.get("final_epoch")
            left = _clock(final) if final else "without its final data"
            line += (
                f", {w.get('requests', 0)} requests (+{w.get('cut_off', 0)} cut off), "
                f"joined {_clock(w.get('joined_epoch'))}, left {left}"
            )
            cpu = w.get("cpu_mean_pct")
            if isinstance(cpu, int | float):
                line += f", CPU {cpu:.0f}% (max {w.get('cpu_max_pct') or 0:.0f}%)"
        lines.append(line)
    return ["workers:", *lines] if lines else []


def _clock(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(epoch)) + "Z"
