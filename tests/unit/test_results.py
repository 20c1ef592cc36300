"""harness.results: a run folder on disk -> RunResult, from literal folders built here.

A paybench folder (run.json and paybench.hdr.json, Locust's CSV beside them or not), a plain
``locust --csv`` folder, runs that did not finish, and folders that cannot be read. Where
the steady state begins is tested on its own in test_steady_state.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.core.model import AGGREGATE_KEY, FailureRecord, RequestStats, RunResult
from harness.errors import EXIT_USAGE, ConfigError, FormatError
from harness.results import read_meta, read_run
from harness.runfolder import RUN_FILE
from tests.unit.folders import (
    FLOW,
    HDR_FILE,
    HOST,
    INITIATE,
    PLANS,
    RUN_ID,
    START,
    STATUS,
    Failure,
    Requests,
    paybench_folder,
    recording_doc,
    write_locust_stats,
    write_recording,
    write_run_json,
)

ROOT = Path(__file__).resolve().parents[2]
PLAIN_LOCUST = ROOT / "tests" / "fixtures" / "plain_locust"

# Spawning completes at 2 s and no warm-up is asked for: intervals 0 and 1 are the ramp.
SAMPLE = (
    Requests(PLANS, 0, (5.0, 7.0)),
    Requests(PLANS, 1, (6.0,)),
    Requests(FLOW, 1, (800.0,)),
    Requests(PLANS, 3, (10.0, 20.0, 30.0, 40.0), failures=1),
    Requests(INITIATE, 4, (200.0, 300.0), failures=2),
    Requests(FLOW, 5, (900.0,)),
    Requests(PLANS, 6, (50.0,)),
    Requests(INITIATE, 10, (), cut_off=1),  # in flight when the run stopped
)
FAILURES = (
    Failure(PLANS, "HTTPError('500 Server Error')", 1, START + 3.2, START + 3.2),
    Failure(INITIATE, "CatchResponseError('expected 201, got 503')", 2, START + 4.1, START + 4.9),
)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    run_dir = paybench_folder(tmp_path_factory.mktemp("sample"), SAMPLE, failures=FAILURES)
    return read_run(run_dir, 0.0)


def by_key(stats: tuple[RequestStats, ...]) -> dict[str, RequestStats]:
    return {s.key: s for s in stats}


# -- a paybench run folder ------------------------------------------------------------------


def test_the_metadata_comes_from_run_json(sample: RunResult) -> None:
    meta = sample.meta
    assert (meta.run_id, meta.profile, meta.host, meta.target) == (
        RUN_ID,
        "smoke",
        HOST,
        "reference",
    )
    assert (meta.users, meta.spawn_rate, meta.run_time_s, meta.workers) == (4, 2.0, 10.0, 0)
    assert (meta.locust_version, meta.scenario_version) == ("2.47.0", "1")
    assert (meta.started_at, meta.ended_at) == ("2025-11-26T08:30:00Z", "2025-11-26T08:30:10Z")
    assert meta.extra == {"target_overrides": {}}


def test_steady_state_figures_are_exact(sample: RunResult) -> None:
    assert sample.exact is True
    plans = by_key(sample.requests)["GET /api/plans"]
    assert (plans.count, plans.failures, plans.cut_off) == (5, 1, 0)
    assert (plans.min_ms, plans.avg_ms, plans.max_ms) == (10.0, 30.0, 50.0)
    # HDR histograms with 3 significant figures: every percentile within 0.1 %.
    assert plans.percentile_ms(50) == pytest.approx(30.0, rel=1e-3)
    assert plans.percentile_ms(99) == pytest.approx(50.0, rel=1e-3)
    assert plans.source == "paybench"
    assert len(plans.interval_histograms) == 2  # intervals 3 and 6: for the confidence intervals
    assert plans.duration_s == 8.0 and plans.rps == 5 / 8
    assert plans.error_rate_pct == 20.0


def test_cut_offs_are_counted_apart_from_completed_requests(sample: RunResult) -> None:
    initiate = by_key(sample.requests)["POST /api/payments/v2/initiate"]
    assert (initiate.count, initiate.failures, initiate.cut_off) == (2, 2, 1)
    assert initiate.error_rate_pct == 100.0  # of the completed ones
    assert (sample.total.count, sample.total.cut_off) == (7, 1)


def test_flows_are_reported_but_left_out_of_the_aggregate(sample: RunResult) -> None:
    flow = by_key(sample.requests)["FLOW checkout: initiate -> confirmed"]
    assert (flow.count, flow.max_ms) == (1, 900.0)
    total = sample.total
    assert (total.key, total.count, total.failures) == (AGGREGATE_KEY, 7, 3)
    assert (total.min_ms, total.max_ms) == (10.0, 300.0)
    assert total.avg_ms == pytest.approx((150.0 + 500.0) / 7)
    assert total.percentile_ms(100) == pytest.approx(300.0, rel=1e-3)
    # The aggregate's intervals merge the request keys' interval by interval: 3, 4, 6, and
    # 10, where the cut-off was counted (no latency).
    assert [h.count for h in total.interval_histograms] == [4, 2, 1, 0]
    assert sample.find(AGGREGATE_KEY) is total
    assert sample.whole_run is not None
    assert (sample.whole_run.count, sample.whole_run.max_ms) == (10, 300.0)


def test_the_ramp_is_reported_apart(sample: RunResult) -> None:
    ramp = by_key(sample.ramp)
    assert (ramp["GET /api/plans"].count, ramp["GET /api/plans"].max_ms) == (3, 7.0)
    assert ramp["FLOW checkout: initiate -> confirmed"].count == 1
    assert ramp["POST /api/payments/v2/initiate"].count == 0
    assert ramp["GET /api/plans"].duration_s == 2.0
    assert (sample.steady_start_s, sample.steady_end_s) == (2.0, 10.0)


def test_the_timeline_has_one_point_per_interval_with_requests(sample: RunResult) -> None:
    points = sample.timeline
    assert [p.start_s for p in points] == [0.0, 1.0, 3.0, 4.0, 5.0, 6.0, 10.0]
    # Flows have percentiles on the timeline but are not requests.
    assert [p.requests for p in points] == [2, 1, 4, 2, 0, 1, 0]
    assert [p.failures for p in points] == [0, 0, 1, 2, 0, 0, 0]
    assert set(points[4].percentiles_ms) == {"FLOW checkout: initiate -> confirmed"}
    assert points[2].percentiles_ms["GET /api/plans"]["p50"] == pytest.approx(20.0, rel=1e-3)


def test_failures_keep_their_message_count_and_times_since_the_start(sample: RunResult) -> None:
    first, second = sorted(sample.failures, key=lambda f: f.request_key)
    assert (first.request_key, first.message, first.count) == (
        "GET /api/plans",
        "HTTPError('500 Server Error')",
        1,
    )
    assert (second.request_key, second.count) == ("POST /api/payments/v2/initiate", 2)
    assert second.message == "CatchResponseError('expected 201, got 503')"
    # Seconds since the test started, from the epochs the plugin recorded.
    seen_s = [s for f in (first, second) for s in (f.first_seen_s, f.last_seen_s)]
    assert seen_s == pytest.approx([3.2, 3.2, 4.1, 4.9])


def test_a_complete_reliable_run_says_so(sample: RunResult) -> None:
    assert (sample.incomplete, sample.incomplete_reason, sample.unreliable_reasons) == (
        False,
        None,
        (),
    )


def test_locust_figures_beside_the_recording_are_kept_for_reference(tmp_path: Path) -> None:
    """The verdict stays on the exact histograms; Locust's rounded figures ride along."""
    run_dir = paybench_folder(tmp_path / "run", SAMPLE)
    write_locust_stats(
        run_dir,
        [
            {"Type": "GET", "Name": "/api/plans", "Request Count": 8, "Failure Count": 1,
             "Average Response Time": 21.5, "Min Response Time": 5, "Max Response Time": 50,
             "Requests/s": 0.8, "50%": 20, "95%": 50, "100%": 50},
            {"Type": "", "Name": AGGREGATE_KEY, "Request Count": 8, "Failure Count": 1,
             "Average Response Time": 21.5, "Requests/s": 0.8, "50%": 20},
        ],
    )  # fmt: skip
    result = read_run(run_dir, 0.0)
    assert result.exact is True
    assert by_key(result.requests)["GET /api/plans"].avg_ms == 30.0  # the recording's
    (locust,) = result.locust_requests  # the Aggregated row is not a request
    assert (locust.key, locust.count, locust.avg_ms, locust.source) == (
        "GET /api/plans",
        8,
        21.5,
        "locust",
    )
    assert locust.histogram is None
    assert locust.percentile_ms(95) == 50.0
    assert locust.percentile_ms(97) is None  # not a column Locust writes


