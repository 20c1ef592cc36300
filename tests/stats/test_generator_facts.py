"""Generator CPU samples: the judgement of a saturated generator stands on real intervals."""

from __future__ import annotations

import json
from pathlib import Path

from harness.recording import generator_unreliable_reasons, load_recording


def recording_with_cpu(tmp_path: Path, samples: list[tuple[float, str, float]]) -> Path:
    doc = {
        "format": "paybench-histograms",
        "format_version": 1,
        "unit": "ns",
        "lowest_trackable": 1,
        "highest_trackable": 600_000_000_000,
        "significant_figures": 3,
        "interval_s": 2.0,
        "test_start_epoch": 1000.0,
        "spawning_complete_epoch": 1000.0,
        "test_stop_epoch": 1010.0,
        "entries": [],
        "users": [],
        "failures": [],
        "generator": {
            "cpu": [{"epoch": e, "process": p, "cpu_pct": c} for e, p, c in samples],
            "max_cpu_pct": max(c for _, _, c in samples),
        },
        "paced": {},
        "warnings": [],
    }
    path = tmp_path / "paybench.hdr.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_sample_milliseconds_after_the_last_one_is_not_saturation(tmp_path: Path) -> None:
    # Regression: the extra sample taken at stop, 3 ms after the interval's, read 404 %.
    rec = load_recording(
        recording_with_cpu(
            tmp_path,
            [
                (1002.0, "local", 35.0),
                (1004.0, "local", 41.0),
                (1006.0, "local", 38.0),
                (1008.0, "local", 36.0),
                (1008.003, "local", 404.0),
            ],
        )
    )
    assert generator_unreliable_reasons(rec, 1000.0, 1010.0) == ()


def test_a_saturated_interval_is_reported(tmp_path: Path) -> None:
    rec = load_recording(
        recording_with_cpu(
            tmp_path,
            [
                (1002.0, "worker-0", 35.0),
                (1004.0, "worker-0", 97.0),
                (1004.0, "worker-1", 40.0),
            ],
        )
    )
    (reason,) = generator_unreliable_reasons(rec, 1000.0, 1010.0)
    assert "worker-0 was saturated (CPU 97 % > 90 %)" in reason
