"""Exact latency recording inside Locust processes: ``from harness import plugin``.

Importing this module (from any locustfile) registers Locust options and event listeners:

``--paybench-dir DIR`` (env ``PAYBENCH_DIR``)
    Where to write ``paybench.hdr.json`` (streamed as the run goes, in place at exit) and
    ``paybench.live.jsonl`` (every interval). Unset: nothing is recorded and nothing costly
    runs.
``--paybench-interval SECONDS`` (env ``PAYBENCH_INTERVAL``, default 2)
    The length of the per-interval histograms and of the live progress lines.
``--paybench-allow-hosts NAMES`` (env ``PAYBENCH_ALLOW_HOSTS``)
    Comma-separated host names that requests may reach besides loopback and the host
    under test (``--host``): the run's allow-list, passed by ``paybench run``.

Whatever the options, no request leaves the allow-list: before every connection either
session opens (FastHttpSession's and HttpSession's, a redirect's included) the host is
checked, and a request to any other host is not sent but reported as a failure that names
it. ``PAYBENCH_HOST_USERNAME``/``PAYBENCH_HOST_PASSWORD`` become Basic auth on requests to
the host under test that carry no Authorization of their own (see docs/budgets.md).

Each process that runs users records every ``events.request`` into per-key HDR histograms
of nanoseconds (whole run and per interval ``floor(end_epoch / interval_s)``), counts the
requests still in flight when the run stops (``cut_off``), failures, its own CPU (the
share it got and its demand), and, for paced users, the latency from each request's
intended start. A worker ships what is new with every ``report_to_master`` and sends the
rest on ``test_stop`` with a custom message; the master waits (bounded) for every
worker's final data before Locust's own quit goes on and merges everything losslessly. It
streams the recording as the run goes: each interval, a few seconds after every process
has reported it, is written to a temporary file and forgotten (the master's memory stays
flat over a soak); at ``quit`` the file gets its end line and is renamed into place.
See docs/measurement.md.

Only Locust (with its requests and geventhttpclient), gevent, psutil, numpy/hdrh (through
``harness.core.stats``), ``harness.core.hosts`` and the standard library are imported here:
this runs inside the load generator.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import inspect
import logging
import math
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import psutil
from geventhttpclient.useragent import ConnectionError as GeventConnectionError
from greenlet import getcurrent
from locust import User, events
from locust.clients import HttpSession
from locust.contrib.fasthttp import FastHttpSession, LocustUserAgent
from locust.runners import STATE_STOPPED, MasterRunner, WorkerRunner
from locust.stats import StatsError
from requests.exceptions import RequestException

from harness import distributed
from harness.core import stats
from harness.core.hosts import (
    allowed_names,
    basic_credentials,
    host_name_problem,
    redacted,
    refusal,
    url_problem,
)
from harness.errors import PaybenchError
from harness.recording import Aggregator
from harness.runfolder import HDR_FILE, LIVE_FILE, append_live_line

logger = logging.getLogger("paybench")

DEFAULT_INTERVAL_S = 2.0
PAYLOAD_KEY = "paybench"  # our key in Locust's worker report
MSG_FINAL = "paybench_final"  # worker -> master: the worker's last data for this test
MSG_STOP = "paybench_stop"  # master -> worker: stop your users and send your last data
FINAL_WAIT_EXTRA_S = 10.0  # on top of Locust's --stop-timeout
# The master writes an interval to the recording file and forgets it this long after every
# process has reported it in full: a late report still finds it in memory.
FLUSH_AFTER_S = 10.0
TICK_DELAY_S = 0.05  # wake just after an interval boundary

Key = tuple[str, str]


# -- options ---------------------------------------------------------------------------------

# Every interval the plugin wakes to close histograms, sample its CPU and write a progress
# line: below 0.1 s psutil's CPU percent is noise (10 ms clock ticks) and the wake-ups cost;
# above 60 s a saturated minute of the generator averages away and progress goes quiet.
MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 60.0


def interval_seconds(text: str) -> float:
    """``--paybench-interval``'s value (argparse ``type``): finite seconds in the range."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of seconds; give e.g. 2 or 0.5"
        ) from None
    if not (math.isfinite(value) and MIN_INTERVAL_S <= value <= MAX_INTERVAL_S):
        raise argparse.ArgumentTypeError(
            f"{text} s is out of range; give {MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g} seconds "
            f"(default {DEFAULT_INTERVAL_S:g}; also env PAYBENCH_INTERVAL)"
        )
    return value


def allow_hosts_list(text: str) -> tuple[str, ...]:
    """``--paybench-allow-hosts``' value (argparse ``type``): comma-separated host names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        problem = host_name_problem(name)
        if problem is None and ("/" in name or "*" in name or "?" in name):
            problem = ("is not a host name", "list host names only, e.g. staging.example.internal")
        if problem is not None:
            raise argparse.ArgumentTypeError(f"{name!r} {problem[0]}; {problem[1]}")
    return names


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_kw: Any) -> None:
    parser.add_argument(
        "--paybench-dir",
        type=str,
        default=None,
        env_var="PAYBENCH_DIR",
        include_in_web_ui=False,
        help="paybench: write exact histograms (paybench.hdr.json) and live progress here",
    )
    parser.add_argument(
        "--paybench-interval",
        type=interval_seconds,
        default=DEFAULT_INTERVAL_S,
        env_var="PAYBENCH_INTERVAL",
        include_in_web_ui=False,
        help=f"paybench: seconds per interval histogram and progress line, "
        f"{MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g} (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--paybench-allow-hosts",
        type=allow_hosts_list,
        default=(),
        env_var="PAYBENCH_ALLOW_HOSTS",
        include_in_web_ui=False,
        help="paybench: comma-separated host names requests may reach besides loopback and "
        "--host (redirects included); any other is refused and counted as a failure",
    )


# -- recording in a process that runs users ---------------------------------------------------


@dataclass
class _PaceState:
    """One paced user's schedule: the intended start of its current iteration."""

    user_class: str
    pacing_s: float
    anchor_epoch: float  # start of its first scheduled iteration
    intended_epoch: float
    iterations: int = 1  # iterations started or about to start (the last at next_epoch)
    next_epoch: float = 0.0  # when the latest scheduled iteration starts (after its wait)
    slip_s: float | None = None  # how late this iteration started (set at its first request)


