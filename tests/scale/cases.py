"""The synthetic run of each shipped profile that the scale tests judge, and its verdict.

Each profile's run (``tests/scale/synthetic.py``: seeded, the profile's users, length and
load shape) with the error rates below, so that the verdict is known before judging.
"""

from __future__ import annotations

from pathlib import Path

from harness.config import load_budgets
from harness.core import catalogue
from harness.core.model import AGGREGATE_KEY, request_key
from tests.scale.synthetic import PROJECT_BUDGETS, SyntheticRun, build_profile_run

STATUS = request_key(*catalogue.STATUS)
# The requests a soak sends more than once a second (thousands of samples each).
BUSY = (
    catalogue.PLANS,
    catalogue.INITIATE,
    catalogue.STATUS,
    catalogue.SUBSCRIPTION,
    catalogue.WEBHOOK_COMPLETED,
)

# What each shipped profile's synthetic run is built to show, and so what its verdict must
# be: (error rates changed from the defaults, exit code, the budgets that must break).
# Every other budget holds with a wide margin; a profile added later passes by default.
CASES: dict[str, tuple[dict[str, float], int, set[tuple[str, str]]]] = {
    # 1.5 % of status checks fail: that request's error budget (< 1 %) breaks.
    "prerelease": ({STATUS: 0.015}, 1, {(STATUS, "error_rate")}),
    # 0.7 % of the busy business requests fail (the rest of the load is a few per cent):
    # each name stays under its 1 %, the soak's whole-run budget (< 0.5 %) breaks.
    "soak": (
        {request_key(*key): 0.007 for key in BUSY},
        1,
        {(AGGREGATE_KEY, "error_rate")},
    ),
}
SEED = 7


def run_id(profile: str) -> str:
    """Shaped like a real run id (UTC start, six hex digits), one per profile."""
    return f"20251126T090000Z-{profile.encode().hex()[:6]}"


def build_case(root: Path, profile: str, format_version: int = 2) -> SyntheticRun:
    """The synthetic run of ``profile`` that `CASES` describes, under ``root``."""
    rates, _code, _broken = CASES.get(profile, ({}, 0, set()))
    warmup_s = load_budgets(PROJECT_BUDGETS, profile=profile).warmup_s or 0.0
    return build_profile_run(
        root / "runs" / run_id(profile),
        profile,
        warmup_s=warmup_s,
        error_rates=rates,
        seed=SEED,
        format_version=format_version,
    )
