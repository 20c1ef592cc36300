"""The pure rules of the scenarios: schedule, picker, payloads, checks, knobs, shapes."""

from __future__ import annotations

import json
import math

import pytest
import scenario_rules as rules

from harness.target import auth

# --- PhonePe's reconciliation schedule ------------------------------------------------------


def test_schedule_follows_phonepe_v1_reconciliation() -> None:
    schedule = rules.polling_schedule(1.0)
    # First check at 20 s, then every 3 s for 30 s (10 checks): 23 .. 50.
    assert schedule[:11] == [20.0, *range(23, 51, 3)]
    # Then every 6 s for 60 s, every 10 s for 60 s, every 30 s for 60 s.
    assert schedule[11:21] == list(range(56, 111, 6))
    assert schedule[21:27] == list(range(120, 171, 10))
    assert schedule[27:29] == [200.0, 230.0]
    # "About 29 calls in the first ~235 s, then one per minute" until 15 min.
    assert len([t for t in schedule if t <= 235]) == 29
    assert schedule[29:] == list(range(290, 891, 60))
    assert len(schedule) == 40
    assert schedule == sorted(schedule)


def test_schedule_is_compressed_by_the_time_scale() -> None:
    full = rules.polling_schedule(1.0)
    fast = rules.polling_schedule(0.02)
    assert fast[0] == pytest.approx(0.4)
    assert fast == pytest.approx([t * 0.02 for t in full])
    assert fast[-1] == pytest.approx(17.8)


def test_schedule_respects_a_shorter_timeout() -> None:
    schedule = rules.polling_schedule(1.0, timeout_s=60.0)
    assert schedule[-1] <= 60.0
    assert schedule == [20.0, *range(23, 51, 3), 56.0]


@pytest.mark.parametrize("scale", [0.0, -1.0, math.inf, math.nan])
def test_schedule_refuses_a_meaningless_scale(scale: float) -> None:
    with pytest.raises(ValueError, match="time_scale"):
        rules.polling_schedule(scale)


# --- Fractions -------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.05, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1.0])
def test_picker_says_yes_to_the_fraction_rounded(fraction: float) -> None:
    picker = rules.FractionPicker(fraction)
    yes = 0
    for n in range(1, 501):
        yes += picker()
        assert abs(yes - n * fraction) <= 0.5 + 1e-9, (n, yes)


def test_picker_first_yes_comes_as_soon_as_half_a_delivery_is_due() -> None:
    picker = rules.FractionPicker(0.2)
    assert [picker() for _ in range(5)] == [False, False, True, False, False]


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_picker_refuses_fractions_outside_0_1(fraction: float) -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        rules.FractionPicker(fraction)


# --- Webhooks --------------------------------------------------------------------------------


def test_authorization_matches_phonepe_sdk_test_vector() -> None:
    # PhonePe's SDK, tests/test_validate_callback.py: "username" / "password".
    vector = "bc842c31a9e54efe320d30d948be61291f3ceee4766e36ab25fa65243cd76e0e"
    assert auth.webhook_authorization("username", "password") == vector


def test_forged_authorization_is_well_formed_but_wrong() -> None:
    genuine = auth.webhook_authorization("paybench_local", "paybenchlocal1")
    forged = rules.forged_authorization("paybench_local", "paybenchlocal1")
    assert forged != genuine
    assert len(forged) == 64 and int(forged, 16) >= 0
    assert not auth.is_authorized(forged, genuine)


def _body(completed: bool) -> dict:
    raw = rules.webhook_body(
        completed=completed,
        merchant_order_id="PB0123",
        order_id="OMO2403071446458436434329",
        amount=19900,
        expire_at_ms=1709803425841,
        transaction_id="OM123",
        now_ms=1709803000000,
    )
    assert isinstance(raw, bytes)
    return json.loads(raw)


def test_completed_callback_has_phonepe_shape() -> None:
    body = _body(True)
    assert body["event"] == "checkout.order.completed"
    assert body["type"] == "CHECKOUT_ORDER_COMPLETED"
    payload = body["payload"]
    assert payload["merchantOrderId"] == "PB0123"
    assert payload["orderId"] == "OMO2403071446458436434329"
    assert payload["state"] == "COMPLETED"
    assert payload["amount"] == 19900
    assert payload["expireAt"] == 1709803425841
    assert payload["paymentDetails"] == [
        {
            "transactionId": "OM123",
            "paymentMode": "UPI_INTENT",
            "timestamp": 1709803000000,
            "amount": 19900,
            "state": "COMPLETED",
        }
    ]
    assert "errorCode" not in payload