def test_read_meta_reads_the_same_metadata_without_the_recording(tmp_path: Path) -> None:
    run_dir = paybench_folder(tmp_path / "run", SAMPLE)
    assert read_meta(run_dir) == read_run(run_dir).meta
    (run_dir / HDR_FILE).write_text("not even JSON")  # never opened by read_meta
    assert read_meta(run_dir).run_id == RUN_ID


# -- a plain `locust --csv` folder ----------------------------------------------------------


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    run_dir = tmp_path_factory.mktemp("folders") / "plain-run"
    shutil.copytree(PLAIN_LOCUST, run_dir)
    return read_run(run_dir, 2.0)


def test_a_plain_locust_folder_is_judged_on_locusts_figures(plain: RunResult) -> None:
    assert plain.exact is False
    assert len(plain.requests) == 14
    initiate = by_key(plain.requests)["POST /api/payments/v2/initiate"]
    assert (initiate.count, initiate.failures, initiate.source) == (16, 0, "locust")
    assert initiate.avg_ms == pytest.approx(78.92758825001067)
    assert (initiate.min_ms, initiate.max_ms) == (62.335180999980366, 118.62510900004963)
    assert initiate.histogram is None and initiate.interval_histograms == ()
    assert initiate.percentile_ms(95) == 120.0
    assert initiate.percentile_ms(99.9) == 120.0
    assert initiate.percentile_ms(97) is None
    assert plain.locust_requests == plain.requests


