"""Input the JSON parser chokes on, and clients that leave mid-body: 4xx and one log line."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.target.conftest import AUTH, SLOW_PAYER, Running

JSON_ROUTES = {
    "initiate": ("/api/payments/v2/initiate", {}),
    "webhook": ("/api/payments/v2/webhook", AUTH),
}
DIGITS = "7" * 5000  # over Python's 4300-digit limit for int("...")
DEEP = 20_000  # nesting levels: far past the recursion limit, well within 64 KiB

HOSTILE_BODIES = {
    "integer of 5000 digits in a field": (
        '{"plan_id": "basic-monthly", "user_id": ' + DIGITS + "}"
    ),
    "integer of 5000 digits in the payload": (
        '{"event": "checkout.order.completed", "payload": {"merchantOrderId": "PBx", '
        '"state": "COMPLETED", "amount": ' + DIGITS + "}}"
    ),
    "integer of 5000 digits alone": DIGITS,
    "negative integer of 5000 digits": "-" + DIGITS,
    "float that overflows a double": '{"plan_id": "basic-monthly", "user_id": 1e999}',
    "negative float that overflows": '{"amount": -1e400}',
    "float of 5000 digits that overflows": DIGITS + ".5",
    "NaN": '{"plan_id": "basic-monthly", "user_id": NaN}',
    "Infinity": '{"amount": Infinity}',
    "-Infinity": "[-Infinity]",
    "arrays nested too deep": "[" * DEEP + "]" * DEEP,
    "objects nested too deep": '{"a":' * (DEEP // 2) + "1" + "}" * (DEEP // 2),
    "unclosed deep nesting": "[" * DEEP,
}


@pytest.fixture(scope="module")
def own_target(start_target: Callable[..., Running]) -> Running:
    """A target of this module's own: its log holds only what these tests caused."""
    return start_target(SLOW_PAYER)


def _log(running: Running) -> str:
    path = running.target.log_path
    assert isinstance(path, Path)
    return path.read_text(encoding="utf-8", errors="replace")


@pytest.mark.parametrize("route", sorted(JSON_ROUTES))
@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_json_the_parser_cannot_hold_is_400_malformed_json(
    own_target: Running, route: str, case: str
) -> None:
    """Regression: an integer of more than 4300 digits made the JSON routes answer 500
    (Python's int-digit limit raises ValueError, not JSONDecodeError); huge floats, NaN
    and nesting deeper than the recursion limit are the same class of input."""
    path, headers = JSON_ROUTES[route]
    body = HOSTILE_BODIES[case].encode()
    assert len(body) <= 64 * 1024  # answered by the parser, not by the body cap
    response = own_target.http.post(
        path, content=body, headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "malformed_json"
    assert "Traceback" not in _log(own_target)
    assert 'status="500"' not in own_target.http.get("/metrics").text


def test_an_integer_python_can_convert_is_judged_by_the_field_rules(own_target: Running) -> None:
    digits = "7" * 4300  # exactly the limit: valid JSON, just not a plausible user id
    response = own_target.http.post(
        "/api/payments/v2/initiate",
        content=('{"plan_id": "basic-monthly", "user_id": ' + digits + "}").encode(),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "user_id"


def _wait_for_log_line(running: Running, fragment: str, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = _log(running)
        if fragment in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"no log line with {fragment!r} within {timeout_s} s:\n{_log(running)}")


def test_a_client_that_leaves_mid_body_is_one_log_line(
    start_target: Callable[..., Running],
) -> None:
    """Regression: a client that disconnected in the middle of its body was logged with a
    full traceback (ClientDisconnect raised inside the route); one line says it all."""
    running = start_target(SLOW_PAYER)
    url = urlsplit(running.url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(
            b"POST /api/payments/v2/initiate HTTP/1.1\r\nHost: target\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            b'{"plan_id": "basic'
        )
        # Wait until the target has the first bytes (it answers /metrics in order), then go.
        deadline = time.monotonic() + 10
        while running.http.get("/metrics").text.count("requests_in_flight 1") == 0:
            assert time.monotonic() < deadline, "the target never saw the partial request"
            time.sleep(0.02)
    text = _wait_for_log_line(running, "client disconnected")
    lines = [line for line in text.splitlines() if "client disconnected" in line]
    assert lines == [
        "client disconnected after 18 of 1000 body bytes of POST /api/payments/v2/initiate; "
        "nothing was done"
    ]
    assert "Traceback" not in text and "ClientDisconnect" not in text
    # The target goes on serving, and counted nothing for the request that never finished.
    assert running.http.get("/api/health").status_code == 200
    metrics = running.http.get("/metrics").text
    assert 'method="POST"' not in metrics
    assert "paybench_target_requests_in_flight 0" in metrics
