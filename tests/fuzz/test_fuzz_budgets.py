"""Fuzz: any budgets file is accepted or refused in one line (exit 2), never a traceback.

The seeds are the project's budgets.yaml and every YAML example of docs/budgets.md. A text
mutation inserts YAML syntax (anchors, aliases, merge keys, tags, flow brackets, block
scalars, documents), deletes characters, repeats or drops lines; a structure mutation
changes the parsed values (wrong types, nesting, hostile texts) and writes YAML again.
Accepted budgets are judged against a small run, so that what validation lets through
cannot crash the judge. Derandomized: the same examples on every run.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from harness.config import load_budgets
from harness.core.budgets import parse_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.core.evaluate import evaluate
from harness.core.model import Budgets, RunResult
from harness.results import read_run
from tests.fuzz.mutate import fuzz_settings, mutated_value, mutated_yaml, refused_in_one_line
from tests.hostile.runfolders import ROOT, write_run_folder

SOURCE = "budgets.yaml"
SEEDS = (
    (ROOT / "budgets.yaml").read_text(encoding="utf-8"),
    *re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "budgets.md").read_text("utf-8"), re.S),
)
PROFILES = (None, "smoke", "nightly", "soak", "spike")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    folder = write_run_folder(
        tmp_path_factory.mktemp("fuzz-budgets") / "run",
        (("GET", "/api/plans"), ("POST", "/api/payments/v2/initiate")),
    )
    return read_run(folder)


def _judged(budgets: Budgets, run: RunResult) -> None:
    verdict = evaluate(run, budgets)
    assert verdict.outcome in ("PASS", "FAIL", "UNRELIABLE", "INCOMPLETE")


def test_the_seeds_are_valid_budgets() -> None:
    assert len(SEEDS) >= 5
    for text in SEEDS:
        assert isinstance(parse_budgets(text, SOURCE), Budgets)


@given(
    data=st.data(),
    seed=st.sampled_from(SEEDS),
    profile=st.sampled_from(PROFILES),
    known=st.sampled_from([None, REQUEST_KEYS]),
)
@fuzz_settings(max_examples=400)
def test_a_mutated_budgets_text_is_accepted_or_refused_in_one_line(
    run: RunResult, data, seed: str, profile: str | None, known
) -> None:
    text = mutated_yaml(data, seed)
    budgets = refused_in_one_line(
        lambda: parse_budgets(text, SOURCE, profile=profile, known_keys=known), SOURCE
    )
    if budgets is not None:
        _judged(budgets, run)


@given(data=st.data(), seed=st.sampled_from(SEEDS), profile=st.sampled_from(PROFILES))
@fuzz_settings(max_examples=300)
def test_mutated_budgets_values_are_accepted_or_refused_in_one_line(
    run: RunResult, data, seed: str, profile: str | None
) -> None:
    text = yaml.safe_dump(mutated_value(data, yaml.safe_load(seed), max_mutations=2))
    budgets = refused_in_one_line(lambda: parse_budgets(text, SOURCE, profile=profile), SOURCE)
    if budgets is not None:
        _judged(budgets, run)


@given(data=st.data(), seed=st.sampled_from(SEEDS))
@fuzz_settings(max_examples=150)
def test_a_mutated_budgets_file_on_disk_is_accepted_or_refused_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, data, seed: str
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzz-budgets-file.yaml"
    # Written as bytes: a lone surrogate becomes bytes that are not UTF-8.
    path.write_bytes(mutated_yaml(data, seed).encode("utf-8", "surrogatepass"))
    refused_in_one_line(lambda: load_budgets(Path(path), known_keys=REQUEST_KEYS), str(path))
