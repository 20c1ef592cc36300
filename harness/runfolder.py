"""The run folder, ``<out>/runs/<run-id>/``: its file names, its formats, and how files are written.

Every file paybench writes into a run folder, and the history export file and the trend
folder too, goes through ``write_atomic``: a temporary file created exclusively
(``O_CREAT | O_EXCL | O_NOFOLLOW``, an unpredictable name) in the destination's folder,
fsync, then ``os.replace``. A reader never sees half a file, and a destination that is a
symbolic link is refused: a link planted in a run folder (a CI artefact may come from
anywhere) must never make paybench write through it.

``harness.plugin`` imports this module inside the Locust processes, so it imports only the
standard library and our own light modules (errors, the frozen dataclasses of the model).

Formats kept here (``format_version``; a reader refuses a newer version, "upgrade
paybench", and reads every older one):

run.json (``paybench-run``):
  0: (no ``format`` key) written before versioning; a capacity run kept its plan and its
     stop decision at the top level (``capacity``, ``stop``) and left out locust_version
     and git_commit.
  1: ``format``, ``format_version`` and ``kind`` (``run`` or ``capacity``); the same fields
     for every kind, what is particular to a kind under ``extra``.
baseline.json (``paybench-baseline``):
  0: (no ``format`` key) description, run_ids, values.
  1: ``format`` and ``format_version``.
paybench.live.jsonl (``paybench-live``):
  0: (no header line) progress lines only.
  1: a header line ``{"format": "paybench-live", "format_version": 1}`` first.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import stat
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal, TypeGuard

from harness import __version__
from harness.core.model import Baseline, OpenRegression
from harness.errors import ConfigError, FormatError, InternalError, PaybenchError, StorageError
from harness.inputs import Field, Obj, load_json, show

# -- the names ------------------------------------------------------------------------------

RUNS_DIR = "runs"  # <out>/runs/<run-id>/
RUN_FILE = "run.json"
LOG_FILE = "locust.log"
CSV_PREFIX = "locust"  # Locust's --csv <run folder>/locust
LOCUST_STATS_CSV = f"{CSV_PREFIX}_stats.csv"
LOCUST_HTML = "locust.html"
HDR_FILE = "paybench.hdr.json"
LIVE_FILE = "paybench.live.jsonl"
SERVER_FILE = "server.jsonl"  # harness.server.scraper, with server budgets only
SUMMARY_FILE = "summary.json"
REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"
JUNIT_XML = "junit.xml"
BUDGETS_SNAPSHOT = "budgets.yaml"
BASELINE_FILE = "baseline.json"
CAPACITY_HTML = "capacity.html"
CAPACITY_MD = "capacity.md"
TRACEBACK_FILE = "paybench.traceback.txt"

RUN_FORMAT = "paybench-run"
RUN_FORMAT_VERSION = 1
BASELINE_FORMAT = "paybench-baseline"
# 1: description, run_ids, values. 2: adds open_regressions, rising and notes (what the
# history held the run to), so that `paybench report` judges the run again as it was.
BASELINE_FORMAT_VERSION = 2
LIVE_FORMAT = "paybench-live"
LIVE_FORMAT_VERSION = 1

RunKind = Literal["run", "capacity"]
KINDS = ("run", "capacity")
RunTarget = Literal["reference", "external", "unknown"]
TARGETS: tuple[RunTarget, ...] = ("reference", "external", "unknown")
# The statuses a run ends in; any other (starting, preflight, running) means that paybench
# itself stopped before the run was finished.
FINAL_STATUSES = ("finished", "incomplete", "failed")


# -- run ids and folders --------------------------------------------------------------------


def new_run_id(now: datetime | None = None) -> str:
    """A sortable, unique run id: UTC start time plus six random hex digits."""
    # In UTC whatever zone ``now`` is in: the "Z" says so, and ids must sort by time.
    now = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def create_run_dir(out: Path, run_id: str) -> Path:
    """``<out>/runs/<run_id>/``, created now: a run folder is written once."""
    run_dir = Path(out) / RUNS_DIR / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ConfigError(f"{run_dir} already exists; a run folder is written once") from None
    except OSError as e:
        raise write_error(run_dir, e, "--out") from None
    return run_dir


# -- writing --------------------------------------------------------------------------------

# Why a file could not be written, when the cause is the machine, not the user's input.
_ENVIRONMENT_FIXES = {
    errno.ENOSPC: "free space on that disk or write elsewhere",
    errno.EDQUOT: "free space within the disk quota or write elsewhere",
    errno.EROFS: "remount it read-write or write elsewhere",
    errno.EACCES: "make the folder writable for this user or write elsewhere",
    errno.EPERM: "make the folder writable for this user or write elsewhere",
    errno.EIO: "the disk reported an I/O error; check it or write elsewhere",
}


def write_error(path: Path, exc: OSError, option: str = "") -> PaybenchError:
    """The one-line error for a file or folder that could not be written.

    The machine failing (a full or read-only disk, no permission) is a StorageError (exit
    3); a path that cannot be a file (a component is a file, a name too long) a
    ConfigError (exit 2). ``option`` names the option that chose the path (``--out``).
    """
    reason = exc.strerror or str(exc)
    suffix = f" ({option})" if option else ""
    fix = _ENVIRONMENT_FIXES.get(exc.errno or 0)
    if fix is not None:
        return StorageError(f"cannot write {path}: {reason}; {fix}{suffix}")
    return ConfigError(f"cannot write {path}: {reason}; give another path{suffix}")


def refuse_link(path: Path) -> None:
    """ConfigError when ``path`` exists and is not a regular file (a link, a folder ...)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as e:
        raise write_error(path, e) from None
    if stat.S_ISLNK(st.st_mode):
        raise ConfigError(
            f"{path}: is a symbolic link; paybench does not write through links, remove it"
        )
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"{path}: exists and is not a regular file; move it away")


