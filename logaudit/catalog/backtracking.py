"""How much work a backtracking matcher may do with a regex: proven linear, or why not.

The `regex` module (like `re`) tries, from every start position, the ways the pattern can match
in priority order, until one succeeds; on a text that does not match, it tries them all. The
work of one attempt is the number of *paths* it walks: sequences of pattern positions that
read the text's first characters. When, for every text, at most B paths of one attempt end at
any one character, an attempt on n characters takes at most (n + 1) * (B + 1) steps: linear
(B is at most `MAX_ALIVE`). When the number of paths grows with the text, a short line can take seconds or hours:

* a repeated group whose body can match the same text in two ways (``(?:a|aa)+``, ``(a|a)*``,
  ``(\\w|\\d)+``, ``(\\w+\\s?)+``): the ways multiply with every repetition, *exponentially*;
* repeats that can take the same characters one after the other (``\\d+\\d+``, ``.*x.*y``,
  ``[^\\n]*?\\s*\\(``): the ways to split a run between them grow *polynomially*;
* a look-around that scans on to the end of the text (``(?=.*x)``) tested at many positions of
  one attempt, or alternatives that overlap in more than `MAX_WAYS` ways.

`analyse` builds the pattern's position automaton from Python's ``re`` parse tree (each
position reads one character; each edge between positions counts the ways the matcher can get
from one to the next without reading, so ``(a|a)`` and ``(a*)*`` count twice) and walks its
*counting subset construction*: per character read, how many paths end at each position. That
walk is finite (counts are capped above `MAX_WAYS`) and visits every reachable vector, so it
either proves a bound or finds a text on which one position is reached in more than
`MAX_WAYS` ways. Modelling choices, all of them over-approximations (more paths, never fewer):

* look-arounds, anchors and ``\\b`` are assumed to pass; a look-around's body is analysed on its
  own (backwards for a look-behind, as `regex` runs it), and when it can read more than
  `LONG_SCAN` characters, the number of times one attempt tests it must stay within `MAX_WAYS`;
* a back-reference is modelled as a copy of the group it refers to; an atomic group as an
  ordinary group, except that an atomic or possessive repeat of one character class
  (``\\s*+``, ``(?>\\w+)``) takes the whole run and gives nothing back, which is modelled exactly;
* bounded repeats up to `UNROLL` are unrolled, longer ones read as unbounded;
* a position from which every continuation succeeds (``.*`` at the end) ends the attempt.

Syntax only `regex` knows (fuzzy matching, recursion, variable-width look-behind, ...) and
verbose mode are not analysed: `Analysis.unanalysed` says so, and the engine runs such patterns
under its time limit.

>>> analyse(r"\\bNO_TOKEN\\b").linear
True
>>> analyse(r"(?:a|aa)+b").risk.kind
'exponential'
"""

from __future__ import annotations

import re
import re._compiler as sre_compile
import re._constants as sre_c
import re._parser as sre_parse
import sys
import warnings
from array import array
from collections import defaultdict, deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import regex

#: At most this many paths of one attempt may end at one position after any text,
MAX_WAYS = 32
#: and at most this many at all positions together (B below).
MAX_ALIVE = 128
#: Bounded repeats up to this many iterations are unrolled; longer ones are read as unbounded.
UNROLL = 16
#: A look-around body that can read more characters than this counts as scanning the text.
LONG_SCAN = 256
#: Larger automata, or counting walks longer than this, are not analysed.
MAX_POSITIONS = 1000
MAX_VECTORS = 20_000
#: Steps the searches that explain a refusal may take (past them the explanation is less precise).
_WORK = 400_000

_EMPTY: frozenset[int] = frozenset()
_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT)
_LOOKS = (sre_c.ASSERT, sre_c.ASSERT_NOT)
_ONE_CHAR = (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.ANY, sre_c.IN)


# ================================================================================== results
@dataclass(frozen=True)
class Risk:
    """Why a pattern is not linear: `kind`, what (naming the construct), how to rewrite it."""

    kind: str  # "exponential" | "polynomial" | "ambiguous" | "lookaround"
    message: str
    hint: str
    witness: str  # a text (in Python notation) on which the matcher takes long


@dataclass(frozen=True)
class Analysis:
    """The verdict on one pattern.

    `linear`: proven; one attempt on n characters takes at most `steps_bound(n)` steps.
    Otherwise `risk` says why it may not be, or `unanalysed` why it was not analysed.
    """

    linear: bool
    risk: Risk | None = None
    unanalysed: str | None = None
    per_char: int = 0  # B: paths of one attempt ending at one character, at most
    positions: int = 0
    #: per look-around: (most tests counted, whether that count is per attempt (True) or per
    #: character (False), the body's analysis)
    checks: tuple[tuple[int, bool, Analysis], ...] = field(default=(), repr=False)

    def steps_bound(self, n: int) -> int:
        """Characters read by one attempt on a text of `n` characters, at most (linear patterns)."""
        total = (n + 1) * (self.per_char + 1)
        for count, per_attempt, body in self.checks:
            tests = 2 * count if per_attempt else (n + 2) * count
            total += tests * body.steps_bound(n)
        return total


class _Unanalysable(Exception):
    pass


class _Found(Exception):
    def __init__(self, risk: Risk) -> None:
        super().__init__(risk.message)
        self.risk = risk


@lru_cache(maxsize=4096)
def analyse(src: str, ignore_case: bool = False) -> Analysis:
    """Whether a backtracking matcher runs `src` in linear time per start position (memoized).

    >>> analyse(r"[^:]+:\\s*(?P<v>\\S+)").linear
    True
    >>> analyse(r"(\\w|\\d)+$").risk.message.split(":")[0]
    '`(\\\\w|\\\\d)+` can match the same text in more than one way'
    """
    try:
        prepared = _prepare(src)
        with warnings.catch_warnings():  # "possible nested set" and the like: `regex` reads it as `re` does
            warnings.simplefilter("ignore")
            tree = sre_parse.parse(prepared.source, re.IGNORECASE if ignore_case else 0)
    except (_Unanalysable, re.error, RecursionError, OverflowError, ValueError, IndexError, TypeError) as err:
        why = str(err) if isinstance(err, _Unanalysable) else "uses syntax only the `regex` module knows"
        return Analysis(False, unanalysed=why)
    if tree.state.flags & sre_c.SRE_FLAG_VERBOSE:
        return Analysis(False, unanalysed="verbose mode is not analysed")
    try:
        labels = _labels(list(tree), prepared)
        return _Automaton(tree.state, labels).analyse(list(tree), reverse=False)
    except _Found as found:
        return Analysis(False, risk=found.risk)
    except (_Unanalysable, RecursionError) as err:
        return Analysis(False, unanalysed=str(err) or "too complex to analyse")


