"""Any text reaches Markdown as text: request names, messages, run ids and profiles.

summary.md, capacity.md and trend.md are read as GitHub renders them (CommonMark with GFM
tables), here by markdown-it: a name must come out as written, inside its code span or
its table cell, and never as raw HTML, a heading, a list, emphasis or a closed-too-early
code span (two backticks in a row used to end the span and let the rest be HTML).
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from markdown_it.token import Token

from harness.core.capacity import BrokenBudget, StopDecision, analyse
from harness.core.format import md_text, shorten
from harness.core.model import Budgets
from harness.report.capacity import build_capacity_context, render_capacity_markdown
from harness.report.render import MD_MAX_NAME_CHARS, md_code
from harness.report.trend import write_trend_report
from tests.e2e.helpers import paybench
from tests.fuzz.mutate import fuzz_settings
from tests.hostile.runfolders import write_run_folder
from tests.hostile.test_literal_names import _metrics, _run_row, capacity_steps

MD = MarkdownIt("commonmark").enable(["table", "strikethrough"])

HOSTILE = (
    "/x``y`z",
    "``",
    "`/start",
    "/end`",
    "<script>alert(1)</script>",
    "/a|b||c\\|d",
    "/line\nbreak\r\nand\ttab",
    "# heading",
    "- item",
    "+ item",
    "> quote",
    "1. first",
    "2) second",
    "---",
    "***bold***",
    "_under_",
    "~~gone~~",
    "[link](http://127.0.0.1/)",
    "![img](x.png)",
    "<http://127.0.0.1/>",
    "&amp; &#60; &lt;",
    "$x^$ $$y$$",
    "trailing\\",
    "<!-- comment -->",
)
# What markdown-it cannot be asked about: U+0000 becomes U+FFFD in any CommonMark parser.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("`\\|*_[]()<>!#&;$~-+=.:'\"/ \n\t0123456789ax")),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=40,
)


def _inline(md: str) -> list[Token]:
    tokens = MD.parse(md)
    assert not [t for t in tokens if t.type == "html_block"], md
    inline = [c for t in tokens if t.type == "inline" for c in t.children or ()]
    assert not [c for c in inline if c.type == "html_inline"], md
    return inline


def _plain(tokens: list[Token]) -> str:
    assert {t.type for t in tokens} <= {"text"}, [t.type for t in tokens]
    return "".join(t.content for t in tokens)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(md: str) -> list[Token]:
    """The inline tokens of the first body cell of a one-column table."""
    tokens = MD.parse(md)
    assert [t.type for t in tokens if t.type.startswith("table")][:1] == ["table_open"], md
    cells = [i for i, t in enumerate(tokens) if t.type == "td_open"]
    assert len(cells) == 1, md  # the text did not split the cell
    return tokens[cells[0] + 1].children or []


@given(text=TEXT)
@fuzz_settings(max_examples=400)
def test_md_text_renders_as_written_in_a_list_item_and_a_table_cell(text: str) -> None:
    expected = _one_line(text)
    item = _inline(f"- {md_text(text)}\n")
    tokens = MD.parse(f"- {md_text(text)}\n")
    assert [t.type for t in tokens][:2] == ["bullet_list_open", "list_item_open"] or not expected
    assert _plain(item) == expected
    assert _plain(_cell(f"| h |\n|---|\n| {md_text(text)} |\n")) == expected


@given(text=TEXT)
@fuzz_settings(max_examples=400)
def test_md_code_is_one_code_span_holding_the_text(text: str) -> None:
    expected = shorten(_one_line(text), MD_MAX_NAME_CHARS) or " "
    [span] = _inline(f"- {md_code(text, table=False)}\n")
    assert (span.type, span.content) == ("code_inline", expected)
    [cell] = _cell(f"| h |\n|---|\n| {md_code(text)} |\n")
    assert (cell.type, cell.content) == ("code_inline", expected)


def test_the_hostile_names_come_out_as_written() -> None:
    """Guards: two backticks in a row ended a name's code span in summary.md early."""
    for name in HOSTILE:
        [span] = _inline(f"- {md_code(name, table=False)}\n")
        assert span.content == _one_line(name)
        assert _plain(_inline(f"- {md_text(name)}\n")) == _one_line(name)
    # GitHub reads $...$ as maths: a dollar is always escaped.
    assert md_text("$x^$") == "\\$x^\\$"


def _code_spans(md: str) -> set[str]:
    return {t.content for t in _inline(md) if t.type == "code_inline"}


def test_summary_md_of_a_run_with_hostile_names_shows_them_as_written(tmp_path: Path) -> None:
    """Guards: request names with backtick runs, markup, pipes or line breaks in summary.md
    (the CI step summary and PR comment) stay inside their code spans, in the broken-budget
    list and in the request table."""
    names = (
        ("GET", "/x``y`z"),
        ("GET", "<script>alert(1)</script>"),
        ("POST", "/a|b"),
        ("GET", "/line\nbreak"),
    )
    folder = write_run_folder(tmp_path / "run", names)
    (folder / "strict.yaml").write_text(
        'version: 1\nrequests:\n  "*":\n    p95: "< 1ms"\n', encoding="utf-8"
    )
    r = paybench("check", str(folder), "--budgets", str(folder / "strict.yaml"), timeout=180)
    assert r.returncode == 1, r.stderr  # every budget broken: each name is listed
    md = (folder / "summary.md").read_text(encoding="utf-8")
    spans = _code_spans(md)
    for request_type, name in names:
        assert f"{request_type} {_one_line(name)}" in spans, (name, spans)


def test_trend_md_with_hostile_names_and_run_ids_shows_them_as_written(tmp_path: Path) -> None:
    """Guards: trend.md's request names (md) and run ids (code spans) cannot become markup."""
    runs = [_run_row(i) for i in range(6)]
    key = "GET /x``y`<b>|z"
    metrics = [_metrics(r.run_id, key, 100.0 + i) for i, r in enumerate(runs)]
    _html, md_path = write_trend_report(tmp_path, runs, metrics)
    md = md_path.read_text(encoding="utf-8")
    tokens = _inline(md)
    assert key in "".join(t.content for t in tokens if t.type == "text")
    assert {runs[0].run_id, runs[-1].run_id} <= _code_spans(md)


def test_capacity_md_with_hostile_texts_shows_them_as_written() -> None:
    """capacity.md's texts (a broken budget, the stop message) render as written."""
    what = "p95 of GET /x``y`<b>|z"
    broken = (BrokenBudget(what, 'requests."x".p95', 90.0, "ms", "< 80ms", -12.5),)
    message = "* stopped: `p95` <i>broke</i> | # here"
    analysis = analyse(
        capacity_steps("GET /x", broken),
        expected_peak_rps=30.0,
        stop=StopDecision("budgets broken", 30, message),
    )
    ctx = build_capacity_context(analysis, budgets=Budgets("budgets.yaml", ()))
    md = render_capacity_markdown(ctx)
    text = "".join(t.content for t in _inline(md) if t.type == "text")
    assert f"{what} 90.0 ms (budget < 80ms)" in text
    assert message in text
