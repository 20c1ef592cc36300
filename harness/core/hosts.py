"""Which hosts a load test may reach, and which URLs are safe to hand to an HTTP client
(pure: no DNS, no network).

Loopback is always allowed; any other host only when budgets.yaml lists it under
``hosts.allow`` or the user passes ``--allow-host HOST``. The check looks at the host name
as written and never resolves it: a name that happens to resolve to 127.0.0.1 is still a
name someone could point at production tomorrow.

The host check is only as good as the agreement between the parser that reads the URL here
(``urllib.parse``) and the clients that connect (requests/urllib3, geventhttpclient, httpx,
curl, browsers). So a URL that they could read differently is refused outright: a backslash
(``http://evil.invalid\\@127.0.0.1`` is 127.0.0.1 to urlsplit and evil.invalid to urllib3),
whitespace and control characters (urlsplit silently drops a tab), non-ASCII and
percent-escapes in the host, user info (``user:password@``), and a trailing dot
(``localhost.`` is a name to resolve through DNS, not loopback).

Credentials that people put into ``--host`` go into ``PAYBENCH_HOST_USERNAME`` and
``PAYBENCH_HOST_PASSWORD`` instead (``basic_credentials``): never into a command line,
run.json, the reports or the history.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from urllib.parse import urlsplit

from harness.errors import ConfigError

_WHY = "a load test must never reach production or PhonePe by accident"
HOST_USERNAME_ENV = "PAYBENCH_HOST_USERNAME"
HOST_PASSWORD_ENV = "PAYBENCH_HOST_PASSWORD"
CREDENTIALS_FIX = (
    f"remove them and set {HOST_USERNAME_ENV} and {HOST_PASSWORD_ENV} instead "
    "(sent as Basic auth to the target; see docs/budgets.md)"
)

# A problem with a URL or a name: (what is wrong, how to fix it).
Problem = tuple[str, str]


def _normalise(host: str) -> str:
    """An allow-list entry as compared: lower case, no brackets, no trailing dot.

    Only entries are forgiven their trailing dot (``staging.example.internal.`` names the
    same host); a URL with one is refused before it gets here.
    """
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1 (also as an IPv4-mapped IPv6 address).

    ``localhost.`` (a trailing dot) is not: the resolver asks DNS for it.
    """
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    # ::ffff:127.0.0.1 reaches loopback too, but Python < 3.13 calls it not loopback.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def _char_name(ch: str) -> str:
    names = {
        " ": "a space",
        "\t": "a tab",
        "\n": "a line break",
        "\r": "a carriage return",
        "\\": "a backslash",
    }
    if ch in names:
        return names[ch]
    if ch.isspace():
        kind = "whitespace"
    else:
        kind = "control" if unicodedata.category(ch) == "Cc" else "invisible"
    return f"the {kind} character U+{ord(ch):04X}"


def _unsafe_char(text: str) -> str | None:
    """The first character that HTTP clients treat differently: a backslash (some read it
    as '/'), whitespace (some drop it, some stop there) or an invisible control/format one."""
    for ch in text:
        if ch == "\\" or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf"):
            return ch
    return None


def _split(url: str) -> tuple[str, str, str]:
    """(``scheme://``, authority, the rest) as clients split a URL: the authority runs up to
    the path, query or fragment."""
    prefix, rest = ("", url)
    if "://" in url:
        scheme, _, rest = url.partition("://")
        prefix = scheme + "://"
    authority = rest
    for stop in "/?#":
        authority = authority.split(stop, 1)[0]
    return prefix, authority, rest[len(authority) :]


def redacted(url: str) -> str:
    """``url`` with the password of any user info replaced by ``***``: safe to print.

    Generous on purpose: whatever precedes the last '@' and holds a ':' is taken for
    ``user:password`` (a '/' or '#' in a password moves where parsers end the authority).
    """
    prefix, _, _ = _split(url)
    rest = url[len(prefix) :]
    if "@" not in rest:
        return url
    before, _, after = rest.rpartition("@")
    if ":" in before:
        before = before.split(":", 1)[0] + ":***"
    return f"{prefix}{before}@{after}"


def _examine(url: str) -> str | Problem:
    """The host name of an http(s) URL (lower case, no brackets), or what is wrong with it."""
    ch = _unsafe_char(url)
    if ch is not None:
        what = _char_name(ch)
        return (
            f"holds {what}, which HTTP clients read differently "
            + ("(as '/' or as part of the host)" if ch == "\\" else "(some drop it, some keep it)"),
            "write the URL without it",
        )
    if "://" not in url:
        shown = redacted(url)
        return "has no scheme", f"write it as a URL, e.g. http://{shown} or https://{shown}"
    authority = _split(url)[1]
    odd = next((c for c in authority if not c.isascii()), None)
    if odd is not None:
        host_part = authority.rpartition("@")[2].split(":", 1)[0]
        try:
            ascii_form = host_part.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_form = ""
        example = f" ({ascii_form})" if ascii_form and ascii_form != host_part else ""
        return (
            f"has the non-ASCII character {odd!r} in its host part, which HTTP clients "
            "encode differently",
            f"write the host in ASCII, its xn-- form{example}",
        )
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        return f"is not a valid URL ({exc})", "write e.g. https://host:8443"
    if parts.scheme not in ("http", "https"):
        return (
            f"has the scheme {parts.scheme!r}",
            "paybench loads http:// or https:// targets",
        )
    if "@" in parts.netloc:
        return (
            "carries credentials (user info before '@'), which would end up in the run "
            "folder, the reports and the process list",
            CREDENTIALS_FIX,
        )
    host = parts.hostname
    if not host:
        return "names no host", "write e.g. https://staging.example.internal"
    if "%" in host:
        return (
            "has a percent-escape in its host, which HTTP clients decode differently",
            "write the host name plainly",
        )
    if host.endswith("."):
        plain = host.rstrip(".")
        shown = f"[{plain}]" if ":" in plain else plain
        example = f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else "")
        return (
            "ends its host name with a dot, which the resolver looks up in DNS as written "
            "(localhost. and 127.0.0.1. are not loopback)",
            f"write {example}" if plain else "write the host name without the dot",
        )
    if port == 0:
        return "has port 0", "give the port the target listens on"
    return host


