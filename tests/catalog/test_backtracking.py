"""The backtracking analysis: what it refuses, and that what it accepts runs in linear steps.

The linearity claim is checked against an independent backtracking matcher written here (a
continuation-passing interpreter of a small regex grammar that counts the characters it reads).
Its answers are checked against the `regex` module's on the same patterns and texts; for every
pattern the analysis calls linear, its step count on adversarial texts must stay within the
bound the analysis proves (`Analysis.steps_bound`). Step counts are deterministic: nothing here
is timed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import regex
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from logaudit.catalog.backtracking import MAX_ALIVE, MAX_WAYS, analyse

REPO = Path(__file__).resolve().parents[2]
#: More examples for a deeper run: LOGAUDIT_PROPERTY_EXAMPLES=5000 pytest tests/test_backtracking.py
PROPERTY_EXAMPLES = int(os.environ.get("LOGAUDIT_PROPERTY_EXAMPLES", "300"))


# ----------------------------------------------------------------------------- what is refused
@pytest.mark.parametrize(("rx", "kind", "construct"), [
    (r"(?:a|aa)+b(?<=xb)", "exponential", "(?:a|aa)+"),
    (r"(?:a|aa)+b", "exponential", "(?:a|aa)+"),
    (r"(a|a)*$", "exponential", "(a|a)*"),
    (r"(\w|\d)+x", "exponential", r"(\w|\d)+"),
    (r"(\w+\s?)+$", "exponential", r"(\w+\s?)+"),
    (r"(?:\s*\S+)*X", "exponential", r"(?:\s*\S+)*"),
    (r"^(\d+)*$", "exponential", r"(\d+)*"),
    (r"(?:ab|abab)+c", "exponential", "(?:ab|abab)+"),
    (r"\d+\d+x", "polynomial", r"`\d+` and `\d+`"),
    (r"a.*b.*c", "polynomial", "`.*` and `.*`"),
    (r"x\S+y\S+z", "polynomial", r"`\S+` and `\S+`"),
    (r"[^\n]*?\s*\(", "polynomial", r"`[^\n]*?` and `\s*`"),
    (r"(\w+)\s*\1", "polynomial", r"`\w+` and `\1`"),
    (r"\w*(?=.*x)", "lookaround", "(?=.*x)"),
    (r"(?:\w|\d){10}", "ambiguous", ""),
    (r"foo(?=(?:a|aa)+b)", "exponential", "inside the look-around `(?=(?:a|aa)+b)`"),
])
def test_refused_patterns_name_the_construct_and_a_slow_text(rx, kind, construct):
    found = analyse(rx)
    assert not found.linear and found.unanalysed is None
    assert found.risk.kind == kind
    assert construct in found.risk.message
    assert found.risk.hint


def test_the_slow_case_of_the_report():
    """`(?:a|aa)+b(?<=xb)` took 53 s on a 41-character line."""
    risk = analyse(r"(?:a|aa)+b(?<=xb)").risk
    assert (risk.kind, risk.message, risk.witness) == (
        "exponential",
        "`(?:a|aa)+` can match the same text in more than one way: the ways to try double with every few "
        "characters",
        "'aa' + 'aa' * 30 + '!'")


@pytest.mark.parametrize("rx", [
    r"\bNO_TOKEN\b", r"x[^y]+y[^z]+z", r"foo.*bar", r"(?>a+)+b", r"(?:\S++\s*)*X", r"\s*+\S+x",
    r"(?:ab|a)*b(?<=xb)",  # one way to read any text: after `a`, a `b` cannot start another iteration
    r"\d+\d+",  # nothing after: the first way always succeeds
    r"(\w|\d)+",  # the same
    r"\S+@\S+", r".*x.*", r"(\w+)\s+\1\b", r"(?:\w|\d){4}x", r"\p{L}+\s\p{L}+x", r"[^\n]*?\s{0,16}\(x",
    r"(?P<a>\S+)\s+(?P<b>\S+)\s+x", r"[^:/@\s]+:(?!REDACTED@|\*+@)[^@/\s]+@", r"^(?=.*x)\w+y",
    r"(?s)\bNO_TOKEN DEBUG:(?:.{0,4000}?\"connection_id\":\s*\"(?P<c>[^\"]*)\")?",
])
def test_linear_patterns_are_accepted(rx):
    found = analyse(rx)
    assert (found.linear, found.risk, found.unanalysed) == (True, None, None)


@pytest.mark.slow
def test_too_many_ways_alive_at_once_are_refused():
    """150 alternatives that all keep reading letters: linear, but 150 ways per character."""
    alternatives = "|".join(f"\\w*{a}{b}" for a in "bcdefghijklmnop" for b in "0123456789")
    found = analyse(f"a(?:{alternatives})!")
    assert (found.risk.kind, found.risk.message) == (
        "ambiguous", f"alternatives overlap: more than {MAX_ALIVE} ways to read a text are tried at once")
    assert analyse(f"a(?:{alternatives[:len(alternatives) // 2]})!").linear


@pytest.mark.parametrize(("rx", "why"), [
    (r"(?:colour){e<=1}", "a `{` that is not a repeat count (fuzzy matching?) is not analysed"),
    (r"(?x) a | b", "verbose mode is not analysed"),
    (r"a\X+b", "uses syntax only the `regex` module knows"),
    (r"a(?R)?b", "uses group syntax only the `regex` module knows"),
    (r"[^\p{L}]+", "a \\p property in a negated class is not analysed"),
])
def test_syntax_it_cannot_read_is_reported_as_unanalysed(rx, why):
    assert analyse(rx).unanalysed == why and not analyse(rx).linear and analyse(rx).risk is None


def test_shipped_patterns_are_all_proven_linear():
    for path in sorted((REPO / "patterns").glob("*.yaml")):
        for p in yaml.safe_load(path.read_text())["patterns"]:
            found = analyse(p["regex"], p.get("ignore_case", False))
            assert found.linear, (p["id"], found)


def test_ignore_case_counts_non_ascii_folds():
    """Under IGNORECASE `k` also matches the Kelvin sign: the two repeats overlap."""
    assert analyse("k+\u212a+x").linear
    assert analyse("k+\u212a+x", ignore_case=True).risk.kind == "polynomial"


# ----------------------------------------------------------------------------- a reference matcher
class TooSlow(Exception):
    pass


class Interpreter:
    """A backtracking matcher over the grammar below: anchored at 0, counts characters read.

    Repeats iterate greedily (lazily: stop first); an iteration past the required ones that
    reads nothing ends the repeat. Atomic groups keep their first way; look-aheads do not keep
    their groups' values.
    """

    def __init__(self, text: str, limit: int) -> None:
        self.text, self.limit, self.steps = text, limit, 0

    def read(self, n: int = 1) -> None:
        self.steps += n
        if self.steps > self.limit:
            raise TooSlow

    def match(self, node) -> bool:
        return self.m(node, 0, {}, lambda i, caps: True)

    def m(self, node, i, caps, k) -> bool:  # noqa: C901 - one branch per construct
        kind = node[0]
        text = self.text
        if kind in ("lit", "cls", "ncls", "any"):
            if i < len(text) and _char_ok(node, text[i]):
                self.read()
                return k(i + 1, caps)
            return False
        if kind == "cat":
            def chain(idx, j, c):
                return k(j, c) if idx == len(node[1]) else self.m(node[1][idx], j, c, lambda j2, c2: chain(idx + 1, j2, c2))
            return chain(0, i, caps)
        if kind == "alt":
            return any(self.m(x, i, caps, k) for x in node[1])
        if kind == "rep":
            _, body, lo, hi, mode = node
            if mode == "+":
                return self.m(("atomic", ("rep", body, lo, hi, "")), i, caps, k)
            return self.rep(body, lo, hi, mode == "?", i, 0, caps, k)
        if kind == "atomic":
            first = []
            if self.m(node[1], i, caps, lambda j, c: first.append((j, c)) or True):
                return k(*first[0])
            return False
        if kind == "look":
            ok = self.m(node[1], i, caps, lambda j, c: True)
            return ok == node[2] and k(i, caps)
        if kind == "group":
            return self.m(node[1], i, caps, lambda j, c: k(j, {**c, 1: (i, j)}))
        if kind == "ref":
            if 1 not in caps:
                return False
            a, b = caps[1]
            if not text.startswith(text[a:b], i):
                return False
            self.read(b - a)
            return k(i + b - a, caps)
        if kind == "eol":
            return i == len(text) and k(i, caps)
        raise AssertionError(node)

    def rep(self, body, lo, hi, lazy, i, count, caps, k) -> bool:
        def again(j, c):
            if j == i and count >= lo:  # an optional iteration that read nothing: stop
                return k(j, c)
            return self.rep(body, lo, hi, lazy, j, count + 1, c, k)

        can_stop = count >= lo
        can_go = hi is None or count < hi
        if lazy:
            return (can_stop and k(i, caps)) or (can_go and self.m(body, i, caps, again))
        return (can_go and self.m(body, i, caps, again)) or (can_stop and k(i, caps))


def _char_ok(node, ch: str) -> bool:
    kind = node[0]
    if kind == "lit":
        return ch == node[1]
    if kind == "cls":
        return ch in node[1]
    if kind == "ncls":
        return ch not in node[1]
    return True  # any: the alphabet has no newline


def render(node) -> str:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "cls":
        return f"[{node[1]}]"
    if kind == "ncls":
        return f"[^{node[1]}]"
    if kind == "any":
        return "."
    if kind == "cat":
        return "".join(render(x) for x in node[1])
    if kind == "alt":
        return "(?:" + "|".join(render(x) for x in node[1]) + ")"
    if kind == "rep":
        _, body, lo, hi, mode = node
        inner = render(body)
        if body[0] not in ("lit", "cls", "ncls", "any", "group"):
            inner = f"(?:{inner})"
        quant = {(0, None): "*", (1, None): "+", (0, 1): "?"}.get((lo, hi), f"{{{lo},{'' if hi is None else hi}}}")
        return inner + quant + mode
    if kind == "atomic":
        return f"(?>{render(node[1])})"
    if kind == "look":
        return f"(?{'=' if node[2] else '!'}{render(node[1])})"
    if kind == "group":
        return f"({render(node[1])})"
    if kind == "ref":
        return r"\1"
    if kind == "eol":
        return "$"
    raise AssertionError(node)


ATOMS = st.sampled_from([("lit", "a"), ("lit", "b"), ("cls", "ab"), ("ncls", "a"), ("any",)])


def _extend(children):
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda xs: ("cat", xs)),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: ("alt", xs)),
        st.tuples(children, st.sampled_from([(0, None), (1, None), (0, 1), (2, None), (1, 3), (0, 2)]),
                  st.sampled_from(["", "", "?", "+"])).map(lambda t: ("rep", t[0], t[1][0], t[1][1], t[2])),
        children.map(lambda x: ("atomic", x)),
        st.tuples(children, st.booleans()).map(lambda t: ("look", t[0], t[1])),
    )


TREES = st.recursive(ATOMS, _extend, max_leaves=7)


@st.composite
def patterns(draw):
    """A tree; sometimes with a group referred back to, sometimes anchored at the end."""
    tree = draw(TREES)
    if draw(st.integers(0, 3)) == 0:
        tree = ("cat", [("group", draw(TREES)), tree, ("ref", 1)])
    if draw(st.booleans()):
        tree = ("cat", [tree, draw(st.sampled_from([("eol",), ("lit", "c")]))])
    return tree


@st.composite
def hostile_texts(draw):
    """u + v * k + s over the pattern's alphabet: the shape that makes backtracking blow up."""
    part = st.text(alphabet="abc", max_size=3)
    u, s = draw(part), draw(part)
    v = draw(st.text(alphabet="abc", min_size=1, max_size=3))
    k = draw(st.integers(0, 40 // len(v)))
    return u + v * k + s


@pytest.mark.slow
@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns(), st.lists(hostile_texts(), min_size=1, max_size=4))
def test_accepted_patterns_read_within_the_proven_bound(tree, texts):
    """For every pattern the analysis calls linear, one attempt on a hostile text of n characters
    reads at most `steps_bound(n)` characters; the interpreter agrees with `regex` on every answer."""
    src = render(tree)
    try:
        compiled = regex.compile(src)
    except regex.error:
        assume(False)
    found = analyse(src)
    assert found.unanalysed is None, (src, found.unanalysed)  # the grammar is all analysable syntax
    for text in texts:
        if found.linear:
            run = Interpreter(text, found.steps_bound(len(text)))
            try:
                got = run.match(tree)
            except TooSlow:
                pytest.fail(f"{src!r} on {text!r}: more than {found.steps_bound(len(text))} steps")
        else:
            run = Interpreter(text, 200_000)
            try:
                got = run.match(tree)
            except TooSlow:
                continue
        assert got == (compiled.match(text) is not None), (src, text)


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None)
@given(st.text(alphabet="ab()[]|*+?{}^$.\\-:=!<>P0123,dswDSW", max_size=24), st.booleans())
def test_the_analysis_never_crashes(src, ignore_case):
    found = analyse(src, ignore_case)
    assert found.linear + (found.risk is not None) + (found.unanalysed is not None) == 1


@pytest.mark.slow
@pytest.mark.parametrize(("rx", "tree", "pump", "grows"), [
    ("(?:a|aa)+c", ("cat", [("rep", ("alt", [("lit", "a"), ("cat", [("lit", "a"), ("lit", "a")])]), 1, None, ""),
                           ("lit", "c")]), "a", 2.0),
    ("(?:a|a)*c", ("cat", [("rep", ("alt", [("lit", "a"), ("lit", "a")]), 0, None, ""), ("lit", "c")]), "a", 2.0),
    ("a*a*c", ("cat", [("rep", ("lit", "a"), 0, None, ""), ("rep", ("lit", "a"), 0, None, ""), ("lit", "c")]),
     "a", 1.5),
])
def test_refused_patterns_really_are_superlinear(rx, tree, pump, grows):
    """What the analysis refuses, the reference matcher really takes super-linear steps on."""
    assert not analyse(rx).linear

    def steps(n: int) -> int:
        run = Interpreter(pump * n + "!", 10**7)
        assert not run.match(tree)
        return run.steps

    assert steps(16) / steps(8) > 2 * grows and steps(8) > MAX_WAYS
