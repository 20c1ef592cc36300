"""Numbers, text and plain-text tables as every output shows them (pure).

One convention for the CLI, report.html, summary.md, junit.xml, the trend and capacity
reports: a value carries its unit after a space (``14.7 ms``, ``0.42 %``, ``12.0 req/s``),
a missing value is an en dash (``DASH``), and latencies have about three significant digits,
the precision of the HDR histograms they come from (0.203 ms, 14.7 ms, 1,234 ms).

``text_table`` lays out the tables the CLI prints (the verdict, ``paybench compare``,
``paybench history list``).
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

DASH = "\u2013"  # an en dash where a value does not exist (no sample, unknown)


def fmt_ms(value: float | None) -> str:
    """A latency in ms, without its unit: ``0.203``, ``4.10``, ``14.7``, ``1,234``."""
    if value is None or math.isnan(value):
        return DASH
    a = abs(value)
    if a < 1:
        return f"{value:.3f}"
    if a < 10:
        return f"{value:.2f}"
    if a < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_count(value: int | None) -> str:
    return DASH if value is None else f"{value:,}"


def fmt_rps(value: float | None) -> str:
    if value is None or math.isnan(value):
        return DASH
    if value < 10:
        return f"{value:.2f}"
    if value < 100:
        return f"{value:.1f}"
    return f"{value:,.0f}"


def fmt_pct(value: float | None, signed: bool = False) -> str:
    """``12.3 %``; ``signed`` puts ``+`` before headroom so that ``-4.1 %`` stands out."""
    if value is None or math.isnan(value):
        return DASH
    digits = 2 if abs(value) < 10 else 1
    return f"{value:+.{digits}f} %" if signed else f"{value:.{digits}f} %"


def fmt_margin(value: float | None) -> str:
    """A budget's headroom in percent of its limit: ``+28.6 %``, ``-5.56 %``."""
    return fmt_pct(value, signed=True)


def fmt_number(value: float | None) -> str:
    """A plain number with at most three decimals and no trailing zeros."""
    if value is None or math.isnan(value):
        return DASH
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def fmt_value(value: float | None, unit: str) -> str:
    """A measured value or a limit with its unit: ``2,340 ms``, ``0.50 %``, ``12.0 req/s``."""
    if value is None or math.isnan(value):
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


def fmt_interval(low: float | None, high: float | None, unit: str) -> str:
    """A confidence or prediction interval: ``131 ms`` en dash ``152 ms``; DASH when unknown."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return DASH
    return f"{fmt_value(low, unit)} {DASH} {fmt_value(high, unit)}"


def fmt_limit(value: float, unit: str) -> str:
    """A budget limit as a user wrote it, without rounding it away: ``300 ms``, ``0.5 %``."""
    return f"{fmt_number(value)} {unit}"


def fmt_change(value: float | None, unit: str) -> str:
    """A change: ``+12.3 %`` (relative), ``+0.25 pts`` (percentage points), ``-1.50 ms``."""
    if value is None or math.isnan(value):
        return DASH
    if unit == "%":
        return f"{value:+.1f} %"
    if unit in ("pts", "points"):
        return f"{value:+.2f} {unit}"
    return ("-" if value < 0 else "+") + fmt_value(abs(value), unit)


def fmt_p_value(p: float | None) -> str:
    if p is None or math.isnan(p):
        return DASH
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_sig(value: float | None, digits: int = 3) -> str:
    """A model parameter with ``digits`` significant digits: ``0.0312``, ``1.2e+03``."""
    if value is None or math.isnan(value):
        return DASH
    if value == 0:
        return "0"
    return f"{value:.{digits}g}"


def fmt_seconds(value: float | None) -> str:
    if value is None or math.isnan(value):
        return DASH
    if value < 120:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 120:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def plural(n: int, word: str) -> str:
    """``1 budget``, ``3 budgets``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


