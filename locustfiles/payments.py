"""paybench's load: checkout journeys, PhonePe's webhook deliveries and health probes.

Runs under ``paybench run`` and under plain Locust, headless or with its web UI:

    locust -f locustfiles/payments.py --config locustfiles/profiles/smoke.conf \\
        --host http://127.0.0.1:8000 --headless

Users (docs/scenarios.md has every knob, profile and request name):

- ``CheckoutUser``: plan catalogue, initiate, status polling on PhonePe's reconciliation
  schedule (compressed by ``--time-scale``) until a final state, then the current
  subscription; each journey is also one ``FLOW`` entry, initiate to the state seen.
- ``PhonePeWebhookSender``: plays PhonePe's servers for the orders of this process:
  completed / failed callbacks after the payer's delay, plus duplicates and forgeries.
- ``HealthProber``: the four health endpoints at a low, fixed pace.

Every request checks its status code and the fields the journey relies on; a failure
message says what was expected and what came back. Request names come from
``harness.core.catalogue``, so budgets can be checked against them before a run.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
import uuid
from argparse import Namespace
from dataclasses import dataclass, field, fields
from typing import Any

import arrivals
import gevent
import handoff
import scenario_rules as rules
import shapes
from gevent import GreenletExit
from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.exception import CatchResponseError, StopUser
from locust.runners import LocalRunner, MasterRunner, Runner, WorkerRunner
from locust.user.task import LOCUST_STATE_RUNNING, LOCUST_STATE_STOPPING, LOCUST_STATE_WAITING

from harness import plugin  # noqa: F401  (exact HDR recording; registers --paybench-dir)
from harness.core import catalogue
from harness.target.auth import (
    DEFAULT_WEBHOOK_PASSWORD,
    DEFAULT_WEBHOOK_USERNAME,
    PASSWORD_ENV,
    USERNAME_ENV,
    webhook_authorization,
)

log = logging.getLogger("paybench.scenarios")

_DEFAULTS = rules.ScenarioConfig()
# A sender never waits longer than this for an order, so a stopping run never waits on it.
SENDER_IDLE_S = 1.0


# ---------------------------------------------------------------------------------------
# Knobs


@events.init_command_line_parser.add_listener
def add_knobs(parser: Any, **_kwargs: Any) -> None:
    """The scenario knobs: options, config-file keys, environment variables, web UI fields.

    ``python locustfiles/payments.py --help`` lists them (see the end of this file)."""

    def knob(option: str, env: str, kind: Any, default: Any, text: str, **extra: Any) -> None:
        # %% because argparse formats help strings.
        shown = "none" if default is None else default
        parser.add_argument(
            option,
            type=kind,
            env_var=env,
            default=default,
            help=f"{text} [env {env}; default {shown}]".replace("%", "%%"),
            **extra,
        )

    d = _DEFAULTS
    knob(
        "--time-scale",
        "PAYBENCH_TIME_SCALE",
        float,
        d.time_scale,
        "Multiplies PhonePe's status-polling schedule and the payer delay: 1 is real time "
        "(first status check after 20 s), 0.02 is 50 times faster (after 0.4 s)",
    )
    knob(
        "--payer-delay",
        "PAYBENCH_PAYER_DELAY",
        float,
        d.payer_delay_s,
        "Mean seconds, before --time-scale, from initiate to PhonePe's callback (each order "
        "draws 0.5-1.5 times this)",
    )
    knob(
        "--think-time",
        "PAYBENCH_THINK_TIME",
        float,
        d.think_time_s,
        "Mean seconds a checkout user waits between journeys (0.5-1.5 times this; not scaled)",
    )
    knob(
        "--failed-fraction",
        "PAYBENCH_FAILED_FRACTION",
        float,
        d.failed_fraction,
        "Share of orders whose callback is checkout.order.failed (0..1)",
    )
    knob(
        "--duplicate-fraction",
        "PAYBENCH_DUPLICATE_FRACTION",
        float,
        d.duplicate_fraction,
        "Share of delivered callbacks that PhonePe delivers a second time (0..1)",
    )
    knob(
        "--forged-fraction",
        "PAYBENCH_FORGED_FRACTION",
        float,
        d.forged_fraction,
        "Share of orders that also get a forged callback with a wrong Authorization (0..1)",
    )
    knob(
        "--webhook-username",
        USERNAME_ENV,
        str,
        None,
        f"Webhook username set on the PhonePe dashboard; unset: {DEFAULT_WEBHOOK_USERNAME}, "
        "the reference target's",
    )
    # Read from the environment by our code, not by the parser: a parsed value would be
    # shown in the web UI's page source and sent around with the options.
    parser.add_argument(
        "--webhook-password",
        type=str,
        default=None,
        is_secret=True,
        help=f"Webhook password; prefer the environment variable {PASSWORD_ENV} (a command "
        "line is visible to every local user); unset: the reference target's. Never printed",
    )
    knob(
        "--api-prefix",
        "PAYBENCH_API_PREFIX",
        str,
        d.api_prefix,
        "Path prefix of the payments API on the host (/api gives /api/plans)",
    )
    knob(
        "--checkout-weight",
        "PAYBENCH_CHECKOUT_WEIGHT",
        int,
        d.checkout_weight,
        "Weight of CheckoutUser in the user mix",
    )
    knob(
        "--webhook-weight",
        "PAYBENCH_WEBHOOK_WEIGHT",
        int,
        d.webhook_weight,
        "Weight of PhonePeWebhookSender in the user mix (every Locust process needs one)",
    )
    knob(
        "--health-users",
        "PAYBENCH_HEALTH_USERS",
        int,
        d.health_users,
        "Number of HealthProber users, whatever the user count (Locust fixed_count)",
    )
    knob(
        "--health-interval",
        "PAYBENCH_HEALTH_INTERVAL",
        rules.seconds,
        d.health_interval_s,
        "Seconds between two rounds of the four health checks, per prober",
    )
    knob(
        "--shape",
        "PAYBENCH_SHAPE",
        str,
        "none",
        "Load shape from locustfiles/shapes.py: spike, stress, steps, or none (--users, "
        "--spawn-rate and --run-time drive the run)",
        choices=("none", *shapes.SHAPES),
        include_in_web_ui=False,
    )
    knob(
        "--step-start-users",
        "PAYBENCH_STEP_START_USERS",
        int,
        10,
        "steps shape: users of the first step",
        include_in_web_ui=False,
    )
    knob(
        "--step-users",
        "PAYBENCH_STEP_USERS",
        int,
        10,
        "steps shape: users added at each step",
        include_in_web_ui=False,
    )
    knob(
        "--step-time",
        "PAYBENCH_STEP_TIME",
        rules.seconds,
        60.0,
        "steps shape: how long each step holds (90, 30s, 2m)",
        include_in_web_ui=False,
    )
    knob(
        "--step-max-users",
        "PAYBENCH_STEP_MAX_USERS",
        int,
        100,
        "steps shape: users of the last step; the run stops after it",
        include_in_web_ui=False,
    )


def config_from(options: Namespace | None) -> rules.ScenarioConfig:
    """The validated knobs; ``rules.KnobError`` names the option and the fix."""
    values = {f.name: getattr(_DEFAULTS, f.name) for f in fields(rules.ScenarioConfig)}
    if options is not None:
        for option, (name, _kind, _low, _high) in rules.NUMERIC_KNOBS.items():
            values[name] = getattr(options, option[2:].replace("-", "_"), values[name])
        values["api_prefix"] = getattr(options, "api_prefix", values["api_prefix"])
    username = getattr(options, "webhook_username", None)
    password = getattr(options, "webhook_password", None)
    values["webhook_username"] = (
        username or os.environ.get(USERNAME_ENV) or DEFAULT_WEBHOOK_USERNAME
    )
    values["webhook_password"] = (
        password or os.environ.get(PASSWORD_ENV) or DEFAULT_WEBHOOK_PASSWORD
    )
    return rules.validate_config(values)


@dataclass
class _ProcessState:
    """What the users of this Locust process share during one test (reset at test_start)."""

    config: rules.ScenarioConfig | None = None
    schedule: list[float] = field(default_factory=list)
    orders: handoff.Handoff = field(default_factory=handoff.Handoff)  # reset() gives its pool
    failed: rules.FractionPicker = field(default_factory=lambda: rules.FractionPicker(0.0))
    duplicate: rules.FractionPicker = field(default_factory=lambda: rules.FractionPicker(0.0))
    forged: rules.FractionPicker = field(default_factory=lambda: rules.FractionPicker(0.0))
    environment: Environment | None = None
    selected_classes: list[type] = field(default_factory=list)

    def reset(self, config: rules.ScenarioConfig) -> None:
        self.config = config
        self.schedule = rules.polling_schedule(config.time_scale)
        self.orders.close()
        self.orders = handoff.Handoff(deliverer=_deliverer)
        self.failed = rules.FractionPicker(config.failed_fraction)
        self.duplicate = rules.FractionPicker(config.duplicate_fraction)
        self.forged = rules.FractionPicker(config.forged_fraction)

    def current(self, environment: Environment) -> rules.ScenarioConfig:
        if self.config is None:  # users started without a test_start (Locust as a library)
            self.reset(config_from(environment.parsed_options))
        assert self.config is not None
        return self.config


STATE = _ProcessState()
# Plan catalogue bodies already validated -> their (plan id, amount) choices.
_PLANS_SEEN: dict[bytes, list[tuple[str, int]]] = {}


def _is_forked_worker(options: Namespace | None) -> bool:
    return bool(options is not None and options.worker and getattr(options, "processes", None))


@events.init.add_listener
def on_init(environment: Environment, runner: Runner | None = None, **_kwargs: Any) -> None:
    """Validate the knobs once, set the user mix and install the chosen load shape."""
    STATE.environment = environment
    STATE.selected_classes = list(environment.user_classes)
    options = environment.parsed_options
    try:
        config = config_from(options)
        if not isinstance(runner, WorkerRunner):
            apply_mix(environment, config)
            choose_shape(environment, runner, options)
    except rules.KnobError as exc:
        # The parent of --processes says it once; its forked workers exit quietly.
        if not _is_forked_worker(options):
            sys.stderr.write(f"paybench scenarios: {exc}\n")
        sys.exit(2)
    STATE.reset(config)


def apply_mix(environment: Environment, config: rules.ScenarioConfig) -> None:
    """Weights and fixed counts from the knobs; a class at 0 is not run at all."""
    # Open model: checkouts are arrivals (arrivals.py), not users; the rest stays closed-loop.
    open_model = arrivals.enabled(environment.parsed_options)
    CheckoutUser.weight = 0 if open_model else config.checkout_weight
    PhonePeWebhookSender.weight = config.webhook_weight
    HealthProber.fixed_count = config.health_users
    HealthProber.weight = 1 if config.health_users else 0
    HealthProber.paybench_pacing_s = config.health_interval_s
    environment.user_classes = [
        c for c in STATE.selected_classes if c.weight > 0 or c.fixed_count > 0
    ]
    if not environment.user_classes:
        raise rules.KnobError(
            "every selected user class has weight 0: raise --checkout-weight, --webhook-weight "
            "or --health-users, or select other classes"
        )


def choose_shape(
    environment: Environment, runner: Runner | None, options: Namespace | None
) -> None:
    """Install the ``--shape`` load shape; offer all of them to the web UI's class picker."""
    instances = {cls.__name__: cls() for cls in shapes.SHAPES.values()}
    environment.available_shape_classes = {
        **(environment.available_shape_classes or {}),
        **instances,
    }
    name = getattr(options, "shape", "none") if options is not None else "none"
    if not name or name == "none":
        return
    shape = instances[shapes.SHAPES[name].__name__]
    problem = shape.problem(options)  # type: ignore[arg-type]
    if problem:
        raise rules.KnobError(problem)
    shape.runner = runner
    environment.shape_class = shape


