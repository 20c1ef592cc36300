"""The preflight fits the scenarios: the payments health checks for the built-in ones, what
budgets.yaml declares (or nothing) for another locustfile."""

from __future__ import annotations

import base64
import json
import textwrap
from pathlib import Path

import pytest

from harness.core.budgets import parse_budgets
from harness.core.model import Budgets, Preflight, PreflightCheck
from harness.errors import EXIT_UNJUDGEABLE, ConfigError, TargetError
from harness.locust_run import free_loopback_port
from harness.preflight import PAYMENTS_CHECKS, PREFLIGHT_TIMEOUT_S, preflight, preflight_checks
from tests.allowlist.helpers import only_run_dir
from tests.allowlist.tiny_server import HEALTH_PATHS, Server
from tests.e2e.helpers import paybench

OWN_LOCUSTFILE = """
from locust import FastHttpUser, constant, task

from harness import plugin  # noqa: F401


class Mine(FastHttpUser):
    wait_time = constant(0.2)

    @task
    def ok(self):
        self.client.get("/ok")
"""


def _budgets(text: str) -> Budgets:
    return parse_budgets(textwrap.dedent(text), "budgets.yaml")


# --- the preflight: section of budgets.yaml ---------------------------------------------------


def test_a_declared_preflight_is_parsed() -> None:
    budgets = _budgets(
        """
        version: 1
        hosts:
          allow: [staging.example.invalid]
        preflight:
          timeout: 1500ms
          checks:
            - url: /ready
            - {url: /live, status: 204}
            - url: https://staging.example.invalid:9090/health
        run: {error_rate: "< 1%"}
        """
    )
    assert budgets.preflight == Preflight(
        checks=(
            PreflightCheck("/ready", 200, key_path="preflight.checks.0"),
            PreflightCheck("/live", 204, key_path="preflight.checks.1"),
            PreflightCheck(
                "https://staging.example.invalid:9090/health", 200, key_path="preflight.checks.2"
            ),
        ),
        timeout_s=1.5,
    )


def test_without_the_section_nothing_is_declared() -> None:
    assert _budgets('version: 1\nrun: {error_rate: "< 1%"}\n').preflight is None
    empty = _budgets('version: 1\npreflight: {checks: []}\nrun: {error_rate: "< 1%"}\n')
    assert empty.preflight == Preflight(checks=())


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            "preflight: [/ready]",
            "preflight: expected a mapping",
        ),
        (
            "preflight: {check: []}",
            "preflight.check: unknown key 'check'; did you mean 'checks'?",
        ),
        (
            "preflight: {checks: /ready}",
            "preflight.checks: expected a list of checks, got the text '/ready'",
        ),
        ("preflight: {checks: [/ready]}", "preflight.checks.0: expected a mapping"),
        ("preflight: {checks: [{status: 200}]}", "preflight.checks.0.url: expected a path or URL"),
        (
            "preflight: {checks: [{url: ready}]}",
            "preflight.checks.0.url: 'ready' is neither a path nor a URL",
        ),
        (
            "preflight: {checks: [{url: //elsewhere.invalid/x}]}",
            "preflight.checks.0.url: '//elsewhere.invalid/x' starts with '//'",
        ),
        (
            "preflight: {checks: [{url: 'http://elsewhere.invalid/health'}]}",
            "preflight.checks.0.url: 'http://elsewhere.invalid/health' names elsewhere.invalid, "
            "which is not loopback and not in hosts.allow; add elsewhere.invalid to hosts.allow",
        ),
        (
            "preflight: {checks: [{url: 'http://admin:pw@127.0.0.1/h'}]}",
            "carries credentials",
        ),
        (
            "preflight: {checks: [{url: /ready, status: 2000}]}",
            "preflight.checks.0.status: expected an HTTP status code (100-599), got the number",
        ),
        (
            "preflight: {checks: [{url: /ready, status: '200'}]}",
            "preflight.checks.0.status: expected an HTTP status code",
        ),
        (
            "preflight: {checks: [{url: /ready, body: ok}]}",
            "preflight.checks.0.body: unknown key 'body'; allowed here: url, status",
        ),
        ("preflight: {checks: [], timeout: 5}", "preflight.timeout: expected a duration"),
        ("preflight: {checks: [], timeout: 0s}", "preflight.timeout: expected a duration"),
        (
            "profiles: {smoke: {preflight: {checks: []}}}",
            "profiles.smoke.preflight: unknown key 'preflight'",
        ),
    ],
)
def test_a_bad_preflight_section_names_its_key_path(section: str, message: str) -> None:
    text = f'version: 1\n{section}\nrun: {{error_rate: "< 1%"}}\n'
    with pytest.raises(ConfigError) as caught:
        parse_budgets(text, "budgets.yaml")
    assert caught.value.message.startswith("budgets.yaml: ")
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_the_checks_fit_the_scenarios() -> None:
    declared = _budgets(
        'version: 1\npreflight: {timeout: 3s, checks: [{url: /ready}]}\nrun: {count: ">= 1"}\n'
    )
    plain = _budgets('version: 1\nrun: {count: ">= 1"}\n')
    assert preflight_checks(plain, builtin=True) == (PAYMENTS_CHECKS, PREFLIGHT_TIMEOUT_S)
    assert preflight_checks(plain, builtin=False) == ((), PREFLIGHT_TIMEOUT_S)
    ready = PreflightCheck("/ready", 200, key_path="preflight.checks.0")
    assert preflight_checks(declared, builtin=False) == ((ready,), 3.0)
    # The built-in scenarios keep the payments checks; declared ones come on top.
    assert preflight_checks(declared, builtin=True) == ((*PAYMENTS_CHECKS, ready), 3.0)
    assert tuple(c.url for c in PAYMENTS_CHECKS) == HEALTH_PATHS