# A request sent whose outcome Locust has not reported yet: (method, name, url, session).
Pending = tuple[str, str | None, str | None, Any]


# -- the generator's own CPU ------------------------------------------------------------------

# The main thread's scheduler statistics: nanoseconds on a CPU, nanoseconds waiting on a run
# queue, time slices. The main thread is the one that runs gevent's event loop.
SCHEDSTAT_PATH = "/proc/self/schedstat"


def read_schedstat(path: str = SCHEDSTAT_PATH) -> tuple[int, int] | None:
    """(ns on a CPU, ns runnable but waiting for one), or None where the kernel has none."""
    try:
        with open(path, "rb") as f:
            fields = f.read(256).split()
        return int(fields[0]), int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


class CpuSampler:
    """One Locust process's CPU share and CPU demand since the previous sample.

    ``cpu_pct`` (psutil, all threads) is the share of a core the process got. ``runnable_pct``
    is the share of the wall time its event loop was on a CPU or waiting on the run queue
    for one: near 100 % the process was CPU-bound whether the other processes of the machine
    let it have the core or not. A process that waits for the network is neither.
    """

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)  # the first reading only starts the clock
        self._schedstat = read_schedstat()
        self._at_ns = time.monotonic_ns()

    def sample(self) -> tuple[float, float | None]:
        """(cpu_pct, runnable_pct) since the previous call; runnable_pct None without schedstat."""
        cpu_pct = float(self._process.cpu_percent(interval=None))
        now = read_schedstat()
        at_ns = time.monotonic_ns()
        runnable_pct = None
        before = self._schedstat
        if now is not None and before is not None and at_ns > self._at_ns:
            busy_ns = (now[0] - before[0]) + (now[1] - before[1])
            runnable_pct = round(100.0 * busy_ns / (at_ns - self._at_ns), 1)
        self._schedstat, self._at_ns = now, at_ns
        return cpu_pct, runnable_pct


