"""The request names that paybench's own scenarios (``locustfiles/payments.py``) emit.

The scenarios import these names, so a budget can be checked against them before a run:
a glob in budgets.yaml that matches none of them is a typo, not a budget.
"""

from __future__ import annotations

from harness.core.model import request_key

# Bump when the scenarios change what they send: comparisons refuse to mix versions.
SCENARIO_VERSION = "1"

PLANS = ("GET", "/api/plans")
INITIATE = ("POST", "/api/payments/v2/initiate")
STATUS = ("GET", "/api/payments/v2/status/[merchant_order_id]")
SUBSCRIPTION = ("GET", "/api/subscriptions/current")
WEBHOOK_COMPLETED = ("POST", "/api/payments/v2/webhook [completed]")
WEBHOOK_FAILED = ("POST", "/api/payments/v2/webhook [failed]")
WEBHOOK_DUPLICATE = ("POST", "/api/payments/v2/webhook [duplicate]")
WEBHOOK_FORGED = ("POST", "/api/payments/v2/webhook [forged]")
HEALTH = ("GET", "/api/health")
HEALTH_DATABASE = ("GET", "/api/health/database")
HEALTH_REDIS = ("GET", "/api/health/redis")
HEALTH_PAYMENTS = ("GET", "/api/payments/v2/health")
# One entry per journey, initiate to the final state the client saw (FLOW is not HTTP).
FLOW_CHECKOUT = ("FLOW", "checkout: initiate -> confirmed")
FLOW_CHECKOUT_FAILED = ("FLOW", "checkout: initiate -> failed")

ALL = (
    PLANS,
    INITIATE,
    STATUS,
    SUBSCRIPTION,
    WEBHOOK_COMPLETED,
    WEBHOOK_FAILED,
    WEBHOOK_DUPLICATE,
    WEBHOOK_FORGED,
    HEALTH,
    HEALTH_DATABASE,
    HEALTH_REDIS,
    HEALTH_PAYMENTS,
    FLOW_CHECKOUT,
    FLOW_CHECKOUT_FAILED,
)

REQUEST_KEYS = tuple(request_key(t, n) for t, n in ALL)
