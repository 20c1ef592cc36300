"""ReportContext -> junit.xml: one test suite per run, one test case per budget.

The layout is the JUnit XML that Jenkins' junit step and GitLab's ``artifacts:reports:junit``
read (Ant's JUnit task format, as described by the junit-10 schema): ``<testsuites>`` >
``<testsuite>`` > ``<properties>``, ``<testcase>`` with an optional ``<failure>`` or
``<error>``, ``<system-out>``, ``<system-err>``. Built with ElementTree, so every text and
attribute is escaped by the XML writer, not by hand.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from harness.report.context import BudgetRow, ReportContext

# Characters XML 1.0 cannot carry at all, even escaped; a failure message may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(text: object) -> str:
    return _NOT_XML.sub("\ufffd", str(text))


def _timestamp(iso: str | None) -> str | None:
    """ISO-8601 UTC without a zone designator, as the JUnit schema's ``timestamp`` wants."""
    if not iso:
        return None
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone(UTC).replace(tzinfo=None)
    return when.strftime("%Y-%m-%dT%H:%M:%S")


def _seconds(value: float) -> str:
    return f"{max(value, 0.0):.3f}"


def _failure_message(row: BudgetRow) -> str:
    if row.status == "NO SAMPLES":
        return f"no samples: {row.message or row.request_key}"
    if row.status == "NO DATA":
        return row.message or f"no data: {row.request_key}"
    if row.measured is None:
        return f"not measured: {row.message or 'no value'}; limit {row.limit_text}"
    return f"measured {row.measured_text}, limit {row.limit_text}, margin {row.margin_text}"


def _failure_text(row: BudgetRow) -> str:
    lines = [
        f"budget: {row.key_path}",
        f"request: {row.request_key}",
        f"metric: {row.metric}",
        f"measured: {row.measured_text}",
        f"limit: {row.limit_text}",
        f"margin: {row.margin_text} of the limit",
        f"95 % interval: {row.ci_text}",
    ]
    if row.baseline:
        lines.append(f"baseline: {row.baseline}")
    if row.message:
        lines.append(row.message)
    return "\n".join(lines)


def render_junit(ctx: ReportContext) -> str:
    """junit.xml text (UTF-8 declaration included)."""
    suite_name = f"paybench.{ctx.profile or 'run'}"
    judged_error = ctx.outcome in ("UNRELIABLE", "INCOMPLETE")
    tests = len(ctx.budgets) + (1 if judged_error else 0)
    failures = len(ctx.broken)
    errors = 1 if judged_error else 0
    skipped = sum(1 for b in ctx.budgets if b.status in ("SKIPPED", "INCONCLUSIVE"))
    duration = _seconds(ctx.steady_end_s)

    root = ET.Element(
        "testsuites",
        name="paybench",
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        time=duration,
    )
    suite = ET.SubElement(
        root,
        "testsuite",
        name=suite_name,
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        skipped=str(skipped),
        time=duration,
        id="0",
        package=suite_name,
    )
    facts = {f.label: f.value for f in ctx.facts}
    if (stamp := _timestamp(facts.get("Started"))) is not None:
        suite.set("timestamp", stamp)
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("outcome", ctx.outcome),
        *((label.lower().replace(" ", "_"), value) for label, value in facts.items()),
        ("report", "report.html"),
    ):
        ET.SubElement(props, "property", name=_x(name), value=_x(value))

    for row in ctx.budgets:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=_x(row.name), time="0")
        if row.status in ("SKIPPED", "INCONCLUSIVE"):
            # Neither broken nor a pass: a CI shows a skipped case with its message.
            ET.SubElement(case, "skipped", message=_x(row.message or row.status.lower()))
        elif row.broken:
            failure = ET.SubElement(
                case,
                "failure",
                message=_x(_failure_message(row)),
                type={"NO SAMPLES": "NoSamples", "NO DATA": "NoData"}.get(
                    row.status, "BudgetBroken"
                ),
            )
            failure.text = _x(_failure_text(row))
    if judged_error:
        # The CI must not read an unjudgeable run as green: one test case says why.
        case = ET.SubElement(
            suite, "testcase", classname=suite_name, name="run can be judged", time="0"
        )
        reasons = "; ".join(ctx.reasons) or ctx.outcome.lower()
        error = ET.SubElement(
            case, "error", message=_x(f"{ctx.outcome}: {reasons}"), type=ctx.outcome
        )
        error.text = _x("\n".join(ctx.reasons))

    out = [f"{ctx.outcome}: {ctx.headline}", *ctx.reasons]
    out.extend(
        f"marginal: {b.name}: measured {b.measured_text}, 95 % interval {b.ci_text}"
        for b in ctx.marginal
    )
    out.append("full report: report.html in the run folder")
    ET.SubElement(suite, "system-out").text = _x("\n".join(out))
    ET.SubElement(suite, "system-err").text = ""
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
