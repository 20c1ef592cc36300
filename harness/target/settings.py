"""The reference target's behaviour model: model.yaml, a partial file over it, overrides.

``load_settings(config, overrides)`` merges the shipped defaults, an optional YAML file of
the same shape and dotted-key overrides, rejects unknown keys and bad values with one line
naming the file or override and the key, and returns frozen ``TargetSettings``.
Pure but for reading the two YAML files.
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError

SERVICES = ("database", "redis", "email", "payment")
ROUTE_GROUPS = {
    "health": "health",
    "health_database": "health",
    "health_redis": "health",
    "payments_health": "health",
    "plans": "plans",
    "initiate": "checkout",
    "status": "status",
    "webhook": "webhook",
    "subscriptions": "subscriptions",
}
# z such that P(Z <= z) = 0.99 for a standard normal: ties a lognormal's p99 to its median.
Z_99 = 2.3263478740408408
PLAN_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


@dataclass(frozen=True)
class Latency:
    """A lognormal time given by its median and 99th percentile (ms); equal = fixed."""

    median_ms: float
    p99_ms: float

    @property
    def sigma(self) -> float:
        if self.median_ms <= 0 or self.p99_ms <= self.median_ms:
            return 0.0
        return math.log(self.p99_ms / self.median_ms) / Z_99

    def sample_ms(self, rng: random.Random, factor: float = 1.0) -> float:
        """One draw, times ``factor``: median * exp(sigma * N(0, 1))."""
        if self.median_ms <= 0:
            return 0.0
        sigma = self.sigma
        value = (
            self.median_ms if sigma == 0 else rng.lognormvariate(math.log(self.median_ms), sigma)
        )
        return value * factor


@dataclass(frozen=True)
class RouteModel:
    latency: Latency
    group: str
    error_rate: float | None = None  # None: the global error_rate (health routes: never)
    cpu_ms: float = 0.0  # CPU burnt on the event loop per request (a CPU-heavy route)


@dataclass(frozen=True)
class TimedFault:
    """``fault:``: this error share from ``from_s`` to ``until_s`` (None: the end) seconds
    after the target started; 0: none."""

    error_rate: float = 0.0
    from_s: float = 0.0
    until_s: float | None = None

    def active(self, elapsed_s: float) -> bool:
        return (
            self.error_rate > 0
            and elapsed_s >= self.from_s
            and (self.until_s is None or elapsed_s < self.until_s)
        )


@dataclass(frozen=True)
class PaymentModel:
    success_ratio: float
    abandon_ratio: float
    payer_time: Latency  # in ms, like every other time here
    expire_after_s: int


@dataclass(frozen=True)
class EmailModel:
    """The confirmation email of a completed payment."""

    skip_share: float  # share of completed payments that never get their email (a bug on purpose)
    send: Latency  # the simulated send


@dataclass(frozen=True)
class Plan:
    id: str
    name: str
    amount: int  # paise
    period_days: int


@dataclass(frozen=True)
class TargetSettings:
    seed: int
    slowdown: float
    error_rate: float
    down: tuple[str, ...]
    capacity: Mapping[str, int | None]  # route group -> max requests in service
    routes: Mapping[str, RouteModel]
    phonepe: Mapping[str, Latency]  # pay, order_status, health
    payment: PaymentModel
    plans_ttl_s: float
    plans: tuple[Plan, ...]
    source: str = "defaults"  # what the settings came from, for messages
    # route group -> factor on the whole latency its routes answer with (1.0: as it is)
    latency_factor: Mapping[str, float] = field(default_factory=dict)
    email: EmailModel = EmailModel(0.0, Latency(0.0, 0.0))
    pool_size: int = 4  # database connections: SQLite threads or the PostgreSQL pool
    fault: TimedFault = TimedFault()

    def route_latency_factor(self, route: str) -> float:
        """The factor on the whole latency of ``route`` (its group's ``latency_factor``)."""
        return self.latency_factor.get(self.routes[route].group, 1.0)

    def route_error_rate(self, route: str, elapsed_s: float | None = None) -> float:
        """The route's error share; ``elapsed_s`` (since the target started) applies ``fault``."""
        model = self.routes[route]
        if model.group == "health":
            return 0.0
        if elapsed_s is not None and self.fault.active(elapsed_s):
            return self.fault.error_rate
        return self.error_rate if model.error_rate is None else model.error_rate

    def as_dict(self) -> dict[str, Any]:
        """The settings in model.yaml's shape (what ``load_settings`` reads back)."""
        return {
            "seed": self.seed,
            "slowdown": self.slowdown,
            "error_rate": self.error_rate,
            "down": list(self.down),
            "fault": {
                "error_rate": self.fault.error_rate,
                "from_s": self.fault.from_s,
                "until_s": self.fault.until_s,
            },
            "capacity": dict(self.capacity),
            "latency_factor": dict(self.latency_factor),
            "routes": {
                name: {
                    "median_ms": r.latency.median_ms,
                    "p99_ms": r.latency.p99_ms,
                    **({} if r.group == "health" else {"error_rate": r.error_rate}),
                    "cpu_ms": r.cpu_ms,
                }
                for name, r in self.routes.items()
            },
            "phonepe": {
                name: {"median_ms": lat.median_ms, "p99_ms": lat.p99_ms}
                for name, lat in self.phonepe.items()
            },
            "payment": {
                "success_ratio": self.payment.success_ratio,
                "abandon_ratio": self.payment.abandon_ratio,
                "payer_time_median_s": self.payment.payer_time.median_ms / 1000.0,
                "payer_time_p99_s": self.payment.payer_time.p99_ms / 1000.0,
                "expire_after_s": self.payment.expire_after_s,
            },
            "cache": {"plans_ttl_s": self.plans_ttl_s},
            "email": {
                "skip_share": self.email.skip_share,
                "median_ms": self.email.send.median_ms,
                "p99_ms": self.email.send.p99_ms,
            },
            "database": {"pool_size": self.pool_size},
            "plans": [
                {"id": p.id, "name": p.name, "amount": p.amount, "period_days": p.period_days}
                for p in self.plans
            ],
        }


def default_model() -> dict[str, Any]:
    """model.yaml, shipped with the package, as a plain dict."""
    text = resources.files("harness.target").joinpath("model.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def known_keys(model: Mapping[str, Any] | None = None, prefix: str = "") -> list[str]:
    """Every settable dotted key (lists count as one key)."""
    model = default_model() if model is None else model
    keys: list[str] = []
    for name, value in model.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping):
            keys.extend(known_keys(value, path + "."))
        else:
            keys.append(path)
    return keys


def load_settings(
    config: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> TargetSettings:
    """Defaults <- the YAML file ``config`` (partial allowed) <- ``overrides`` (dotted keys)."""
    model = default_model()
    source = "defaults"
    if config is not None:
        source = str(config)
        try:
            text = Path(config).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"target config {config}: cannot read it ({exc.strerror}); "
                "give an existing YAML file"
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(
                f"target config {config}{where}: not valid YAML; fix the syntax"
            ) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(
                f"target config {config}: expected a mapping of keys like model.yaml, "
                f"got {type(loaded).__name__}"
            )
        _merge(model, loaded, f"target config {config}", "")
    for key, value in (overrides or {}).items():
        _set_dotted(model, str(key), value)
        if source == "defaults":
            source = "defaults + overrides"
    return _build(model, source)


def parse_override(text: str) -> tuple[str, Any]:
    """``"capacity.checkout=4"`` -> ("capacity.checkout", 4); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"target override {text!r}: write KEY=VALUE, e.g. capacity.checkout=4")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise ConfigError(f"target override {text!r}: the value is not valid YAML") from None
    return key.strip(), value


def _merge(base: dict[str, Any], new: Mapping[str, Any], where: str, prefix: str) -> None:
    for name, value in new.items():
        path = f"{prefix}{name}"
        if not isinstance(name, str) or name not in base:
            raise ConfigError(
                f"{where}: unknown key '{path}'; known keys: {_siblings(base, prefix)}"
            )
        # Mappings merge key by key; lists and scalars are replaced whole.
        if isinstance(base[name], dict):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: '{path}' must be a mapping, got {value!r}")
            _merge(base[name], value, where, path + ".")
        else:
            base[name] = copy.deepcopy(value)


def _set_dotted(model: dict[str, Any], key: str, value: Any) -> None:
    where = f"target override '{key}'"
    node: Any = model
    parts = key.split(".")
    for depth, part in enumerate(parts):
        prefix = ".".join(parts[:depth])
        prefix = prefix + "." if prefix else ""
        if not isinstance(node, dict) or part not in node:
            known = _siblings(node, prefix) if isinstance(node, dict) else "none (not a mapping)"
            raise ConfigError(f"{where}: unknown key; known keys: {known}")
        if depth == len(parts) - 1:
            if isinstance(node[part], dict):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{where}: must be a mapping, got {value!r}")
                _merge(node[part], value, where, key + ".")
            else:
                node[part] = copy.deepcopy(value)
        else:
            node = node[part]


def _siblings(node: Mapping[str, Any], prefix: str) -> str:
    return ", ".join(f"{prefix}{k}" for k in node)


class _Checker:
    """Typed reads from the merged model; every error names the key and what is allowed."""

    def __init__(self, model: Mapping[str, Any], source: str) -> None:
        self.model = model
        self.source = source

    def get(self, path: str) -> Any:
        node: Any = self.model
        for part in path.split("."):
            node = node[part]
        return node

    def fail(self, path: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"target model ({self.source}): '{path}' is {value!r}; {allowed}")

    def number(
        self, path: str, low: float, high: float = math.inf, low_open: bool = False
    ) -> float:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.fail(path, value, "it must be a number")
        if value < low or (low_open and value == low) or value > high:
            lower = f"> {low}" if low_open else f">= {low}"
            upper = "" if high == math.inf else f" and <= {high}"
            raise self.fail(path, value, f"it must be {lower}{upper}")
        return float(value)

    def integer(
        self, path: str, low: int, high: int | None = None, nullable: bool = False
    ) -> int | None:
        value = self.get(path)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, value, "it must be an integer" + (" or null" if nullable else ""))
        if value < low or (high is not None and value > high):
            upper = "" if high is None else f" and <= {high}"
            raise self.fail(path, value, f"it must be >= {low}{upper}")
        return value

    def latency(self, path: str) -> Latency:
        median = self.number(f"{path}.median_ms", 0.0)
        p99 = self.number(f"{path}.p99_ms", 0.0)
        if p99 < median:
            raise self.fail(f"{path}.p99_ms", p99, f"it must be >= median_ms ({median:g})")
        return Latency(median, p99)


def _build(model: Mapping[str, Any], source: str) -> TargetSettings:
    c = _Checker(model, source)
    down = c.get("down")
    if not isinstance(down, list) or any(s not in SERVICES for s in down):
        raise c.fail("down", down, f"it must be a list of: {', '.join(SERVICES)}")
    routes = {}
    for name, group in ROUTE_GROUPS.items():
        error_rate = None
        if group != "health" and c.get(f"routes.{name}.error_rate") is not None:
            error_rate = c.number(f"routes.{name}.error_rate", 0.0, 1.0)
        cpu_ms = c.number(f"routes.{name}.cpu_ms", 0.0, 10_000.0)
        routes[name] = RouteModel(c.latency(f"routes.{name}"), group, error_rate, cpu_ms)
    # success_ratio applies to the orders that are paid, so the two ratios need not sum to 1.
    success = c.number("payment.success_ratio", 0.0, 1.0)
    abandon = c.number("payment.abandon_ratio", 0.0, 1.0)
    payer_median_s = c.number("payment.payer_time_median_s", 0.0)
    payer_p99_s = c.number("payment.payer_time_p99_s", 0.0)
    if payer_p99_s < payer_median_s:
        raise c.fail("payment.payer_time_p99_s", payer_p99_s, "it must be >= payer_time_median_s")
    payment = PaymentModel(
        success_ratio=success,
        abandon_ratio=abandon,
        payer_time=Latency(payer_median_s * 1000.0, payer_p99_s * 1000.0),
        expire_after_s=c.integer("payment.expire_after_s", 1, 86400) or 1,
    )
    return TargetSettings(
        seed=c.integer("seed", 0) or 0,
        slowdown=c.number("slowdown", 0.0, 1000.0, low_open=True),
        error_rate=c.number("error_rate", 0.0, 1.0),
        down=tuple(dict.fromkeys(down)),
        capacity={g: c.integer(f"capacity.{g}", 1, nullable=True) for g in model["capacity"]},
        # Below 1 would need the answer before the work is done: only slower is possible.
        latency_factor={
            g: c.number(f"latency_factor.{g}", 1.0, 1000.0) for g in model["latency_factor"]
        },
        routes=routes,
        phonepe={name: c.latency(f"phonepe.{name}") for name in model["phonepe"]},
        payment=payment,
        plans_ttl_s=c.number("cache.plans_ttl_s", 0.0),
        email=EmailModel(c.number("email.skip_share", 0.0, 1.0), c.latency("email")),
        pool_size=c.integer("database.pool_size", 1, 256) or 1,
        plans=_plans(c),
        source=source,
        fault=_fault(c),
    )


def _fault(c: _Checker) -> TimedFault:
    until = c.get("fault.until_s")
    until_s = None if until is None else c.number("fault.until_s", 0.0)
    fault = TimedFault(
        error_rate=c.number("fault.error_rate", 0.0, 1.0),
        from_s=c.number("fault.from_s", 0.0),
        until_s=until_s,
    )
    if until_s is not None and until_s <= fault.from_s:
        raise c.fail("fault.until_s", until_s, f"it must be > fault.from_s ({fault.from_s:g})")
    return fault


def _plans(c: _Checker) -> tuple[Plan, ...]:
    raw = c.get("plans")
    if not isinstance(raw, list) or not raw:
        raise c.fail("plans", raw, "it must be a non-empty list of {id, name, amount, period_days}")
    plans: list[Plan] = []
    for index, item in enumerate(raw):
        path = f"plans[{index}]"
        if not isinstance(item, Mapping) or set(item) != {"id", "name", "amount", "period_days"}:
            raise c.fail(path, item, "each plan needs exactly: id, name, amount, period_days")
        plan_id, name, amount, days = item["id"], item["name"], item["amount"], item["period_days"]
        if not isinstance(plan_id, str) or not PLAN_ID_PATTERN.match(plan_id):
            raise c.fail(f"{path}.id", plan_id, "it must be 1-40 characters of [A-Za-z0-9_-]")
        if any(p.id == plan_id for p in plans):
            raise c.fail(f"{path}.id", plan_id, "plan ids must be unique")
        if not isinstance(name, str) or not name:
            raise c.fail(f"{path}.name", name, "it must be a non-empty string")
        # PhonePe refuses amounts under 100 paise.
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 100:
            raise c.fail(f"{path}.amount", amount, "it must be an integer of paise >= 100")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise c.fail(f"{path}.period_days", days, "it must be an integer >= 1")
        plans.append(Plan(plan_id, name, amount, days))
    return tuple(plans)