# ================================================================================== source
@dataclass
class _Prepared:
    source: str  # for `re`'s parser
    repeats: list[tuple[int, int]]  # spans (in the original) of quantified items, by start
    looks: list[tuple[int, int]]  # spans of look-arounds
    original: str


_QUANT = re.compile(r"[*+?]|\{(?:\d+(?:,\d*)?|,\d+)\}")
_FLAGS_GROUP = re.compile(r"\(\?[aiLmsux-]*\)|\(\?[aiLmsux-]*:")
_NAME = re.compile(r"[A-Za-z_]\w*")
_PROPERTY = re.compile(r"\\[pP](?:\{[^}]*\}|[A-Za-z])")


def _prepare(src: str) -> _Prepared:
    """Rewrite `regex` spellings for `re`'s parser and record where repeats and look-arounds are.

    Every alternation gets an always-true ``(?=)`` before each ``|``: without it the parser
    turns ``\\w|\\d`` into the class ``[\\w\\d]`` and ``a|a`` into ``a``, hiding the ambiguity
    the matcher (which keeps the alternatives) pays for. ``\\p{...}`` becomes a class that
    holds its ASCII members exactly and every non-ASCII character.
    """
    if src and max(src) >= chr(_PLACEHOLDER):
        raise _Unanalysable("characters of the supplementary private use areas are not analysed")
    out: list[str] = []
    repeats: list[tuple[int, int]] = []
    looks: list[tuple[int, int]] = []
    stack: list[tuple[int, bool]] = []  # open groups: (start, is a look-around)
    atom: int | None = None  # where the item a quantifier would apply to starts
    i = 0
    while i < len(src):
        c = src[i]
        if c == "\\":
            end = _escape_end(src, i)
            text = src[i:end]
            out.append(_property_class(text, in_class=False) if text[1] in "pP" else text)
            atom, i = i, end
        elif c == "[":
            end, text = _class(src, i)
            out.append(text)
            atom, i = i, end
        elif c == "(":
            i, atom = _open_group(src, i, out, stack, looks)
        elif c == ")":
            if not stack:
                raise _Unanalysable("unbalanced parenthesis")
            start, look = stack.pop()
            if look:
                looks.append((start, i + 1))
            out.append(c)
            atom, i = start, i + 1
        elif c == "|":
            out.append("(?=)|")
            atom, i = None, i + 1
        elif c in "*+?{":
            m = _QUANT.match(src, i)
            if m is None:
                raise _Unanalysable("a `{` that is not a repeat count (fuzzy matching?) is not analysed")
            end = m.end() + (1 if src[m.end():m.end() + 1] in ("?", "+") else 0)
            if atom is not None:
                repeats.append((atom, end))
            out.append(src[i:end])
            atom, i = None, end
        else:
            out.append(c)
            atom, i = i, i + 1
    return _Prepared("".join(out), sorted(repeats), sorted(looks), src)


def _escape_end(src: str, i: int) -> int:
    nxt = src[i + 1:i + 2]
    if nxt == "":
        raise _Unanalysable("a trailing backslash")
    if nxt in "pP":
        m = _PROPERTY.match(src, i)
        if m is None:
            raise _Unanalysable("a \\p property it cannot read")
        return m.end()
    width = {"x": 4, "u": 6, "U": 10}.get(nxt)
    if width:
        return i + width
    if nxt == "N" and src[i + 2:i + 3] == "{":
        return src.index("}", i) + 1
    if nxt.isdigit():
        j = i + 1
        while j < len(src) and j < i + 4 and src[j].isdigit():
            j += 1
        return j
    return i + 2


def _class(src: str, i: int) -> tuple[int, str]:
    """A character class starting at `i`: (its end, its text for `re`)."""
    j = i + 1
    negated = src[j:j + 1] == "^"
    if negated:
        j += 1
    out = ["[^" if negated else "["]
    if src[j:j + 1] == "]":
        out.append("]")
        j += 1
    while j < len(src) and src[j] != "]":
        if src[j] == "\\":
            end = _escape_end(src, j)
            text = src[j:end]
            if text[1] in "pP":
                if negated:
                    raise _Unanalysable("a \\p property in a negated class is not analysed")
                text = _property_class(text, in_class=True)
            out.append(text)
            j = end
        elif src[j] == "[" and src[j + 1:j + 2] == ":":
            raise _Unanalysable("POSIX classes are not analysed")
        else:
            out.append(src[j])
            j += 1
    if j >= len(src):
        raise _Unanalysable("an unterminated character class")
    out.append("]")
    return j + 1, "".join(out)


def _open_group(src: str, i: int, out: list[str], stack: list[tuple[int, bool]],
                looks: list[tuple[int, int]]) -> tuple[int, int | None]:
    """Copy a group's opening (rewriting ``(?<name>``); returns (next index, quantifiable start)."""
    if src.startswith("(?#", i):  # a comment
        end = src.index(")", i) + 1
        out.append(src[i:end])
        return end, None
    if src.startswith("(?=)", i):  # always true: nothing to look at
        out.append("(?=)")
        return i + 4, i
    flags = _FLAGS_GROUP.match(src, i)
    if flags:
        if "x" in flags.group(0).split("-")[0]:
            raise _Unanalysable("verbose mode is not analysed")
        out.append(flags.group(0))
        if flags.group(0).endswith(")"):
            return flags.end(), None
        stack.append((i, False))
        return flags.end(), None
    for opening in ("(?<=", "(?<!", "(?=", "(?!"):
        if src.startswith(opening, i):
            out.append(opening)
            stack.append((i, True))
            return i + len(opening), None
    if src.startswith("(?P<", i) or src.startswith("(?<", i):
        at = i + (4 if src[i + 2] == "P" else 3)
        name = _NAME.match(src, at)
        if name is None or src[name.end():name.end() + 1] != ">":
            raise _Unanalysable("a group name it cannot read")
        out.append(f"(?P<{name.group(0)}>")
        stack.append((i, False))
        return name.end() + 1, None
    if src.startswith("(?P=", i):  # a back-reference by name: one item
        end = src.index(")", i) + 1
        out.append(src[i:end])
        return end, i
    if src.startswith("(?(", i):  # a conditional: its condition is not a group
        end = src.index(")", i + 3) + 1
        out.append(src[i:end])
        stack.append((i, False))
        return end, None
    for opening in ("(?:", "(?>"):
        if src.startswith(opening, i):
            out.append(opening)
            stack.append((i, False))
            return i + len(opening), None
    if src.startswith("(?", i):
        raise _Unanalysable("uses group syntax only the `regex` module knows")
    out.append("(")
    stack.append((i, False))
    return i + 1, None


