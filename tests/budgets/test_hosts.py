"""Which hosts a load test may reach: loopback always, others only when allowed (no DNS)."""

from __future__ import annotations

import pytest

from harness.core.hosts import (
    allowed_names,
    basic_credentials,
    check_host,
    host_name_problem,
    is_loopback,
    redacted,
    refusal,
    target_url_problem,
    url_host,
)
from harness.errors import EXIT_USAGE, ConfigError


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8089",
        "http://127.3.2.1",
        "https://localhost:8443/api",
        "http://LOCALHOST",
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
    assert url_host("HTTPS://Staging.Example.Invalid:8443/api?x=1") == "staging.example.invalid"
    assert url_host("http://[::1]:80") == "::1"


# --- URLs that HTTP clients could read differently ------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        # urlsplit reads 127.0.0.1 (user info "evil.invalid\"); urllib3 connects to evil.invalid.
        ("http://evil.invalid\\@127.0.0.1:8089", "holds a backslash"),
        ("http://127.0.0.1\\.evil.invalid", "holds a backslash"),
        # urlsplit drops a tab silently: this would read as 127.0.0.1.evil.invalid elsewhere.
        ("http://127.0.0.1\t.evil.invalid:8089", "holds a tab"),
        ("http://127.0.0.1:8089 ", "holds a space"),
        (" http://127.0.0.1:8089", "holds a space"),
        ("http://127.0.0.1:8089\n", "holds a line break"),
        ("http://127.0.0.1\r:8089", "holds a carriage return"),
        ("http://127.0.0.1\x00.evil.invalid", "holds the control character U+0000"),
        ("http://127.0.0.1\x7f", "holds the control character U+007F"),
        ("http://127\u200b.0.0.1", "holds the invisible character U+200B"),
        ("http://127.0.0.1\u00a0", "holds the whitespace character U+00A0"),
        ("http://127\u30020.0.1", "has the non-ASCII character"),
        ("http://localhost\uff0eevil.invalid", "has the non-ASCII character"),
        ("http://b\u00fccher.example.invalid", "its xn-- form (xn--bcher-kva.example.invalid)"),
        ("http://127.0.0.1%2eevil.invalid", "has a percent-escape in its host"),
        ("http://[::1%25lo]:8089", "has a percent-escape in its host"),
    ],
)
def test_urls_that_clients_read_differently_are_refused(url: str, fragment: str) -> None:
    """Regression: a --host that urlsplit reads as loopback but an HTTP client connects
    elsewhere with (a backslash, whitespace, control or non-ASCII characters) is refused."""
    with pytest.raises(ConfigError) as caught:
        check_host(url, allowed=())
    assert caught.value.exit_code == EXIT_USAGE
    assert fragment in caught.value.message
    assert caught.value.message.startswith("host '")
    assert "\n" not in caught.value.message and "\t" not in caught.value.message


def test_a_backslash_is_refused_even_for_an_allowed_host() -> None:
    with pytest.raises(ConfigError, match="holds a backslash"):
        check_host(
            "https://staging.example.invalid\\@127.0.0.1", allowed=["staging.example.invalid"]
        )


def test_non_ascii_in_the_path_is_the_client_s_to_encode() -> None:
    assert url_host("http://127.0.0.1:8089/caf\u00e9") == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("http://localhost.:8089", "write http://localhost:8089"),
        ("http://127.0.0.1.:8089/api", "write http://127.0.0.1:8089"),
        ("https://LOCALHOST.", "write https://localhost"),
        ("https://staging.example.invalid.", "write https://staging.example.invalid"),
        ("http://.:8089", "write the host name without the dot"),
    ],
)
def test_a_trailing_dot_is_refused_with_the_url_to_write(url: str, fix: str) -> None:
    """Regression: ``localhost.`` and ``127.0.0.1.`` passed as loopback, but the resolver
    looks a name with a trailing dot up in DNS."""
    with pytest.raises(ConfigError) as caught:
        check_host(url, allowed=["staging.example.invalid"])
    message = caught.value.message
    assert "ends its host name with a dot" in message
    assert message.endswith(fix)
    assert not is_loopback("localhost.") and not is_loopback("127.0.0.1.")


@pytest.mark.parametrize(
    "url",
    [
        "http://admin:secret@127.0.0.1:8089",
        "http://admin@127.0.0.1:8089",
        "http://:secret@127.0.0.1:8089",
        "http://@127.0.0.1:8089",
        "https://admin:secret@staging.example.invalid",
    ],
)
def test_credentials_in_the_host_are_refused_without_echoing_the_password(url: str) -> None:
    """Regression: user info in --host was copied into run.json, the reports, the history and
    the process list, and turned into Basic auth over the webhook's own Authorization."""
    with pytest.raises(ConfigError) as caught:
        check_host(url, allowed=["staging.example.invalid"])
    message = caught.value.message
    assert "carries credentials" in message
    assert "secret" not in message
    assert "PAYBENCH_HOST_USERNAME and PAYBENCH_HOST_PASSWORD" in message
    assert "docs/budgets.md" in message


