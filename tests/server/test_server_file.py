"""server.jsonl read back (harness.server.results): what paybench writes, and what it refuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import FormatError
from harness.server.results import load_server_file, recording_start_epoch

HEADER = {
    "format": "paybench-server-metrics",
    "format_version": 1,
    "interval_s": 2.0,
    "sources": {"redis": {"kind": "redis", "where": "redis://127.0.0.1:6379/0", "series": ["x"]}},
}


def write(path: Path, *lines: object, tail: str = "") -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + tail)
    return path


def test_samples_and_failures_per_source_in_time_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "server.jsonl",
        HEADER,
        {"epoch": 12.0, "source": "redis", "ok": False, "error": "ConnectionError: refused"},
        {"epoch": 10.0, "source": "redis", "ok": True, "values": {"x": 1.5}},
        tail='{"epoch": 14.0, "source": "re',  # a run cut short mid-line: what came before stands
    )
    interval, data = load_server_file(path)
    assert interval == 2.0
    redis = data["redis"]
    assert (redis.kind, redis.where, redis.series) == ("redis", "redis://127.0.0.1:6379/0", ("x",))
    assert [(s.epoch, s.values, s.error) for s in redis.samples] == [
        (10.0, {"x": 1.5}, None),
        (12.0, None, "ConnectionError: refused"),
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([{**HEADER, "format_version": 2}], "format version 2 is newer than this paybench reads"),
        ([{**HEADER, "format": "other"}], "line 1: not a paybench-server-metrics header"),
        (
            [HEADER, {"epoch": 1.0, "source": "db", "ok": True, "values": {}}],
            "line 2: source: 'db'",
        ),
        ([HEADER, {"epoch": "soon", "source": "redis", "ok": True}], "line 2: epoch: 'soon'"),
        (
            [HEADER, {"epoch": 1.0, "source": "redis", "ok": True, "values": {"x": "1"}}],
            "line 2: values: not an object of series -> number",
        ),
        ([HEADER, {"epoch": 1.0, "source": "redis", "ok": "yes"}], "line 2: ok: 'yes'"),
        ([HEADER, [1, 2]], "line 2: not a JSON object"),
    ],
)
def test_a_damaged_file_is_one_line_naming_the_line(
    tmp_path: Path, lines: list[object], message: str
) -> None:
    path = write(tmp_path / "server.jsonl", *lines)
    with pytest.raises(FormatError) as caught:
        load_server_file(path)
    assert message in caught.value.message and str(path) in caught.value.message


def test_the_start_of_the_test_from_the_recordings_end_line(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    write(
        v2 / "paybench.hdr.json",
        {"format": "paybench-histograms", "format_version": 2},
        {"interval": 1, "rows": []},
        {"end": {"test_start_epoch": 1764146400.25, "test_stop_epoch": 1764146410.0}},
    )
    assert recording_start_epoch(v2) == 1764146400.25
    v1 = tmp_path / "v1"
    v1.mkdir()
    doc = {"format": "paybench-histograms", "format_version": 1, "test_start_epoch": 17.5}
    (v1 / "paybench.hdr.json").write_text(json.dumps(doc, indent=2))
    assert recording_start_epoch(v1) == 17.5
    assert recording_start_epoch(tmp_path) is None
