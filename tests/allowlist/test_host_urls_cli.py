"""--host URLs that clients could read differently, and credentials: refused by every command
that loads a host (exit 2, one line, nothing written); credentials go through the
environment instead, to the target only, and never into the run folder."""

from __future__ import annotations

import base64
import secrets
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.cli import main
from harness.profiles import PROJECT_ROOT
from tests.allowlist.helpers import only_run_dir, run_folder_text
from tests.allowlist.tiny_server import Server
from tests.e2e.helpers import paybench

BUDGETS = PROJECT_ROOT / "budgets.yaml"

BAD_HOSTS = {
    # urlsplit reads 127.0.0.1; urllib3 (HttpUser) connects to evil.invalid.
    "backslash": ("http://evil.invalid\\@127.0.0.1:8089", "holds a backslash"),
    "tab inside": ("http://127.0.0.1:80\t89", "holds a tab"),
    "tab that hides a name": ("http://127.0.0.1\t.evil.invalid:8089", "holds a tab"),
    "newline": ("http://127.0.0.1:8089\n", "holds a line break"),
    "control character": ("http://127.0.0.1\x00.evil.invalid", "the control character U+0000"),
    "non-ASCII dot": ("http://127\u30020.0.1:8089", "has the non-ASCII character"),
    "trailing dot, name": ("http://localhost.:8089", "ends its host name with a dot"),
    "trailing dot, address": ("http://127.0.0.1.:8089", "ends its host name with a dot"),
    "credentials": ("http://admin:secret@127.0.0.1:8089", "carries credentials"),
    "user only": ("http://admin@127.0.0.1:8089", "carries credentials"),
}
COMMANDS = {
    "run": ["run", "--budgets", str(BUDGETS)],
    "capacity": ["capacity", "--budgets", str(BUDGETS), "--step-time", "3s"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("case", sorted(BAD_HOSTS))
def test_a_host_clients_could_read_differently_is_refused_before_anything(
    tmp_path: Path, command: str, case: str
) -> None:
    """Regression: ``--host 'http://evil.invalid\\@127.0.0.1:PORT'`` passed the loopback
    check while HttpUser connected to evil.invalid; ``localhost.`` passed as loopback but is
    looked up in DNS; ``user:password@`` went into run.json, the reports, the history and
    the process list. All are refused now, by run and capacity alike."""
    url, fragment = BAD_HOSTS[case]
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, [*COMMANDS[command], "--host", url, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("paybench: error: host '"), lines[0]
    assert fragment in lines[0]
    assert "secret" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists()  # refused before a folder, a target or Locust


def test_the_credentials_message_says_where_credentials_go(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [*COMMANDS["run"], "--host", "http://admin:secret@127.0.0.1:8089", "--out", str(tmp_path)],
    )
    assert result.stderr == (
        "paybench: error: host 'http://admin:***@127.0.0.1:8089' carries credentials (user "
        "info before '@'), which would end up in the run folder, the reports and the process "
        "list; remove them and set PAYBENCH_HOST_USERNAME and PAYBENCH_HOST_PASSWORD instead "
        "(sent as Basic auth to the target; see docs/budgets.md)\n"
    )


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        ("staging\\.example.invalid", "holds a backslash"),
        ("staging\t.example.invalid", "holds a tab"),
        ("admin:secret@staging.example.invalid", "holds user info"),
        ("st\u00e4ging.example.invalid", "is not ASCII"),
    ],
)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_allow_host_values_get_the_same_checks(
    tmp_path: Path, command: str, flag: str, fragment: str
) -> None:
    out = tmp_path / "reports"
    args = [*COMMANDS[command], "--host", "http://127.0.0.1:8089", "--allow-host", flag]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paybench: error: --allow-host '"), lines
    assert fragment in lines[0] and "secret" not in lines[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ('"admin@staging.example.invalid"', "hosts.allow.0: 'admin@staging.example.invalid' holds"),
        ('"staging\\\\example.invalid"', "hosts.allow.0: 'staging\\\\example.invalid' holds a"),
        ('"staging\\texample.invalid"', "holds a tab"),
        ('"b\\u00fccher.example.invalid"', "is not ASCII"),
    ],
)
def test_hosts_allow_entries_get_the_same_checks(tmp_path: Path, entry: str, fragment: str) -> None:
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(f'version: 1\nhosts:\n  allow: [{entry}]\nrun: {{error_rate: "< 1%"}}\n')
    out = tmp_path / "reports"
    result = CliRunner().invoke(main, ["run", "--budgets", str(budgets), "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"paybench: error: {budgets}: "), lines
    assert fragment in lines[0]
    assert not out.exists()


CREDENTIALS_LOCUSTFILE = """
from locust import FastHttpUser, HttpUser, constant, task

from harness import plugin  # noqa: F401


class Fast(FastHttpUser):
    wait_time = constant(0.3)

    @task
    def go(self):
        with self.client.get("/needs-basic", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"got {r.status_code}")
        # A request with an Authorization of its own (PhonePe's webhook) keeps it.
        self.client.post("/echo", data=b"{}", headers={"Authorization": "own-fast"})


class Plain(HttpUser):
    wait_time = constant(0.3)

    @task
    def go(self):
        self.client.get("/needs-basic")
        self.client.post("/echo", data=b"{}", headers={"Authorization": "own-plain"})
"""


@pytest.mark.e2e
def test_credentials_from_the_environment_reach_the_target_and_nothing_else(
    tmp_path: Path,
) -> None:
    """The documented way to give a gated target its Basic auth: the preflight and every
    request without an Authorization of its own send it; the webhook's own header stays;
    the password is in no file of the run folder and not in the output."""
    password = "pw-" + secrets.token_hex(8)
    locustfile = tmp_path / "mine.py"
    locustfile.write_text(CREDENTIALS_LOCUSTFILE)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(
        textwrap.dedent(
            """\
            version: 1
            preflight:
              checks:
                - url: /needs-basic
            run:
              error_rate: "< 1%"
            """
        )
    )
    out = tmp_path / "reports"
    with Server(basic=f"gate:{password}", health=False) as server:
        r = paybench(
            "run",
            "--locustfile",
            str(locustfile),
            "--host",
            server.url,
            "--budgets",
            str(budgets),
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--run-time",
            "2s",
            "--out",
            str(out),
            "--no-history",
            env={"PAYBENCH_HOST_USERNAME": "gate", "PAYBENCH_HOST_PASSWORD": password},
            timeout=120,
        )
        seen = server.seen()["authorization"]
    assert r.returncode == 0, r.stdout + r.stderr
    basic = "Basic " + base64.b64encode(f"gate:{password}".encode()).decode()
    # The preflight's request, then at least one per user.
    assert len(seen["/needs-basic"]) >= 3 and set(seen["/needs-basic"]) == {basic}, seen
    assert set(seen["/echo"]) == {"own-fast", "own-plain"}, seen
    run_dir = only_run_dir(out)
    assert password not in run_folder_text(run_dir)
    assert password not in r.stdout + r.stderr
