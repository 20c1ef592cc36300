"""Fixtures for the scenario tests.

The pure helpers beside ``payments.py`` are top-level modules (Locust puts the locustfile's
folder on sys.path); the tests import them the same way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

LOCUSTFILES = Path(__file__).resolve().parents[2] / "locustfiles"
if str(LOCUSTFILES) not in sys.path:
    sys.path.insert(0, str(LOCUSTFILES))


@pytest.fixture
def reference_target() -> Iterator[Callable[..., object]]:
    """A factory of reference targets on loopback, each stopped at the end of the test."""
    # Imported here: collecting the unit tests needs no FastAPI.
    from harness.target.process import ReferenceTarget

    started: list[ReferenceTarget] = []

    def start(**overrides: object) -> ReferenceTarget:
        target = ReferenceTarget(overrides=overrides)
        started.append(target)
        return target.start()

    try:
        yield start
    finally:
        for target in started:
            target.stop()
