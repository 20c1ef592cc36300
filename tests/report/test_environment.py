"""One Jinja environment, configured once, renders the run, capacity and trend reports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from jinja2 import UndefinedError

import harness
from harness.report.render import environment

HARNESS = Path(harness.__file__).parent
REPORT_TEMPLATES = {
    "report.html.j2",
    "summary.md.j2",
    "capacity.html.j2",
    "capacity.md.j2",
    "trend.html.j2",
    "trend.md.j2",
}


def test_only_the_renderer_builds_a_jinja_environment() -> None:
    builders = sorted(
        p.relative_to(HARNESS).as_posix()
        for p in HARNESS.rglob("*.py")
        if re.search(r"\bEnvironment\(", p.read_text(encoding="utf-8"))
    )
    assert builders == ["report/render.py"]


def test_html_templates_are_autoescaped_and_markdown_templates_are_not() -> None:
    env = environment()
    names = set(env.list_templates(extensions=["j2"]))
    assert names >= REPORT_TEMPLATES
    for name in names:
        assert env.autoescape(name) is name.endswith(".html.j2"), name  # type: ignore[operator]
    # Anything else, a template from a string included, is escaped.
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"


def test_an_undefined_name_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(UndefinedError):
        environment().from_string("{{ ctx.missing }}").render(ctx={})


def test_a_block_tag_on_its_own_line_takes_the_line_with_it() -> None:
    template = environment().from_string("a\n  {% if x %}\n  b\n  {% endif %}\nc\n")
    assert template.render(x=True) == "a\n  b\nc\n"
    assert template.render(x=False) == "a\nc\n"


def test_the_filters_are_the_shared_formatters() -> None:
    env = environment()
    text = env.from_string("{{ 0.42 | pct }} {{ none | ms }} {{ 3.5 | value('ms') }}").render()
    assert text == "0.42 % \u2013 3.50 ms"
    assert env.from_string("{{ 'p99.9' | unit }} {{ 'error_rate' | unit }}").render() == "ms %"