def test_a_plain_locust_folder_has_locusts_aggregate_and_no_ramp(plain: RunResult) -> None:
    total = plain.total
    assert (total.key, total.count, total.failures, total.request_type) == (
        AGGREGATE_KEY,
        209,
        0,
        "",
    )
    assert total.percentile_ms(95) == 810.0
    # No epochs: the whole run is the steady state, whatever the warm-up, as long as
    # Locust's count over its rate says.
    assert (plain.steady_start_s, plain.ramp, plain.whole_run) == (0.0, (), None)
    assert plain.steady_end_s == pytest.approx(209 / 41.78394712152681)
    assert total.duration_s == plain.steady_end_s


def test_a_plain_locust_folder_is_named_by_its_folder(plain: RunResult) -> None:
    meta = plain.meta
    assert (meta.run_id, meta.profile, meta.host, meta.target, meta.users) == (
        "plain-run",
        None,
        "unknown",
        "unknown",
        None,
    )
    assert (plain.incomplete, plain.failures) == (False, ())


def test_a_plain_locust_folder_reads_its_failures_csv(tmp_path: Path) -> None:
    run_dir = tmp_path / "loadtest"
    write_locust_stats(
        run_dir,
        [
            {"Type": "GET", "Name": "/api/plans", "Request Count": 10, "Failure Count": 3,
             "Average Response Time": 12.0, "Requests/s": 2.0, "95%": 30},
            {"Type": "GET", "Name": "/api/payments/v2/status/[merchant_order_id]",
             "Request Count": 0, "Failure Count": 0, "Requests/s": 0.0},
            {"Type": "", "Name": AGGREGATE_KEY, "Request Count": 10, "Failure Count": 3,
             "Average Response Time": 12.0, "Requests/s": 2.0, "95%": 30},
        ],
        name="loadtest_stats.csv",
    )  # fmt: skip
    (run_dir / "loadtest_failures.csv").write_text(
        "Method,Name,Error,Occurrences\nGET,/api/plans,\"HTTPError('500, again')\",3\n"
    )
    result = read_run(run_dir)
    assert result.failures == (FailureRecord("GET /api/plans", "HTTPError('500, again')", 3),)
    assert result.total.error_rate_pct == 30.0
    assert result.steady_end_s == 5.0  # 10 requests at 2 per second
    never = by_key(result.requests)["GET " + STATUS[1]]
    assert (never.count, never.avg_ms, dict(never.locust_percentiles_ms)) == (0, None, {})
    assert never.percentile_ms(50) is None


# -- runs that did not finish ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        ("finished", None, None),
        (
            "incomplete",
            "interrupted (Ctrl-C); what was measured until then is kept",
            "interrupted (Ctrl-C); what was measured until then is kept",
        ),
        (
            "incomplete",
            "Locust had not stopped 70 s after it started (its deadline); it was stopped",
            "Locust had not stopped 70 s after it started (its deadline); it was stopped",
        ),
        ("running", None, "the run never finished (run.json says 'running')"),
        ("preflight", None, "the run never finished (run.json says 'preflight')"),
    ],
    ids=["finished", "interrupted", "stopped at its deadline", "left running", "left in preflight"],
)
def test_how_a_run_ended_comes_from_run_json(
    tmp_path: Path, status: str, reason: str | None, expected: str | None
) -> None:
    run_dir = tmp_path / "run"
    write_run_json(run_dir, status=status, incomplete_reason=reason)
    write_recording(run_dir, SAMPLE)
    result = read_run(run_dir)
    assert (result.incomplete, result.incomplete_reason) == (expected is not None, expected)


