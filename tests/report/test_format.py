"""harness.core.format: one number convention and one plain-text table for every output."""

from __future__ import annotations

import pytest

from harness.core.format import (
    DASH,
    Column,
    fmt_change,
    fmt_interval,
    fmt_margin,
    fmt_ms,
    fmt_pct,
    fmt_value,
    table_width,
    text_table,
    wrap_text,
)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.2034, "ms", "0.203 ms"),
        (4.1, "ms", "4.10 ms"),
        (14.66, "ms", "14.7 ms"),
        (1234.4, "ms", "1,234 ms"),
        (0.42, "%", "0.42 %"),
        (28.57, "%", "28.6 %"),
        (14.0, "req/s", "14.0 req/s"),
        (1234.0, "requests", "1,234 requests"),
    ],
)
def test_a_value_carries_its_unit_after_a_space(value: float, unit: str, text: str) -> None:
    assert fmt_value(value, unit) == text


def test_a_missing_value_is_an_en_dash_everywhere() -> None:
    assert DASH == "\u2013"
    for unit in ("ms", "%", "req/s", "requests"):
        assert fmt_value(None, unit) == DASH
        assert fmt_value(float("nan"), unit) == DASH
    assert fmt_ms(None) == fmt_pct(None) == fmt_margin(None) == fmt_change(None, "%") == DASH
    assert fmt_interval(None, 3.0, "ms") == fmt_interval(1.0, None, "ms") == DASH


def test_margins_intervals_and_changes() -> None:
    assert fmt_margin(28.57) == "+28.6 %"
    assert fmt_margin(-5.59) == "-5.59 %"
    assert fmt_interval(131.2, 152.4, "ms") == "131 ms \u2013 152 ms"
    assert fmt_change(12.34, "%") == "+12.3 %"
    assert fmt_change(0.25, "pts") == "+0.25 pts"
    assert fmt_change(-1.5, "ms") == "-1.50 ms"


def test_a_table_pads_each_column_and_aligns_numbers_right() -> None:
    columns = (Column("request"), Column("p95", "right"), Column("result"))
    rows = [["GET /api/plans", "95.0 ms", "PASS"], ["GET /api/health", "4.10 ms", "FAIL"]]
    lines = text_table(columns, rows)
    assert lines == [
        "request              p95  result",
        "GET /api/plans   95.0 ms  PASS",
        "GET /api/health  4.10 ms  FAIL",
    ]
    assert table_width(columns, rows) == max(len(line) for line in lines)


def test_a_plain_string_row_is_a_line_of_its_own_and_widens_nothing() -> None:
    columns = (Column("metric"), Column("measured", "right"))
    title = "GET /api/payments/v2/status/[merchant_order_id]"
    rows: list[list[str] | str] = [title, ["  p95", "1 ms"]]
    lines = text_table(columns, rows)
    assert lines == [
        "metric  measured",
        title,
        "  p95       1 ms",
    ]


def test_a_row_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="a row of 1 cells in a table of 2 columns"):
        text_table((Column("a"), Column("b")), [["x"]])


def test_wrapping_keeps_a_number_with_its_unit() -> None:
    text = "holds, but the 95 % confidence interval 35.0 ms to 40.0 ms straddles the limit 39.0 ms"
    lines = wrap_text(text, width=82)
    assert lines == [
        "holds, but the 95 % confidence interval 35.0 ms to 40.0 ms straddles the limit",
        "    39.0 ms",
    ]
