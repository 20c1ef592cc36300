"""paybench.hdr.json version 2: streamed by the master as the run goes, read line by line.

No Locust here: payloads as `harness.plugin.Recorder.take` sends them, merged by the
plugin's own `Aggregator` and written through its `RecordingWriter`; the version-1
document of the same payloads (`Aggregator.document`) is the reference it must read as.
"""

from __future__ import annotations

import binascii
import json
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.core import stats
from harness.core.stats import histogram as histogram_module
from harness.errors import ConfigError, FormatError
from harness.recording import (
    HDR_FILE,
    Aggregator,
    Recording,
    UsersSample,
    load_recording,
    pooled_groups,
)
from harness.runfolder import write_json_atomically

INTERVAL_S = 2.0
START = 1000.0  # interval 500 is [1000, 1002)
META = {
    "test_start_epoch": START,
    "spawning_complete_epoch": START + 1.0,
    "spawning_complete_epochs": [START + 1.0],
    "test_stop_epoch": START + 5.5,
    "mode": "master",
    "workers": ["worker-0", "worker-1"],
    "users": [
        {"epoch": START, "users": 0},
        {"epoch": START + 1.0, "users": 4},
        {"epoch": START + 5.6, "users": 0},
    ],
    "warnings": [],
}


def row(request_type: str, name: str, index: int, values_ms: list[float], **kw: Any) -> list:
    """A payload row as `Recorder.take` makes it (the histogram encoded, as from a worker)."""
    ns = stats.ms_to_ns_array(values_ms)
    return [
        request_type,
        name,
        index,
        len(values_ms),
        kw.get("failures", 0),
        kw.get("cut_off", 0),
        int(ns.sum()),
        int(ns.min()) if len(values_ms) else None,
        int(ns.max()) if len(values_ms) else None,
        stats.histogram_from_ms(values_ms).encode(),
    ]


def payload(process: str, entries: list, **kw: Any) -> dict[str, Any]:
    return {
        "process": process,
        "sent_epoch": START + 7,
        "entries": entries,
        "paced": kw.get("paced", []),
        "failures": kw.get("failures", []),
        "cpu": kw.get("cpu", []),
        "paced_classes": kw.get("paced_classes", {}),
    }


PAYLOADS = [
    payload(
        "worker-0",
        [
            row("GET", "/a", 500, [1.0, 2.0, 3.0], failures=1),
            row("FLOW", "checkout", 501, [100.0]),
        ],
        failures=[["GET", "/a", "HTTPError('500')", 1, START + 0.5, START + 0.5]],
        cpu=[[START + 2.0, 35.0, 41.0], [START + 4.0, 97.5, None]],
        paced=[row("GET", "/a", 500, [1.0, 20.0, 3.0])],
        paced_classes={"Checkout": [0.5, 2, 12.0, 11]},
    ),
    payload("worker-0", [row("GET", "/a", 501, [4.0]), row("POST", "/b", 501, [7.0])]),
    payload(
        "worker-1",
        [row("GET", "/a", 501, [5.0]), row("GET", "/a", 502, [], cut_off=2)],
        failures=[["GET", "/a", "HTTPError('500')", 2, START + 0.2, START + 3.0]],
        cpu=[[START + 2.0, 20.0]],
    ),
]
LATE = payload("worker-1", [row("GET", "/a", 500, [9.0])])  # after interval 500 was written


def _aggregator(payloads: list[dict[str, Any]]) -> Aggregator:
    agg = Aggregator(INTERVAL_S)
    for p in payloads:
        agg.apply(p)
    return agg


def _v1(tmp_path: Path, payloads: list[dict[str, Any]]) -> Recording:
    path = tmp_path / "v1" / HDR_FILE
    write_json_atomically(path, _aggregator(payloads).document(META))
    return load_recording(path)


def _lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _same(a: Recording, b: Recording) -> None:
    for window in ((None, None), (START + 1.5, START + 5.5), (START + 1.5, START + 3.5)):
        assert a.request_stats(*window) == b.request_stats(*window), window
        assert a.aggregate(*window) == b.aggregate(*window), window
        assert a.paced_request_stats(*window) == b.paced_request_stats(*window), window
    assert a.timeline() == b.timeline()
    assert (a.users, a.cpu, a.failures(), a.warnings, a.workers) == (
        b.users,
        b.cpu,
        b.failures(),
        b.warnings,
        b.workers,
    )
    assert a.paced.user_classes == b.paced.user_classes
    assert a.keys == b.keys