#: Non-ASCII characters ``re`` folds onto ASCII letters, and one of each kind below (for examples).
_SYMBOL_PROBES = "\u0130\u0131\u017f\u212a\u0663\u00e9\u00a0\u20ac"
#: The last bits of a class mask stand for the non-ASCII characters the pattern does not name, by
#: kind: digits, other word characters, spaces, the rest (every ``\d``, ``\w``, ``\s`` is exact on them).
_KINDS = ("\u0663", "\u00e9", "\u00a0", "\u20ac")
_ALL_KINDS = frozenset(range(4))
_CATEGORY_KINDS = {
    sre_c.CATEGORY_DIGIT: frozenset({0}), sre_c.CATEGORY_NOT_DIGIT: frozenset({1, 2, 3}),
    sre_c.CATEGORY_WORD: frozenset({0, 1}), sre_c.CATEGORY_NOT_WORD: frozenset({2, 3}),
    sre_c.CATEGORY_SPACE: frozenset({2}), sre_c.CATEGORY_NOT_SPACE: frozenset({0, 1, 3}),
}


#: ``\p{...}`` properties stand in the parsed pattern as private-use characters from here on.
_PLACEHOLDER = 0xF0000
_PROPERTIES: dict[str, int] = {}


def _property_class(text: str, in_class: bool) -> str:
    r"""A placeholder character for the property ``\p{...}`` (its class mask is `_property_mask`)."""
    code = _PROPERTIES.setdefault(text, _PLACEHOLDER + len(_PROPERTIES))
    if code >= 0xFFFFE:
        raise _Unanalysable("too many \\p properties")
    return f"\\U{code:08x}" if in_class else f"[\\U{code:08x}]"


@lru_cache(maxsize=256)
def _property_mask(code: int, flags: int, symbols: tuple[str, ...]) -> int:
    """Which symbols the property behind placeholder `code` matches, then which kinds of other
    non-ASCII characters (any character of that kind it holds)."""
    text = next(t for t, c in _PROPERTIES.items() if c == code)
    try:
        rx = regex.compile(text, regex.IGNORECASE if flags & sre_c.SRE_FLAG_IGNORECASE else 0)
    except regex.error:
        raise _Unanalysable(f"an unknown property {text}") from None
    mask = 0
    for k, ch in enumerate(symbols):
        if rx.match(ch):
            mask |= 1 << k
    others = _non_ascii()
    for kind, test in enumerate((r"\d", r"[^\W\d]", r"\s", r"[^\w\s]")):
        if regex.search(f"(?={test}){text}", others, flags=rx.flags):
            mask |= 1 << (len(symbols) + kind)
    return mask


@lru_cache(maxsize=1)
def _non_ascii() -> str:
    codes = [*range(128, 0xD800), *range(0xE000, 0x110000)]
    return array("I", codes).tobytes().decode("utf-32-le" if sys.byteorder == "little" else "utf-32-be")


def _labels(tree: list[Any], prepared: _Prepared) -> dict[int, str]:
    """Source text of each repeat and look-around node (by the id of its body), when they line up."""
    repeats: list[int] = []
    looks: list[int] = []

    def walk(items: list[Any]) -> None:
        for op, av in items:
            if op in _REPEATS:
                repeats.append(id(av[2]))
                walk(list(av[2]))
            elif op in _LOOKS:
                if list(av[1]):  # not the ``(?=)`` markers
                    looks.append(id(av[1]))
                walk(list(av[1]))
            for sub in _children(op, av):
                walk(sub)

    walk(tree)
    out: dict[int, str] = {}
    src = prepared.original
    for ids, spans in ((repeats, prepared.repeats), (looks, prepared.looks)):
        if len(ids) == len(spans):
            out.update({k: src[a:b] for k, (a, b) in zip(ids, spans, strict=True)})
    return out


def _children(op: Any, av: Any) -> list[list[Any]]:
    """Sub-sequences of a node other than repeat and look-around bodies."""
    if op == sre_c.SUBPATTERN:
        return [list(av[3])]
    if op == sre_c.BRANCH:
        return [list(b) for b in av[1]]
    if op == sre_c.ATOMIC_GROUP:
        return [list(av)]
    if op == sre_c.GROUPREF_EXISTS:
        return [list(av[1])] + ([list(av[2])] if av[2] else [])
    return []


# ================================================================================== automaton
class _Frag:
    """A piece of the automaton: how it is entered, left, and passed without reading.

    ``first[(q, guard)]``: ways to enter and reach position q as the first read (its character
    must avoid the classes of the positions in `guard`: possessive runs passed over);
    ``last[(p, guard, conditional)]``: ways from p to the exit (`conditional`: an assertion on
    the way); ``null[(guard, conditional)]``: ways through without reading.
    """

    __slots__ = ("first", "last", "null")

    def __init__(self, first: dict | None = None, last: dict | None = None, null: dict | None = None) -> None:
        self.first: dict[tuple[int, frozenset[int]], int] = first or {}
        self.last: dict[tuple[int, frozenset[int], bool], int] = last or {}
        self.null: dict[tuple[frozenset[int], bool], int] = null or {}


def _eps(conditional: bool = False) -> _Frag:
    return _Frag(null={(_EMPTY, conditional): 1})


def _add(target: dict, key: Any, n: int) -> None:
    target[key] = min(target.get(key, 0) + n, 1 << 40)


