"""The model file, overrides and their validation; the webhook signature. No server here."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import yaml

from harness.errors import ConfigError
from harness.target.auth import (
    DEFAULT_WEBHOOK_PASSWORD,
    DEFAULT_WEBHOOK_USERNAME,
    is_authorized,
    webhook_authorization,
    webhook_credentials,
)
from harness.target.server import bind, check_loopback
from harness.target.settings import Latency, known_keys, load_settings, parse_override

# --- webhook authorization -----------------------------------------------------------------


def test_phonepe_sdk_test_vector() -> None:
    # PhonePe SDK tests/test_validate_callback.py (phonepe-contract.md, section 2).
    assert (
        webhook_authorization("username", "password")
        == "bc842c31a9e54efe320d30d948be61291f3ceee4766e36ab25fa65243cd76e0e"
    )


def test_credentials_come_from_the_environment_with_local_defaults() -> None:
    assert webhook_credentials({}) == (DEFAULT_WEBHOOK_USERNAME, DEFAULT_WEBHOOK_PASSWORD)
    env = {"PAYBENCH_WEBHOOK_USERNAME": "merchant_1", "PAYBENCH_WEBHOOK_PASSWORD": "secret123"}
    assert webhook_credentials(env) == ("merchant_1", "secret123")


def test_the_defaults_follow_phonepe_rules_for_webhook_credentials() -> None:
    assert 5 <= len(DEFAULT_WEBHOOK_USERNAME) <= 20
    assert DEFAULT_WEBHOOK_USERNAME.replace("_", "").isalnum()
    assert 8 <= len(DEFAULT_WEBHOOK_PASSWORD) <= 20 and DEFAULT_WEBHOOK_PASSWORD.isalnum()


def test_is_authorized_compares_the_exact_digest() -> None:
    good = webhook_authorization("username", "password")
    assert is_authorized(good, good)
    assert not is_authorized(None, good)
    assert not is_authorized("", good)
    assert not is_authorized(good.upper(), good)
    assert not is_authorized(webhook_authorization("username", "passw0rd"), good)


def test_auth_module_does_not_import_fastapi() -> None:
    import subprocess
    import sys

    code = "import sys, harness.target.auth; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- the model -----------------------------------------------------------------------------


def test_defaults_load_and_are_healthy() -> None:
    settings = load_settings()
    assert settings.slowdown == 1.0
    assert settings.error_rate == 0.0
    assert settings.down == ()
    assert settings.payment.success_ratio == 0.9
    assert [p.id for p in settings.plans] == ["basic-monthly", "pro-monthly", "pro-yearly"]
    assert settings.capacity["checkout"] == 16
    assert settings.routes["initiate"].group == "checkout"
    assert settings.route_error_rate("health") == 0.0


def test_a_partial_file_changes_only_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(
        "slowdown: 2.5\ncapacity:\n  checkout: 4\nroutes:\n  initiate: {median_ms: 20}\n"
    )
    settings = load_settings(path)
    assert settings.slowdown == 2.5
    assert settings.capacity["checkout"] == 4
    assert settings.capacity["plans"] == 32
    assert settings.routes["initiate"].latency == Latency(20.0, 40.0)
    assert settings.source == str(path)


def test_overrides_by_dotted_key_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("seed: 9\nerror_rate: 0.1\n")
    settings = load_settings(
        path,
        {
            "slowdown": 3.0,
            "error_rate": 0.05,
            "capacity.checkout": 4,
            "routes.initiate.median_ms": 20,
            "routes.webhook": {"error_rate": 0.5},
            "down": ["redis"],
        },
    )
    assert (settings.seed, settings.slowdown, settings.error_rate) == (9, 3.0, 0.05)
    assert settings.capacity["checkout"] == 4
    assert settings.routes["initiate"].latency.median_ms == 20
    assert settings.route_error_rate("webhook") == 0.5
    assert settings.route_error_rate("plans") == 0.05
    assert settings.down == ("redis",)


def test_capacity_null_means_no_limit() -> None:
    assert load_settings(None, {"capacity.plans": None}).capacity["plans"] is None


def test_as_dict_round_trips_through_yaml(tmp_path: Path) -> None:
    settings = load_settings(None, {"slowdown": 2.0, "capacity.webhook": None, "seed": 4})
    path = tmp_path / "merged.yaml"
    path.write_text(yaml.safe_dump(settings.as_dict()))
    again = load_settings(path)
    assert again.as_dict() == settings.as_dict()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"capacity.chekout": 4},
            "target override 'capacity.chekout': unknown key; known keys: capacity.health",
        ),
        ({"sloowdown": 2}, "target override 'sloowdown': unknown key"),
        (
            {"routes.health.error_rate": 0.1},
            "target override 'routes.health.error_rate': unknown key",
        ),
        ({"slowdown.x": 1}, "target override 'slowdown.x': unknown key"),
        ({"routes": 3}, "must be a mapping"),
        ({"slowdown": 0}, "'slowdown' is 0; it must be > 0.0"),
        ({"slowdown": "3"}, "'slowdown' is '3'; it must be a number"),
        ({"error_rate": 1.5}, "'error_rate' is 1.5; it must be >= 0.0 and <= 1.0"),
        ({"seed": True}, "'seed' is True; it must be an integer"),
        ({"capacity.checkout": 0}, "'capacity.checkout' is 0; it must be >= 1"),
        ({"capacity.checkout": 2.5}, "'capacity.checkout' is 2.5; it must be an integer or null"),
        ({"routes.plans.p99_ms": 1}, "'routes.plans.p99_ms' is 1.0; it must be >= median_ms (5)"),
        (
            {"down": ["cache"]},
            "'down' is ['cache']; it must be a list of: database, redis, email, payment",
        ),
        (
            {"payment.payer_time_p99_s": 1},
            "'payment.payer_time_p99_s' is 1.0; it must be >= payer_time_median_s",
        ),
        ({"plans": []}, "'plans' is []; it must be a non-empty list"),
        (
            {"plans": [{"id": "a", "name": "A", "amount": 50, "period_days": 30}]},
            "'plans[0].amount' is 50",
        ),
        (
            {"plans": [{"id": "a b", "name": "A", "amount": 500, "period_days": 30}]},
            "'plans[0].id' is 'a b'",
        ),
    ],
)
def test_bad_overrides_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, overrides)
    assert message in caught.value.message


def test_bad_files_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("routes:\n  initiate:\n    median: 20\n")
    with pytest.raises(
        ConfigError, match=r"target config .*model\.yaml: unknown key 'routes\.initiate\.median'"
    ):
        load_settings(path)
    path.write_text("slowdown: [1\n")
    with pytest.raises(ConfigError, match=r"model\.yaml line \d+: not valid YAML"):
        load_settings(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_settings(path)
    with pytest.raises(ConfigError, match="cannot read it"):
        load_settings(tmp_path / "missing.yaml")
    path.write_text("")
    assert load_settings(path).slowdown == 1.0  # an empty file is the defaults


def test_parse_override_reads_values_as_yaml() -> None:
    assert parse_override("capacity.checkout=4") == ("capacity.checkout", 4)
    assert parse_override("down=[redis, email]") == ("down", ["redis", "email"])
    assert parse_override("capacity.plans=null") == ("capacity.plans", None)
    assert parse_override(" slowdown = 2.5") == ("slowdown", 2.5)
    with pytest.raises(ConfigError, match="write KEY=VALUE"):
        parse_override("slowdown")


def test_every_known_key_is_documented() -> None:
    """Each key is in the table whole, or as its parts (`routes.<route>.median_ms`, `plans`)."""
    doc = (Path(__file__).parents[2] / "docs" / "target.md").read_text()
    tokens = set(re.findall(r"`([^`\n]+)`", doc))

    def mentioned(part: str) -> bool:
        return any(
            t == part or t == "." + part or t.startswith(part + ".") or t.endswith("." + part)
            for t in tokens
        )

    for key in known_keys():
        assert key in tokens or all(mentioned(part) for part in key.split(".")), key


def test_lognormal_latency_has_the_given_median_and_p99() -> None:
    """Empirical quantiles of 40,000 seeded draws within a few percent of the parameters."""
    latency = Latency(median_ms=10.0, p99_ms=40.0)
    rng = random.Random(1)
    draws = sorted(latency.sample_ms(rng) for _ in range(40_000))
    assert draws[20_000] == pytest.approx(10.0, rel=0.03)
    assert draws[int(40_000 * 0.99)] == pytest.approx(40.0, rel=0.06)
    assert Latency(25.0, 25.0).sample_ms(rng, factor=2.0) == 50.0  # fixed, times the slowdown
    assert Latency(0.0, 0.0).sample_ms(rng) == 0.0


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert check_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "example.invalid", ""])
def test_other_hosts_are_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="loopback only"):
        check_loopback(host)


def test_the_listening_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    import socket

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        with pytest.raises(ConfigError, match="already in use; choose another --port or --port 0"):
            bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