def test_the_credentials_message_in_full() -> None:
    with pytest.raises(ConfigError) as caught:
        url_host("http://admin:secret@127.0.0.1:8089")
    assert caught.value.message == (
        "host 'http://admin:***@127.0.0.1:8089' carries credentials (user info before '@'), "
        "which would end up in the run folder, the reports and the process list; remove them "
        "and set PAYBENCH_HOST_USERNAME and PAYBENCH_HOST_PASSWORD instead (sent as Basic auth "
        "to the target; see docs/budgets.md)"
    )


def test_a_password_that_moves_the_authority_is_still_not_echoed() -> None:
    with pytest.raises(ConfigError) as caught:
        url_host("http://admin:pa/ss@127.0.0.1")
    assert "pa/ss" not in caught.value.message and "admin:***@127.0.0.1" in caught.value.message


def test_redacted_hides_only_the_password() -> None:
    assert redacted("http://admin:secret@h:1/p") == "http://admin:***@h:1/p"
    assert redacted("admin:secret@h") == "admin:***@h"
    assert redacted("http://admin@h/p") == "http://admin@h/p"
    assert redacted("http://127.0.0.1:8089/x") == "http://127.0.0.1:8089/x"


# --- allow-list entries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "fragment"),
    [
        ("staging.example.invalid\\", "holds a backslash"),
        ("staging\t.example.invalid", "holds a tab"),
        ("staging .example.invalid", "holds a space"),
        ("staging\x00.example.invalid", "holds the control character U+0000"),
        ("st\u00e4ging.example.invalid", "is not ASCII"),
        ("admin@staging.example.invalid", "holds user info"),
        ("staging%2eexample.invalid", "holds a percent-escape"),
    ],
)
def test_allow_host_values_get_the_same_checks(flag: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_host("http://127.0.0.1:8089", allowed=(), allow_flags=[flag])
    assert caught.value.message.startswith("--allow-host '")
    assert fragment in caught.value.message
    assert "\n" not in caught.value.message


def test_host_name_problem_passes_plain_names() -> None:
    for name in ("staging.example.invalid", "STAGING.example.invalid.", "::2", "10.0.0.1"):
        assert host_name_problem(name) is None


def test_allow_host_url_with_credentials_names_only_the_host() -> None:
    with pytest.raises(ConfigError) as caught:
        check_host("http://127.0.0.1", allowed=(), allow_flags=["https://a:secret@staging.x/y"])
    assert "secret" not in caught.value.message
    assert caught.value.message.endswith("pass --allow-host staging.x")


# --- what the load generator asks before each connection ------------------------------------


def test_refusal_allows_loopback_and_the_allow_list_only() -> None:
    allowed = allowed_names(["Staging.Example.Invalid."])
    assert refusal("http://127.0.0.1:8089/x", allowed) is None
    assert refusal("http://[::1]/", allowed) is None
    assert refusal("https://staging.example.invalid/pay", allowed) is None
    assert refusal("http://elsewhere.invalid/", allowed) == (
        "elsewhere.invalid is not loopback and not allowed for this run (add it to "
        "hosts.allow in budgets.yaml or pass --allow-host elsewhere.invalid)"
    )
    assert "192.0.2.1 is not loopback" in str(refusal("http://192.0.2.1/", allowed))
    assert refusal("http://localhost./", allowed) is not None
    assert str(refusal("http://a\\@127.0.0.1/", allowed)).startswith("the URL holds a backslash")
    assert "credentials" in str(refusal("http://u:p@127.0.0.1/", allowed))


# --- URLs paybench requests itself (the preflight) ------------------------------------------


def test_target_url_problem() -> None:
    assert target_url_problem("/ready", ()) is None
    assert target_url_problem("http://127.0.0.1:9/ready", ()) is None
    assert (
        target_url_problem("https://staging.example.invalid/ready", {"staging.example.invalid"})
        is None
    )
    assert "names another host" in target_url_problem("//elsewhere.invalid/x", ())[0]
    assert "holds a backslash" in target_url_problem("/a\\b", ())[0]
    assert "neither a path nor a URL" in target_url_problem("ready", ())[0]
    assert "not in hosts.allow" in target_url_problem("https://elsewhere.invalid/r", ())[0]
    assert "carries credentials" in target_url_problem("http://u:p@127.0.0.1/r", ())[0]


def test_basic_credentials_come_from_the_environment() -> None:
    assert basic_credentials({}) is None
    assert basic_credentials({"PAYBENCH_HOST_USERNAME": "admin"}) == ("admin", "")
    assert basic_credentials(
        {"PAYBENCH_HOST_USERNAME": "admin", "PAYBENCH_HOST_PASSWORD": "s:e"}
    ) == ("admin", "s:e")
