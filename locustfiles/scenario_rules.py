"""The pure rules of paybench's scenarios: no Locust, no gevent, no network, no clock.

``payments.py`` and ``shapes.py`` run these inside Locust; the unit tests import them
directly (importing ``locust`` would monkey-patch the test process with gevent).

- ``polling_schedule``: when a merchant checks an order's status, after PhonePe's
  reconciliation schedule, compressed by a time scale.
- ``FractionPicker``: which deliveries are failed / duplicate / forged, spread evenly.
- ``webhook_body`` / ``forged_authorization``: what PhonePe's servers send.
- ``status_problem`` and friends: the actionable failure messages every request carries.
- ``ScenarioConfig``: the knobs, validated once, with the option that set each in messages.
- ``spike_tick`` / ``ramp_tick`` / ``steps_tick``: the load shapes' arithmetic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.target.auth import webhook_authorization

# PhonePe's v1 mandatory reconciliation schedule (check-status-api-1, see
# docs/scenarios.md): a first check 20-25 s after the start, then (interval, span) phases,
# then one check a minute until the timeout. v2 publishes no schedule; using v1's for v2
# is the documented assumption.
FIRST_CHECK_S = 20.0
POLL_PHASES_S: tuple[tuple[float, float], ...] = (
    (3.0, 30.0),
    (6.0, 60.0),
    (10.0, 60.0),
    (30.0, 60.0),
)
TAIL_INTERVAL_S = 60.0
POLL_TIMEOUT_S = 900.0  # 15 min, as check-status-api-3 and the v3 pages say

FINAL_STATES = frozenset({"COMPLETED", "FAILED"})
# PhonePe's SDK types state as a free string and its fixtures hold EXPIRED: final, not paid.
KNOWN_STATES = frozenset({"PENDING", "COMPLETED", "FAILED", "EXPIRED"})

EVENT_COMPLETED = "checkout.order.completed"
EVENT_FAILED = "checkout.order.failed"
MERCHANT_ID = "PAYBENCHUAT"
# PhonePe re-delivers a callback some seconds later (its retry policy is not published).
REDELIVERY_DELAY_S = 5.0
BODY_EXCERPT_CHARS = 200

HEALTH_SERVICES = ("database", "redis", "email", "payment")
HEALTH_FIELDS = ("status", "timestamp", "version", "services")


def polling_schedule(
    time_scale: float,
    first_check_s: float = FIRST_CHECK_S,
    timeout_s: float = POLL_TIMEOUT_S,
) -> list[float]:
    """Seconds after the payment started at which its status is checked, ascending.

    PhonePe's schedule: first check at 20 s (``first_check_s``), then every 3 s for 30 s,
    every 6 s for 60 s, every 10 s for 60 s, every 30 s for 60 s, then every 60 s until
    ``timeout_s`` (15 min): 29 checks in the first 230 s, 40 in all. Every offset is then
    multiplied by ``time_scale`` so that a short run sees whole journeys (0.02 puts the
    first check at 0.4 s).
    """
    if not time_scale > 0 or math.isinf(time_scale):
        raise ValueError(f"time_scale must be a positive number, got {time_scale!r}")
    offsets = [first_check_s]
    t = first_check_s
    for interval, span in POLL_PHASES_S:
        for _ in range(round(span / interval)):
            t += interval
            if t > timeout_s:
                break
            offsets.append(t)
    while t + TAIL_INTERVAL_S <= timeout_s:
        t += TAIL_INTERVAL_S
        offsets.append(t)
    return [o * time_scale for o in offsets if o <= timeout_s]


class FractionPicker:
    """Says yes to a ``fraction`` of calls, spread evenly (error diffusion, not dice).

    After n calls it has said yes round(n * fraction) times, so a short run with a small
    fraction still sees the kind as soon as n * fraction reaches 0.5, and two runs with the
    same knobs send the same mix: less run-to-run noise than drawing at random.
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be within 0..1, got {fraction!r}")
        self.fraction = fraction
        self._credit = 0.5  # start half-way: the counts round to nearest, not down

    def __call__(self) -> bool:
        self._credit += self.fraction
        if self._credit >= 1.0:
            self._credit -= 1.0
            return True
        return False


