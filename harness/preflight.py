"""The preflight: before any load, the target answers what the scenarios need, else exit 3.

What it asks depends on the scenarios. The built-in payments scenarios need the four
health endpoints of the production checklist, each answering 200 with a JSON ``status`` of
healthy/ok/up (``PAYMENTS_CHECKS``); another locustfile gets what its budgets file
declares under ``preflight:`` (paths or URLs and the status each must answer), or nothing.
Declared checks come on top of the payments ones for the built-in scenarios.

Redirects are not followed (a redirect answers its own status), and the Basic auth of
``PAYBENCH_HOST_USERNAME``/``PAYBENCH_HOST_PASSWORD`` is sent to the target's own origin
only, as the load generator does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import httpx

from harness.core.hosts import basic_credentials
from harness.core.model import Budgets, PreflightCheck
from harness.errors import TargetError

HEALTH_PATHS = (
    "/api/health",
    "/api/health/database",
    "/api/health/redis",
    "/api/payments/v2/health",
)
PAYMENTS_CHECKS = tuple(PreflightCheck(url=p, status=200, healthy_json=True) for p in HEALTH_PATHS)
PREFLIGHT_TIMEOUT_S = 10.0
_HEALTHY = ("healthy", "ok", "up")
_EXCERPT_CHARS = 120


def preflight_checks(budgets: Budgets, builtin: bool) -> tuple[tuple[PreflightCheck, ...], float]:
    """The checks of a run and the time they may take together: the payments health checks
    for the built-in scenarios, then whatever ``budgets`` declares."""
    declared = budgets.preflight
    checks = (PAYMENTS_CHECKS if builtin else ()) + (declared.checks if declared else ())
    timeout_s = PREFLIGHT_TIMEOUT_S
    if declared is not None and declared.timeout_s is not None:
        timeout_s = declared.timeout_s
    return checks, timeout_s


def preflight(
    base_url: str,
    checks: Sequence[PreflightCheck] = PAYMENTS_CHECKS,
    timeout_s: float = PREFLIGHT_TIMEOUT_S,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Ask every check once; TargetError (exit 3) naming each URL that answered wrong, or
    the first that did not answer at all. Takes at most about ``timeout_s``."""
    if not checks:
        return
    credentials = basic_credentials(os.environ if environ is None else environ)
    per_request = httpx.Timeout(timeout_s / len(checks))
    problems: list[str] = []
    with httpx.Client(
        base_url=base_url, timeout=per_request, trust_env=False, follow_redirects=False
    ) as client:
        origin = client.base_url.copy_with(raw_path=b"/")
        for check in checks:
            url = client.build_request("GET", check.url).url
            auth = credentials if url.copy_with(raw_path=b"/") == origin else None
            try:
                r = client.get(check.url, auth=auth)
            except httpx.HTTPError as e:
                reason = type(e).__name__ if not str(e) else str(e)
                raise TargetError(
                    f"preflight: {url} did not answer ({reason}); "
                    "is the target running and the --host right?"
                ) from None
            problem = _problem(check, r)
            if problem is not None:
                where = f" ({check.key_path})" if check.key_path else ""
                problems.append(f"{url}{where} {problem}")
    if problems:
        raise TargetError(f"preflight: {base_url} is unhealthy: {'; '.join(problems)}")


def _problem(check: PreflightCheck, r: httpx.Response) -> str | None:
    if r.status_code != check.status:
        excerpt = r.text[:_EXCERPT_CHARS]
        return f"answered {r.status_code}, expected {check.status}: {excerpt!r}"
    if not check.healthy_json:
        return None
    try:
        body = r.json()
    except ValueError:
        return f"answered {r.status_code} but not JSON"
    status = body.get("status") if isinstance(body, dict) else None
    if status not in _HEALTHY:
        return f"says status={status!r}"
    return None
