"""Fixtures of the allow-list tests."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root for `unshare -n` (a network namespace with loopback only)"
    if shutil.which("unshare") is None:
        return "needs util-linux's unshare"
    probe = subprocess.run(["unshare", "-n", "--", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return f"`unshare -n` is not permitted here: {probe.stderr.decode().strip()}"
    return None


@pytest.fixture(scope="session")
def netns() -> None:
    """Skip (with the reason) unless a network namespace of our own can be made."""
    reason = _netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