def forged_authorization(username: str, password: str) -> str:
    """A well-formed header that is not the right one: signed with another password."""
    return webhook_authorization(username, password + "-forged")


def webhook_body(
    *,
    completed: bool,
    merchant_order_id: str,
    order_id: str,
    amount: int,
    expire_at_ms: int | None,
    transaction_id: str,
    now_ms: int,
) -> bytes:
    """A PhonePe v2 ``checkout.order.completed`` / ``.failed`` callback, serialised once.

    The shape is PhonePe's documented sample (phonepe-contract.md, Webhook); a failed one
    carries the error codes of PhonePe's failed order-status sample. Serialised to bytes
    here so that a duplicate re-sends exactly the same body.
    """
    state = "COMPLETED" if completed else "FAILED"
    detail: dict[str, Any] = {
        "transactionId": transaction_id,
        "paymentMode": "UPI_INTENT",
        "timestamp": now_ms,
        "amount": amount,
        "state": state,
    }
    payload: dict[str, Any] = {
        "merchantId": MERCHANT_ID,
        "merchantOrderId": merchant_order_id,
        "orderId": order_id,
        "state": state,
        "amount": amount,
        "expireAt": expire_at_ms,
        "paymentDetails": [detail],
    }
    if not completed:
        payload["errorCode"] = detail["errorCode"] = "PAYMENT_ERROR"
        payload["detailedErrorCode"] = detail["detailedErrorCode"] = "ZM"
    body = {
        "event": EVENT_COMPLETED if completed else EVENT_FAILED,
        "type": "CHECKOUT_ORDER_COMPLETED" if completed else "CHECKOUT_ORDER_FAILED",
        "payload": payload,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def body_excerpt(content: bytes | str | None, limit: int = BODY_EXCERPT_CHARS) -> str:
    """The start of a response body on one line, for a failure message."""
    if not content:
        return "(empty body)"
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def status_problem(
    expected: int, status_code: int | None, content: bytes | None, error: object = None
) -> str | None:
    """None when ``status_code`` is ``expected``; else ``expected 201, got 503: <body>``."""
    if status_code == expected:
        return None
    if not status_code:
        # FastHttpUser reports a connection failure as status 0 with the exception attached.
        reason = type(error).__name__ if error is not None else "no response"
        detail = f": {error}" if error is not None and str(error) else ""
        return f"expected {expected}, got no response ({reason}{detail})"
    return f"expected {expected}, got {status_code}: {body_excerpt(content)}"


def parse_json(content: bytes | None) -> tuple[Any, str | None]:
    """(document, None), or (None, message) when the body is not JSON."""
    if not content:
        return None, "expected a JSON body, got an empty body"
    try:
        # Decoding first spares json.loads its encoding detection (UTF-8 is JSON's rule).
        text = content.decode() if isinstance(content, bytes) else content
        return json.loads(text), None
    except ValueError:  # UnicodeDecodeError is one too
        return None, f"expected a JSON body, got: {body_excerpt(content)}"


def missing_fields(doc: Any, fields: Sequence[str]) -> str | None:
    """None when ``doc`` is an object holding every field; else a message naming them."""
    if not isinstance(doc, Mapping):
        return f"expected a JSON object, got {type(doc).__name__}"
    missing = [f for f in fields if doc.get(f) in (None, "")]
    if missing:
        return f"response lacks {', '.join(missing)}: {body_excerpt(json.dumps(doc))}"
    return None


def plan_choices(doc: Any) -> tuple[list[tuple[str, int]], str | None]:
    """[(plan id, amount in paise)] from the plan catalogue, or a message why not."""
    plans = doc.get("plans") if isinstance(doc, Mapping) else doc
    if not isinstance(plans, list) or not plans:
        return [], f"expected a non-empty list of plans, got: {body_excerpt(json.dumps(doc))}"
    choices = []
    for plan in plans:
        if not isinstance(plan, Mapping):
            return [], f"expected each plan to be an object, got: {body_excerpt(json.dumps(plan))}"
        plan_id, amount = plan.get("id"), plan.get("amount")
        if not isinstance(plan_id, str) or not plan_id:
            return [], f"a plan lacks its id: {body_excerpt(json.dumps(plan))}"
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 100:
            return (
                [],
                f"plan {plan_id} has no amount in paise >= 100: {body_excerpt(json.dumps(plan))}",
            )
        choices.append((plan_id, amount))
    return choices, None


def health_problem(doc: Any, full: bool) -> str | None:
    """None for a healthy health document; ``full`` asks for the checklist's fields too.

    The checklist's /api/health answers status, timestamp, version and the state of the
    database, redis, email and payment services; each sub-check answers at least a status.
    """
    fields = HEALTH_FIELDS if full else ("status",)
    problem = missing_fields(doc, fields)
    if problem:
        return problem
    if doc["status"] != "healthy":
        return f"status is {doc['status']!r}, not 'healthy': {body_excerpt(json.dumps(doc))}"
    if full:
        services = doc["services"]
        if not isinstance(services, Mapping):
            return f"services is not an object: {body_excerpt(json.dumps(doc))}"
        missing = [s for s in HEALTH_SERVICES if s not in services]
        if missing:
            return f"services lacks {', '.join(missing)}: {body_excerpt(json.dumps(services))}"
        unhealthy = [s for s in HEALTH_SERVICES if _service_state(services[s]) != "healthy"]
        if unhealthy:
            return (
                f"unhealthy services: {', '.join(unhealthy)}: {body_excerpt(json.dumps(services))}"
            )
    return None


def _service_state(value: Any) -> Any:
    return value.get("status") if isinstance(value, Mapping) else value


INITIATE_FIELDS = ("merchant_order_id", "order_id", "state", "expire_at")


def initiate_problem(doc: Any, amount: int) -> str | None:
    """What is wrong with an initiate answer for a plan of ``amount`` paise, or None."""
    problem = missing_fields(doc, INITIATE_FIELDS)
    if problem:
        return problem
    if doc["state"] != "PENDING":
        return f"expected state PENDING for a new order, got {doc['state']!r}"
    got = doc.get("amount")
    if got is not None and got != amount:
        return f"order amount {got!r} differs from the plan's {amount} paise"
    return None


def status_state(doc: Any, amount: int) -> tuple[str | None, str | None]:
    """(state, None) from an order-status answer, or (None, why it cannot be trusted).

    The amount must match the order's: PhonePe's checklist asks merchants to check it.
    """
    problem = missing_fields(doc, ("state",))
    if problem:
        return None, problem
    state = doc["state"]
    if state not in KNOWN_STATES:
        return (
            None,
            f"unknown order state {state!r} (expected one of {', '.join(sorted(KNOWN_STATES))})",
        )
    got = doc.get("amount")
    if got is not None and got != amount:
        return None, f"order amount {got!r} differs from the {amount} paise initiated"
    return state, None


def subscription_problem(doc: Any, plan_id: str, merchant_order_id: str) -> str | None:
    """What is wrong with the current subscription right after ``merchant_order_id`` was
    paid for ``plan_id``, or None."""
    problem = missing_fields(doc, ("status", "plan_id"))
    if problem:
        return problem
    if str(doc["status"]).upper() != "ACTIVE":
        return f"subscription status is {doc['status']!r}, not ACTIVE, after a COMPLETED payment"
    if doc["plan_id"] != plan_id:
        return f"current subscription is plan {doc['plan_id']!r}, not the {plan_id!r} just paid"
    paid_by = doc.get("merchant_order_id")
    if paid_by is not None and paid_by != merchant_order_id:
        return "current subscription comes from another order than the one just COMPLETED"
    return None


def callback_problem(doc: Any, completed: bool) -> str | None:
    """A genuine callback's answer: when the receiver says it processed it, the order must
    now be in the state the callback reported."""
    if not isinstance(doc, Mapping):
        return None  # any 200 acknowledges; only our reference target says more
    expected = "COMPLETED" if completed else "FAILED"
    if doc.get("result") == "processed" and doc.get("state") not in (None, expected):
        return f"callback processed but the order is {doc['state']!r}, not {expected}"
    return None


def duplicate_problem(doc: Any, settled_state: str | None) -> str | None:
    """A re-delivered callback must change nothing: not processed again, state unchanged."""
    if not isinstance(doc, Mapping):
        return None
    if doc.get("result") == "processed":
        return "a duplicate callback was processed again (must change nothing)"
    state = doc.get("state")
    if settled_state is not None and state is not None and state != settled_state:
        return f"the duplicate callback moved the order from {settled_state} to {state!r}"
    return None


def expiry_epoch_s(value: Any) -> float | None:
    """An order's expiry as epoch seconds: epoch ms (PhonePe's expireAt), epoch s or ISO-8601."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        # PhonePe's expireAt is epoch milliseconds; anything past year 5138 in seconds is ms.
        return value / 1000.0 if value > 1e11 else float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            return None  # a naive time could be any zone: not a deadline to act on
        return parsed.timestamp()
    return None


# ---------------------------------------------------------------------------------------
# Knobs


@dataclass(frozen=True)
class ScenarioConfig:
    """Every scenario knob, validated (``validate_config``); units in the names."""

    time_scale: float = 1.0
    payer_delay_s: float = 30.0
    think_time_s: float = 1.0
    failed_fraction: float = 0.1
    duplicate_fraction: float = 0.05
    forged_fraction: float = 0.01
    webhook_username: str = ""
    webhook_password: str = ""
    api_prefix: str = "/api"
    checkout_weight: int = 4
    webhook_weight: int = 1
    health_users: int = 1
    health_interval_s: float = 5.0

    def __repr__(self) -> str:
        # The password must never reach a log line, even through a debug repr.
        fields = {k: v for k, v in vars(self).items() if k != "webhook_password"}
        inner = ", ".join(f"{k}={v!r}" for k, v in fields.items())
        return f"ScenarioConfig({inner}, webhook_password='***')"

    def path(self, suffix: str) -> str:
        """The URL path of ``suffix`` (``/plans``) under the API prefix."""
        return self.api_prefix + suffix


# option name -> (config field, kind, lower bound, upper bound)
NUMERIC_KNOBS: dict[str, tuple[str, type, float, float]] = {
    "--time-scale": ("time_scale", float, 0.0, math.inf),
    "--payer-delay": ("payer_delay_s", float, 0.0, math.inf),
    "--think-time": ("think_time_s", float, 0.0, math.inf),
    "--failed-fraction": ("failed_fraction", float, 0.0, 1.0),
    "--duplicate-fraction": ("duplicate_fraction", float, 0.0, 1.0),
    "--forged-fraction": ("forged_fraction", float, 0.0, 1.0),
    "--checkout-weight": ("checkout_weight", int, 0, math.inf),
    "--webhook-weight": ("webhook_weight", int, 0, math.inf),
    "--health-users": ("health_users", int, 0, math.inf),
    "--health-interval": ("health_interval_s", float, 0.0, math.inf),
}


class KnobError(ValueError):
    """A knob has a value it cannot take; the message names the option and the fix."""


def validate_config(values: Mapping[str, Any]) -> ScenarioConfig:
    """``ScenarioConfig`` from a mapping of field names, or ``KnobError`` naming the option."""
    checked: dict[str, Any] = {}
    for option, (name, kind, low, high) in NUMERIC_KNOBS.items():
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise KnobError(f"{option} {value!r}: must be a number")
        if kind is int and value != int(value):
            raise KnobError(f"{option} {value!r}: must be a whole number")
        if value < low or value > high:
            upper = "" if high == math.inf else f" and at most {high:g}"
            raise KnobError(f"{option} {value!r}: must be at least {low:g}{upper}")
        checked[name] = kind(value)
    if checked["time_scale"] == 0:
        raise KnobError(
            "--time-scale 0: must be above 0 (1 = PhonePe's real schedule, 0.02 = 50x faster)"
        )
    if checked["health_interval_s"] == 0 and checked["health_users"] > 0:
        raise KnobError("--health-interval 0: must be above 0 seconds (the prober's pace)")
    if (
        checked["checkout_weight"] == 0
        and checked["webhook_weight"] == 0
        and checked["health_users"] == 0
    ):
        raise KnobError(
            "--checkout-weight, --webhook-weight and --health-users are all 0: nothing would run"
        )
    prefix = str(values["api_prefix"]).rstrip("/")
    if prefix and not prefix.startswith("/"):
        raise KnobError(f"--api-prefix {values['api_prefix']!r}: must start with '/', e.g. /api")
    username = str(values["webhook_username"] or "")
    password = str(values["webhook_password"] or "")
    if not username:
        raise KnobError("--webhook-username is empty: set it or PAYBENCH_WEBHOOK_USERNAME")
    if not password:
        raise KnobError("the webhook password is empty: set PAYBENCH_WEBHOOK_PASSWORD")
    return ScenarioConfig(
        **checked, api_prefix=prefix, webhook_username=username, webhook_password=password
    )


_DURATION_UNITS_S = {"h": 3600.0, "m": 60.0, "s": 1.0}


def seconds(text: str) -> float:
    """A duration option: ``90``, ``1.5``, ``30s``, ``2m``, ``1h30m`` -> seconds.

    Named for argparse, whose message then reads "invalid seconds value: 'x'".
    """
    rest = str(text).strip().lower()
    if not rest:
        raise ValueError("empty duration")
    try:
        return float(rest)
    except ValueError:
        pass
    total, number = 0.0, ""
    for char in rest:
        if char.isdigit() or char == ".":
            number += char
        elif char in _DURATION_UNITS_S and number:
            total += float(number) * _DURATION_UNITS_S[char]
            number = ""
        else:
            raise ValueError(f"not a duration: {text!r}")
    if number:
        raise ValueError(f"not a duration: {text!r} (a number without unit after a unit)")
    return total


# ---------------------------------------------------------------------------------------
# Load shapes: (users, spawn rate) at run time t, or None to stop. Pure arithmetic.

SPIKE_BASE_FRACTION = 0.2
# Locust warns that spawning more than 100 users/s per process "sometimes causes issues".
MAX_SPAWN_RATE = 100.0


def _rate(users: float) -> float:
    return min(max(float(users), 1.0), MAX_SPAWN_RATE)


def spike_tick(t_s: float, peak_users: int, run_time_s: float) -> tuple[int, float] | None:
    """Spike: a fifth of the peak for 30 % of the run, the peak at once for 20 %, back to
    a fifth for the remaining 50 % (does the system recover?), then stop."""
    if t_s >= run_time_s:
        return None
    base = max(1, round(peak_users * SPIKE_BASE_FRACTION))
    rate = _rate(peak_users - base)  # the whole jump, up or down, within about a second
    if 0.3 * run_time_s <= t_s < 0.5 * run_time_s:
        return peak_users, rate
    return base, rate


def ramp_tick(t_s: float, max_users: int, run_time_s: float) -> tuple[int, float] | None:
    """Stress: users grow linearly from 1 to ``max_users`` over the run, then stop; the
    budgets break somewhere on the way, and the report shows where."""
    if t_s >= run_time_s:
        return None
    users = max(1, math.ceil(max_users * t_s / run_time_s))
    return users, _rate(max_users / run_time_s * 2)


def steps_plan(start_users: int, step_users: int, max_users: int) -> list[int]:
    """The user count of each step: start, start + step, ... up to ``max_users`` included."""
    if start_users < 1 or step_users < 1 or max_users < start_users:
        raise ValueError(
            f"steps need start >= 1, step >= 1 and max >= start; got "
            f"start {start_users}, step {step_users}, max {max_users}"
        )
    counts = list(range(start_users, max_users + 1, step_users))
    if counts[-1] != max_users:
        counts.append(max_users)
    return counts


def steps_tick(t_s: float, counts: Sequence[int], step_time_s: float) -> tuple[int, float] | None:
    """Steps: hold each count of ``counts`` for ``step_time_s``, reaching it within ~1 s;
    None after the last step, so the run stops by itself."""
    index = int(t_s // step_time_s)
    if index >= len(counts):
        return None
    previous = counts[index - 1] if index > 0 else 0
    return counts[index], _rate(abs(counts[index] - previous))