def test_failed_callback_carries_the_error_codes() -> None:
    body = _body(False)
    assert body["event"] == "checkout.order.failed"
    assert body["type"] == "CHECKOUT_ORDER_FAILED"
    assert body["payload"]["state"] == "FAILED"
    assert body["payload"]["errorCode"] == "PAYMENT_ERROR"
    assert body["payload"]["paymentDetails"][0]["state"] == "FAILED"


# --- Failure messages ------------------------------------------------------------------------


def test_status_problem_reads_like_the_issue_says() -> None:
    body = b'{"detail": "service unavailable"}'
    assert rules.status_problem(201, 201, body) is None
    assert (
        rules.status_problem(201, 503, body)
        == 'expected 201, got 503: {"detail": "service unavailable"}'
    )


def test_status_problem_truncates_long_bodies_to_one_line() -> None:
    message = rules.status_problem(200, 500, b"x" * 1000 + b"\n\n tail")
    assert message is not None
    assert message.startswith("expected 200, got 500: xxx")
    assert message.endswith("...")
    assert len(message) == len("expected 200, got 500: ") + rules.BODY_EXCERPT_CHARS
    assert rules.body_excerpt(b'{"a":\n  1}') == '{"a": 1}'
    assert rules.status_problem(200, 502, b"") == "expected 200, got 502: (empty body)"


def test_status_problem_names_a_connection_error() -> None:
    error = ConnectionRefusedError(111, "Connection refused")
    assert (
        rules.status_problem(200, 0, None, error)
        == "expected 200, got no response (ConnectionRefusedError: [Errno 111] Connection refused)"
    )
    assert rules.status_problem(200, 0, None) == "expected 200, got no response (no response)"


def test_parse_json() -> None:
    assert rules.parse_json(b'{"a": 1}') == ({"a": 1}, None)
    assert rules.parse_json(b"<html>oops</html>") == (
        None,
        "expected a JSON body, got: <html>oops</html>",
    )
    assert rules.parse_json(None)[1] == "expected a JSON body, got an empty body"


def test_plan_choices_accepts_the_catalogue_shapes() -> None:
    plans = [{"id": "basic", "amount": 19900}, {"id": "pro", "amount": 49900, "name": "Pro"}]
    assert rules.plan_choices({"plans": plans}) == ([("basic", 19900), ("pro", 49900)], None)
    assert rules.plan_choices(plans)[0] == [("basic", 19900), ("pro", 49900)]
    assert "non-empty list of plans" in str(rules.plan_choices({"plans": []})[1])
    assert "no amount in paise" in str(rules.plan_choices([{"id": "x", "amount": 5}])[1])
    assert "lacks its id" in str(rules.plan_choices([{"amount": 500}])[1])


HEALTHY = {
    "status": "healthy",
    "timestamp": "2026-01-01T00:00:00.000Z",
    "version": "0.1.0",
    "services": {
        "database": "healthy",
        "redis": "healthy",
        "email": "healthy",
        "payment": "healthy",
    },
}


def test_health_problem() -> None:
    assert rules.health_problem(HEALTHY, full=True) is None
    assert rules.health_problem({"status": "healthy", "latency_ms": 1.0}, full=False) is None
    unhealthy = rules.health_problem({"status": "unhealthy"}, full=False)
    assert unhealthy is not None and unhealthy.startswith("status is 'unhealthy', not 'healthy'")
    lacking = rules.health_problem({"status": "healthy", "services": {}}, full=True)
    assert lacking is not None and lacking.startswith("response lacks timestamp, version")
    down = {**HEALTHY, "services": {**HEALTHY["services"], "redis": "unhealthy"}}
    assert str(rules.health_problem(down, full=True)).startswith("unhealthy services: redis")
    partial = {**HEALTHY, "services": {"database": "healthy"}}
    assert str(rules.health_problem(partial, full=True)).startswith(
        "services lacks redis, email, payment"
    )
    nested = {**HEALTHY, "services": {s: {"status": "healthy"} for s in HEALTHY["services"]}}
    assert rules.health_problem(nested, full=True) is None