def url_problem(url: str) -> Problem | None:
    """What is wrong with ``url`` as a target URL and how to fix it, or None."""
    found = _examine(url)
    return found if isinstance(found, tuple) else None


def url_host(url: str) -> str:
    """The host name of a target URL, after checking it is an http(s) URL with a host
    that every HTTP client reads the same way (ConfigError, exit 2, otherwise)."""
    if not url.strip():
        raise ConfigError(
            "host: empty URL; pass a target such as --host https://staging.example.internal"
        )
    found = _examine(url)
    if isinstance(found, tuple):
        what, fix = found
        raise ConfigError(f"host {redacted(url)!r} {what}; {fix}")
    return found


def host_name_problem(name: str) -> Problem | None:
    """What is wrong with a host name for the allow-list (hosts.allow, --allow-host), or None.

    Scheme, path, port and pattern checks are the caller's (their messages name the
    source); this refuses what clients could read differently, as in a URL.
    """
    ch = _unsafe_char(name.strip())
    if ch is not None:
        return f"holds {_char_name(ch)}", "write the host name alone, e.g. staging.example.internal"
    if not name.isascii():
        return (
            "is not ASCII, which HTTP clients encode differently",
            "write the host in ASCII, its xn-- form",
        )
    if "@" in name:
        return (
            "holds user info (before '@')",
            f"list the host name only; credentials go into {HOST_USERNAME_ENV} and "
            f"{HOST_PASSWORD_ENV}",
        )
    if "%" in name:
        return "holds a percent-escape", "write the host name plainly"
    return None


def _check_allow_flag(flag: str) -> None:
    if "://" in flag or "/" in flag:
        shown = redacted(flag)
        name = (urlsplit(flag).hostname if "://" in flag else None) or flag.split("/")[0]
        if "@" in name:
            name = name.rpartition("@")[2]
        raise ConfigError(
            f"--allow-host {shown}: expected a host name, not a URL; pass --allow-host {name}"
        )
    problem = host_name_problem(flag)
    if problem is not None:
        raise ConfigError(f"--allow-host {redacted(flag)!r} {problem[0]}; {problem[1]}")


def check_host(url: str, allowed: Sequence[str], allow_flags: Sequence[str] = ()) -> None:
    """Refuse a target that is neither loopback nor explicitly allowed (ConfigError, exit 2).

    ``allowed`` comes from budgets.yaml ``hosts.allow``; ``allow_flags`` from
    ``--allow-host HOST`` options. Host names compare case-insensitively, as DNS does.
    """
    # Checked even for a loopback target: a URL given as --allow-host is a mistake to name now.
    for flag in allow_flags:
        _check_allow_flag(flag)
    host = url_host(url)
    if is_loopback(host):
        return
    # By name only: a production host is production on any port and any path.
    if host in allowed_names((*allowed, *allow_flags)):
        return
    raise ConfigError(
        f"host {host} is not loopback and not allowed: add it to hosts.allow in budgets.yaml "
        f"or pass --allow-host {host} ({_WHY})"
    )


def allowed_names(entries: Collection[str]) -> frozenset[str]:
    """Allow-list entries as they are compared with a URL's host."""
    return frozenset(_normalise(entry) for entry in entries if entry.strip())


def refusal(url: str, allowed: Collection[str]) -> str | None:
    """Why a request to ``url`` must not be sent, or None when it may.

    ``allowed`` are normalised names (``allowed_names``). For the load generator, which asks
    before every connection it opens (a redirect included): the reason names the host and
    the fix, to be shown as the request's failure.
    """
    found = _examine(url)
    if isinstance(found, tuple):
        return f"the URL {found[0]}"
    if is_loopback(found) or found in allowed:
        return None
    return (
        f"{found} is not loopback and not allowed for this run (add it to hosts.allow in "
        f"budgets.yaml or pass --allow-host {found})"
    )


def target_url_problem(url: str, allowed: Collection[str]) -> Problem | None:
    """What is wrong with a URL or path that paybench itself requests on the target (the
    preflight), or None. A path (``/healthz``) is joined to the target's URL; an absolute
    URL must name loopback or a host in ``allowed`` (normalised names)."""
    if url.startswith("/"):
        if url.startswith("//"):
            return (
                "starts with '//', which names another host",
                "write a path on the target (/healthz) or a whole URL (http://host/healthz)",
            )
        ch = _unsafe_char(url)
        if ch is not None:
            return f"holds {_char_name(ch)}", "write the path without it (percent-encode it)"
        return None
    if "://" not in url:
        return "is neither a path nor a URL", "write a path such as /healthz, or a whole URL"
    found = _examine(url)
    if isinstance(found, tuple):
        return found
    if not (is_loopback(found) or found in allowed):
        return (
            f"names {found}, which is not loopback and not in hosts.allow",
            f"add {found} to hosts.allow in this file, or write a path on the target",
        )
    return None


def basic_credentials(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(username, password) for Basic auth to the target, from ``PAYBENCH_HOST_USERNAME``
    and ``PAYBENCH_HOST_PASSWORD``; None when neither is set."""
    username = environ.get(HOST_USERNAME_ENV, "")
    password = environ.get(HOST_PASSWORD_ENV, "")
    if not username and not password:
        return None
    return username, password