_NUMBER_UNIT = re.compile(r"(\d) (ms|%|req/s|requests|points|pts|s)(?=[\s,;:)]|$)")
_KEEP = "\u00a0"  # textwrap breaks only at ASCII whitespace


def wrap_text(text: str, width: int, indent: str = "    ") -> list[str]:
    """``text`` wrapped to ``width``, later lines indented; a number keeps its unit."""
    glued = _NUMBER_UNIT.sub(lambda m: f"{m.group(1)}{_KEEP}{m.group(2)}", text)
    lines = textwrap.wrap(glued, width=width, subsequent_indent=indent, break_on_hyphens=False)
    return [line.replace(_KEEP, " ") for line in lines]


# --- plain-text tables ------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    align: Literal["left", "right"] = "left"


def _cells(columns: Sequence[Column], row: Sequence[str], widths: Sequence[int]) -> list[str]:
    return [
        text.rjust(width) if column.align == "right" else text.ljust(width)
        for column, text, width in zip(columns, row, widths, strict=True)
    ]


def column_widths(columns: Sequence[Column], rows: Sequence[Sequence[str] | str]) -> list[int]:
    """Each column's width: its longest cell or title (a plain-string row counts for none)."""
    widths = [len(c.title) for c in columns]
    for row in rows:
        if isinstance(row, str):
            continue
        if len(row) != len(columns):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(columns)} columns")
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    return widths


def table_width(
    columns: Sequence[Column], rows: Sequence[Sequence[str] | str], gap: str = "  "
) -> int:
    """How wide ``text_table`` would lay the table out (its widest table line)."""
    widths = column_widths(columns, rows)
    return sum(widths) + len(gap) * (len(widths) - 1)


def text_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str] | str], gap: str = "  "
) -> list[str]:
    """The header line and one line per row, each cell padded to its column's width.

    A row given as a plain string is printed as it is, on a line of its own (a group's
    title over the rows that follow), and widens no column. Lines carry no trailing blanks.
    """
    widths = column_widths(columns, rows)
    lines = [gap.join(_cells(columns, [c.title for c in columns], widths)).rstrip()]
    for row in rows:
        if isinstance(row, str):
            lines.append(row.rstrip())
        else:
            lines.append(gap.join(_cells(columns, row, widths)).rstrip())
    return lines


# --- text in Markdown -------------------------------------------------------------------


# ``~`` (strikethrough) and ``$`` (GitHub's maths) are GFM's; CommonMark lets any ASCII
# punctuation be backslash-escaped, so escaping them is safe in every renderer.
_MD_SPECIAL = re.compile(r"([\\|`*_\[\]~$])|<(?=[A-Za-z/!?])|&(?=#?\w+;)")
# What opens a block (heading, quote, list) when it starts a list item: "- # x" is a heading.
_MD_BLOCK_START = re.compile(r"^(?:([#>+-])|(\d{1,9})([.)])(?=\s|$))")


def md_text(text: str) -> str:
    """Text safe inside a Markdown table cell or list item: it renders as written.

    Characters that end a cell or start emphasis, code, links, strikethrough or maths are
    backslash-escaped, and so is a first character that would open a heading, a quote or a
    list. A ``<`` that could open an HTML tag (GitHub renders raw HTML inside Markdown) and
    an ``&`` that could start an entity become entities; ``p95 < 300 ms`` stays readable.
    """
    one_line = " ".join(str(text).split())

    def escape(m: re.Match[str]) -> str:
        if m.group(1):
            return "\\" + m.group(1)
        return "&lt;" if m.group(0) == "<" else "&amp;"

    def block(m: re.Match[str]) -> str:
        return "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3)

    return _MD_BLOCK_START.sub(block, _MD_SPECIAL.sub(escape, one_line), count=1)


def shorten(text: str, max_chars: int) -> str:
    one_line = " ".join(str(text).split())
    return one_line if len(one_line) <= max_chars else one_line[: max_chars - 1] + "…"