# --- preflight() against a real loopback server ------------------------------------------------


def test_payments_checks_pass_on_healthy_endpoints_and_name_each_missing_one() -> None:
    with Server() as healthy:
        preflight(healthy.url, environ={})
    with Server(health=False) as bare, pytest.raises(TargetError) as caught:
        preflight(bare.url, environ={})
    message = caught.value.message
    assert caught.value.exit_code == EXIT_UNJUDGEABLE
    assert message.startswith(f"preflight: {bare.url} is unhealthy: ")
    for path in HEALTH_PATHS:
        assert f"{bare.url}{path} answered 404, expected 200" in message


def test_declared_checks_answer_their_status_or_name_the_url() -> None:
    ok = PreflightCheck("/ok", 200, key_path="preflight.checks.0")
    missing = PreflightCheck("/missing", 404, key_path="preflight.checks.1")
    wrong = PreflightCheck("/missing", 200, key_path="preflight.checks.2")
    with Server(health=False) as server:
        preflight(server.url, (ok, missing), 5.0, environ={})
        with pytest.raises(TargetError) as caught:
            preflight(server.url, (ok, wrong), 5.0, environ={})
    assert caught.value.message == (
        f"preflight: {server.url} is unhealthy: {server.url}/missing (preflight.checks.2) "
        'answered 404, expected 200: \'{"error": "not_found"}\''
    )


def test_the_preflight_follows_no_redirect() -> None:
    with Server() as server, pytest.raises(TargetError) as caught:
        preflight(server.url, (PreflightCheck("/away", 200),), 5.0, environ={})
    assert f"{server.url}/away answered 302, expected 200" in caught.value.message
    assert "/ok" not in server.seen()["paths"]


def test_a_target_that_does_not_answer_is_named() -> None:
    url = f"http://127.0.0.1:{free_loopback_port()}"
    with pytest.raises(TargetError) as caught:
        preflight(url, (PreflightCheck("/ready", 200),), 2.0, environ={})
    assert caught.value.message.startswith(f"preflight: {url}/ready did not answer (")


def test_no_checks_send_nothing() -> None:
    with Server() as server:
        preflight(server.url, (), 1.0, environ={})
        assert server.seen()["paths"] == {}


def test_basic_credentials_go_to_the_target_only() -> None:
    environ = {"PAYBENCH_HOST_USERNAME": "gate", "PAYBENCH_HOST_PASSWORD": "s3cret:x"}
    expected = "Basic " + base64.b64encode(b"gate:s3cret:x").decode()
    with Server(basic="gate:s3cret:x") as target, Server() as other:
        checks = (
            PreflightCheck("/needs-basic", 200),
            PreflightCheck(f"{other.url}/ok", 200),  # another origin: no credentials
        )
        preflight(target.url, checks, 5.0, environ=environ)
        assert target.seen()["authorization"] == {"/needs-basic": [expected]}
        assert other.seen()["authorization"] == {"/ok": [None]}


# --- through the real CLI ---------------------------------------------------------------------


def _own_run(tmp_path: Path, server: Server, budgets_text: str) -> tuple[Path, object]:
    locustfile = tmp_path / "mine.py"
    locustfile.write_text(OWN_LOCUSTFILE)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(textwrap.dedent(budgets_text))
    out = tmp_path / "reports"
    result = paybench(
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
        timeout=120,
    )
    return out, result


@pytest.mark.e2e
def test_another_locustfile_runs_against_an_api_without_the_payments_health_endpoints(
    tmp_path: Path,
) -> None:
    """Regression: `paybench run --locustfile my.py` always asked for the four payments
    health endpoints and exited 3 on any API without them; with no preflight declared, a
    foreign locustfile gets none."""
    with Server(health=False) as server:
        out, r = _own_run(tmp_path, server, 'version: 1\nrun:\n  count: ">= 1"\n')
        seen = server.seen()["paths"]
    assert r.returncode in (0, 1), r.stdout + r.stderr
    assert seen.get("/ok", 0) >= 1
    assert not any(path in seen for path in HEALTH_PATHS), seen
    assert (only_run_dir(out) / "summary.json").is_file()


@pytest.mark.e2e
def test_a_declared_preflight_that_fails_exits_3_naming_the_url(tmp_path: Path) -> None:
    with Server(health=False) as server:
        out, r = _own_run(
            tmp_path,
            server,
            """\
            version: 1
            preflight:
              checks:
                - url: /missing
            run:
              count: ">= 1"
            """,
        )
        seen = server.seen()["paths"]
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [
        f"paybench: error: preflight: {server.url} is unhealthy: {server.url}/missing "
        '(preflight.checks.0) answered 404, expected 200: \'{"error": "not_found"}\''
    ], r.stderr
    assert seen == {"/missing": 1}  # asked once; no load followed
    record = json.loads((only_run_dir(out) / "run.json").read_text())
    assert record["status"] == "failed"


def test_the_documented_preflight_message_is_the_real_one() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "budgets.md").read_text()
    checks = (
        PreflightCheck("/ok", 200, key_path="preflight.checks.0"),
        PreflightCheck("/ready", 204, key_path="preflight.checks.1"),
    )
    with Server(health=False) as server, pytest.raises(TargetError) as caught:
        preflight(server.url, checks, 5.0, environ={})
    assert caught.value.message.replace(server.url, "http://127.0.0.1:8089") in doc