class _Automaton:
    """The position automaton of one pattern (or look-around body) and its counting walk."""

    def __init__(self, state: Any, labels: dict[int, str], groups: dict[int, tuple[list[Any], int]] | None = None
                 ) -> None:
        self.state = state
        self.labels = labels
        self.nodes: list[tuple[Any, Any, int] | None] = []  # per position: its one-character node, None: a test
        self.kinds: list[str] = []  # "char" | "copy" (back-reference) | "scan" | "test" (look-arounds)
        self.repeats: list[tuple[str, ...]] = []  # per position: labels of the repeats around it, outermost first
        self.follow: dict[tuple[int, int, frozenset[int]], int] = {}
        self.loops: dict[tuple[int, int], set[tuple[int, str]]] = defaultdict(set)  # edge -> (depth, repeat label)
        self.looks: list[tuple[int, bool, Analysis, str]] = []  # (position, reads far?, body's analysis, label)
        self.stack: list[str] = []
        self.copying = 0
        self.copy_label = ""
        self.groups = groups if groups is not None else {}

    # -------------------------------------------------------------------------- building
    def _position(self, node: tuple[Any, Any, int] | None, kind: str) -> int:
        if len(self.nodes) >= MAX_POSITIONS:
            raise _Unanalysable("too large to analyse")
        self.nodes.append(node)
        self.kinds.append("copy" if self.copying and kind == "char" else kind)
        self.repeats.append((self.copy_label,) if self.copying else tuple(self.stack))
        return len(self.nodes) - 1

    def _char(self, op: Any, av: Any, flags: int) -> _Frag:
        p = self._position((op, av, flags), "char")
        return _Frag({(p, _EMPTY): 1}, {(p, _EMPTY, False): 1})

    def _link(self, a: _Frag, b: _Frag, loop: tuple[int, str] | None = None) -> None:
        for (p, g1, _), n1 in a.last.items():
            for (q, g2), n2 in b.first.items():
                _add(self.follow, (p, q, g1 | g2), n1 * n2)
                if loop is not None:
                    self.loops[(p, q)].add(loop)

    def _cat(self, a: _Frag, b: _Frag) -> _Frag:
        self._link(a, b)
        first = dict(a.first)
        for (g1, _), n1 in a.null.items():
            for (q, g2), n2 in b.first.items():
                _add(first, (q, g1 | g2), n1 * n2)
        last = _merge(b.last, _exits(a.last, b.null))
        null: dict = {}
        for (g1, c1), n1 in a.null.items():
            for (g2, c2), n2 in b.null.items():
                _add(null, (g1 | g2, c1 or c2), n1 * n2)
        return _Frag(first, last, null)

    @staticmethod
    def _alt(frags: list[_Frag]) -> _Frag:
        out = _Frag()
        for f in frags:
            for mine, theirs in ((out.first, f.first), (out.last, f.last), (out.null, f.null)):
                for k, n in theirs.items():
                    _add(mine, k, n)
        return out

    def _seq(self, items: list[Any], flags: int) -> _Frag:
        frag = _eps()
        for op, av in items:
            frag = self._cat(frag, self._node(op, av, flags))
        return frag

    def _node(self, op: Any, av: Any, flags: int) -> _Frag:
        if op in _ONE_CHAR:
            return self._char(op, av, flags)
        if op == sre_c.SUBPATTERN:
            group, add, dele, sub = av
            return self._seq(list(sub), (flags | add) & ~dele)
        if op == sre_c.BRANCH:
            return self._alt([self._seq(list(b), flags) for b in av[1]])
        if op in _REPEATS:
            return self._repeat(op, av, flags)
        if op == sre_c.ATOMIC_GROUP:
            run = _single_run(list(av))
            if run is not None:
                return self._run(run[0], run[1], run[2], flags)
            return self._seq(list(av), flags)  # as an ordinary group: more paths, never fewer
        if op == sre_c.AT:
            return _eps(conditional=True)
        if op in _LOOKS:
            return self._look(op, av, flags)
        if op == sre_c.GROUPREF:
            return self._backref(av, flags)
        if op == sre_c.GROUPREF_EXISTS:
            _, yes, no = av
            branches = [self._seq(list(yes), flags), self._seq(list(no), flags) if no else _eps()]
            return self._cat(_eps(conditional=True), self._alt(branches))
        raise _Unanalysable(f"cannot analyse {op}")

    def _repeat(self, op: Any, av: Any, flags: int) -> _Frag:
        lo, hi, body = av
        items = list(body)
        if op == sre_c.POSSESSIVE_REPEAT and hi == sre_c.MAXREPEAT and _one_char(items):
            return self._run(lo, items[0], body, flags)
        label = self.labels.get(id(body), "")
        self.stack.append(label)
        try:
            return self._expand(lo, hi, items, flags, (len(self.stack), label))
        finally:
            self.stack.pop()

    def _expand(self, lo: int, hi: int, items: list[Any], flags: int, loop: tuple[int, str]) -> _Frag:
        """`lo` required iterations, then optional ones: an empty optional iteration ends the loop."""
        unbounded = hi == sre_c.MAXREPEAT or hi > UNROLL
        if lo > UNROLL:
            if self._seq(items, flags).null:
                raise _Unanalysable("a long repeat of something that can match nothing is not analysed")
            lo = UNROLL  # fewer required iterations: more paths, never fewer
        frag = _eps()
        for _ in range(lo):
            frag = self._cat(frag, self._seq(items, flags))
        if unbounded:
            body = self._seq(items, flags)
            self._link(body, body, loop)
            again = _merge({(_EMPTY, False): 1}, body.null)  # stop, or one empty iteration and stop
            return self._cat(frag, _Frag(dict(body.first), _exits(body.last, again), again))
        tail = _eps()  # after the last iteration allowed: only the exit
        for _ in range(hi - lo):
            body = self._seq(items, flags)
            self._link(body, tail)
            null = _merge({(_EMPTY, False): 1}, body.null)
            tail = _Frag(dict(body.first), _merge(tail.last, _exits(body.last, tail.null)), null)
        return self._cat(frag, tail)

    def _run(self, lo: int, node: tuple[Any, Any], body: Any, flags: int) -> _Frag:
        """A possessive or atomic repeat of one character class: it takes the whole run."""
        self.stack.append(self.labels.get(id(body), ""))
        try:
            p = self._position((node[0], node[1], flags), "char")
        finally:
            self.stack.pop()
        _add(self.follow, (p, p, _EMPTY), 1)
        guard = frozenset([p])
        return _Frag({(p, _EMPTY): 1}, {(p, guard, False): 1}, {(guard, False): 1} if lo == 0 else {})

    def _look(self, op: Any, av: Any, flags: int) -> _Frag:
        direction, body = av
        items = list(body)
        if not items:  # ``(?=)``: always true
            return _eps()
        inner = _Automaton(self.state, self.labels, self.groups)
        label = self.labels.get(id(body), "")
        try:
            found = inner.analyse(items, reverse=direction < 0, flags=flags)
        except _Found as err:
            risk = err.risk
            where = f"inside the look-around `{label}`: " if label else "inside a look-around: "
            raise _Found(Risk(risk.kind, where + risk.message, risk.hint, risk.witness)) from None
        width = sre_parse.SubPattern(self.state, items).getwidth()[1]
        scans = width > LONG_SCAN
        p = self._position(None, "scan" if scans else "test")
        if scans:
            _add(self.follow, (p, p, _EMPTY), 1)
        self.looks.append((p, scans, found, label))
        return _Frag({(p, _EMPTY): 1}, {}, {(_EMPTY, True): 1})

    def _backref(self, group: int, flags: int) -> _Frag:
        if group not in self.groups:
            raise _Unanalysable("a back-reference it cannot resolve")
        items, gflags = self.groups[group]
        self.copying += 1
        outer, self.copy_label = self.copy_label, self.copy_label or f"\\{group}"
        try:
            frag = self._seq(items, gflags | (flags & sre_c.SRE_FLAG_IGNORECASE))
        finally:
            self.copying -= 1
            self.copy_label = outer
        # the text must equal the group's: it may fail anywhere, so nothing after it is final
        last = {(p, g, True): n for (p, g, _), n in frag.last.items()}
        null = {(g, True): n for (g, _), n in frag.null.items()}
        return _Frag(frag.first, last, null)

    def _collect_groups(self, items: list[Any], flags: int) -> None:
        for op, av in items:
            if op == sre_c.SUBPATTERN:
                group, add, dele, sub = av
                if group is not None:
                    self.groups[group] = (list(sub), (flags | add) & ~dele)
                self._collect_groups(list(sub), (flags | add) & ~dele)
                continue
            if op in _REPEATS:
                self._collect_groups(list(av[2]), flags)
            elif op in _LOOKS:
                self._collect_groups(list(av[1]), flags)
            for sub in _children(op, av):
                self._collect_groups(sub, flags)

    # -------------------------------------------------------------------------- analysis
    def analyse(self, items: list[Any], *, reverse: bool, flags: int | None = None) -> Analysis:
        """Build the automaton of `items` and walk it; raises `_Found` when it is not linear."""
        flags = self.state.flags if flags is None else flags
        if not self.groups:
            self._collect_groups(items, flags)
        if reverse:
            items = _reversed(items)
        top = self._seq(items, flags)
        walk = _Walk(self, top)
        return walk.run()