def write_atomic(path: Path, data: str | bytes, *, option: str = "") -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all; returns ``path``.

    Raises ConfigError (exit 2) when ``path`` is a link or not a regular file, StorageError
    (exit 3) when the disk refuses. Whatever happens, no temporary file is left behind.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e, option) from None
    refuse_link(path)
    # Unpredictable and exclusive: a file or link planted under a guessable name
    # (summary.json.tmp) is never opened, let alone written through.
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o644)
    except OSError as e:
        raise write_error(path, e, option) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        # Checked again just before the rename: a link planted while we wrote. (A rename
        # replaces a link itself and never writes through it; the check makes it a refusal.)
        refuse_link(path)
        os.replace(tmp, path)
    except BaseException as e:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(path, e, option) from None
        raise
    return path


def write_json_atomically(
    path: Path,
    doc: Any,
    *,
    indent: int | None = None,
    default: Any = None,
    allow_nan: bool = False,
) -> Path:
    """``doc`` as JSON through ``write_atomic`` (compact unless ``indent``)."""
    separators = (",", ":") if indent is None else None
    text = json.dumps(
        doc, indent=indent, separators=separators, default=default, allow_nan=allow_nan
    )
    return write_atomic(path, text + ("\n" if indent is not None else ""))


def create_exclusive(path: Path) -> IO[bytes]:
    """A new file opened for writing (Locust's log): never an existing file, never a link."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; a run folder is written once") from None
    except OSError as e:
        raise write_error(path, e) from None
    return os.fdopen(fd, "wb")


def append_live_line(path: Path, line: Mapping[str, Any]) -> None:
    """Append one progress line to ``paybench.live.jsonl`` (the header first, in a new file).

    Appended, not rewritten: the file grows by a line per interval over runs of hours.
    Each line goes in one ``write``; a reader skips a last line without its newline.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o644)
    try:
        text = json.dumps(line, separators=(",", ":")) + "\n"
        if os.fstat(fd).st_size == 0:
            text = json.dumps(live_header(), separators=(",", ":")) + "\n" + text
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


