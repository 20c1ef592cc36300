"""report.html's charts of the server metrics over time, with their budget lines.

One chart per source and budgeted metric: the value at each scrape (a counter's over the
interval before it, as ``harness.core.server_eval`` judges it), the steady state marked as
on the request charts, and a dashed line per limit. A budget on the window's average is
judged on the mean of these points, a ``max`` budget on the highest. Where the source did
not answer, the line breaks and the span is shaded "no data" (such a budget is NO DATA).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib

from harness.core.server_eval import ServerTimeline
from harness.report.charts import (
    BUDGET_COLOR,
    RC_PARAMS,
    Chart,
    _marker,
    _no_data,
    _slug,
    _timeline_axes,
    inline_svg,
)
from harness.report.context import ReportContext


def server_charts(
    ctx: ReportContext, timelines: Sequence[ServerTimeline], start_epoch: float
) -> list[Chart]:
    """The charts of ``timelines``, times counted from ``start_epoch`` (the test's start)."""
    charts = []
    for t in timelines:
        cid = f"chart-server-{_slug(t.source)}-{_slug(t.quantity)}"
        title = f"{t.quantity} of {t.source} (server) over time"
        if not t.points:
            charts.append(_no_data(cid, title, f"{t.source!r} gave no value of {t.quantity}"))
            continue
        with matplotlib.rc_context(RC_PARAMS):
            fig, ax, _, xlabel = _timeline_axes(ctx)
            scale = 60.0 if xlabel.endswith("(min)") else 1.0
            x: list[float] = []
            y: list[float] = []
            before: float | None = None
            for epoch, value in t.points:
                if before is not None and any(before <= a < epoch for a, _ in t.gaps):
                    x.append(math.nan)  # no line across a span without answers
                    y.append(math.nan)
                x.append((epoch - start_epoch) / scale)
                y.append(value)
                before = epoch
            ax.plot(x, y, color="#2e86c1", lw=1.6, marker=_marker(len(x)), ms=3, label="per scrape")
            for i, (a, b) in enumerate(t.gaps):
                ax.axvspan(
                    (a - start_epoch) / scale,
                    (b - start_epoch) / scale,
                    color="#c0392b",
                    alpha=0.15,
                    lw=0,
                    label="no data (source did not answer)" if i == 0 else None,
                )
            for label, limit in dict.fromkeys(t.limits):
                ax.axhline(limit, color=BUDGET_COLOR, ls="--", lw=1.1, label=f"budget {label}")
            top = max([*(v for _, v in t.points), *(limit for _, limit in t.limits)])
            ax.set_ylim(0, max(top * 1.15, 1e-9))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"{t.quantity} ({t.unit})" if t.unit else t.quantity)
            ax.set_title(title)
            ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
            charts.append(Chart(cid, title, inline_svg(fig, cid, title)))
    return charts