def _exits(last: dict, null: dict) -> dict:
    """`last` followed by a part passed without reading (`null`)."""
    out: dict = {}
    for (p, g1, c1), n1 in last.items():
        for (g2, c2), n2 in null.items():
            _add(out, (p, g1 | g2, c1 or c2), n1 * n2)
    return out


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, n in b.items():
        _add(out, k, n)
    return out


def _one_char(items: list[Any]) -> bool:
    return len(items) == 1 and items[0][0] in _ONE_CHAR


def _single_run(items: list[Any]) -> tuple[int, tuple[Any, Any], Any] | None:
    """An atomic group holding only a greedy unbounded repeat of one class: (min, class node, body)."""
    while len(items) == 1 and items[0][0] == sre_c.SUBPATTERN and not items[0][1][1] and not items[0][1][2]:
        items = list(items[0][1][3])
    if len(items) == 1 and items[0][0] in (sre_c.MAX_REPEAT, sre_c.POSSESSIVE_REPEAT):
        lo, hi, body = items[0][1]
        if hi == sre_c.MAXREPEAT and _one_char(list(body)):
            return lo, list(body)[0], body
    return None


def _reversed(items: list[Any]) -> list[Any]:
    """The sequence read backwards (for a look-behind's body, which `regex` matches right to left)."""
    out = []
    for op, av in reversed(items):
        if op == sre_c.SUBPATTERN:
            av = (av[0], av[1], av[2], _reversed(list(av[3])))
        elif op == sre_c.BRANCH:
            av = (av[0], [_reversed(list(b)) for b in av[1]])
        elif op in _REPEATS:
            av = (av[0], av[1], _reversed(list(av[2])))
        elif op == sre_c.ATOMIC_GROUP:
            av = _reversed(list(av))
        out.append((op, av))
    return out