# -- run.json -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRecord:
    """run.json: what a run is (written before it starts) and how it ended.

    The same fields for every kind of run; what only one kind has (a capacity run's step
    plan and stop decision, the reference target's model) goes under ``extra``.
    """

    run_id: str
    kind: RunKind
    profile: str | None
    users: int | None  # as planned
    spawn_rate: float | None
    run_time_s: float | None  # as planned
    workers: int
    locust_version: str | None
    paybench_version: str
    git_commit: str | None
    scenario_version: str | None
    locustfile: str | None
    budgets: str | None  # the budgets file the run named
    host: str
    target: RunTarget
    status: str | None  # starting, preflight, running, then one of FINAL_STATUSES
    incomplete_reason: str | None = None
    started_at: str | None = None  # ISO-8601 UTC, when Locust started
    ended_at: str | None = None
    locust_command: tuple[str, ...] = ()
    locust_exit_code: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def incomplete(self) -> bool:
        return self.why_incomplete is not None

    @property
    def why_incomplete(self) -> str | None:
        """Why the run does not stand for its plan: its reason, or paybench stopping early."""
        return self.incomplete_reason or _unfinished(self.status)


def _unfinished(status: Any) -> str | None:
    """Why a run whose run.json was left at ``status`` is incomplete (None: it ended)."""
    if isinstance(status, str) and status not in FINAL_STATUSES:
        # paybench itself stopped before the run ended (killed, or a copy taken mid-run).
        return f"the run never finished (run.json says {status!r})"
    return None


def run_record_doc(record: RunRecord) -> dict[str, Any]:
    """The JSON object of run.json (``incomplete`` spelled out for readers of the file)."""
    doc: dict[str, Any] = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION}
    for f in fields(RunRecord):
        value = getattr(record, f.name)
        doc[f.name] = list(value) if isinstance(value, tuple) else value
    doc["extra"] = dict(record.extra)
    doc["incomplete"] = record.incomplete
    return doc


def write_run_record(run_dir: Path, record: RunRecord) -> Path:
    return write_json_atomically(
        Path(run_dir) / RUN_FILE, run_record_doc(record), indent=2, default=str
    )


