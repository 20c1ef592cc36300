"""Synthetic recordings shared by the scale tests, each built once per session.

Building a 4-hour soak takes seconds (``tests/scale/synthetic.py``); judging it takes a
``paybench check``. A fixture here is built once and judged by the one test module that
owns its folder (``paybench check`` and ``paybench report`` write into it).
"""

from __future__ import annotations

import pytest

from tests.scale.cases import build_case
from tests.scale.synthetic import SyntheticRun


@pytest.fixture(scope="session")
def soak_run(tmp_path_factory: pytest.TempPathFactory) -> SyntheticRun:
    """The 4-hour soak (100 users, 14 request names, 7,201 intervals of 2 s): one build per
    session, judged by the test that owns its folder (test_soak_end_to_end.py)."""
    return build_case(tmp_path_factory.mktemp("soak"), "soak")
