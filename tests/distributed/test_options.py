"""The options of `paybench run --master` and `paybench worker`, and the pure parts of
harness.distributed, without a run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.distributed import (
    WorkerSeen,
    clock_estimate,
    differences,
    end_problems,
    refusal,
    scenario_hash,
    worker_lines,
)
from harness.errors import ConfigError
from harness.locust_run import LocustPlan, MasterPlan, build_command, parse_address


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_master_with_workers_is_refused_in_one_line(tmp_path: Path) -> None:
    code, out = _run("run", "--master", "--workers", "2", "--out", str(tmp_path))
    assert code == 2
    assert out.strip().count("\n") == 0
    assert out.startswith("paybench: error: --master cannot be combined with --workers 2")
    assert not (tmp_path / "runs").exists()


def test_master_options_without_master_are_refused(tmp_path: Path) -> None:
    code, out = _run("run", "--expect-workers", "3", "--out", str(tmp_path))
    assert (code, out.strip()) == (
        2,
        "paybench: error: --expect-workers apply with --master only; add --master",
    )


@pytest.mark.parametrize("text", ["host:", "host:0", "host:70000", ":5557", "[::1", "[::1]x"])
def test_a_bad_address_names_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match="--master-bind"):
        parse_address(text, 5557, "--master-bind")


def test_addresses() -> None:
    assert parse_address("10.0.0.5", 5557, "--master") == ("10.0.0.5", 5557)
    assert parse_address("master:6000", 5557, "--master") == ("master", 6000)
    assert parse_address("[::1]:6000", 5557, "--master") == ("::1", 6000)


def test_worker_with_a_bad_master_address_exits_2() -> None:
    code, out = _run("worker", "--master", "host:notaport")
    assert code == 2
    assert out.startswith("paybench: error: --master 'host:notaport': give HOST:PORT")


def test_the_master_command_line() -> None:
    plan = LocustPlan(
        locustfile=Path("l.py"),
        host="http://127.0.0.1:1",
        run_dir=Path("r"),
        master=MasterPlan("0.0.0.0", 6000, expect_workers=3, expect_workers_timeout_s=2.5),
    )
    cmd = build_command(plan)
    i = cmd.index("--master")
    assert cmd[i : i + 9] == [
        "--master", "--master-bind-host", "0.0.0.0", "--master-bind-port", "6000",
        "--expect-workers", "3", "--expect-workers-max-wait", "3",
    ]  # fmt: skip
    assert "--processes" not in cmd


def test_the_clock_offset_comes_from_the_round_with_the_least_delay() -> None:
    # worker clock 0.3 s ahead; the second round is symmetric and fastest
    rounds = [
        (0.0, 0.35, 0.35, 0.2),  # 0.2 s delay, asymmetric: offset 0.25
        (1.0, 1.302, 1.302, 1.004),  # 4 ms delay: offset 0.3
        (2.0, 2.31, 2.31, 2.05),
    ]
    offset, delay = clock_estimate(rounds)
    assert offset == pytest.approx(0.3)
    assert delay == pytest.approx(0.004)


def test_differences_name_what_differs() -> None:
    mine = {"paybench": "1", "locust": "2.47.0", "python": "3.11.7", "scenario_sha256": "a" * 64}
    theirs = {**mine, "python": "3.12.1", "scenario_sha256": "b" * 64}
    assert differences(mine, theirs) == [
        "Python version 3.12.1 (master: 3.11.7)",
        f"scenario files (SHA-256) {'b' * 12} (master: {'a' * 12})",
    ]
    assert differences(mine, dict(mine)) == []


def test_the_scenario_hash_follows_content(tmp_path: Path) -> None:
    f = tmp_path / "payments.py"
    f.write_text("x = 1\n")
    first = scenario_hash([f])
    f.write_text("x = 2\n")
    assert scenario_hash([f]) != first


def _worker(index: int, **kw: object) -> WorkerSeen:
    w = WorkerSeen(f"c{index}", index, joined_epoch=0.0, status="accepted")
    w.facts = {"hostname": "m", "pid": 100 + index}
    for k, v in kw.items():
        setattr(w, k, v)
    return w


def test_end_problems_name_the_worker() -> None:
    ok = _worker(0, requests=10, final_epoch=1.0, requests_at_final=10,
                 declared={"requests": 10, "cut_off": 0, "reports": 2})  # fmt: skip
    gone = _worker(1, requests=4)
    wrong = _worker(2, requests=5, final_epoch=1.0, requests_at_final=5,
                    declared={"requests": 7, "cut_off": 0, "reports": 2})  # fmt: skip
    problems = end_problems([ok, gone, wrong], merged=(19, 0))
    assert problems[0].startswith("worker-1 (m, pid 101) never sent its final counts")
    assert problems[1].startswith("worker-2 (m, pid 102)'s totals disagree: it sent 7 requests")
    assert len(problems) == 2
    assert end_problems([ok], merged=(9, 0))[0].startswith("the merged recording holds 9")


def test_a_refusal_keeps_its_code() -> None:
    assert refusal({"refused": {"code": 2, "message": "m"}}) == (2, "m")
    assert refusal({"refused": {"code": 7, "message": "m"}}) == (3, "m")
    assert refusal({"refused": None}) is None


def test_a_line_per_worker() -> None:
    gone = _worker(1, requests=4, offset_s=-0.0021, delay_s=0.0008)
    gone.joined_epoch = 3600.0
    refused = _worker(2, status="refused")
    lines = worker_lines({"workers": [gone.to_json(), refused.to_json()]})
    assert lines == [
        "workers:",
        "  worker-1 (m, pid 101): accepted, clock -2.1 ms (±0.4), 4 requests (+0 cut off), "
        "joined 01:00:00Z, left without its final data",
        "  worker-2 (m, pid 102): refused, clock not measured",
    ]