@events.test_start.add_listener
def on_test_start(environment: Environment, **_kwargs: Any) -> None:
    """Fresh hand-off queue and pickers per test; knobs as the web UI may have changed them."""
    if isinstance(environment.runner, MasterRunner):
        return  # the master runs no users
    try:
        config = config_from(environment.parsed_options)
    except rules.KnobError as exc:
        log.error("paybench scenarios: %s; keeping the values the run started with", exc)
        config = STATE.config or config_from(None)
    if isinstance(environment.runner, LocalRunner):
        # Only a single process builds its user dispatch after test_start.
        try:
            apply_mix(environment, config)
        except rules.KnobError as exc:
            log.error("paybench scenarios: %s; keeping the previous user mix", exc)
    HealthProber.paybench_pacing_s = config.health_interval_s
    STATE.reset(config)


@events.test_stopping.add_listener
def stop_deliverers(**_kwargs: Any) -> None:
    """The process's own deliverers stop with the run (its users stop on their own)."""
    STATE.orders.close()


def _deliverer(orders: handoff.Handoff) -> gevent.Greenlet:
    """One deliverer of this process's hand-off: a PhonePeWebhookSender outside Locust's
    user count, so that no process holds orders without a deliverer (handoff.py)."""
    environment = STATE.environment
    assert environment is not None, "the locustfile's init event has not run"
    if environment.host and PhonePeWebhookSender.host != environment.host:
        PhonePeWebhookSender.host = environment.host  # what Locust's runner does for its users
    sender = PhonePeWebhookSender(environment)
    sender.prepare(orders)
    return gevent.spawn(sender.deliver_until_closed)


