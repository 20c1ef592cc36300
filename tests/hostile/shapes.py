"""Hostile budgets files, by shape: each must be refused at once, in one line.

Shared by the tests (which check the refusal) and benchmarks/hostile_budgets.py (which
times the worst of them at the size limit).
"""

from __future__ import annotations

from harness.core.budgets import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES

HEAD = 'version: 1\nrequests:\n  "GET /api/plans":\n    p95: "< 1s"\n'


def deeply_nested(depth: int = 100_000) -> str:
    """Flow sequences nested far past Python's recursion limit."""
    return HEAD + "hosts: " + "[" * depth + "]" * depth + "\n"


def nested_just_too_deep() -> str:
    return HEAD + "hosts: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1) + "\n"


def megabytes(size: int = 3 * 1024 * 1024) -> str:
    """A few megabytes of request names: PyYAML took minutes over such a file."""
    line = '  "GET /k{:07d}": {{p95: "< 1s"}}\n'
    n = size // len(line.format(0)) + 1
    return "version: 1\nrequests:\n" + "".join(line.format(i) for i in range(n))


def dense_flow_at_the_limit() -> str:
    """The most values per byte: a flow list of one-character items, just under the limit."""
    n = (MAX_FILE_BYTES - 200) // 2
    return HEAD + "hosts:\n  allow: [" + "a," * n + "a]\n"


def comments_at_the_limit() -> str:
    text = HEAD + "# comment\n" * ((MAX_FILE_BYTES - len(HEAD)) // 10)
    return text[:MAX_FILE_BYTES]


def one_long_scalar_at_the_limit() -> str:
    return HEAD + "hosts:\n  allow: [" + "a" * (MAX_FILE_BYTES - len(HEAD) - 40) + "]\n"


def names_at_the_limit() -> str:
    """As many valid request names as the value limit lets through (4 values a name)."""
    names = "".join(f'  "GET /k{i}": {{p95: "< 1s"}}\n' for i in range((MAX_VALUES - 20) // 4))
    return "version: 1\nrequests:\n" + names


def profiles_times_names() -> str:
    """Names x profiles at its largest: every profile is built over every default name.

    A name is 4 values and a profile 8, so the product peaks at half the values on each.
    """
    names = (MAX_VALUES - 40) // 8
    profiles = (MAX_VALUES - 40) // 16
    requests = "".join(f'  "GET /k{i}": {{p95: "< 1s"}}\n' for i in range(names))
    sections = "".join(f'  p{i}:\n    run: {{error_rate: "< 1%"}}\n' for i in range(profiles))
    return f"version: 1\nrequests:\n{requests}profiles:\n{sections}"


def alias_bomb(levels: int = 40) -> str:
    """A billion laughs: each anchor a list of ten aliases of the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return HEAD + "\n".join(lines) + f"\nhosts: {{allow: *l{levels - 1}}}\n"


def merge_bomb(levels: int = 40) -> str:
    """Merge keys that double at each level."""
    lines = ["m0: &m0 {k: 1}"] + [
        f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}]}}" for i in range(1, levels)
    ]
    return HEAD + "\n".join(lines) + "\n"


def catastrophic_glob(stars: int = 25) -> str:
    """A glob that a backtracking matcher takes ages over against a long name."""
    return f'version: 1\nrequests:\n  "{"*a" * stars}*b":\n    p95: "< 1s"\n'


SHAPES = {
    "deeply nested": deeply_nested,
    "nested one level too deep": nested_just_too_deep,
    "a few megabytes": megabytes,
    "dense flow at the size limit": dense_flow_at_the_limit,
    "comments at the size limit": comments_at_the_limit,
    "one long scalar at the size limit": one_long_scalar_at_the_limit,
    "names at the value limit": names_at_the_limit,
    "profiles times names at the value limit": profiles_times_names,
    "alias bomb": alias_bomb,
    "merge-key bomb": merge_bomb,
    "catastrophic glob": catastrophic_glob,
}