def test_expiry_formats() -> None:
    assert rules.expiry_epoch_s("2024-03-07T09:23:45.841Z") == pytest.approx(1709803425.841)
    assert rules.expiry_epoch_s(1709803425841) == pytest.approx(1709803425.841)
    assert rules.expiry_epoch_s(1709803425) == 1709803425.0
    assert rules.expiry_epoch_s("2024-03-07T09:23:45") is None  # no zone: not a deadline
    assert rules.expiry_epoch_s("soon") is None
    assert rules.expiry_epoch_s(None) is None
    assert rules.expiry_epoch_s(True) is None


ORDER = {
    "merchant_order_id": "PB1",
    "order_id": "OMO1",
    "state": "PENDING",
    "amount": 19900,
    "expire_at": "2030-01-01T00:00:00.000Z",
}


def test_initiate_problem() -> None:
    assert rules.initiate_problem(ORDER, 19900) is None
    assert rules.initiate_problem({**ORDER, "state": "COMPLETED"}, 19900) == (
        "expected state PENDING for a new order, got 'COMPLETED'"
    )
    assert rules.initiate_problem(ORDER, 49900) == (
        "order amount 19900 differs from the plan's 49900 paise"
    )
    missing = rules.initiate_problem({"state": "PENDING"}, 19900)
    assert missing is not None
    assert missing.startswith("response lacks merchant_order_id, order_id, expire_at")


def test_status_state() -> None:
    assert rules.status_state({"state": "COMPLETED", "amount": 19900}, 19900) == ("COMPLETED", None)
    assert rules.status_state({"state": "PENDING"}, 19900) == ("PENDING", None)
    assert rules.status_state({"state": "REFUNDED"}, 19900)[1] == (
        "unknown order state 'REFUNDED' (expected one of COMPLETED, EXPIRED, FAILED, PENDING)"
    )
    assert rules.status_state({"state": "COMPLETED", "amount": 100}, 19900)[1] == (
        "order amount 100 differs from the 19900 paise initiated"
    )
    assert rules.status_state(["state"], 19900)[1] == "expected a JSON object, got list"


def test_subscription_problem() -> None:
    doc = {"status": "ACTIVE", "plan_id": "basic", "merchant_order_id": "PB1"}
    assert rules.subscription_problem(doc, "basic", "PB1") is None
    assert rules.subscription_problem({**doc, "status": "SUPERSEDED"}, "basic", "PB1") == (
        "subscription status is 'SUPERSEDED', not ACTIVE, after a COMPLETED payment"
    )
    assert rules.subscription_problem(doc, "pro", "PB1") == (
        "current subscription is plan 'basic', not the 'pro' just paid"
    )
    assert rules.subscription_problem(doc, "basic", "PB2") == (
        "current subscription comes from another order than the one just COMPLETED"
    )


def test_callback_and_duplicate_problems() -> None:
    assert rules.callback_problem({"result": "processed", "state": "COMPLETED"}, True) is None
    assert rules.callback_problem({"result": "already_final", "state": "FAILED"}, True) is None
    assert rules.callback_problem({"result": "processed", "state": "FAILED"}, True) == (
        "callback processed but the order is 'FAILED', not COMPLETED"
    )
    assert rules.callback_problem(["ok"], True) is None  # any 200 acknowledges
    assert (
        rules.duplicate_problem({"result": "duplicate", "state": "COMPLETED"}, "COMPLETED") is None
    )
    assert rules.duplicate_problem({"result": "processed"}, "COMPLETED") == (
        "a duplicate callback was processed again (must change nothing)"
    )
    assert rules.duplicate_problem({"result": "duplicate", "state": "FAILED"}, "COMPLETED") == (
        "the duplicate callback moved the order from COMPLETED to 'FAILED'"
    )


# --- Knobs -----------------------------------------------------------------------------------

DEFAULT_VALUES = {
    **{name: getattr(rules.ScenarioConfig(), name) for name, *_ in rules.NUMERIC_KNOBS.values()},
    "api_prefix": "/api",
    "webhook_username": "paybench_local",
    "webhook_password": "paybenchlocal1",
}