def read_run_doc(run_dir: Path) -> dict[str, Any] | None:
    """run.json as a JSON object of the current format, whatever version wrote it; None
    when there is none (a plain ``locust --csv`` folder). Its fields are not checked here
    (``load_run_record`` checks them)."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        return None
    doc = Field(str(path)).mapping(load_json(path))
    if _format_version(doc, path, RUN_FORMAT, RUN_FORMAT_VERSION) == 0:
        doc = _run_doc_from_v0(doc)
    doc = dict(doc)
    if doc.get("incomplete_reason") is None and (reason := _unfinished(doc.get("status"))):
        doc["incomplete_reason"], doc["incomplete"] = reason, True
    return doc


def load_run_record(run_dir: Path) -> RunRecord | None:
    """The run.json of ``run_dir``, any format version, checked field by field; None when
    there is none. FormatError naming the file and the key when it is damaged."""
    doc = read_run_doc(run_dir)
    if doc is None:
        return None
    raw = Obj(doc, Field(str(Path(run_dir) / RUN_FILE)))
    kind = raw.text("kind", "run")
    if kind not in KINDS:
        raw.where.at("kind").fail(f"{show(kind)} is not one of {', '.join(KINDS)}")
    target = raw.text("target", "unknown")
    if target not in TARGETS:
        raw.where.at("target").fail(f"{show(target)} is not one of {', '.join(TARGETS)}")
    extra = raw.free("extra", {})
    if not isinstance(extra, dict):
        raw.where.at("extra").fail(f"expected an object, got {show(extra)}")
    return RunRecord(
        run_id=raw.text("run_id", Path(run_dir).name, max_chars=200),
        kind=kind,
        profile=raw.text("profile", None, max_chars=200),
        users=raw.whole("users", None, high=10**9),
        spawn_rate=raw.number("spawn_rate", None),
        run_time_s=raw.number("run_time_s", None),
        workers=raw.whole("workers", 0, high=100_000),
        locust_version=raw.text("locust_version", None, max_chars=200),
        paybench_version=raw.text("paybench_version", __version__, max_chars=200),
        git_commit=raw.text("git_commit", None, max_chars=200),
        scenario_version=raw.text("scenario_version", None, max_chars=200),
        locustfile=raw.text("locustfile", None),
        budgets=raw.text("budgets", None),
        host=raw.text("host", "unknown"),
        target=target,
        status=raw.text("status", None, max_chars=200),
        incomplete_reason=raw.text("incomplete_reason", None),
        started_at=_iso_time(raw, "started_at"),
        ended_at=_iso_time(raw, "ended_at"),
        locust_command=raw.texts("locust_command"),
        locust_exit_code=raw.whole("locust_exit_code", None, low=-(2**31), high=2**31),
        extra=extra,
    )


def _iso_time(raw: Obj, key: str) -> str | None:
    text = raw.text(key, None, max_chars=64)
    if text is not None:
        try:
            datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raw.where.at(key).fail(f"{show(text)} is not an ISO-8601 time")
    return text


def _run_doc_from_v0(doc: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(doc)
    moved = {key: out.pop(key) for key in ("capacity", "stop") if key in out}
    if moved and isinstance(out.get("extra") or {}, dict):
        out["extra"] = {**(out.get("extra") or {}), **moved}
    out.setdefault("kind", "capacity" if "capacity" in moved else "run")
    if out.get("incomplete") is True and out.get("incomplete_reason") is None:
        out["incomplete_reason"] = "incomplete (no reason recorded)"
    return out


# -- baseline.json --------------------------------------------------------------------------


def write_baseline(run_dir: Path, baseline: Baseline) -> Path:
    doc = {
        "format": BASELINE_FORMAT,
        "format_version": BASELINE_FORMAT_VERSION,
        "description": baseline.description,
        "run_ids": list(baseline.run_ids),
        "values": {k: {m: list(v) for m, v in ms.items()} for k, ms in baseline.values.items()},
        "open_regressions": [
            {"request": key, "metric": metric, "since": o.since_run_id, "values": list(o.values)}
            for key, by_metric in baseline.open_regressions.items()
            for metric, o in by_metric.items()
        ],
        "rising": [
            {"request": key, "metric": metric, "values": list(values)}
            for key, by_metric in baseline.rising.items()
            for metric, values in by_metric.items()
        ],
        "notes": list(baseline.notes),
    }
    return write_json_atomically(Path(run_dir) / BASELINE_FILE, doc, indent=2)


def load_baseline(run_dir: Path) -> Baseline | None:
    """The baseline a run was judged against, checked field by field; None when it had none."""
    path = Path(run_dir) / BASELINE_FILE
    if not path.exists():
        return None
    where = Field(str(path))
    doc = where.mapping(load_json(path))
    _format_version(doc, path, BASELINE_FORMAT, BASELINE_FORMAT_VERSION)
    raw = Obj(doc, where)
    values: dict[str, dict[str, tuple[float, ...]]] = {}
    for key, metrics in raw.obj("values").value.items():
        at_key = where.at("values").at(key)
        values[key] = {
            metric: tuple(
                at_key.at(metric).at(i).number(v, low=None)
                for i, v in enumerate(at_key.at(metric).sequence(series))
            )
            for metric, series in at_key.mapping(metrics).items()
        }
    opened: dict[str, dict[str, OpenRegression]] = {}
    for item in raw.objs("open_regressions"):
        regression = OpenRegression(item.text("since"), item.numbers("values", low=None))
        opened.setdefault(item.text("request"), {})[item.text("metric")] = regression
    rising: dict[str, dict[str, tuple[float, ...]]] = {}
    for item in raw.objs("rising"):
        rising.setdefault(item.text("request"), {})[item.text("metric")] = item.numbers(
            "values", low=None
        )
    return Baseline(
        description=raw.text("description"),
        run_ids=raw.texts("run_ids"),
        values=values,
        open_regressions=opened,
        rising=rising,
        notes=raw.texts("notes"),
    )


# -- paybench.live.jsonl --------------------------------------------------------------------


def live_header() -> dict[str, Any]:
    return {"format": LIVE_FORMAT, "format_version": LIVE_FORMAT_VERSION}


@dataclass(frozen=True)
class LiveLine:
    """One progress line of ``paybench.live.jsonl`` (see docs/ARCHITECTURE.md).

    ``requests``, ``failures``, ``cut_off`` and ``per_request`` figures are cumulative;
    ``rps`` and each key's ``last`` describe the newest complete interval
    (``interval_index``).
    """

    elapsed_s: float
    users: int
    requests: int
    failures: int
    rps: float
    per_request: Mapping[str, Mapping[str, Any]]  # request key -> count, avg_ms, p95_ms, last
    epoch: float | None = None
    cut_off: int = 0
    interval_index: int | None = None
    interval_start_epoch: float | None = None  # interval_index x the histogram interval

    @property
    def interval_s(self) -> float | None:
        """The histogram interval, as the plugin's line gives it (None: an older line)."""
        index, start = self.interval_index, self.interval_start_epoch
        if index is None or start is None or index <= 0 or not start > 0:
            return None
        return round(start / index, 9)