# ---------------------------------------------------------------------------------------
# Users


class PaybenchUser(FastHttpUser):
    """Shared helpers: validated requests and sleeps that a stopping run may cut short."""

    abstract = True

    def pause(self, seconds: float) -> None:
        """Sleep like Locust's own wait: a graceful stop ends the user here, not after the
        journey (``_state`` is the flag Locust's TaskSet.wait uses for the same purpose)."""
        if seconds <= 0:
            return
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_WAITING
        gevent.sleep(seconds)
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_RUNNING

    def call(
        self,
        method: str,
        path: str,
        name: str,
        expected: int,
        check: Any = None,
        **kwargs: Any,
    ) -> Any:
        """One request with its verdict: the parsed body when the status is ``expected``
        and ``check(doc)`` (if given) returns no problem; else None, marked as failed."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as resp:
            content = resp.content
            doc = None
            if resp.status_code == expected:
                doc, problem = rules.parse_json(content)
                if problem is None and check is not None:
                    problem = check(doc)
            else:
                problem = rules.status_problem(
                    expected, resp.status_code, content, getattr(resp, "error", None)
                )
            if problem is not None:
                resp.failure(problem)
                return None
            resp.success()
            return doc

    def record_flow(
        self,
        name: str,
        started_perf: float,
        started_wall: float,
        ended_perf: float,
        problem: str | None,
    ) -> None:
        # The client's event: an arrival's (arrivals.SlippedEvent) records it twice.
        self.client.request_event.fire(
            request_type="FLOW",
            name=name,
            response_time=(ended_perf - started_perf) * 1000.0,
            response_length=0,
            exception=CatchResponseError(problem) if problem else None,
            context={},
            start_time=started_wall,
        )


class CheckoutUser(PaybenchUser):
    """A subscriber buying a plan: catalogue, initiate, status polling, subscription."""

    weight = _DEFAULTS.checkout_weight

    def wait_time(self) -> float:
        return self.config.think_time_s * random.uniform(0.5, 1.5)

    def on_start(self) -> None:
        self.config = STATE.current(self.environment)
        # One subscriber per user: its journeys follow each other, so its current
        # subscription is always the one its last COMPLETED journey paid for.
        self.user_id = "pb-" + uuid.uuid4().hex[:20]

    @task
    def checkout(self) -> None:
        choices = self.load_plans()
        if choices is None:
            return  # no catalogue, no checkout: the failure is under GET /api/plans
        plan_id, amount = random.choice(choices)
        self.journey(plan_id, amount)

    def load_plans(self) -> list[tuple[str, int]] | None:
        """The plan catalogue as (id, amount) choices; None when the request failed.

        A body byte-for-byte equal to one already validated is valid again: the catalogue
        rarely changes, and parsing it on every journey would be generator cost, not load.
        """
        with self.client.get(
            self.config.path("/plans"), name=catalogue.PLANS[1], catch_response=True
        ) as resp:
            content = resp.content
            if resp.status_code == 200 and content in _PLANS_SEEN:
                resp.success()
                return _PLANS_SEEN[content]
            problem = rules.status_problem(
                200, resp.status_code, content, getattr(resp, "error", None)
            )
            choices: list[tuple[str, int]] = []
            if problem is None:
                doc, problem = rules.parse_json(content)
                if problem is None:
                    choices, problem = rules.plan_choices(doc)
            if problem is not None:
                resp.failure(problem)
                return None
            resp.success()
        if len(_PLANS_SEEN) >= 8:
            _PLANS_SEEN.clear()  # a host whose catalogue keeps changing: start over
        _PLANS_SEEN[content] = choices
        return choices

    def journey(self, plan_id: str, amount: int) -> None:
        config = self.config
        started_wall, started_perf, started_mono = (
            time.time(),
            time.perf_counter(),
            time.monotonic(),
        )
        created = self.call(
            "POST", config.path("/payments/v2/initiate"), catalogue.INITIATE[1], 201,
            check=lambda doc: rules.initiate_problem(doc, amount),
            json={"plan_id": plan_id, "user_id": self.user_id},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )  # fmt: skip
        if created is None:
            self.record_flow(
                catalogue.FLOW_CHECKOUT[1], started_perf, started_wall, time.perf_counter(),
                f"no order: initiate failed (see {catalogue.INITIATE[0]} {catalogue.INITIATE[1]})",
            )  # fmt: skip
            return
        expiry_s = rules.expiry_epoch_s(created["expire_at"])
        order = handoff.HandedOrder(
            merchant_order_id=str(created["merchant_order_id"]),
            order_id=str(created["order_id"]),
            amount=amount,
            expire_at_ms=None if expiry_s is None else int(expiry_s * 1000),
            completed=not STATE.failed(),
        )
        payer_delay_s = config.payer_delay_s * config.time_scale * random.uniform(0.5, 1.5)
        handed = STATE.orders.put(time.monotonic() + payer_delay_s, "genuine", order)
        flow = catalogue.FLOW_CHECKOUT if order.completed else catalogue.FLOW_CHECKOUT_FAILED

        state, answered, checks, seen_perf = "PENDING", 0, 0, 0.0
        status_path = config.path("/payments/v2/status/") + order.merchant_order_id
        schedule = STATE.schedule
        for i, offset_s in enumerate(schedule):
            now = time.monotonic()
            # A slow initiate can leave several checks overdue: a client makes one, not a burst.
            if i + 1 < len(schedule) and started_mono + schedule[i + 1] <= now:
                continue
            self.pause(started_mono + offset_s - now)
            if expiry_s is not None and time.time() >= expiry_s:
                break
            doc = self.call(
                "GET", status_path, catalogue.STATUS[1], 200,
                check=lambda doc: rules.status_state(doc, order.amount)[1],
            )  # fmt: skip
            seen_perf = time.perf_counter()
            checks += 1
            if doc is not None:
                answered += 1
                state = doc["state"]
                if state != "PENDING":
                    break

        if state in rules.FINAL_STATES:
            flow = (
                catalogue.FLOW_CHECKOUT if state == "COMPLETED" else catalogue.FLOW_CHECKOUT_FAILED
            )
            problem = None
            if order.callback == "accepted" and order.settled_state not in (None, state):
                problem = (
                    f"status says {state} but the accepted callback had left the order "
                    f"{order.settled_state}"
                )
            self.record_flow(flow[1], started_perf, started_wall, seen_perf, problem)
            if state == "COMPLETED":
                paid_by = order.merchant_order_id
                self.call(
                    "GET", config.path("/subscriptions/current") + "?user_id=" + self.user_id,
                    catalogue.SUBSCRIPTION[1], 200,
                    check=lambda doc: rules.subscription_problem(doc, plan_id, paid_by),
                )  # fmt: skip
            return
        if state == "EXPIRED":
            problem = "order EXPIRED before the payment was confirmed"
        elif state == "PENDING" and expiry_s is not None and time.time() >= expiry_s:
            problem = "order expired (expire_at passed) while still PENDING"
        else:
            problem = self.pending_reason(order, answered, checks, handed)
        self.record_flow(flow[1], started_perf, started_wall, time.perf_counter(), problem)

    def pending_reason(
        self, order: handoff.HandedOrder, answered: int, checks: int, handed: bool
    ) -> str:
        """Why a journey ended still PENDING, for the person reading the failures table.
        No ids or timings in it: Locust groups failures by their message."""
        config = self.config
        head = (
            f"payment still PENDING after PhonePe's polling schedule ({checks} status checks "
            f"over {STATE.schedule[-1]:g} s at --time-scale {config.time_scale:g})"
        )
        outcome = "completed" if order.completed else "failed"
        if answered == 0:
            return f"{head}: no status check succeeded (see the {catalogue.STATUS[1]} failures)"
        if order.callback == "accepted":
            return f"{head}, although PhonePe's {outcome} callback was accepted"
        if order.callback is not None:
            return f"{head}: PhonePe's {outcome} callback was refused ({order.callback})"
        if not handed:
            return f"{head}: the webhook hand-off queue was full; raise --webhook-weight"
        if STATE.orders.senders_started == 0 and STATE.orders.pool_started == 0:
            return (
                f"{head}: no PhonePeWebhookSender runs in this Locust process to deliver the "
                "callback; raise --webhook-weight or the user count"
            )
        return (
            f"{head}: its callback was still queued (the webhook senders are behind; raise "
            "--webhook-weight or lower --payer-delay)"
        )


def arrival_journey(environment: Environment, slip_ms: float) -> None:
    """One open-model arrival: a new payer's checkout journey, ``slip_ms`` after its time."""
    if environment.host and CheckoutUser.host != environment.host:
        CheckoutUser.host = environment.host  # what Locust's runner does for its users
    user = CheckoutUser(environment)
    user.client.request_event = arrivals.SlippedEvent(environment.events.request, slip_ms)
    user.on_start()
    user.checkout()