# ================================================================================== the walk
class _Walk:
    """The counting subset construction of an automaton over its character classes."""

    def __init__(self, auto: _Automaton, top: _Frag) -> None:
        self.auto = auto
        self.top = top
        self.symbols = _symbols(auto.nodes)
        nbits = len(self.symbols) + len(_KINDS)
        self.masks = [self._mask(node) if node is not None else (1 << nbits) - 1 for node in auto.nodes]
        self.blocks = _partition(self.masks, nbits)
        self._block_cache: dict[int, list[int]] = {}
        self.done = self._tail()
        self.init, self.trans = self._transitions()

    # ---------------------------------------------------------------------- character classes
    def _mask(self, node: tuple[Any, Any, int]) -> int:
        op, av, flags = node
        if op == sre_c.LITERAL and av >= _PLACEHOLDER:
            return _property_mask(av, flags, self.symbols)
        if op == sre_c.LITERAL and not flags & sre_c.SRE_FLAG_IGNORECASE:
            return 1 << self.symbols.index(chr(av))
        return _class_mask(op, _freeze(av), flags, self.symbols)

    def _allowed(self, q: int, guard: frozenset[int]) -> int:
        mask = self.masks[q]
        for g in guard:
            mask &= ~self.masks[g]
        return mask

    # ---------------------------------------------------------------------- positions that end it
    def _tail(self) -> set[int]:
        """Positions from which every continuation succeeds at once (``.*`` at the end): the
        attempt stops there, so what follows them costs nothing more."""
        kinds = self.auto.kinds
        done = {p for (p, g, c) in self.top.last if not c and g <= {p} and kinds[p] == "char"}
        succ: dict[int, set[int]] = defaultdict(set)
        for (p, q, g) in self.auto.follow:
            if self._allowed(q, g):
                succ[p].add(q)
        changed = True
        while changed:
            changed = False
            for p in list(done):
                if not succ[p] <= done:
                    done.discard(p)
                    changed = True
        return done

    def _transitions(self) -> tuple[list[dict[int, int]], list[dict[int, list[tuple[int, int]]]]]:
        """Per block: the first positions (with their ways) and the edges out of each position."""
        init: list[dict[int, int]] = [{} for _ in self.blocks]
        trans: list[dict[int, list[tuple[int, int]]]] = [defaultdict(list) for _ in self.blocks]
        self.out: dict[int, set[int]] = defaultdict(set)  # position -> blocks it can read next
        for (q, g), n in self.top.first.items():
            if q not in self.done:
                for b in self._blocks_of(self._allowed(q, g)):
                    _add(init[b], q, n)
        for (p, q, g), n in self.auto.follow.items():
            if p not in self.done and q not in self.done:
                for b in self._blocks_of(self._allowed(q, g)):
                    trans[b][p].append((q, n))
                    self.out[p].add(b)
        return init, trans

    def _blocks_of(self, mask: int) -> list[int]:
        hit = self._block_cache.get(mask)
        if hit is None:
            hit = self._block_cache[mask] = [b for b, block in enumerate(self.blocks) if block & mask]
        return hit

    # ---------------------------------------------------------------------- the walk
    def run(self) -> Analysis:
        """Walk every reachable vector of path counts; raises `_Found` when a count passes `MAX_WAYS`
        (the walk stops there, so counts need no cap and the vectors stay finite)."""
        kinds = self.auto.kinds
        looks = {p for p, kind in enumerate(kinds) if kind in ("scan", "test")}
        seen: dict[tuple, tuple[tuple | None, int]] = {}
        queue: deque[tuple | None] = deque([None])
        per_char = 0
        most: dict[int, int] = defaultdict(int)  # look-around position -> most tests counted
        first_blocks = [b for b, init in enumerate(self.init) if init]
        while queue:
            vec = queue.popleft()
            blocks = first_blocks if vec is None else sorted(set().union(*(self.out[p] for p, _ in vec)))
            for b in blocks:
                nxt = self._step(vec, b)
                if not nxt or nxt in seen:
                    continue
                seen[nxt] = (vec, b)
                if len(seen) > MAX_VECTORS:  # maybe only large: growing, if the products show it
                    raise _Found(_Explain(self).growth() or _raise(_Unanalysable("too complex to analyse")))
                total = 0
                for q, c in nxt:
                    if c > MAX_WAYS:
                        raise _Found(_Explain(self).growth() or _Explain(self).finite(self.word(seen, nxt), q))
                    if q in looks:
                        most[q] = max(most[q], c)
                    else:
                        total += c
                if total > MAX_ALIVE:
                    raise _Found(_Explain(self).growth() or _Explain(self).finite(self.word(seen, nxt), None))
                per_char = max(per_char, total)
                queue.append(nxt)
        checks = tuple((most.get(p, 0), scans, found) for p, scans, found, _ in self.auto.looks)
        return Analysis(True, per_char=per_char, positions=len(kinds), checks=checks)

    def _step(self, vec: tuple | None, b: int) -> tuple:
        if vec is None:
            acc = self.init[b]
        else:
            acc = {}
            trans = self.trans[b]
            for p, c in vec:
                for q, n in trans.get(p, ()):
                    acc[q] = acc.get(q, 0) + c * n
        return tuple(sorted(acc.items()))

    def word(self, seen: dict, vec: tuple) -> list[int]:
        """The blocks read to reach `vec` (shortest)."""
        out = []
        while vec is not None:
            vec, b = seen[vec]
            out.append(b)
        return out[::-1]

    def char(self, b: int) -> str:
        """A readable character of block `b`."""
        return self.readable(b)[1]

    def readable(self, b: int) -> tuple[int, str]:
        """(rank, character) of block `b`: a letter or digit, else a visible character, else a space, else any."""
        symbols = self.symbols + _KINDS
        chars = [ch for k, ch in enumerate(symbols) if self.blocks[b] >> k & 1]
        for rank, good in enumerate((str.isalnum, lambda ch: ch.isprintable() and ch != " ", lambda ch: ch == " ")):
            for ch in chars:
                if good(ch):
                    return rank, ch
        return 3, chars[0]


def _freeze(av: Any) -> Any:
    if isinstance(av, list):
        return tuple(_freeze(x) for x in av)
    if isinstance(av, tuple):
        return tuple(_freeze(x) for x in av)
    return av


def _symbols(nodes: list[tuple[Any, Any, int] | None]) -> tuple[str, ...]:
    """The alphabet: ASCII, the non-ASCII characters the pattern names, a few probes; the last
    bit of a mask (one past these) stands for every other non-ASCII character."""
    extra: set[str] = set(_SYMBOL_PROBES)

    def note(code: int) -> None:
        if 128 <= code < _PLACEHOLDER:
            ch = chr(code)
            extra.update((ch, ch.lower(), ch.upper(), ch.swapcase()))

    for node in nodes:
        if node is None:
            continue
        op, av, _ = node
        if op in (sre_c.LITERAL, sre_c.NOT_LITERAL):
            note(av)
        elif op == sre_c.IN:
            for iop, iav in av:
                if iop in (sre_c.LITERAL, sre_c.NOT_LITERAL):
                    note(iav)
                elif iop == sre_c.RANGE:
                    note(iav[0])
                    note(iav[1])
    return tuple(chr(c) for c in range(128)) + tuple(sorted(c for c in extra if len(c) == 1 and ord(c) >= 128))


@lru_cache(maxsize=8192)
def _class_mask(op: Any, av: Any, flags: int, symbols: tuple[str, ...]) -> int:
    """Which symbols a one-character node matches, then which kinds of other non-ASCII characters."""
    if op == sre_c.IN and any(iop == sre_c.LITERAL and iav >= _PLACEHOLDER for iop, iav in av):
        mask = 0
        rest = tuple(x for x in av if not (x[0] == sre_c.LITERAL and x[1] >= _PLACEHOLDER))
        for iop, iav in av:
            if iop == sre_c.LITERAL and iav >= _PLACEHOLDER:
                mask |= _property_mask(iav, flags, symbols)
        return mask | (_class_mask(op, rest, flags, symbols) if rest else 0)
    state = sre_parse.State()
    state.flags = flags
    node = (op, [tuple(x) if isinstance(x, tuple) else x for x in av] if op == sre_c.IN else av)
    compiled = sre_compile.compile(sre_parse.SubPattern(state, [node]), flags)
    mask = 0
    for k, ch in enumerate(symbols):
        if compiled.match(ch):
            mask |= 1 << k
    for kind in _other_kinds(op, av, flags):
        mask |= 1 << (len(symbols) + kind)
    return mask


