"""GoogleSQL string literals: raw when possible, escaped otherwise, always read back as the text."""

from __future__ import annotations

import pytest

from logaudit.core.googlesql import string_literal


@pytest.mark.parametrize(("text", "literal"), [
    (r"\bexit\((\d+)\)", r"r'\bexit\((\d+)\)'"),
    ('say "hi"', "r'say \"hi\"'"),
    ("it's", r"'it\'s'"),
    ("a\\b'c", r"'a\\b\'c'"),
    ("line\nnext", r"'line\nnext'"),
    ("cr\rlf", r"'cr\rlf'"),
    ("ends in \\", r"'ends in \\'"),
    ("", "r''"),
    ("caf\u00e9", "r'caf\u00e9'"),
])
def test_string_literal(text, literal):
    assert string_literal(text) == literal
