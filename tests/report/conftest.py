"""Fixtures of the report tests: the literal sample run of ``sample_runs``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.core.model import Budgets, RunResult, Verdict
from tests.report.sample_runs import make_sample


@pytest.fixture
def sample() -> tuple[RunResult, Verdict, Budgets]:
    return make_sample()


@pytest.fixture
def sample_factory() -> Callable[[], tuple[RunResult, Verdict, Budgets]]:
    return make_sample
