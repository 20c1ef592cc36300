"""Every malformed budgets file in corpus/ ends in one ConfigError line naming file and key path.

Each corpus file starts with ``# expect: <fragment>``: the fragment the message must hold
(the key path, or the line for YAML errors, and what is wrong).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_budgets
from harness.core.catalogue import REQUEST_KEYS
from harness.errors import EXIT_USAGE, ConfigError

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.yaml"))


def expected_fragment(path: Path) -> str:
    first = path.read_bytes().split(b"\n", 1)[0].decode("ascii")
    assert first.startswith("# expect: "), f"{path.name} lacks its '# expect:' line"
    return first.removeprefix("# expect: ")


def test_corpus_is_large_enough() -> None:
    assert len(FILES) >= 30


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_malformed_file_is_one_line_naming_file_and_key_path(path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_budgets(path, profile=None, known_keys=REQUEST_KEYS)
    message = caught.value.message
    assert caught.value.exit_code == EXIT_USAGE
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert expected_fragment(path) in message
    # "<file>: <where>: <what>; <fix>": every message says how to fix it.
    assert "; " in message


def test_missing_file_names_it() -> None:
    missing = CORPUS / "does-not-exist.yaml"
    with pytest.raises(ConfigError, match=r"does-not-exist\.yaml: file not found; create it"):
        load_budgets(missing)


def test_directory_instead_of_file() -> None:
    with pytest.raises(ConfigError, match=r"corpus: is a directory"):
        load_budgets(CORPUS)
