"""The bulk engine for literal-delimited patterns decides exactly like a `regex` search per text."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logaudit.catalog import engine
from logaudit.catalog.catalog import Pattern, load_catalogs
from logaudit.catalog.delimited import delimited_plan, search_delimited

PROPERTY_EXAMPLES = int(os.environ.get("LOGAUDIT_PROPERTY_EXAMPLES", "150"))

SHAPES = [
    r"\bCOMPLETED: s (?P<sid>\S+) for u='(?P<user>[^']*)'(?:, r='(?P<rid>[^']*)')?",
    r"\bDatabase session created\b",
    r"x=(?P<a>[^,\s]+), y=(?P<b>.*)",
    r"(?s)K:(?P<v>.*)",
    r"\bWord\b",
    r"é(?P<e>[^é]+)é",
    r"(?a)\bid=(?P<id>\S+) done\b",   # ASCII classes: the Unicode spaces do not end the run
]
#: Pieces texts are made of: the shapes' literals, their near misses, and the characters that
#: decide runs and word boundaries (Unicode spaces, word and non-word characters, ASCII or not).
PIECES = ["COMPLETED: s ", " for u='", "'", ", r='", "Database session created", "Word", "Words", "x=", ", y=",
          "K:", "é", "\u00e9t\u00e9", ",", " ", "\u00a0", "\u2003", "\u3000", "\n", "\t", "\x1c", "a", "_", "7",
          "\u0661", "\u2705", "-", "'", "COMPLETED: s", "Database", "id=", " done", "done"]
TEXT = st.lists(st.sampled_from(PIECES), max_size=12).map("".join) | st.text(max_size=30)


def pattern(src: str) -> Pattern:
    return Pattern(id="p", title="p", category="info", regex=src)


@pytest.mark.parametrize("src", SHAPES)
def test_shapes_have_a_plan(src):
    assert delimited_plan(pattern(src)) is not None


@pytest.mark.parametrize("src", [
    r"(?i)\bword\b",                  # case-insensitive
    r"a(?P<x>\S+?)b",                 # lazy run
    r"a(?P<x>\d+)b",                  # the class excludes too many characters to search for them
    r"a(?P<x>[^b]+)c",                # the run does not stop where the next literal starts
    r"(?P<x>\S+) a",                  # no leading literal
    r"a(\S+) b",                      # an unnamed group
    r"a\b(?P<x>\S+)",                 # a word boundary inside
    r"^abc",                          # anchors
    r"a(?=b)",                        # look-around
])
def test_other_shapes_have_none(src):
    assert delimited_plan(pattern(src)) is None


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(TEXT, min_size=1, max_size=40), src=st.sampled_from(SHAPES))
def test_decided_texts_equal_a_regex_search(texts, src):
    pat = pattern(src)
    got = search_delimited(delimited_plan(pat), pa.array(texts, pa.string()))
    names = tuple(pat.compiled.groupindex)
    for i, text in enumerate(texts):
        if got.undecided[i]:
            continue
        m = pat.compiled.search(text)
        assert bool(got.matched[i]) == (m is not None), (src, text)
        for name in names:
            assert got.groups[name][i].as_py() == (m.group(name) if m else None), (src, text, name)


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(texts=st.lists(TEXT, min_size=1, max_size=40), src=st.sampled_from(SHAPES))
def test_engine_with_the_bulk_path_equals_a_regex_search(texts, src, monkeypatch):
    monkeypatch.setattr(engine, "DELIMITED_MIN_TEXTS", 1)  # the same for every input: the bulk path even for a few texts
    pat = pattern(src)
    want = [None if (m := pat.compiled.search(t)) is None else m.groupdict() for t in texts]
    assert engine.match_texts(pat, texts) == want


def test_undecided_texts_are_the_ones_regex_must_look_at():
    pat = pattern(r"\bCOMPLETED: s (?P<sid>\S+) for u='(?P<user>[^']*)'(?:, r='(?P<rid>[^']*)')?")
    texts = ["COMPLETED: s 1 for u='a'",               # decided: match, no tail
             "\u2705 COMPLETED: s 2 for u='b', r='c'",  # decided: match with the tail
             "xCOMPLETED: s 3 for u='d' COMPLETED: s 4 for u='e'",  # first occurrence glued to a word: regex
             "\u00e9COMPLETED: s 5 for u='f'",          # a non-ASCII character before it: regex
             "COMPLETED: s  for u='g'",                 # an empty id fails here; a later occurrence might not
             "nothing here", None]
    got = search_delimited(delimited_plan(pat), pa.array(texts, pa.string()))
    assert got.matched.tolist() == [True, True, False, False, False, False, False]
    assert got.undecided.tolist() == [False, False, True, True, True, False, False]
    assert got.groups["rid"].to_pylist() == [None, "c", None, None, None, None, None]
    assert got.groups["sid"].to_pylist() == ["1", "2", None, None, None, None, None]


def test_shipped_patterns_with_a_plan():
    plans = {p.id for p in load_catalogs() if delimited_plan(p) is not None}
    assert {"request-session-completed", "db-session-created", "thread-creation-working"} <= plans


def test_long_texts_keep_empty_groups_exact():
    # RE2, which takes long ASCII texts otherwise, cannot tell an empty group from a missing one
    pat = pattern(r"\bCOMPLETED: s (?P<sid>\S+) for u='(?P<user>[^']*)'(?:, r='(?P<rid>[^']*)')?")
    texts = ["COMPLETED: s 1 for u=''" + "x" * 2000, "y" * 3000 + " COMPLETED: s 2 for u='a', r=''",
             # the first occurrence fails, so `regex` decides this one
             "xCOMPLETED: s 0 for u='' then COMPLETED: s 3 for u='', r='' " + "y" * 3000]
    assert engine.match_texts(pat, texts) == [{"sid": "1", "user": "", "rid": None}, {"sid": "2", "user": "a", "rid": ""},
                                         {"sid": "3", "user": "", "rid": ""}]