def test_defaults_are_valid() -> None:
    config = rules.validate_config(DEFAULT_VALUES)
    assert config.path("/plans") == "/api/plans"
    assert config.time_scale == 1.0


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("time_scale", 0, "--time-scale 0: must be above 0"),
        ("time_scale", -2.0, "--time-scale -2.0: must be at least 0"),
        ("failed_fraction", 1.5, "--failed-fraction 1.5: must be at least 0 and at most 1"),
        ("forged_fraction", -0.1, "--forged-fraction -0.1: must be at least 0 and at most 1"),
        ("checkout_weight", 2.5, "--checkout-weight 2.5: must be a whole number"),
        ("payer_delay_s", "soon", "--payer-delay 'soon': must be a number"),
        ("health_interval_s", 0.0, "--health-interval 0: must be above 0 seconds"),
        ("api_prefix", "api", "--api-prefix 'api': must start with '/'"),
        ("webhook_username", "", "--webhook-username is empty"),
        ("webhook_password", None, "the webhook password is empty: set PAYBENCH_WEBHOOK_PASSWORD"),
    ],
)
def test_bad_knobs_name_the_option(name: str, value: object, message: str) -> None:
    with pytest.raises(rules.KnobError) as caught:
        rules.validate_config({**DEFAULT_VALUES, name: value})
    assert str(caught.value).startswith(message)


def test_nothing_to_run_is_refused() -> None:
    zero = {**DEFAULT_VALUES, "checkout_weight": 0, "webhook_weight": 0, "health_users": 0}
    with pytest.raises(rules.KnobError, match="all 0: nothing would run"):
        rules.validate_config(zero)


def test_api_prefix_is_normalised() -> None:
    assert (
        rules.validate_config({**DEFAULT_VALUES, "api_prefix": "/v1/api/"}).path("/x")
        == "/v1/api/x"
    )
    assert rules.validate_config({**DEFAULT_VALUES, "api_prefix": ""}).path("/plans") == "/plans"


def test_password_never_shows_in_repr() -> None:
    config = rules.validate_config({**DEFAULT_VALUES, "webhook_password": "s3cretValue9"})
    assert "s3cretValue9" not in repr(config)
    assert "s3cretValue9" not in str(config)
    assert "webhook_password='***'" in repr(config)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("1.5", 1.5), ("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0), ("1m30s", 90.0)],
)
def test_seconds(text: str, seconds: float) -> None:
    assert rules.seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "1m30"])
def test_seconds_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        rules.seconds(text)


# --- Shapes ----------------------------------------------------------------------------------


def test_spike_shape() -> None:
    assert rules.spike_tick(0.0, 100, 600) == (20, 80.0)
    assert rules.spike_tick(179.0, 100, 600) == (20, 80.0)
    assert rules.spike_tick(180.0, 100, 600) == (100, 80.0)
    assert rules.spike_tick(299.0, 100, 600) == (100, 80.0)
    assert rules.spike_tick(300.0, 100, 600) == (20, 80.0)
    assert rules.spike_tick(600.0, 100, 600) is None
    assert rules.spike_tick(200.0, 1000, 600) == (1000, rules.MAX_SPAWN_RATE)
    assert rules.spike_tick(0.0, 3, 60) == (1, 2.0)


def test_ramp_shape() -> None:
    assert rules.ramp_tick(0.0, 500, 900) == (1, pytest.approx(1.111, abs=1e-3))
    assert rules.ramp_tick(450.0, 500, 900)[0] == 250
    assert rules.ramp_tick(899.0, 500, 900)[0] == 500
    assert rules.ramp_tick(900.0, 500, 900) is None


def test_steps_shape() -> None:
    counts = rules.steps_plan(10, 10, 45)
    assert counts == [10, 20, 30, 40, 45]
    assert rules.steps_tick(0.0, counts, 60) == (10, 10.0)
    assert rules.steps_tick(59.9, counts, 60) == (10, 10.0)
    assert rules.steps_tick(60.0, counts, 60) == (20, 10.0)
    assert rules.steps_tick(240.0, counts, 60) == (45, 5.0)
    assert rules.steps_tick(300.0, counts, 60) is None
    assert rules.steps_plan(5, 10, 5) == [5]
    assert rules.steps_tick(0.0, [500], 60) == (500, rules.MAX_SPAWN_RATE)


def test_steps_plan_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max >= start"):
        rules.steps_plan(50, 10, 40)
    with pytest.raises(ValueError, match="step >= 1"):
        rules.steps_plan(10, 0, 40)
