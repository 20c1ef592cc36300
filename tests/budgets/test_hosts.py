"""Which hosts a load test may reach: loopback always, others only when allowed (no DNS)."""

from __future__ import annotations

import pytest

from harness.core.hosts import check_host, is_loopback, url_host
from harness.errors import EXIT_USAGE, ConfigError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8089",
        "http://127.3.2.1",
        "https://localhost:8443/api",
        "http://LOCALHOST.",
        "http://[::1]:8000",
        "http://[::ffff:127.0.0.1]:8000",
    ],
)
def test_loopback_is_always_allowed(url: str) -> None:
    check_host(url, allowed=())


def test_other_host_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        check_host("https://staging.example.invalid/api", allowed=())
    assert caught.value.exit_code == EXIT_USAGE
    assert caught.value.message == (
        "host staging.example.invalid is not loopback and not allowed: add it to hosts.allow "
        "in budgets.yaml or pass --allow-host staging.example.invalid (a load test must never "
        "reach production or PhonePe by accident)"
    )


@pytest.mark.parametrize("url", ["http://0.0.0.0:8000", "http://10.0.0.1", "http://[::2]"])
def test_addresses_that_are_not_loopback_need_allowing(url: str) -> None:
    with pytest.raises(ConfigError, match="is not loopback and not allowed"):
        check_host(url, allowed=())


def test_a_name_that_merely_contains_localhost_is_not_loopback() -> None:
    assert not is_loopback("localhost.example.invalid")
    with pytest.raises(ConfigError, match=r"host localhost\.example\.invalid is not loopback"):
        check_host("http://localhost.example.invalid", allowed=())


def test_allowed_by_budgets_or_by_flag_case_insensitively() -> None:
    check_host("https://Staging.Example.Invalid:8443", allowed=["staging.example.invalid"])
    check_host(
        "https://staging.example.invalid", allowed=(), allow_flags=["STAGING.example.invalid."]
    )
    # Allowing one host does not allow its neighbours.
    with pytest.raises(ConfigError, match=r"host prod\.example\.invalid is not loopback"):
        check_host("https://prod.example.invalid", allowed=["staging.example.invalid"])


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("staging.example.invalid", "has no scheme; write it as a URL, e.g. http://staging"),
        ("ftp://staging.example.invalid", "has the scheme 'ftp'"),
        ("http://", "names no host"),
        ("http://staging.example.invalid:99999", "is not a valid URL"),
        ("http://staging.example.invalid:0", "has port 0"),
        ("", "empty URL"),
    ],
)
def test_bad_urls_are_named(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_host(url, allowed=())
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message


def test_allow_host_given_a_url_says_to_pass_the_name() -> None:
    with pytest.raises(
        ConfigError, match=r"--allow-host https://staging\.example\.invalid/x: expected a host name"
    ) as caught:
        check_host(
            "http://127.0.0.1", allowed=(), allow_flags=["https://staging.example.invalid/x"]
        )
    assert caught.value.message.endswith("pass --allow-host staging.example.invalid")


def test_url_host_normalises() -> None:
    assert url_host("HTTPS://Staging.Example.Invalid.:8443/api?x=1") == "staging.example.invalid"
    assert url_host("http://[::1]:80") == "::1"
