"""Which hosts a load test may reach (pure: no DNS, no network).

Loopback is always allowed; any other host only when budgets.yaml lists it under
``hosts.allow`` or the user passes ``--allow-host HOST``. The check looks at the host name
as written and never resolves it: a name that happens to resolve to 127.0.0.1 is still a
name someone could point at production tomorrow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from harness.errors import ConfigError

_WHY = "a load test must never reach production or PhonePe by accident"


def _normalise(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_loopback(host: str) -> bool:
    """``localhost``, 127.0.0.0/8 and ::1 (also as an IPv4-mapped IPv6 address)."""
    host = _normalise(host)
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


def url_host(url: str) -> str:
    """The host name of a target URL, after checking it is an http(s) URL with a host."""
    text = url.strip()
    if not text:
        raise ConfigError(
            "host: empty URL; pass a target such as --host https://staging.example.internal"
        )
    if "://" not in text:
        raise ConfigError(
            f"host {url!r} has no scheme; write it as a URL, e.g. http://{text} or https://{text}"
        )
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(
            f"host {url!r} is not a valid URL ({exc}); write e.g. https://host:8443"
        ) from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"host {url!r} has the scheme {parts.scheme!r}; "
            "paybench loads http:// or https:// targets"
        )
    if not parts.hostname:
        raise ConfigError(
            f"host {url!r} names no host; write e.g. https://staging.example.internal"
        )
    if port == 0:
        raise ConfigError(f"host {url!r} has port 0; give the port the target listens on")
    return _normalise(parts.hostname)


def check_host(url: str, allowed: Sequence[str], allow_flags: Sequence[str] = ()) -> None:
    """Refuse a target that is neither loopback nor explicitly allowed (ConfigError, exit 2).

    ``allowed`` comes from budgets.yaml ``hosts.allow``; ``allow_flags`` from
    ``--allow-host HOST`` options. Host names compare case-insensitively, as DNS does.
    """
    # Checked even for a loopback target: a URL given as --allow-host is a mistake to name now.
    for flag in allow_flags:
        if "://" in flag or "/" in flag:
            name = (urlsplit(flag).hostname if "://" in flag else None) or flag.split("/")[0]
            raise ConfigError(
                f"--allow-host {flag}: expected a host name, not a URL; pass --allow-host {name}"
            )
    host = url_host(url)
    if is_loopback(host):
        return
    # By name only: a production host is production on any port and any path.
    permitted = {_normalise(h) for h in (*allowed, *allow_flags)}
    if host in permitted:
        return
    raise ConfigError(
        f"host {host} is not loopback and not allowed: add it to hosts.allow in budgets.yaml "
        f"or pass --allow-host {host} ({_WHY})"
    )