def test_an_interrupted_run_keeps_what_was_measured(tmp_path: Path) -> None:
    """Ctrl-C at 4.5 s, still spawning: the run is judged whole up to the stop, and marked."""
    run_dir = tmp_path / "run"
    write_run_json(run_dir, status="incomplete", incomplete_reason="interrupted (Ctrl-C)")
    write_recording(run_dir, SAMPLE[:5], spawned=(), stop=START + 4.5)
    result = read_run(run_dir, 2.0)
    assert (result.incomplete, result.incomplete_reason) == (True, "interrupted (Ctrl-C)")
    assert (result.steady_start_s, result.steady_end_s, result.ramp) == (0.0, 4.5, ())
    assert (result.total.count, result.total.failures) == (9, 3)


def test_a_run_json_written_before_versioning_is_read(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    write_recording(run_dir, SAMPLE)
    (run_dir / RUN_FILE).write_text(
        json.dumps(
            {
                "run_id": "20250101T000000Z-000001",
                "profile": "nightly",
                "host": HOST,
                "target": "reference",
                "users": 40,
                "incomplete": True,
                "capacity": {"steps": [10, 20]},
            }
        )
    )
    result = read_run(run_dir)
    assert (result.meta.run_id, result.meta.profile, result.meta.users) == (
        "20250101T000000Z-000001",
        "nightly",
        40,
    )
    assert result.meta.extra == {"capacity": {"steps": [10, 20]}}
    assert (result.incomplete, result.incomplete_reason) == (
        True,
        "incomplete (no reason recorded)",
    )


# -- folders that cannot be read ------------------------------------------------------------


def refused(run_dir: Path) -> str:
    with pytest.raises(ConfigError) as info:
        read_run(run_dir)
    assert info.value.exit_code == EXIT_USAGE
    assert "\n" not in info.value.message
    return info.value.message


def test_no_such_folder(tmp_path: Path) -> None:
    assert refused(tmp_path / "nope") == (
        f"{tmp_path / 'nope'}: no such run folder; give a folder under reports/runs/"
    )


def test_a_folder_of_neither_kind(tmp_path: Path) -> None:
    write_run_json(tmp_path)
    assert refused(tmp_path) == (
        f"{tmp_path}: neither paybench.hdr.json nor a Locust *_stats.csv found; "
        "give a folder written by `paybench run` or by `locust --csv PREFIX`"
    )


def test_a_locust_stats_file_cut_short(tmp_path: Path) -> None:
    path = write_locust_stats(
        tmp_path, [{"Type": "GET", "Name": "/api/plans", "Request Count": 1, "Failure Count": 0}]
    )
    assert refused(tmp_path) == (
        f"{path}: no Aggregated row, which Locust writes last; the file is cut short or damaged"
    )


def test_two_locust_stats_files(tmp_path: Path) -> None:
    row = {"Type": "", "Name": AGGREGATE_KEY, "Request Count": 0, "Failure Count": 0}
    write_locust_stats(tmp_path, [row], name="a_stats.csv")
    write_locust_stats(tmp_path, [row], name="b_stats.csv")
    assert refused(tmp_path) == (
        f"{tmp_path}: several Locust stats files (a_stats.csv, b_stats.csv); keep one per folder"
    )


def test_a_newer_run_json(tmp_path: Path) -> None:
    write_recording(tmp_path, SAMPLE)
    (tmp_path / RUN_FILE).write_text(json.dumps({"format": "paybench-run", "format_version": 2}))
    message = refused(tmp_path)
    assert message == (
        f"{tmp_path / RUN_FILE}: format version 2 is newer than this paybench understands (1); "
        "upgrade paybench"
    )


def test_a_recording_without_its_start(tmp_path: Path) -> None:
    doc = recording_doc(SAMPLE)
    del doc["test_start_epoch"]
    (tmp_path / HDR_FILE).write_text(json.dumps(doc))
    with pytest.raises(FormatError) as info:
        read_run(tmp_path)
    assert info.value.message == (
        f"{tmp_path / HDR_FILE}: test_start_epoch: missing, so no steady state can be found; "
        "the file is damaged or was edited"
    )


def test_a_recording_without_its_stop_is_refused_not_judged_empty(tmp_path: Path) -> None:
    """Guards: a recording that lost test_stop_epoch is a damaged file (exit 2), not an
    empty steady state whose budgets all "never ran" (exit 1, a budget broken)."""
    write_run_json(tmp_path)
    doc = recording_doc(SAMPLE)
    doc["test_stop_epoch"] = None
    (tmp_path / HDR_FILE).write_text(json.dumps(doc))
    with pytest.raises(FormatError) as info:
        read_run(tmp_path)
    assert info.value.message == (
        f"{tmp_path / HDR_FILE}: test_stop_epoch: missing, so the steady state has no end; "
        "the file is damaged or was edited"
    )
