"""PhonePe v2 webhook authentication, as PhonePe's own SDK checks it.

PhonePe sends ``Authorization: sha256hex(username + ":" + password)`` (plain lowercase hex,
no scheme) with every webhook; the merchant configured the username and password on the
PhonePe dashboard. The scenarios import this module to sign the webhooks they send, so it
imports only the standard library (no FastAPI).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

# Documented local defaults; PhonePe's rules: username 5-20 of [A-Za-z0-9_], password 8-20
# letters and digits. Both pass those rules.
DEFAULT_WEBHOOK_USERNAME = "paybench_local"
DEFAULT_WEBHOOK_PASSWORD = "paybenchlocal1"
USERNAME_ENV = "PAYBENCH_WEBHOOK_USERNAME"
PASSWORD_ENV = "PAYBENCH_WEBHOOK_PASSWORD"


def webhook_authorization(username: str, password: str) -> str:
    """The ``Authorization`` header value PhonePe sends: sha256hex(username:password)."""
    return hashlib.sha256(f"{username}:{password}".encode()).hexdigest()


def webhook_credentials(environ: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(username, password) from the environment, falling back to the local defaults."""
    env = os.environ if environ is None else environ
    return (
        env.get(USERNAME_ENV) or DEFAULT_WEBHOOK_USERNAME,
        env.get(PASSWORD_ENV) or DEFAULT_WEBHOOK_PASSWORD,
    )


def is_authorized(header_value: str | None, expected: str) -> bool:
    """True when the header equals the expected digest (constant-time comparison)."""
    if not header_value:
        return False
    # PhonePe's SDK compares with ==; a constant-time compare gives the same answers
    # without leaking how many leading characters matched.
    return hmac.compare_digest(header_value.strip().encode(), expected.encode())