def _other_kinds(op: Any, av: Any, flags: int) -> frozenset[int]:
    """Kinds (`_KINDS`) of non-ASCII characters the pattern does not name that the node may match."""
    icase = bool(flags & sre_c.SRE_FLAG_IGNORECASE)
    letters = frozenset({1}) if icase else frozenset()
    if op in (sre_c.ANY, sre_c.NOT_LITERAL):
        return _ALL_KINDS
    if op == sre_c.LITERAL:
        return letters if chr(av).isalpha() else frozenset()
    full: set[int] = set()  # kinds the class holds all of
    some: set[int] = set()  # kinds it may hold some of
    negate = False
    for iop, iav in av:
        if iop == sre_c.NEGATE:
            negate = True
        elif iop == sre_c.CATEGORY:
            if flags & sre_c.SRE_FLAG_ASCII:
                full |= _ALL_KINDS if iav in (sre_c.CATEGORY_NOT_DIGIT, sre_c.CATEGORY_NOT_WORD,
                                              sre_c.CATEGORY_NOT_SPACE) else set()
            elif iav in _CATEGORY_KINDS:
                full |= _CATEGORY_KINDS[iav]
            else:
                some |= _ALL_KINDS
        elif iop == sre_c.RANGE:
            if iav[1] >= 128:
                some |= _ALL_KINDS
            elif icase and iav[1] >= ord("A"):
                some |= letters
        elif iop == sre_c.LITERAL and chr(iav).isalpha():
            some |= letters
    return _ALL_KINDS - full if negate else frozenset(full | some)


def _partition(masks: list[int], nbits: int) -> list[int]:
    """The coarsest blocks of symbols that no mask splits (symbols in no mask: left out)."""
    signature: dict[int, int] = defaultdict(int)  # symbol -> the masks holding it, as bits
    for j, mask in enumerate(set(masks)):
        while mask:
            low = mask & -mask
            signature[low.bit_length() - 1] |= 1 << j
            mask ^= low
    blocks: dict[int, int] = defaultdict(int)
    for k, sig in signature.items():
        blocks[sig] |= 1 << k
    return list(blocks.values())


# ================================================================================== explanations
_HINTS = {
    "exponential": "make the alternatives of the repeated group exclusive, so that a text can be split between its "
                   "iterations in one way only ((?:a|aa)+ -> a+, (\\w|\\d)+ -> \\w+, (\\w+\\s?)+ -> \\w+(?:\\s+\\w+)*), "
                   "or let the inner repeat take whole runs (\\w++, (?>\\w+))",
    "polynomial": "make repeats that meet exclusive where they meet ([^\"]*\" rather than .*\", \\S+\\s+ rather than "
                  ".*\\s*), or bound one of them to at most 16 characters ({0,16})",
    "ambiguous": "make the overlapping alternatives exclusive, so that a text matches at most one of them",
    "lookaround": "test the look-around at one place only (^(?=.*x)), or bound what it reads (.{0,200})",
}