def read_live(path: Path, offset: int) -> tuple[list[LiveLine], int]:
    """The complete lines of the live file from byte ``offset``; and the new offset.

    A line still being written (no newline yet) is left for the next call; a line that is
    not a progress line is skipped; a header of a newer format is refused.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    lines: list[LiveLine] = []
    for raw in data.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break
        offset += len(raw)
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(doc, dict):
            continue
        if "format" in doc:
            _format_version(doc, Path(path), LIVE_FORMAT, LIVE_FORMAT_VERSION)
            continue
        line = _live_line(doc)
        if line is not None:
            lines.append(line)
    return lines, offset


def _live_line(doc: Mapping[str, Any]) -> LiveLine | None:
    # "per_request" as docs/ARCHITECTURE.md names it; "keys" as an early plugin wrote it.
    per_request = doc.get("per_request", doc.get("keys"))
    epoch = doc.get("epoch")
    index = doc.get("interval_index")
    start = doc.get("interval_start_epoch")
    try:
        return LiveLine(
            elapsed_s=float(doc.get("elapsed_s", 0.0)),
            users=int(doc.get("users", 0)),
            requests=int(doc.get("requests", 0)),
            failures=int(doc.get("failures", 0)),
            rps=float(doc.get("rps", 0.0)),
            per_request=per_request if isinstance(per_request, dict) else {},
            epoch=float(epoch) if _is_number(epoch) else None,
            cut_off=int(doc.get("cut_off", 0)),
            interval_index=index
            if isinstance(index, int) and not isinstance(index, bool)
            else None,
            interval_start_epoch=float(start) if _is_number(start) else None,
        )
    except (TypeError, ValueError):
        return None  # not a progress line of this plugin: progress is best effort


# -- tracebacks of paybench bugs ------------------------------------------------------------


def save_traceback(exc: BaseException, folder: Path | None = None) -> Path | None:
    """Write ``exc``'s traceback into ``folder`` (a run folder), else a temporary file.

    None when neither can be written (a full disk): the error line still goes out.
    """
    text = "".join(traceback.format_exception(exc))
    if folder is not None and Path(folder).is_dir():
        # A full or read-only run folder: the temporary file is the fall-back.
        with suppress(PaybenchError):
            return write_atomic(Path(folder) / TRACEBACK_FILE, text)
    try:
        fd, name = tempfile.mkstemp(prefix="paybench-traceback-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError:
        return None
    return Path(name)


def internal_error(exc: BaseException, folder: Path | None = None) -> InternalError:
    """The one-line error for an exception paybench did not expect: a bug."""
    where = save_traceback(exc, folder)
    detail = (str(exc).strip().splitlines() or [""])[0][:200]
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    saved = f"the traceback is in {where}" if where else "the traceback could not be saved"
    return InternalError(
        f"internal error ({what}); this is a paybench bug, please report it; {saved}"
    )


@contextmanager
def bugs_reported_in(folder: Path) -> Iterator[None]:
    """Unexpected exceptions inside become an InternalError whose traceback is in ``folder``."""
    try:
        yield
    except PaybenchError:
        raise
    except Exception as e:
        raise internal_error(e, folder) from e


# -- reading helpers ------------------------------------------------------------------------


def _format_version(doc: Mapping[str, Any], path: Path, name: str, current: int) -> int:
    """The file's format version (0: written before versioning); newer ones are refused."""
    if "format" not in doc and "format_version" not in doc:
        return 0
    if doc.get("format") != name:
        raise FormatError(f'{path}: "format" is {doc.get("format")!r}, not {name!r}')
    version = doc.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise FormatError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > current:
        raise FormatError(
            f"{path}: format version {version} is newer than this paybench understands "
            f"({current}); upgrade paybench"
        )
    return version


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
