"""No load leaves the allow-list, redirects included: the real CLI, real Locust, a loopback
server of the test's own, all inside a network namespace where nothing else exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.allowlist.helpers import failures, only_run_dir, run_isolated

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("netns")]

USER_LOCUSTFILE = """
from locust import FastHttpUser, HttpUser, constant, task

from harness import plugin  # noqa: F401  (exact recording; the allow-list)

PATHS = ("/away", "/testnet", "/allowed-away", "/local")


class Fast(FastHttpUser):
    wait_time = constant(0.5)

    @task
    def go(self):
        for path in PATHS:
            self.client.get(path, name=f"fast {path}")
        self.client.get("http://elsewhere.invalid/direct", name="fast direct")


class Plain(HttpUser):
    wait_time = constant(0.5)

    @task
    def go(self):
        for path in PATHS:
            self.client.get(path)  # unnamed: Locust names it by the path it asked for
        self.client.get("http://elsewhere.invalid/direct", name="plain direct")
"""

NOT_ALLOWED = (
    "{host} is not loopback and not allowed for this run (add it to hosts.allow in "
    "budgets.yaml or pass --allow-host {host})"
)
# What a request that did leave loopback meets inside the namespace: no resolver, no route.
ESCAPED = ("gaierror", "name resolution", "Name or service", "unreachable", "Errno")


def _refused_redirect(location: str, host: str) -> str:
    return (
        f"HostNotAllowed('paybench refused to follow a redirect to {location}: "
        + NOT_ALLOWED.format(host=host)
        + "')"
    )


def test_fast_and_plain_users_never_follow_a_redirect_off_the_allow_list(tmp_path: Path) -> None:
    """Regression: a target answering ``302 Location: http://elsewhere.invalid/`` sent the
    load there, with FastHttpUser and with HttpUser; a redirect to an allowed host (loopback,
    or --allow-host) is still followed."""
    locustfile = tmp_path / "mine.py"
    locustfile.write_text(USER_LOCUSTFILE)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text('version: 1\nrun:\n  count: ">= 1"\n')
    out = tmp_path / "reports"
    result = run_isolated(
        tmp_path,
        [
            "run",
            "--locustfile",
            str(locustfile),
            "--host",
            "{URL}",
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
            "--allow-host",
            "allowed.invalid",
        ],
    )
    assert result["returncode"] in (0, 1), result["stdout"] + result["stderr"]
    found = failures(only_run_dir(out))
    elsewhere = _refused_redirect("http://elsewhere.invalid/", "elsewhere.invalid")
    testnet = _refused_redirect("http://192.0.2.1/", "192.0.2.1")
    direct = (
        "HostNotAllowed('paybench refused a request to http://elsewhere.invalid/direct: "
        + NOT_ALLOWED.format(host="elsewhere.invalid")
        + "')"
    )
    for away, tn, straight in (
        ("fast /away", "fast /testnet", "fast direct"),
        ("/away", "/testnet", "plain direct"),
    ):
        assert found.get(("GET", away)) == [elsewhere], found
        assert found.get(("GET", tn)) == [testnet], found
        assert found.get(("GET", straight)) == [direct], found
    # The allowed name was followed: it met the namespace's missing resolver, not a refusal.
    # (HttpSession names a failed redirect hop by the hop's own path.)
    for followed in (("GET", "fast /allowed-away"), ("GET", "/")):
        messages = found.get(followed, [])
        assert messages and all("gaierror" in m for m in messages), found
    assert not any(("local" in name or name == "/ok") for (_, name) in found), found
    seen = result["seen"]["paths"]
    assert seen.get("/local", 0) >= 2 and seen.get("/ok", 0) == seen["/local"], seen
    refused = [m for ms in found.values() for m in ms if "HostNotAllowed" in m]
    assert refused and not any(word in m for m in refused for word in ESCAPED)


def test_the_built_in_scenarios_never_follow_a_redirect_off_the_allow_list(
    tmp_path: Path,
) -> None:
    """Regression: the built-in payments scenarios (FastHttpUser) followed a target's
    redirect to any host; now the request fails with a message that names it."""
    out = tmp_path / "reports"
    result = run_isolated(
        tmp_path,
        [
            "run",
            "--host",
            "{URL}",
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--run-time",
            "2s",
            "--out",
            str(out),
            "--no-history",
        ],
        # Healthy health endpoints (the preflight passes); every other path redirects away.
        server_args=("--others-redirect-to", "http://elsewhere.invalid/"),
    )
    assert result["returncode"] in (1, 3), result["stdout"] + result["stderr"]
    assert "Traceback" not in result["stderr"]
    found = failures(only_run_dir(out))
    plans = found.get(("GET", "/api/plans"))
    assert plans == [
        "CatchResponseError('expected 200, got no response (HostNotAllowed: paybench refused "
        "to follow a redirect to http://elsewhere.invalid/: "
        + NOT_ALLOWED.format(host="elsewhere.invalid")
        + ")')"
    ], found
    every = [m for ms in found.values() for m in ms]
    assert not any(word in m for m in every for word in ESCAPED), every
    assert result["seen"]["paths"].get("/api/plans", 0) >= 1