class _Explain:
    """Why paths multiply: which construct, what kind, an example text.

    In the product of the automaton with itself, a pair of equal positions that reaches a pair
    of different ones (or takes two ways at once) and comes back is a position two different
    cycles reach on the same text: the paths double with every turn (exponential). In the
    triple product, (p, p, q) reaching (p, q, q) for p != q means p loops, q loops, and p goes
    to q on one text: the ways to split a run between them grow with it (polynomial).
    """

    def __init__(self, walk: _Walk) -> None:
        self.walk = walk
        self.auto = walk.auto
        self.active = [p for p in range(len(self.auto.nodes)) if p not in walk.done]
        # blocks with readable characters first: the example texts are built from the first found
        self.order = sorted(range(len(walk.blocks)), key=lambda b: (walk.readable(b)[0], walk.blocks[b] & -walk.blocks[b]))
        self.adj: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
        self.by_block: dict[int, dict[int, list[tuple[int, int]]]] = defaultdict(dict)  # p -> block -> [(q, ways)]
        for b in self.order:
            for p, edges in walk.trans[b].items():
                self.adj[p].extend((b, q, n) for q, n in edges)
                self.by_block[p][b] = edges
        self.work = 0  # steps of the product searches so far, against `_WORK`
        self._reach: dict[int, set[int]] = {}

    def growth(self) -> Risk | None:
        """An exponential or polynomial growth of the paths, if there is one (and it is found in time)."""
        found = self._exponential()
        if found is not None:
            label, prefix, pump = found
            what = f"`{label}`" if label else "a repeated group"
            return Risk("exponential", f"{what} can match the same text in more than one way: the ways to try "
                                       f"double with every few characters", _HINTS["exponential"],
                        self._text(prefix, pump, 30))
        found = self._polynomial()
        if found is None:
            return None
        (p, q), prefix, pump = found
        if self.auto.kinds[q] == "scan":
            return self._scan_risk(q, self._text(prefix, pump, 5000))
        a, b = self._label(p), self._label(q)
        what = f"`{a}` and `{b}`" if a and b else "two repeats"
        return Risk("polynomial", f"{what} can match the same characters one after the other: the ways to "
                                  f"split a text between them grow with its length", _HINTS["polynomial"],
                    self._text(prefix, pump, 5000))

    def finite(self, word: list[int], position: int | None) -> Risk:
        """More than `MAX_WAYS` ways to one position (None: `MAX_ALIVE` in all), without growth."""
        if position is not None and self.auto.kinds[position] == "scan":
            return self._scan_risk(position, self._text(word, [], 1))
        what = (f"a text can match in more than {MAX_WAYS} ways" if position is not None
                else f"more than {MAX_ALIVE} ways to read a text are tried at once")
        return Risk("ambiguous", f"alternatives overlap: {what}", _HINTS["ambiguous"], self._text(word, [], 1))

    def _scan_risk(self, position: int, witness: str) -> Risk:
        label = next((lbl for p, _, _, lbl in self.auto.looks if p == position), "")
        what = f"the look-around `{label}`" if label else "a look-around that reads on to the end of the text"
        return Risk("lookaround", f"{what} is tested at more than {MAX_WAYS} places of one attempt, and each test "
                                  f"may read the rest of the text (time grows with the square of its length)",
                    _HINTS["lookaround"], witness)

    def _text(self, prefix: list[int], pump: list[int], times: int) -> str:
        parts = []
        if prefix:
            parts.append(repr("".join(self.walk.char(b) for b in prefix)))
        if pump:
            parts.append(f"{''.join(self.walk.char(b) for b in pump)!r} * {times}")
        fail = self._failing_char()
        if fail is not None:
            parts.append(repr(fail))
        return " + ".join(parts) or "''"

    def _failing_char(self) -> str | None:
        union = 0
        for p in self.active:
            if self.auto.nodes[p] is not None:
                union |= self.walk.masks[p]
        for k in (33, 0, 35, 10, 32):
            if not union >> k & 1:
                return chr(k)
        for k, ch in enumerate(self.walk.symbols):
            if not union >> k & 1 and ch.isprintable():
                return ch
        return None

    # ---------------------------------------------------------------------- graphs
    def _path_to(self, target: int) -> list[int] | None:
        """Shortest word from the start to `target`."""
        prev: dict[int, tuple[int | None, int]] = {}
        queue: deque[int] = deque()
        for b in self.order:
            for q in self.walk.init[b]:
                if q not in prev:
                    prev[q] = (None, b)
                    queue.append(q)
        while queue and target not in prev:
            p = queue.popleft()
            for b, q, _ in self.adj.get(p, ()):
                if q not in prev:
                    prev[q] = (p, b)
                    queue.append(q)
        if target not in prev:
            return None
        out: list[int] = []
        node: int | None = target
        while node is not None:
            node, b = prev[node]
            out.append(b)
        return out[::-1]

    def _spend(self, n: int = 1) -> bool:
        self.work += n
        return self.work <= _WORK

    def _common(self, *positions: int) -> list[int]:
        """Blocks every one of the positions can read next, in readable order."""
        maps = [self.by_block.get(p, {}) for p in positions]
        return [b for b in maps[0] if all(b in m for m in maps[1:])]

    def _pairs(self) -> dict[tuple[int, int], list[tuple[tuple[int, int], int, bool]]] | None:
        """The pair product reachable from the start: pair -> [(next pair, block, two ways)]."""
        graph: dict[tuple[int, int], list[tuple[tuple[int, int], int, bool]]] = {}
        queue = deque(sorted({(a, b) for init in self.walk.init for a in init for b in init}))
        seen = set(queue)
        while queue:
            a, b = node = queue.popleft()
            out = graph[node] = []
            for blk in self._common(a, b):
                edges_a, edges_b = self.by_block[a][blk], self.by_block[b][blk]
                if not self._spend(len(edges_a) * len(edges_b)):
                    return None
                for i, (a2, n) in enumerate(edges_a):
                    for j, (b2, _) in enumerate(edges_b):
                        fork = a == b and (i != j or n >= 2) and a2 == b2
                        out.append(((a2, b2), blk, fork))
                        if (a2, b2) not in seen:
                            seen.add((a2, b2))
                            queue.append((a2, b2))
        return graph

    def _exponential(self) -> tuple[str, list[int], list[int]] | None:
        """A position two different cycles reach on the same text: (repeat label, prefix, pump)."""
        graph = self._pairs()
        if graph is None:
            return None
        comp = _components(graph)
        forks: dict[int, bool] = defaultdict(bool)
        diagonal: dict[int, int] = {}
        for node, edges in graph.items():
            c = comp[node]
            if node[0] != node[1]:
                forks[c] = True
            else:
                diagonal.setdefault(c, node[0])
            forks[c] = forks[c] or any(fork and comp.get(nxt) == c for nxt, _, fork in edges)
        for c, q in sorted(diagonal.items(), key=lambda cq: cq[1]):
            if not forks[c]:  # (a component with two nodes, or a fork inside, has a cycle)
                continue
            pump = self._cycle(graph, comp, q)
            if pump is not None:
                return self._loop_label(q), self._path_to(q) or [], pump
        return None

    @staticmethod
    def _cycle(graph: dict, comp: dict, q: int) -> list[int] | None:
        """A word leading (q, q) back to itself through a fork, within its component."""
        start = ((q, q), False)
        prev: dict[Any, tuple[Any, int]] = {start: (None, -1)}
        queue = deque([start])
        while queue:
            node, forked = state = queue.popleft()
            for nxt, blk, fork in graph.get(node, ()):
                if comp.get(nxt) != comp[(q, q)]:
                    continue
                after = (nxt, forked or fork or nxt[0] != nxt[1])
                if after in prev:
                    continue
                prev[after] = (state, blk)
                if after == ((q, q), True):
                    return _Explain._unwind(prev, after)
                queue.append(after)
        return None

    def _polynomial(self) -> tuple[tuple[int, int], list[int], list[int]] | None:
        """Positions p != q with p->p, p->q and q->q on one text: ((p, q), prefix, pump)."""
        cyclic = [p for p in self.active if self._reaches(p, p)]
        for p in cyclic:
            for q in cyclic:
                if p == q or not self._reaches(p, q):
                    continue
                start, goal = (p, p, q), (p, q, q)
                prev: dict[tuple[int, int, int], tuple[Any, int]] = {start: (None, -1)}
                queue: deque[tuple[int, int, int]] = deque([start])
                while queue:
                    node = queue.popleft()
                    for blk in self._common(*node):
                        xs, ys, zs = (self.by_block[x][blk] for x in node)
                        if not self._spend(len(xs) * len(ys) * len(zs)):
                            return None
                        for x2, _ in xs:
                            for y2, _ in ys:
                                for z2, _ in zs:
                                    if (x2, y2, z2) in prev:
                                        continue
                                    prev[(x2, y2, z2)] = (node, blk)
                                    if (x2, y2, z2) == goal:
                                        return (p, q), self._path_to(p) or [], self._unwind(prev, goal)
                                    queue.append((x2, y2, z2))
        return None

    def _reaches(self, p: int, q: int) -> bool:
        if p not in self._reach:
            seen: set[int] = set()
            stack = [p]
            while stack:
                for _, y, _ in self.adj.get(stack.pop(), ()):
                    if y not in seen:
                        seen.add(y)
                        stack.append(y)
            self._reach[p] = seen
        return q in self._reach[p]

    @staticmethod
    def _unwind(prev: dict, node: Any) -> list[int]:
        out = []
        while prev[node][0] is not None:
            node, blk = prev[node]
            out.append(blk)
        return out[::-1]

    def _label(self, p: int) -> str:
        labels = [lbl for lbl in self.auto.repeats[p] if lbl]
        return labels[-1] if labels else ""

    def _loop_label(self, q: int) -> str:
        """The outermost repeat whose loop the cycles through q take."""
        best: tuple[int, str] | None = None
        for (p, r), loops in self.auto.loops.items():
            if p in self.walk.done or r in self.walk.done:
                continue
            for depth, label in loops:
                if label and (best is None or depth < best[0]) and self._reaches(q, p) and self._reaches(r, q):
                    best = (depth, label)
        return best[1] if best else self._label(q)


def _components(graph: dict[Any, list[tuple[Any, int, bool]]]) -> dict[Any, int]:
    """Strongly connected components (iterative Tarjan): node -> component number."""
    index: dict[Any, int] = {}
    low: dict[Any, int] = {}
    comp: dict[Any, int] = {}
    stack: list[Any] = []
    on_stack: set[Any] = set()
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt, _, _ in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        comp[member] = index[node]
                        if member == node:
                            break
    return comp


def _raise(err: Exception) -> Risk:
    raise err


__all__ = ["Analysis", "LONG_SCAN", "MAX_WAYS", "Risk", "UNROLL", "analyse"]