arrivals.install(arrival_journey)


class PhonePeWebhookSender(PaybenchUser):
    """PhonePe's servers: deliver the callbacks of this process's orders as they fall due."""

    weight = _DEFAULTS.webhook_weight

    def wait_time(self) -> float:
        return 0.0  # the task itself waits in the hand-off queue, without spinning

    def on_start(self) -> None:
        self.prepare(STATE.orders)
        self.orders.senders += 1
        self.orders.senders_started += 1

    def prepare(self, orders: handoff.Handoff) -> None:
        self.config = STATE.current(self.environment)
        self.orders = orders
        self.path = self.config.path("/payments/v2/webhook")
        username, password = self.config.webhook_username, self.config.webhook_password
        self.genuine_headers = {
            "Authorization": webhook_authorization(username, password),
            "Content-Type": "application/json",
        }
        self.forged_headers = {
            "Authorization": rules.forged_authorization(username, password),
            "Content-Type": "application/json",
        }

    def on_stop(self) -> None:
        self.orders.senders -= 1

    def deliver_until_closed(self) -> None:
        """A deliverer of the hand-off's pool: the user's task, until the queue closes."""
        self._state = LOCUST_STATE_RUNNING
        while not self.orders.closed:
            self.deliver_due()

    @task
    def deliver_due(self) -> None:
        """Deliver every order as it falls due, for about ``SENDER_IDLE_S``, then let Locust
        take back control: one task for many deliveries keeps the per-request cost low."""
        deadline = time.monotonic() + SENDER_IDLE_S
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            due_s = self.wait_for_order(deadline - now)
            if due_s is None:
                return
            wait_s = due_s - time.monotonic()
            if wait_s > 0:
                # Take nothing while waiting: an earlier order (a re-delivery) may come first.
                self.pause(min(wait_s, deadline - time.monotonic()))
                continue
            item = self.orders.pop()
            if item is None:
                continue
            kind, order = item
            try:
                if kind == "duplicate":
                    self.deliver_duplicate(order)
                else:
                    self.deliver_genuine(order)
            except GreenletExit:
                # Killed mid-delivery (users ramping down): another sender delivers it.
                self.orders.put(time.monotonic(), kind, order)
                raise

    def wait_for_order(self, timeout_s: float) -> float | None:
        """The next due time, waiting (killable by a stopping run) up to ``timeout_s``."""
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_WAITING
        due_s = self.orders.next_due(timeout_s)
        if self._state == LOCUST_STATE_STOPPING:
            raise StopUser()
        self._state = LOCUST_STATE_RUNNING
        return due_s

    def deliver_genuine(self, order: handoff.HandedOrder) -> None:
        if STATE.forged():
            self.deliver_forged(order)
        if order.body is None:
            order.body = rules.webhook_body(
                completed=order.completed,
                merchant_order_id=order.merchant_order_id,
                order_id=order.order_id,
                amount=order.amount,
                expire_at_ms=order.expire_at_ms,
                transaction_id="OM" + uuid.uuid4().hex[:22].upper(),
                now_ms=int(time.time() * 1000),
            )
        name = catalogue.WEBHOOK_COMPLETED if order.completed else catalogue.WEBHOOK_FAILED
        with self.client.post(
            self.path,
            data=order.body,
            headers=self.genuine_headers,
            name=name[1],
            catch_response=True,
        ) as resp:
            problem = rules.status_problem(
                200, resp.status_code, resp.content, getattr(resp, "error", None)
            )
            doc = None
            if problem is None:
                doc, problem = rules.parse_json(resp.content)
            if problem is None:
                problem = rules.callback_problem(doc, order.completed)
            if problem is not None:
                resp.failure(problem)
                order.callback = problem
                return
            resp.success()
        order.callback = "accepted"
        if isinstance(doc, dict) and isinstance(doc.get("state"), str):
            order.settled_state = doc["state"]
        if STATE.duplicate():
            redelivery_s = rules.REDELIVERY_DELAY_S * self.config.time_scale
            self.orders.put(time.monotonic() + redelivery_s, "duplicate", order)

    def deliver_duplicate(self, order: handoff.HandedOrder) -> None:
        self.call(
            "POST", self.path, catalogue.WEBHOOK_DUPLICATE[1], 200,
            check=lambda doc: rules.duplicate_problem(doc, order.settled_state),
            data=order.body, headers=self.genuine_headers,
        )  # fmt: skip

    def deliver_forged(self, order: handoff.HandedOrder) -> None:
        """What an attacker would send: "this order is paid", signed with a wrong password."""
        body = rules.webhook_body(
            completed=True,
            merchant_order_id=order.merchant_order_id,
            order_id=order.order_id,
            amount=order.amount,
            expire_at_ms=order.expire_at_ms,
            transaction_id="OM" + uuid.uuid4().hex[:22].upper(),
            now_ms=int(time.time() * 1000),
        )
        with self.client.post(
            self.path,
            data=body,
            headers=self.forged_headers,
            name=catalogue.WEBHOOK_FORGED[1],
            catch_response=True,
        ) as resp:
            code = resp.status_code
            if code and 200 <= code < 300:
                resp.failure(
                    f"forged webhook accepted: got {code}: {rules.body_excerpt(resp.content)}"
                )
                return
            problem = rules.status_problem(401, code, resp.content, getattr(resp, "error", None))
            if problem is not None:
                resp.failure(problem)
            else:
                resp.success()


