"""Number and text formatting shared by the HTML, Markdown and JUnit renderers (pure).

Latencies are shown with about three significant digits, the precision of the HDR
histograms they come from (0.203 ms, 14.7 ms, 1,234 ms).
"""

from __future__ import annotations

import math
import re

DASH = "\u2013"  # an en dash where a value does not exist (no sample, unknown)


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_ms(value: float | None) -> str:
    if _missing(value):
        return DASH
    a = abs(value)
    if a < 10:
        return f"{value:.2f}"
    if a < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def fmt_rps(value: float | None) -> str:
    if _missing(value):
        return DASH
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_pct(value: float | None, signed: bool = False) -> str:
    """``12.3 %``; ``signed`` puts ``+`` before headroom so that ``-4.1 %`` stands out."""
    if _missing(value):
        return DASH
    digits = 2 if abs(value) < 10 else 1
    return f"{value:+.{digits}f} %" if signed else f"{value:.{digits}f} %"


def fmt_number(value: float | None) -> str:
    """A plain number with at most three decimals and no trailing zeros."""
    if _missing(value):
        return DASH
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def fmt_value(value: float | None, unit: str) -> str:
    """A measured value or a limit with its unit: ``2,340 ms``, ``0.50 %``, ``12.0 req/s``."""
    if _missing(value):
        return DASH
    if unit == "ms":
        return f"{fmt_ms(value)} ms"
    if unit == "%":
        return fmt_pct(value)
    if unit == "req/s":
        return f"{fmt_rps(value)} req/s"
    if unit == "requests":
        return f"{fmt_number(value)} requests"
    return f"{fmt_number(value)} {unit}".strip()


def fmt_limit(value: float, unit: str) -> str:
    """A budget limit as a user wrote it, without rounding it away: ``300 ms``, ``0.5 %``."""
    return f"{fmt_number(value)} {unit}" if unit != "%" else f"{fmt_number(value)} %"


def fmt_seconds(value: float | None) -> str:
    if _missing(value):
        return DASH
    if value < 120:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 120:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


_MD_SPECIAL = re.compile(r"([\\|`*_\[\]])|<(?=[A-Za-z/!?])|&(?=#?\w+;)")


def md_text(text: str) -> str:
    """Text safe inside a Markdown table cell or list item.

    Characters that end a cell or start emphasis, code or links are backslash-escaped. A
    ``<`` that could open an HTML tag (GitHub renders raw HTML inside Markdown) and an
    ``&`` that could start an entity become entities; ``p95 < 300 ms`` stays readable.
    """
    one_line = " ".join(str(text).split())

    def escape(m: re.Match[str]) -> str:
        if m.group(1):
            return "\\" + m.group(1)
        return "&lt;" if m.group(0) == "<" else "&amp;"

    return _MD_SPECIAL.sub(escape, one_line)


def shorten(text: str, max_chars: int) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= max_chars else one_line[: max_chars - 1] + "…"