class Recorder:
    """Collects one process's requests; `take` hands over what is new since the last call.

    The per-request path only appends the float response time to a list per key; numbers
    become histograms (vectorised) when they are taken, once per interval or report.
    ``clock`` gives the epoch a request ended (``time.time``; a test's own clock).
    """

    def __init__(
        self, interval_s: float, process: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.interval_s = interval_s
        self.process = process
        self._per_s = 1.0 / interval_s
        self._clock = clock
        self._index = -1
        # The epochs [_lo, _hi) whose index is _index: one comparison per request instead of
        # a multiplication and an int (see `_interval_bounds`); empty until the first request.
        self._lo = math.inf
        self._hi = -math.inf
        self._times: dict[Key, list[float]] = {}
        self._fails: dict[Key, int] = {}
        self._paced_times: dict[Key, list[float]] = {}
        self._closed: list[tuple[Key, int, list[float], int, bool]] = []
        self._cut_off: list[tuple[Key, int, int]] = []
        self._failure_rows: dict[tuple[str, str, str], list[float]] = {}
        self._cpu: list[list[float | None]] = []  # [epoch, cpu_pct, runnable_pct or None]
        # Requests started, by how the wrapped request() was called (its name is resolved
        # only at stop), and requests completed by key, summed as intervals close: the
        # difference at stop is what was cut off in flight. Two dict updates per request.
        self.started: dict[Pending, int] = {}
        self.completed: dict[Key, int] = {}
        # User greenlets whose kill Locust has scheduled but not delivered yet (gevent's
        # Group.dying of the runner's users): see `_tracked`.
        self.dying: Collection[Any] = frozenset()
        self.pace: dict[Any, _PaceState] = {}
        self.pace_states: list[_PaceState] = []
        self.paced_totals: dict[str, list[float]] = {}
        # Open-model arrivals' counts, shipped as paced rows (locustfiles/arrivals.py sets it).
        self.arrival_totals: dict[str, list[float]] = {}

    # The hot path: called for every request. Keep it to dictionary and list operations
    # (benchmarks/record_cost.py measures it).
    def on_request(
        self,
        request_type: str,
        name: str,
        response_time: float,
        response_length: int = 0,
        response: Any = None,
        context: Any = None,
        exception: Exception | str | None = None,
        start_time: float | None = None,
        url: str | None = None,
        **_kw: Any,  # Locust's own keywords are all named above: no dict built per call
    ) -> None:
        now = self._clock()
        if not self._lo <= now < self._hi:
            self._enter(now)
        key = (request_type, name)
        times = self._times.get(key)
        if times is None:
            self._times[key] = [response_time]
        else:
            times.append(response_time)
        if exception is not None:
            self._failure(key, exception, now)
        if self.pace:
            state = self.pace.get(getcurrent())
            if state is not None:
                if state.slip_s is None:
                    started = start_time if start_time is not None else now - response_time / 1e3
                    state.slip_s = max(0.0, started - state.intended_epoch)
                paced = self._paced_times.get(key)
                if paced is None:
                    paced = self._paced_times[key] = []
                paced.append(response_time + state.slip_s * 1e3)

    def _failure(self, key: Key, exception: Exception | str, now: float) -> None:
        self._fails[key] = self._fails.get(key, 0) + 1
        message = StatsError.parse_error(exception)
        row = self._failure_rows.get((key[0], key[1], message))
        if row is None:
            self._failure_rows[(key[0], key[1], message)] = [1, now, now]
        else:
            row[0] += 1
            row[2] = now

    def _enter(self, now: float) -> None:
        """``now`` is outside the current interval: roll over to its own."""
        index = int(now * self._per_s)
        if index != self._index:
            self._roll(index)
        self._lo, self._hi = _interval_bounds(index, self._per_s, self.interval_s)

    def _roll(self, index: int) -> None:
        """Close the current interval's lists (cheap); they become histograms in `take`."""
        self._close(paced=False)
        self._close(paced=True)
        self._index = index

    def _close(self, paced: bool) -> None:
        lists = self._paced_times if paced else self._times
        completed = self.completed
        for key, times in lists.items():
            if times:
                fails = 0 if paced else self._fails.get(key, 0)
                self._closed.append((key, self._index, times, fails, paced))
                if not paced:
                    completed[key] = completed.get(key, 0) + len(times)
        if paced:
            self._paced_times = {}
        else:
            self._times = {}
            self._fails = {}

    # -- paced users ---------------------------------------------------------------------

    def on_paced_wait(self, user_class: str, pacing_s: float, wait_s: float) -> None:
        """Called by a paced user's wait_time: the next iteration starts in ``wait_s``."""
        greenlet = getcurrent()
        start = self._clock() + wait_s
        state = self.pace.get(greenlet)
        if state is None:
            state = _PaceState(user_class, pacing_s, anchor_epoch=start, intended_epoch=start)
            self.pace[greenlet] = state
            self.pace_states.append(state)
        else:
            state.intended_epoch += pacing_s
            state.iterations += 1
        state.next_epoch = start
        state.slip_s = None

    def close_pacing(self, stop_epoch: float) -> None:
        """Sum up intended and achieved iterations per paced User class at stop."""
        totals: dict[str, list[float]] = {}
        for state in self.pace_states:
            # Starts in [anchor, stop]: intended on the schedule, achieved in fact (an
            # iteration still waiting to start at stop never began).
            intended = math.floor(max(0.0, stop_epoch - state.anchor_epoch) / state.pacing_s) + 1
            achieved = state.iterations - (1 if state.next_epoch > stop_epoch else 0)
            row = totals.setdefault(state.user_class, [state.pacing_s, 0, 0.0, 0])
            row[1] += 1
            row[2] += intended
            row[3] += achieved
        self.paced_totals = totals

    # -- stop --------------------------------------------------------------------------------

    def cut_off_pending(self, stop_epoch: float) -> int:
        """Count every request started but not completed as cut off at stop."""
        self._close(paced=False)  # the open interval's completions count too
        started: dict[Key, int] = {}
        for call, n in self.started.items():
            key = (call[0], _resolved_name(call))
            started[key] = started.get(key, 0) + n
        counts = {
            key: n - self.completed.get(key, 0)
            for key, n in started.items()
            if n > self.completed.get(key, 0)
        }
        self.started = {}
        self.completed = {}
        index = int(stop_epoch * self._per_s)
        for key, n in counts.items():
            self._cut_off.append((key, index, n))
        return sum(counts.values())

    def sample_cpu(self, sampler: CpuSampler) -> None:
        self._cpu.append([time.time(), *sampler.sample()])

    # -- hand-over ---------------------------------------------------------------------------

    def take(self, encode: bool) -> dict[str, Any]:
        """Everything new since the last call, as a payload (msgpack-able when ``encode``)."""
        self._close(paced=False)
        self._close(paced=True)
        closed, self._closed = self._closed, []
        grouped: dict[tuple[bool, Key, int], list[Any]] = {}
        for key, index, times, fails, paced in closed:
            slot = grouped.setdefault((paced, key, index), [[], 0])
            slot[0].append(times)
            slot[1] += fails
        entries: list[list[Any]] = []
        paced_entries: list[list[Any]] = []
        for (paced, key, index), (lists, fails) in grouped.items():
            row = _delta_row(key, index, lists, fails, 0, encode)
            (paced_entries if paced else entries).append(row)
        for key, index, n in self._cut_off:
            entries.append([key[0], key[1], index, 0, 0, n, 0, None, None, _empty(encode)])
        self._cut_off = []
        failures = [[t, n, m, *row] for (t, n, m), row in self._failure_rows.items()]
        self._failure_rows = {}
        cpu, self._cpu = self._cpu, []
        return {
            "process": self.process,
            "sent_epoch": time.time(),
            "entries": entries,
            "paced": paced_entries,
            "failures": failures,
            "cpu": cpu,
            "paced_classes": {
                k: list(v) for k, v in {**self.paced_totals, **self.arrival_totals}.items()
            },
        }


def _interval_bounds(index: int, per_s: float, interval_s: float) -> tuple[float, float]:
    """The floats [lo, hi) whose ``int(epoch * per_s)`` is ``index``, exactly.

    Float multiplication is monotonic, so the epochs of one index are one run of floats; its
    ends are found from ``index * interval_s`` by stepping to the neighbouring floats.
    """

    def first_reaching(k: int) -> float:
        x = k * interval_s
        while x * per_s >= k:
            x = math.nextafter(x, -math.inf)
        while x * per_s < k:
            x = math.nextafter(x, math.inf)
        return x

    return first_reaching(index), first_reaching(index + 1)


def _delta_row(
    key: Key, index: int, lists: list[list[float]], fails: int, cut_off: int, encode: bool
) -> list[Any]:
    values = [v for times in lists for v in times]
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        # A custom client reported a response time that is not a number: count it as 0 ms.
        arr = np.asarray([v if isinstance(v, int | float) else 0.0 for v in values], np.float64)
    ns = stats.ms_to_ns_array(arr)
    h = stats.Histogram()
    h.record_ns_array(ns)
    return [
        key[0],
        key[1],
        index,
        int(ns.size),
        fails,
        cut_off,
        int(ns.sum()),
        int(ns.min()),
        int(ns.max()),
        stats.encode_histogram(h) if encode else h,
    ]


def _empty(encode: bool) -> Any:
    h = stats.Histogram()
    return stats.encode_histogram(h) if encode else h


def _resolved_name(token: Pending) -> str:
    """The name Locust would have reported for a request that never completed."""
    _, name, url, session = token
    if name:
        return name
    # An unnamed token carries the URL it was sent to (see _tracked).
    assert url is not None
    if isinstance(session, HttpSession):
        # HttpSession names a request by the path (and query) of the URL it requested.
        parts = urllib.parse.urlsplit(session._build_url(url))
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return url  # FastHttpSession: the url argument as given


# -- cut-off tracking: wrap the HTTP sessions' request() --------------------------------------


# FastHttpSession.request's parameters: a method with exactly these gets the wrapper that
# passes them on one by one (no tuple and dict packed and unpacked per request).
_FAST_PARAMETERS = (
    "self", "method", "url", "name", "data", "catch_response", "stream", "headers", "auth",
    "json", "allow_redirects", "context", "kwargs",
)  # fmt: skip


def _tracked(original: Callable[..., Any]) -> Callable[..., Any]:
    code = getattr(original, "__code__", None)
    fast = (
        code is not None
        and code.co_varnames[: code.co_argcount + 1] == _FAST_PARAMETERS
        and code.co_flags & inspect.CO_VARKEYWORDS
        and not code.co_flags & inspect.CO_VARARGS
        and len(original.__defaults__ or ()) == len(_FAST_PARAMETERS) - 4
    )
    request = _tracked_fast(original) if fast else _tracked_generic(original)
    request._paybench_wrapped = True  # type: ignore[attr-defined]
    request.__wrapped__ = original  # type: ignore[attr-defined]
    return request


def _let_kill_land() -> None:
    # Locust judged this user idle and scheduled its kill (a hub callback), but the user
    # woke up before the kill landed. Left alone, the kill would hit the first yield inside
    # the request, before a byte is sent (geventhttpclient's check of a pooled socket), and
    # an unsent request would count as cut off. Yield once: the kill, queued before us,
    # lands here, where Locust meant it to (outside a request).
    gevent.sleep(0)


def _tracked_fast(original: Callable[..., Any]) -> Callable[..., Any]:
    """FastHttpSession.request's own parameters, passed on as they came."""

    def request(
        self: Any,
        method: str,
        url: str,
        name: Any = None,
        data: Any = None,
        catch_response: Any = False,
        stream: Any = False,
        headers: Any = None,
        auth: Any = None,
        json: Any = None,
        allow_redirects: Any = True,
        context: Any = None,
        **kwargs: Any,
    ) -> Any:
        if _GUARD.basic_auth is not None:
            mine = {"headers": headers, "auth": auth}
            headers = _with_basic_auth(self, url, (), mine, _GUARD.basic_auth)["headers"]
        recorder = _STATE.recorder
        if recorder is not None:
            # Inline (a call less per request): the same as in _tracked_generic.
            dying = recorder.dying
            if dying and getcurrent() in dying:
                _let_kill_land()
            label = name or self.request_name
            # Named: one counter per name; unnamed: per URL and session, resolved at stop.
            call = (method, label, None, None) if label else (method, None, url, self)
            started = recorder.started
            started[call] = started.get(call, 0) + 1
            try:
                if kwargs:
                    return original(
                        self, method, url, name, data, catch_response, stream, headers,
                        auth, json, allow_redirects, context, **kwargs,
                    )  # fmt: skip
                return original(
                    self, method, url, name, data, catch_response, stream, headers, auth,
                    json, allow_redirects, context,
                )  # fmt: skip
            except Exception:
                # An error, not an interruption (a bad URL, a listener that raised): Locust
                # will not report this request, and it is not in flight either.
                started[call] -= 1
                raise
            # GreenletExit (a user killed at stop), KeyboardInterrupt, SystemExit: it stays
            # started and never completes, so it counts as cut off at stop.
        return original(
            self, method, url, name, data, catch_response, stream, headers, auth, json,
            allow_redirects, context, **kwargs,
        )  # fmt: skip

    # The very default objects of the original (its `context={}` among them).
    request.__defaults__ = original.__defaults__
    return request


def _tracked_generic(original: Callable[..., Any]) -> Callable[..., Any]:
    """Any other request(): HttpSession's (method, url, *args, **kwargs)."""

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if _GUARD.basic_auth is not None:
            kwargs = _with_basic_auth(self, url, args, kwargs, _GUARD.basic_auth)
        recorder = _STATE.recorder
        if recorder is None:
            return original(self, method, url, *args, **kwargs)
        dying = recorder.dying
        if dying and getcurrent() in dying:
            _let_kill_land()
        name = kwargs.get("name") or (args[0] if args else None) or self.request_name
        call = (method, name, None, None) if name else (method, None, url, self)
        started = recorder.started
        started[call] = started.get(call, 0) + 1
        try:
            return original(self, method, url, *args, **kwargs)
        except Exception:
            started[call] -= 1  # not in flight: see _tracked_fast
            raise

    return request


def _install_request_tracking() -> None:
    for cls in (FastHttpSession, HttpSession):
        if not getattr(cls.request, "_paybench_wrapped", False):
            cls.request = _tracked(cls.request)  # type: ignore[method-assign]


# -- the allow-list: no request leaves it ----------------------------------------------------
#
# Checked where each session opens its connections, so that a redirect is caught as well as
# a request: FastHttpSession's user agent calls ``_urlopen`` once per request and once per
# redirect it follows (geventhttpclient follows them itself); HttpSession is a
# requests.Session, whose ``resolve_redirects`` calls ``send`` again for every hop. The
# request wrappers above cannot see redirects.


class HostNotAllowed(GeventConnectionError):
    """FastHttpSession: a request paybench did not send; Locust counts it as a failure."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.url, self.text, self.kw_text = None, message, ""

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"HostNotAllowed({self.text!r})"


class HostNotAllowedRequests(RequestException):
    """HttpSession: the same refusal as a requests error, which Locust counts as a failure."""

    def __repr__(self) -> str:
        return f"HostNotAllowed({str(self)!r})"


class _Guard:
    """The allow-list as the sessions ask it, with what it has answered so far."""

    def __init__(self) -> None:
        self._allowed: frozenset[str] = frozenset()  # normalised names besides loopback
        # Exact netloc strings (as the URL spells them) that both http and https may reach:
        # the one lookup per request. Anything else (refused, not seen yet) goes to `decide`.
        self.passed: set[str] = set()
        # (scheme, netloc) -> why it is refused (None: allowed), once `decide` has seen it.
        self.decisions: dict[tuple[str, str], str | None] = {}
        self.basic_auth: str | None = None  # the Authorization value from PAYBENCH_HOST_*
        # HttpSession: greenlet -> the first request of the redirect chain it is sending.
        self.sending: dict[Any, Any] = {}

    @property
    def allowed(self) -> frozenset[str]:
        return self._allowed

    @allowed.setter
    def allowed(self, names: frozenset[str]) -> None:
        # What was decided under another list must not answer for this one.
        self._allowed = names
        self.passed.clear()
        self.decisions.clear()

    def decide(self, scheme: str, netloc: str) -> str | None:
        """Why a (scheme, netloc) is refused, or None: the list is asked once for each."""
        key = (scheme, netloc)
        reason = self.decisions.get(key, _UNSEEN)
        if reason is not _UNSEEN:
            return reason  # type: ignore[return-value]
        if len(self.decisions) > 1024:
            # A scenario that invents host names: stay bounded (and ask the list again).
            self.decisions.clear()
            self.passed.clear()
        reason = self.decisions[key] = refusal(f"{scheme}://{netloc}/", self._allowed)
        if (
            reason is None
            and scheme in _WEB_SCHEMES
            and all(refusal(f"{s}://{netloc}/", self._allowed) is None for s in _WEB_SCHEMES)
        ):
            self.passed.add(netloc)
        return reason


_UNSEEN = object()
_WEB_SCHEMES = frozenset(("http", "https"))  # geventhttpclient's URL gives them lower case
_GUARD = _Guard()
_ABSOLUTE = re.compile(r"^https?://", re.IGNORECASE)  # as the sessions tell a full URL


def _refused(url: str, reason: str, redirect: bool) -> str:
    what = "to follow a redirect to" if redirect else "a request to"
    return f"paybench refused {what} {redacted(url)}: {reason}"


def _guarded_urlopen(original: Callable[..., Any]) -> Callable[..., Any]:
    def _urlopen(self: Any, request: Any) -> Any:
        # The hot path: one set lookup per request once a host has passed.
        split = request.url_split
        if split.netloc in _GUARD.passed and split.scheme in _WEB_SCHEMES:
            return original(self, request)
        reason = _GUARD.decide(split.scheme, split.netloc)
        if reason is not None:
            # geventhttpclient marks the requests it makes for a redirect unverifiable.
            redirect = bool(getattr(request, "unverifiable", False))
            raise HostNotAllowed(_refused(str(split), reason, redirect))
        return original(self, request)

    _urlopen._paybench_wrapped = True  # type: ignore[attr-defined]
    _urlopen.__wrapped__ = original  # type: ignore[attr-defined]
    return _urlopen


def _guarded_send(original: Callable[..., Any]) -> Callable[..., Any]:
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        current = getcurrent()
        origin = _GUARD.sending.get(current)  # set: this send is a hop of that request
        parts = urllib.parse.urlsplit(request.url)
        reason = _GUARD.decide(parts.scheme, parts.netloc)
        if reason is not None:
            # Attached to the first request, so Locust names the failure as it names the
            # request (by its first URL), whichever hop was refused.
            message = _refused(request.url, reason, redirect=origin is not None)
            raise HostNotAllowedRequests(message, request=origin or request)
        if origin is not None:
            return original(self, request, **kwargs)
        _GUARD.sending[current] = request
        try:
            return original(self, request, **kwargs)
        finally:
            _GUARD.sending.pop(current, None)

    send._paybench_wrapped = True  # type: ignore[attr-defined]
    send.__wrapped__ = original  # type: ignore[attr-defined]
    return send


def _install_guards() -> None:
    if not getattr(LocustUserAgent._urlopen, "_paybench_wrapped", False):
        LocustUserAgent._urlopen = _guarded_urlopen(LocustUserAgent._urlopen)  # type: ignore[method-assign]
    if not getattr(HttpSession.send, "_paybench_wrapped", False):
        HttpSession.send = _guarded_send(HttpSession.send)  # type: ignore[method-assign]
    if _GUARD.basic_auth is not None:
        _install_request_tracking()  # the request wrapper adds the credentials


def _configure_guard(environment: Any) -> None:
    """The allow-list and credentials from the options and the environment: called at init
    and at every test start (the web UI, or a master's spawn message, may change the host)."""
    options = getattr(environment, "parsed_options", None)
    entries = list(getattr(options, "paybench_allow_hosts", None) or ())
    # The host under test is allowed as named: run through paybench it passed the same
    # check already; run by plain Locust, it is the user's own choice.
    hosts = (
        [environment.host]
        if environment.host
        else [getattr(cls, "host", None) for cls in environment.user_classes or ()]
    )
    for host in hosts:
        if isinstance(host, str) and url_problem(host) is None:
            entries.append(urllib.parse.urlsplit(host).hostname or "")
    _GUARD.allowed = allowed_names(entries)  # forgets what was decided
    credentials = basic_credentials(os.environ)
    _GUARD.basic_auth = None
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode("utf-8")).decode("ascii")
        _GUARD.basic_auth = f"Basic {token}"


def _with_basic_auth(
    session: Any, url: Any, args: tuple[Any, ...], kwargs: dict[str, Any], value: str
) -> dict[str, Any]:
    """``kwargs`` with the Basic auth of PAYBENCH_HOST_* added, when the request goes to the
    host under test and brings no Authorization of its own (the webhook's stays its own)."""
    if kwargs.get("auth") is not None or len(args) > 4:  # FastHttpSession's 5th: headers
        return kwargs
    headers = kwargs.get("headers")
    if headers and any(str(k).lower() == "authorization" for k in headers):
        return kwargs
    defaults = getattr(session, "headers", None)  # a requests.Session's own headers
    if getattr(session, "auth", None) is not None or (defaults and "Authorization" in defaults):
        return kwargs
    if isinstance(url, str) and _ABSOLUTE.match(url):
        mine = urllib.parse.urlsplit(session.base_url or "")
        theirs = urllib.parse.urlsplit(url)
        if (theirs.scheme.lower(), theirs.netloc.lower()) != (
            mine.scheme.lower(),
            mine.netloc.lower(),
        ):
            return kwargs
    return {**kwargs, "headers": {**(headers or {}), "Authorization": value}}


# -- paced users -----------------------------------------------------------------------------


def pacing_of(user_class: type) -> float | None:
    """Seconds between iteration starts intended by a User class, or None when not paced.

    Recognised: Locust's ``constant_pacing(s)`` and ``constant_throughput(r)`` (= pacing
    ``1/r``) set as the class's ``wait_time``, and any class that declares
    ``paybench_pacing_s = <seconds>`` for a pacing of its own.
    """
    declared = getattr(user_class, "paybench_pacing_s", None)
    if isinstance(declared, int | float) and declared > 0:
        return float(declared)
    wait_time = getattr(user_class, "wait_time", None)
    known = getattr(wait_time, "_paybench_pacing_s", None)
    if known:
        return float(known)
    code = getattr(wait_time, "__code__", None)
    closure = getattr(wait_time, "__closure__", None)
    if (
        code is None
        or not closure
        or not getattr(wait_time, "__qualname__", "").startswith("constant_pacing.")
    ):
        return None
    cells = dict(zip(code.co_freevars, closure, strict=False))
    if "wait_time" not in cells:
        return None
    value = cells["wait_time"].cell_contents
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _install_pacing(user_classes: list[type[User]]) -> list[tuple[str, float]]:
    paced = []
    for cls in user_classes:
        pacing_s = pacing_of(cls)
        if pacing_s is None:
            continue
        paced.append((cls.__name__, pacing_s))
        original = cls.wait_time
        if getattr(original, "_paybench_class", None) is cls:
            continue  # wrapped by an earlier test in this process
        # A subclass of a wrapped class gets a wrapper of its own, in its own name.
        original = getattr(original, "_paybench_original", original)

        def wait_time(
            user: Any,
            _original: Any = original,
            _name: str = cls.__name__,
            _pacing_s: float = pacing_s,
        ) -> float:
            wait_s = _original(user)
            recorder = _STATE.recorder
            if recorder is not None:
                recorder.on_paced_wait(_name, _pacing_s, wait_s)
            return wait_s

        wait_time._paybench_pacing_s = pacing_s  # type: ignore[attr-defined]
        wait_time._paybench_class = cls  # type: ignore[attr-defined]
        wait_time._paybench_original = original  # type: ignore[attr-defined]
        cls.wait_time = wait_time
    if paced:
        logger.info(
            "paybench: paced users (latency from the intended start recorded too): %s",
            ", ".join(f"{name} every {pacing_s:g} s" for name, pacing_s in paced),
        )
    return paced


# -- wiring into Locust ---------------------------------------------------------------------


@dataclass
class _State:
    environment: Any = None
    role: str = "local"  # "local", "master" or "worker"
    enabled: bool = False
    directory: Path | None = None
    interval_s: float = DEFAULT_INTERVAL_S
    recorder: Recorder | None = None
    aggregator: Aggregator | None = None
    cpu_sampler: CpuSampler | None = None
    tick: Any = None
    test_start_epoch: float | None = None
    test_stop_epoch: float | None = None
    spawning_complete_epochs: list[float] = field(default_factory=list)
    finals: set[str] = field(default_factory=set)
    workers: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    final_sent: bool = False
    finals_sent: int = 0
    written: bool = False


_STATE = _State()


def current_recorder() -> Recorder | None:
    """This process's recorder for the current test (None: nothing is recorded)."""
    return _STATE.recorder


def _guarded(handler: Callable[..., None]) -> Callable[..., None]:
    """A listener that logs its own failure instead of failing Locust's run (exit code 2)."""

    def listener(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception as e:
            logger.exception("paybench: %s failed", handler.__name__)
            _STATE.warnings.append(f"paybench recorder error in {handler.__name__}: {e!r}")

    listener.__name__ = handler.__name__
    return listener


def _options() -> Any:
    return getattr(_STATE.environment, "parsed_options", None)


def _configure_from_options() -> None:
    options = _options()
    directory = getattr(options, "paybench_dir", None) or None
    # None only when Locust runs as a library without our options; 0 is not "unset".
    interval = getattr(options, "paybench_interval", None)
    _STATE.enabled = bool(directory)
    _STATE.directory = Path(directory) if directory else None
    _STATE.interval_s = DEFAULT_INTERVAL_S if interval is None else float(interval)


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    runner = environment.runner
    _STATE.environment = environment
    _STATE.role = (
        "master"
        if isinstance(runner, MasterRunner)
        else "worker"
        if isinstance(runner, WorkerRunner)
        else "local"
    )
    _configure_from_options()
    _configure_guard(environment)
    _install_guards()
    if _STATE.enabled and not _STATE.interval_s > 0:
        raise SystemExit(f"--paybench-interval must be positive, got {_STATE.interval_s}")
    hooks = environment.events
    if _STATE.role == "master":
        runner.register_message(MSG_FINAL, _guarded(_on_final_message))
        hooks.worker_report.add_listener(_guarded(_on_worker_report))
    elif _STATE.role == "worker":
        runner.register_message(MSG_STOP, _guarded(_on_stop_message))
        hooks.report_to_master.add_listener(_guarded(_on_report_to_master))
    hooks.test_start.add_listener(_guarded(_on_test_start))
    hooks.spawning_complete.add_listener(_guarded(_on_spawning_complete))
    hooks.test_stopping.add_listener(_guarded(_on_test_stopping))
    hooks.test_stop.add_listener(_guarded(_on_test_stop))
    # quitting fires in reverse order: ours (added after the runner's) runs first.
    hooks.quitting.add_listener(_guarded(_on_quitting))
    hooks.quit.add_listener(_guarded(_on_quit))
    if _STATE.role != "worker":
        atexit.register(_write_once)
    _install_distributed(environment)


def _install_distributed(environment: Any) -> None:
    # The handshake, clock offsets and end-of-run totals of harness.distributed; last in
    # init, so that its test_stop check runs after the wait for final data.
    if _STATE.role == "worker" or (_STATE.role == "master" and _STATE.enabled):
        distributed.install(
            environment,
            _STATE.role,
            _STATE.directory,
            warn=lambda message: _STATE.warnings.append(message),
            aggregator=lambda: _STATE.aggregator,
        )


def _on_test_start(environment: Any, **_kw: Any) -> None:
    if _STATE.role == "worker":
        _configure_from_options()  # the master's options arrive with the spawn message
    _configure_guard(environment)
    if not _STATE.enabled:
        return
    now = time.time()
    if _STATE.test_start_epoch is None:
        _STATE.test_start_epoch = now
    _STATE.test_stop_epoch = None
    _STATE.final_sent = False
    _STATE.finals = set()
    if _STATE.aggregator is None and _STATE.role != "worker":
        _STATE.aggregator = _streaming_aggregator()
    _STATE.cpu_sampler = CpuSampler()
    if _STATE.role != "master":
        process = "local" if _STATE.role == "local" else _worker_name(environment.runner)
        recorder = Recorder(_STATE.interval_s, process)
        if _STATE.recorder is not None:  # a second test in this process (web UI)
            environment.events.request.remove_listener(_STATE.recorder.on_request)
            if _STATE.aggregator is not None:
                _STATE.aggregator.apply(_STATE.recorder.take(encode=False))
        _STATE.recorder = recorder
        recorder.dying = _scheduled_kills(environment.runner)
        _install_request_tracking()
        _install_pacing(list(environment.user_classes))
        environment.events.request.add_listener(recorder.on_request)
    if _STATE.aggregator is not None:
        _STATE.aggregator.add_users(now, int(environment.runner.user_count))
    if _STATE.tick is None:
        _STATE.tick = gevent.spawn(_tick_loop)


def _streaming_aggregator() -> Aggregator:
    aggregator = Aggregator(_STATE.interval_s)
    if _STATE.directory is not None:
        try:
            aggregator.stream_to(_STATE.directory / HDR_FILE)
        except PaybenchError as e:
            # Kept in memory instead; writing it at quit is tried again (and reported).
            logger.error("paybench: %s", e.message)
            _STATE.warnings.append(f"paybench could not stream the recording: {e.message}")
    return aggregator


def _scheduled_kills(runner: Any) -> Collection[Any]:
    """The live set of user greenlets whose kill is scheduled but not delivered yet.

    Locust kills users through the gevent Group it spawned them in (``User.stop`` of an
    idle user or with ``force``, ramp-down, stop): ``Group.killone`` schedules the
    ``GreenletExit`` and adds the greenlet to ``Group.dying`` until it has ended.
    """
    dying = getattr(getattr(runner, "user_greenlets", None), "dying", None)
    return dying if isinstance(dying, set) else frozenset()


def _worker_name(runner: Any) -> str:
    index = getattr(runner, "worker_index", -1)
    return f"worker-{index}" if index is not None and index >= 0 else str(runner.client_id)


def _tick_loop() -> None:
    while True:
        interval = _STATE.interval_s
        now = time.time()
        gevent.sleep(max(0.0, (math.floor(now / interval) + 1) * interval + TICK_DELAY_S - now))
        try:
            _tick()
        except Exception as e:
            logger.exception("paybench: progress tick failed")
            _STATE.warnings.append(f"paybench progress tick failed: {e!r}")


def _tick() -> None:
    sampler = _STATE.cpu_sampler
    if sampler is None:
        return
    recorder = _STATE.recorder
    if recorder is not None:
        recorder.sample_cpu(sampler)
    aggregator = _STATE.aggregator
    if aggregator is None:
        return  # a worker: its data goes with report_to_master
    now = time.time()
    if recorder is not None:
        aggregator.apply(recorder.take(encode=False))
    else:
        cpu_pct, runnable_pct = sampler.sample()
        sample = {"epoch": now, "process": "master", "cpu_pct": cpu_pct}
        if runnable_pct is not None:
            sample["runnable_pct"] = runnable_pct
        aggregator.cpu.append(sample)
    runner = _STATE.environment.runner
    aggregator.add_users(now, int(runner.user_count))
    processes = sorted(_STATE.workers) if _STATE.role == "master" else None
    index = aggregator.complete_index(now, processes)
    line = {
        "epoch": now,
        "elapsed_s": now - (_STATE.test_start_epoch or now),
        "users": int(runner.user_count),
        **aggregator.progress(index),
    }
    _append_live(line)
    aggregator.flush(index - math.ceil(FLUSH_AFTER_S / aggregator.interval_s))


def _append_live(line: dict[str, Any]) -> None:
    if _STATE.directory is None:
        return
    _STATE.directory.mkdir(parents=True, exist_ok=True)
    append_live_line(_STATE.directory / LIVE_FILE, line)


def _on_spawning_complete(user_count: int, **_kw: Any) -> None:
    if _STATE.enabled and _STATE.role != "worker":
        now = time.time()
        _STATE.spawning_complete_epochs.append(now)
        if _STATE.aggregator is not None:
            _STATE.aggregator.add_users(now, int(user_count))


def _on_test_stopping(**_kw: Any) -> None:
    if _STATE.enabled and _STATE.test_stop_epoch is None:
        _STATE.test_stop_epoch = time.time()


def _on_test_stop(environment: Any, **_kw: Any) -> None:
    if not _STATE.enabled:
        return
    if _STATE.test_stop_epoch is None:
        _STATE.test_stop_epoch = time.time()
    recorder = _STATE.recorder
    if recorder is not None:
        cut_off = recorder.cut_off_pending(_STATE.test_stop_epoch)
        logger.info("paybench: %d request(s) were in flight at stop (cut off)", cut_off)
        recorder.close_pacing(_STATE.test_stop_epoch)
    if _STATE.role == "worker":
        _send_final(environment.runner)
    elif _STATE.role == "local":
        if recorder is not None and _STATE.aggregator is not None and _STATE.cpu_sampler:
            recorder.sample_cpu(_STATE.cpu_sampler)
            _STATE.aggregator.apply(recorder.take(encode=False))
    else:
        _wait_for_final_data(environment.runner)


def _send_final(runner: Any) -> None:
    recorder = _STATE.recorder
    payload = recorder.take(encode=True) if recorder is not None else {}
    payload["final"] = True
    distributed.on_send_final(payload)
    runner.send_message(MSG_FINAL, payload)
    _STATE.final_sent = True
    _STATE.finals_sent += 1


def _on_stop_message(environment: Any, msg: Any, **_kw: Any) -> None:
    """Worker: the master is stopping; stop the users now and send the last data."""
    runner = environment.runner
    sent_before = _STATE.finals_sent
    if runner.state != STATE_STOPPED:
        runner.stop()  # fires test_stop, which sends the final data
    if _STATE.finals_sent == sent_before:
        # Stopped earlier (its final may still be on the way): send what is new, if
        # anything, so that the master stops waiting for this worker.
        _send_final(runner)


def _on_report_to_master(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    recorder = _STATE.recorder
    if _STATE.enabled and recorder is not None:
        data[PAYLOAD_KEY] = recorder.take(encode=True)


def _on_worker_report(client_id: str, data: dict[str, Any], **_kw: Any) -> None:
    payload = data.get(PAYLOAD_KEY)
    if payload and _STATE.aggregator is not None:
        _STATE.workers.add(str(payload.get("process", client_id)))
        _STATE.aggregator.apply(payload)


def _on_final_message(environment: Any, msg: Any, **_kw: Any) -> None:
    payload = msg.data or {}
    if _STATE.aggregator is not None and payload:
        _STATE.workers.add(str(payload.get("process", msg.node_id)))
        _STATE.aggregator.apply(payload)
    _STATE.finals.add(msg.node_id)
    distributed.on_final_received(msg.node_id, payload)


def _wait_for_final_data(runner: Any) -> None:
    """Master: ask every connected worker for its last data and wait for it (bounded)."""
    expected = {cid for cid in runner.clients if cid not in _STATE.finals}
    if not expected:
        return
    for client_id in expected:
        runner.send_message(MSG_STOP, None, client_id)
    stop_timeout = float(getattr(_STATE.environment, "stop_timeout", 0) or 0)
    deadline = time.monotonic() + stop_timeout + FINAL_WAIT_EXTRA_S
    while time.monotonic() < deadline:
        missing = {c for c in expected if c not in _STATE.finals and distributed.present(runner, c)}
        if not missing:
            break
        gevent.sleep(0.05)
    lost = sorted(c for c in expected if c not in _STATE.finals)
    if lost:
        message = (
            f"no final data from {len(lost)} worker(s) ({', '.join(lost)}): their last "
            "seconds of requests are missing from the recording"
        )
        logger.warning("paybench: %s", message)
        _STATE.warnings.append(message)


def _on_quitting(environment: Any, **_kw: Any) -> None:
    # A worker told to quit by Ctrl-C/SIGTERM stops its users and sends its data before
    # Locust's own quitting listener tells the master it is gone (we run first: reverse).
    if _STATE.role == "worker" and _STATE.enabled and not _STATE.final_sent:
        runner = environment.runner
        if runner.state != STATE_STOPPED:
            runner.stop()
        if not _STATE.final_sent:
            _send_final(runner)


def _on_quit(**_kw: Any) -> None:
    _write_once()


def _write_once() -> None:
    if _STATE.written or not _STATE.enabled or _STATE.role == "worker":
        return
    if _STATE.aggregator is None or _STATE.directory is None:
        return
    _STATE.written = True
    if _STATE.tick is not None and not _STATE.tick.dead:
        _STATE.tick.kill(block=False)
    recorder = _STATE.recorder
    if recorder is not None:
        _STATE.aggregator.apply(recorder.take(encode=False))
    spawned = _STATE.spawning_complete_epochs
    meta = {
        "test_start_epoch": _STATE.test_start_epoch,
        "spawning_complete_epoch": spawned[0] if spawned else None,
        "spawning_complete_epochs": spawned,
        "test_stop_epoch": _STATE.test_stop_epoch,
        "mode": _STATE.role,
        "workers": sorted(_STATE.workers),
        "warnings": _STATE.warnings,
    }
    _STATE.aggregator.finish(_STATE.directory / HDR_FILE, meta)
