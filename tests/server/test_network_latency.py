"""The checklist's network latency (< 50 ms) end to end: `paybench run` of the built-in target
with a `probe` source, a real blackbox_exporter probing the target's /api/health through
`{target}` (the target's port is chosen when it starts), judged on `probe_duration_seconds`;
and the disk I/O budget on a real node_exporter in the same run."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.core.server_budgets import SourceSpec
from harness.errors import ConfigError
from harness.server.sources import open_source, probe_failure
from harness.target.servers import Server, free_port
from tests.e2e.helpers import load_summary, only_run_dir, paybench

pytestmark = pytest.mark.e2e

PROBE_ROW = "server.probe.expr.probe_duration_seconds.max"
DISK_ROW = "server.api_host.disk_io_time_avg"


def probe_budgets(probe_url: str, limit: str, node_url: str | None = None) -> str:
    text = (
        "version: 1\n"
        "steady_state: {warmup: 1s}\n"
        "sources:\n"
        f'  probe: {{kind: prometheus, url: "{probe_url}", timeout: 5s}}\n'
    )
    if node_url is not None:
        text += f'  api_host: {{kind: prometheus, url: "{node_url}"}}\n'
    text += (
        "server:\n"
        "  probe:\n"
        "    expr:\n"
        f'      probe_duration_seconds: {{max: "{limit}"}}  # [checklist] network latency\n'
    )
    if node_url is not None:
        text += '  api_host:\n    disk_io_time_avg: "< 80ms"  # [checklist] disk I/O\n'
    return text


def run(tmp_path: Path, budgets_text: str) -> tuple[int, str, dict[str, dict]]:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(budgets_text, encoding="utf-8")
    out = tmp_path / "out"
    r = paybench(
        "run", "--budgets", str(budgets), "--out", str(out), "--run-time", "6s",
        "--users", "2", "--no-history",
    )  # fmt: skip
    rows: dict[str, dict] = {}
    if r.returncode in (0, 1):
        rows = {b["key_path"]: b for b in load_summary(only_run_dir(out))["verdict"]["budgets"]}
    return r.returncode, r.stdout + r.stderr, rows


@contextmanager
def disk_writes(folder: Path) -> Iterator[None]:
    """Writes synced to the disk while the run goes: disk I/O in the window to average."""
    stop = threading.Event()

    def write() -> None:
        with open(folder / "disk-io", "wb") as f:
            while not stop.is_set():
                f.write(os.urandom(4096))
                f.flush()
                os.fsync(f.fileno())
                stop.wait(0.05)  # pacing of the writes, not a wait for a condition

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_probe_of_the_built_in_target_is_judged_under_50_ms(
    blackbox_exporter: Server, tmp_path: Path
) -> None:
    url = f"{blackbox_exporter.url}/probe?module=http_2xx&target={{target}}/api/health"
    code, output, rows = run(tmp_path, probe_budgets(url, "< 0.05"))
    assert code == 0, output
    row = rows[PROBE_ROW]
    assert row["status"] == "pass", row
    # A real probe of the real target: an HTTP round trip on loopback, well under 50 ms.
    assert 0.0 < row["measured"] < 0.05, row
    header = (only_run_dir(tmp_path / "out") / "server.jsonl").read_text().splitlines()[0]
    # {target} became the target's own URL: the probe went to the port it started on.
    assert "target=http://127.0.0.1:" in header and "{target}" not in header, header


def test_a_network_latency_limit_the_probe_breaks_fails_the_run_and_names_it(
    blackbox_exporter: Server, node_exporter: Server, tmp_path: Path
) -> None:
    url = f"{blackbox_exporter.url}/probe?module=http_2xx&target={{target}}/api/health"
    with disk_writes(tmp_path):
        code, output, rows = run(tmp_path, probe_budgets(url, "< 0.00001", node_exporter.url))
    assert code == 1, output
    row = rows[PROBE_ROW]
    assert row["status"] == "fail", row
    assert row["measured"] > 0.00001, row
    assert "probe_duration_seconds" in output, output
    # The checklist's disk I/O on node_exporter, judged on the writes made in the window
    # (a shared disk's average per operation: pass or fail, but measured).
    disk = rows[DISK_ROW]
    assert disk["measured"] is not None and disk["measured"] > 0.0, disk
    assert disk["status"] in ("pass", "fail"), disk


def test_a_failed_probe_is_reported_plainly_not_judged_as_a_latency(
    blackbox_exporter: Server, tmp_path: Path
) -> None:
    closed = free_port()  # nothing listens there: the connection is refused, quickly
    url = f"{blackbox_exporter.url}/probe?module=tcp_connect&target=127.0.0.1:{closed}"
    code, output, _ = run(tmp_path, probe_budgets(url, "< 0.05"))
    assert code == 3, output
    lines = [line for line in output.splitlines() if "probe_success 0" in line]
    assert len(lines) == 1, output
    assert "sources.probe" in lines[0] and "the probe failed" in lines[0], lines[0]
    assert "debug=true" in lines[0] and "Traceback" not in output, output


def test_only_probe_success_0_makes_a_page_a_failed_probe() -> None:
    failed = "probe_duration_seconds 0.0004\nprobe_http_status_code 503\nprobe_success 0\n"
    assert probe_failure(failed) == "the probe failed (probe_success 0, probe_http_status_code 503)"
    assert probe_failure("probe_duration_seconds 0.004\nprobe_success 1\n") is None
    # Any other page (node_exporter's, the target's /metrics) is not a probe.
    assert probe_failure("# HELP probe_success x\nnode_load1 0.5\n") is None


def test_target_in_a_url_needs_a_run_with_a_target() -> None:
    spec = SourceSpec("probe", "prometheus", url="http://127.0.0.1:9115/probe?target={target}")
    with pytest.raises(ConfigError, match=r"sources\.probe\.url: .* names \{target\}"):
        open_source(spec, target_url=None, target_pid=None, source_file="budgets.yaml")
    source = open_source(
        spec, target_url="http://127.0.0.1:8000/", target_pid=None, source_file="budgets.yaml"
    )
    try:
        assert source.where == "http://127.0.0.1:9115/probe?target=http://127.0.0.1:8000"
    finally:
        source.close()