class HealthProber(PaybenchUser):
    """The four health endpoints, one round every ``--health-interval`` seconds."""

    fixed_count = _DEFAULTS.health_users
    # Paced: harness.plugin also records each probe's latency from its intended start.
    paybench_pacing_s = _DEFAULTS.health_interval_s

    def wait_time(self) -> float:
        return max(0.0, self.config.health_interval_s - (time.monotonic() - self.round_started))

    def on_start(self) -> None:
        self.config = STATE.current(self.environment)
        self.round_started = time.monotonic()

    @task
    def probe(self) -> None:
        self.round_started = time.monotonic()
        config = self.config
        probes = (
            ("/health", catalogue.HEALTH, True),
            ("/health/database", catalogue.HEALTH_DATABASE, False),
            ("/health/redis", catalogue.HEALTH_REDIS, False),
            ("/payments/v2/health", catalogue.HEALTH_PAYMENTS, False),
        )
        for suffix, (method, name), full in probes:
            self.call(
                method, config.path(suffix), name, 200,
                check=lambda doc, full=full: rules.health_problem(doc, full),
            )  # fmt: skip


if __name__ == "__main__":
    # Locust 2.47 prints --help before it imports the locustfile (locust issue #2917), so
    # `locust -f payments.py --help` lacks the options above; `python payments.py --help`
    # prints Locust's help with them.
    from locust.argument_parser import get_parser

    if sys.argv[1:] not in (["--help"], ["-h"]):
        sys.exit("usage: python locustfiles/payments.py --help (run it with: locust -f ...)")
    get_parser().print_help()