def test_a_streamed_recording_reads_as_the_same_run_in_one_document(tmp_path: Path) -> None:
    """Guards the format change: what the master streams line by line, late data for an
    interval already written included, reads as the version-1 document of the same data."""
    agg = _aggregator(PAYLOADS)
    path = tmp_path / "v2" / HDR_FILE
    agg.stream_to(path)
    assert agg.flush(501) == 1  # interval 500 written and forgotten ...
    assert all(500 not in e.intervals for e in agg.entries.values())
    agg.apply(LATE)  # ... then a worker's late report for it
    agg.flush(501)
    assert not path.exists()  # only the temporary file until the end line is written
    agg.finish(path, META)
    lines = _lines(path)
    assert lines[0]["format_version"] == 2 and "end" in lines[-1]
    assert [line["interval"] for line in lines if "interval" in line] == [500, 500, 501, 502]
    assert [p.name for p in path.parent.iterdir()] == [HDR_FILE]
    _same(_v1(tmp_path, [*PAYLOADS, LATE]), load_recording(path))


def test_the_writer_never_writes_through_a_link(tmp_path: Path) -> None:
    """A link planted where the recording goes is refused, before and after the run, and
    the file it points to is never written."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", encoding="utf-8")
    folder = tmp_path / "run"
    folder.mkdir()
    os.symlink(victim, folder / HDR_FILE)
    with pytest.raises(ConfigError, match="is a symbolic link; paybench does not write"):
        _aggregator(PAYLOADS).stream_to(folder / HDR_FILE)
    (folder / HDR_FILE).unlink()
    agg = _aggregator(PAYLOADS)
    agg.stream_to(folder / HDR_FILE)
    os.symlink(victim, folder / HDR_FILE)  # planted while the run goes
    with pytest.raises(ConfigError, match="is a symbolic link"):
        agg.finish(folder / HDR_FILE, META)
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in folder.iterdir()) == [HDR_FILE]  # no temporary file left


def test_the_master_keeps_only_the_intervals_not_written_yet(tmp_path: Path) -> None:
    """Flat memory: flushed intervals, users and CPU samples leave the aggregator; what
    stays is the whole-run figures and the intervals after the flush index."""
    agg = Aggregator(INTERVAL_S)
    agg.stream_to(tmp_path / HDR_FILE)
    for index in range(500, 800):
        agg.apply(
            payload(
                "local",
                [row("GET", "/a", index, [1.0, 2.0]), row("POST", "/b", index, [3.0])],
                cpu=[[index * INTERVAL_S, 30.0]],
            )
        )
        agg.add_users(index * INTERVAL_S, 5)
        agg.flush(index - 4)
    assert sorted(agg.entries[("GET", "/a")].intervals) == list(range(795, 800))
    assert len(agg.cpu) <= 1 and len(agg.users) <= 1
    assert agg.entries[("GET", "/a")].whole.count == 600
    with pytest.raises(ValueError, match="streamed to disk"):
        agg.document(META)
    rec = load_recording(agg.finish(tmp_path / HDR_FILE, {**META, "test_stop_epoch": 1600.0}))
    assert [e.count for e in rec.entries] == [600, 300]
    assert len(rec.users) == 300 + 3 and len(rec.cpu) == 300


def test_more_than_200_intervals_are_pooled_as_the_bootstrap_pools_them(tmp_path: Path) -> None:
    """The window's interval histograms above `MAX_BOOTSTRAP_BLOCKS` non-empty intervals
    are that many pooled groups: the same samples and the very same confidence intervals
    as one histogram per interval, from a fraction of the memory."""
    rng = np.random.default_rng(5)
    agg = Aggregator(INTERVAL_S)
    first = 500
    for index in range(first, first + 437):
        n = int(rng.integers(0, 6))  # some intervals empty: pooled over the non-empty ones
        values = list(np.exp(rng.normal(3.0, 0.5, n)))
        agg.apply(payload("local", [row("GET", "/a", index, values)] if n else []))
        agg.apply(payload("local", [row("GET", "/b", index, list(np.exp(rng.normal(2, 1, 3))))]))
    stop = (first + 437) * INTERVAL_S
    path = tmp_path / HDR_FILE
    agg.finish(path, {**META, "test_stop_epoch": stop})
    rec = load_recording(path)
    by_key = {s.key: s for s in rec.request_stats(START + 10.0, stop)}
    for s in (by_key["GET /a"], rec.aggregate(START + 10.0, stop)):
        series = [
            h
            for e in rec.entries
            if s.key in (e.key, "Aggregated")
            for h in e.intervals.histograms()
        ]
        assert len(s.interval_histograms) == stats.MAX_BOOTSTRAP_BLOCKS
        assert stats.merge_histograms(s.interval_histograms) == s.histogram
        if s.key == "GET /a":
            window = [
                h for h, i in zip(series, rec.entry("GET /a").intervals.index, strict=True)
                if i >= (START + 10.0) / INTERVAL_S - 0.5
            ]  # fmt: skip
            for percent in (50.0, 95.0, 99.0):
                assert stats.percentile_ci(s.histogram, window, percent) == stats.percentile_ci(
                    s.histogram, s.interval_histograms, percent
                )
            assert stats.mean_ci(s.histogram, window) == stats.mean_ci(
                s.histogram, s.interval_histograms
            )


def test_pooled_groups_are_array_split_sizes() -> None:
    groups = pooled_groups(403)
    assert groups.size == 403 and int(groups.max()) == stats.MAX_BOOTSTRAP_BLOCKS - 1
    sizes = np.bincount(groups)
    assert sizes.tolist() == [len(part) for part in np.array_split(np.arange(403), 200)]
    assert pooled_groups(7).tolist() == list(range(7))


def test_users_during_an_interval_by_binary_search() -> None:
    """Regression for the timeline's users: once a scan of every sample for every interval
    (quadratic in the run length); the same answers, found by binary search."""
    samples = (
        UsersSample(10.0, 1),
        UsersSample(12.0, 5),
        UsersSample(12.0, 3),  # two samples of the same moment: the later one holds
        UsersSample(15.5, 9),
        UsersSample(20.0, 2),
    )
    rec = replace(_minimal_recording(), users=samples)

    def scanned(start: float, end: float) -> int:
        last = 0
        for s in samples:
            if s.epoch > start:
                break
            last = s.users
        return max([last, *(s.users for s in samples if start <= s.epoch < end)])

    for start in (0.0, 10.0, 11.0, 12.0, 13.0, 15.5, 16.0, 19.99, 20.0, 30.0):
        for length in (0.5, 2.0, 6.0):
            assert rec.users_during(start, start + length) == scanned(start, start + length)
    assert (rec.users_at(9.9), rec.users_at(12.0), rec.users_at(100.0)) == (0, 3, 2)
    # No samples at all (a file without them): no users, not an error.
    empty = _minimal_recording()
    assert (empty.users_during(0.0, 2.0), empty.users_at(5.0)) == (0, 0)


def _minimal_recording() -> Recording:
    return Recording(Path(HDR_FILE), INTERVAL_S, 0.0, None, 30.0, ())


# -- reading refuses what paybench could not have written -------------------------------------


@pytest.fixture
def streamed(tmp_path: Path) -> Path:
    agg = _aggregator(PAYLOADS)
    path = tmp_path / HDR_FILE
    agg.finish(path, META)
    return path


def _edited(path: Path, edit: Callable[[list[Any]], Any]) -> Path:
    lines = _lines(path)
    edit(lines)
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def _first(lines: list[Any], kind: str) -> dict[str, Any]:
    return next(line for line in lines if isinstance(line, dict) and kind in line)


def _line_of(path: Path, kind: str) -> int:
    return 1 + next(i for i, line in enumerate(_lines(path)) if kind in line)


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        pytest.param(
            lambda ls: _first(ls, "interval")["rows"][0].__setitem__(2, -2),
            "rows[0].failures: -2 is negative; the file is damaged or was edited",
            id="negative failures",
        ),
        pytest.param(
            lambda ls: _first(ls, "interval")["rows"][0].__setitem__(2, 9),
            "rows[0].failures: 9 is more than count 3",
            id="more failures than requests",
        ),
        pytest.param(
            lambda ls: _first(ls, "interval")["rows"][0].__setitem__(
                7, stats.histogram_from_ms([1.0]).encode()
            ),
            "rows[0].histogram: holds 1 latencies where count is 3",
            id="a histogram that does not hold the count",
        ),
        pytest.param(
            lambda ls: _first(ls, "interval")["rows"][0].__setitem__(7, "not-base64!"),
            "rows[0].histogram: not an HdrHistogram V2 encoding (not base64)",
            id="a histogram that is no encoding",
        ),
        pytest.param(
            lambda ls: _first(ls, "interval")["rows"][0].__setitem__(0, 9),
            "rows[0].key: key 9 is not declared",
            id="an undeclared key",
        ),
        pytest.param(
            lambda ls: _first(ls, "interval")["rows"].append(_first(ls, "interval")["rows"][0]),
            "].key: key 0 appears twice in this interval",
            id="a key twice in one line",
        ),
        pytest.param(
            lambda ls: _first(ls, "interval").__setitem__("interval", 10**9),
            "interval: interval 1000000000 begins at 2e+09 s, outside the run",
            id="an interval outside the run",
        ),
        pytest.param(
            lambda ls: _first(ls, "end")["end"]["whole"][0].__setitem__(3, 999),
            "end.whole[0].cut_off: 999 is not the sum of its intervals' (0)",
            id="a whole-run cut-off that is not the sum of its intervals",
        ),
        pytest.param(
            lambda ls: _first(ls, "key").__setitem__("table", "other"),
            "table: the text 'other' is not one of entries, paced",
            id="a key of no table",
        ),
        pytest.param(
            lambda ls: ls.pop(),
            "cut short: no end line (the recording was not finished)",
            id="no end line",
        ),
        pytest.param(
            lambda ls: ls.append({"users": []}),
            "a line after the end line",
            id="a line after the end",
        ),
        pytest.param(
            lambda ls: ls.insert(2, {"something": 1}),
            "not a line of a paybench recording (no interval, key, users, cpu or end)",
            id="a line of no kind",
        ),
        pytest.param(
            lambda ls: _first(ls, "users")["users"][0].__setitem__("users", -3),
            "users[0].users: -3 is negative",
            id="negative users",
        ),
        pytest.param(
            lambda ls: _first(ls, "cpu")["cpu"][0].__setitem__("process", "\ud800"),
            "cpu[0].process: the text '\\ud800' holds an unpaired surrogate",
            id="a CPU sample's process no file can hold",
        ),
    ],
)
@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
def test_a_damaged_streamed_recording_names_the_line_and_field(
    streamed: Path, edit: Callable[[list[Any]], Any], fragment: str, lazy: bool
) -> None:
    """Read eagerly, or lazily as judging reads it (each interval checked when a window
    first decodes it, the rest by `check`): the same one line either way."""
    _edited(streamed, edit)
    with pytest.raises(FormatError) as e:
        load_recording(streamed, lazy=lazy).check()
    assert e.value.message.startswith(f"{streamed}: "), e.value.message
    assert fragment in e.value.message, e.value.message
    assert "\n" not in e.value.message


def test_a_newer_streamed_version_is_refused_with_the_fix(streamed: Path) -> None:
    _edited(streamed, lambda ls: ls[0].__setitem__("format_version", 3))
    with pytest.raises(FormatError) as e:
        load_recording(streamed)
    assert e.value.message == (
        f"{streamed}: format version 3 is newer than this paybench understands (2); "
        "upgrade paybench"
    )


def test_a_line_that_is_not_json_names_its_number(streamed: Path) -> None:
    number = _line_of(streamed, "interval")
    text = streamed.read_text(encoding="utf-8").splitlines(keepends=True)
    text[number - 1] = text[number - 1][:40] + "\n"
    streamed.write_text("".join(text), encoding="utf-8")
    with pytest.raises(FormatError, match=rf"^{streamed}: line {number}: not a line of a "):
        load_recording(streamed)


def test_histograms_of_a_batch_encode_and_decode_as_hdrh_does() -> None:
    """The vectorised codec of a recording's histograms: byte for byte hdrh's encoding,
    and every row decoded to the very buckets, percentiles and merges of its Histogram."""
    from hdrh.histogram import HdrHistogram

    rng = np.random.default_rng(11)
    histograms = []
    for i in range(120):
        h = stats.Histogram()
        n = int(rng.integers(0, 3000))
        if n:
            h.record_ms_array(np.exp(rng.normal(np.log(rng.uniform(0.01, 5e4)), 1.0, n)))
        if i % 7 == 0:
            h.record_ns(599_999_999_999, 3)  # the top of the layout
        if i % 11 == 0:
            h.record_ns(1, 2**40)  # a count of 9 varint bytes' worth
        histograms.append(h)
    texts = histogram_module.encode_histograms(histograms)
    assert texts == [h._to_hdr().encode().decode("ascii") for h in histograms]
    for text, h in zip(texts, histograms, strict=True):
        assert HdrHistogram.decode(text).get_total_count() == h.count
    rows = histogram_module.decode_encodings([binascii.a2b_base64(t) for t in texts])
    assert [rows.histogram(r) for r in range(rows.rows)] == histograms
    percents = (0.0, 50.0, 95.0, 99.9, 100.0)
    assert rows.percentiles_ns(percents).tolist() == [
        [h.percentile_ns(p) or 0 for p in percents] for h in histograms
    ]
    assert rows.merged() == stats.merge_histograms(histograms)
    groups = rows.merged_groups(np.repeat(np.arange(12), 10))
    assert [groups[g] for g in range(12)] == [
        stats.merge_histograms(histograms[10 * g : 10 * g + 10]) for g in range(12)
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (bytes([0x82]), "a count cut short"),
        (bytes([0xFF] * 9 + [0x01]), "a count of more than 2**55 samples"),
        (bytes([0xFF, 0xFF, 0x07]), "a run of empty buckets beyond the layout"),  # -2**20
        (bytes([0xFF, 0xEF, 0x03, 0x02]), "a bucket beyond the layout"),  # skip 31,744, then 1
    ],
)
def test_damaged_varints_are_refused(body: bytes, reason: str) -> None:
    offsets = np.array([0, 0, len(body)], dtype=np.int64)  # an empty row, then the damage
    with pytest.raises(histogram_module.HistogramDecodeError, match=re.escape(reason)) as e:
        histogram_module.decode_bodies(body, offsets)
    assert e.value.row == 1
