"""Regex translation: a catalog pattern as a byte-level Hyperscan expression (a superset of what
it matches), its exactness, and an RE2 form; `plan_pattern` says how the engine evaluates it.

>>> from logaudit.catalog.catalog import default_catalog_paths, load_catalogs
>>> plan_pattern(load_catalogs(default_catalog_paths()).get("ws-auth-failure")).mode
'exact-on-ascii'
"""

from __future__ import annotations

import functools
import re
import re._constants as sre_c
import re._parser as sre_parse
import string
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import regex

try:  # Hyperscan is the bulk scanner; without it every row is a candidate (slow but correct).
    import hyperscan as _hs
except ImportError:  # pragma: no cover - exercised by forcing use_hyperscan=False in tests
    _hs = None

from logaudit.catalog.catalog import Pattern, normalize_for_re
from logaudit.catalog.delimited import delimited_plan

EXACT, ASCII_EXACT, INEXACT = 2, 1, 0


# =============================================================================== translation
def _ascii_set(rx: str) -> frozenset[int]:
    compiled = regex.compile(rx)
    return frozenset(i for i in range(128) if compiled.match(chr(i)))


ALL_ASCII = frozenset(range(128))
_DIGIT = _ascii_set(r"\d")
ASCII_WORD = _ascii_set(r"\w")
_SPACE = _ascii_set(r"\s")
#: The non-ASCII characters `regex` folds onto an ASCII letter under IGNORECASE (a test checks
#: every code point). Which letter is asked of `regex`: `I` matches the dotless U+0131 and `i`
#: U+0130, not both U+0130.
FOLD_POOL = "\u0130\u0131\u017f\u212a"
_SPECIAL_FOLDS: dict[str, frozenset[str]] = {
    a: frozenset(c for c in FOLD_POOL if regex.fullmatch(regex.escape(a), c, regex.IGNORECASE))
    for a in string.ascii_letters}
_SPECIAL_FOLDS_REV: dict[str, frozenset[str]] = {
    c: frozenset(a for a in string.ascii_letters if regex.fullmatch(regex.escape(c), a, regex.IGNORECASE))
    for c in FOLD_POOL}
_WORD_RX = regex.compile(r"\w")
_MB = r"(?:[\xc0-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf7][\x80-\xbf]{3})"
_GAP = r"[^\xff]*"
_MAX_HS_REPEAT = 1000


class CharSet:
    """Characters one position may match: an exact ASCII part and a non-ASCII part.

    `non` is "none", "all", "some" (an unknown part: emitted as any non-ASCII char, which makes
    the set exact only on ASCII text) or a frozenset of explicit characters.
    """

    __slots__ = ("ascii", "non")

    def __init__(self, ascii_: Iterable[int] = (), non: Any = "none") -> None:
        self.ascii = frozenset(ascii_)
        self.non = non

    def union(self, other: CharSet) -> CharSet:
        a, b = self.non, other.non
        if a == "all" or b == "all":
            non: Any = "all"
        elif a == "some" or b == "some":
            non = "some"
        elif a == "none":
            non = b
        elif b == "none":
            non = a
        else:
            non = a | b
        return CharSet(self.ascii | other.ascii, non)

    def negate(self) -> CharSet:
        non = {"none": "all", "all": "none"}.get(self.non, "some") if isinstance(self.non, str) else "some"
        return CharSet(ALL_ASCII - self.ascii, non)

    @property
    def exactness(self) -> int:
        return ASCII_EXACT if self.non == "some" else EXACT

    def hs(self) -> str:
        parts = []
        if self.ascii:
            parts.append(_byte_class(self.ascii))
        if self.non in ("all", "some"):
            parts.append(_MB)
        elif isinstance(self.non, frozenset):
            parts.extend("".join(f"\\x{b:02x}" for b in ch.encode()) for ch in sorted(self.non))
        if not parts:
            return r"\xfe"  # a byte that never occurs in UTF-8: matches nothing
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    def re2_ascii(self) -> str | None:
        """An RE2 class equivalent on ASCII text (None when empty)."""
        return _byte_class(self.ascii, force_class=True) if self.ascii else None


def _byte_class(codes: frozenset[int], force_class: bool = False) -> str:
    items = sorted(codes)
    if len(items) == 1 and not force_class:
        return f"\\x{items[0]:02x}"
    ranges = []
    start = prev = items[0]
    for c in items[1:]:
        if c == prev + 1:
            prev = c
            continue
        ranges.append((start, prev))
        start = prev = c
    ranges.append((start, prev))
    body = "".join(f"\\x{a:02x}" if a == b else f"\\x{a:02x}-\\x{b:02x}" for a, b in ranges)
    return f"[{body}]"


def fold_literal(ch: str, flags: int) -> CharSet:
    """The characters `ch` matches under `flags` (IGNORECASE, ASCII)."""
    code = ord(ch)
    if not flags & sre_c.SRE_FLAG_IGNORECASE:
        return CharSet([code]) if code < 128 else CharSet((), frozenset([ch]))
    ascii_only = bool(flags & sre_c.SRE_FLAG_ASCII)
    if code < 128:
        if not ch.isalpha():
            return CharSet([code])
        non: Any = "none"
        if not ascii_only and _SPECIAL_FOLDS[ch]:
            non = _SPECIAL_FOLDS[ch]
        return CharSet({ord(ch.lower()), ord(ch.upper())}, non)
    if ascii_only:
        return CharSet((), frozenset([ch]))
    return CharSet({ord(a) for a in _SPECIAL_FOLDS_REV.get(ch, ())}, "some")


def _category(cat: Any, flags: int) -> tuple[CharSet, int]:
    ascii_only = bool(flags & sre_c.SRE_FLAG_ASCII)
    pos = {sre_c.CATEGORY_DIGIT: _DIGIT, sre_c.CATEGORY_WORD: ASCII_WORD, sre_c.CATEGORY_SPACE: _SPACE}
    neg = {sre_c.CATEGORY_NOT_DIGIT: _DIGIT, sre_c.CATEGORY_NOT_WORD: ASCII_WORD, sre_c.CATEGORY_NOT_SPACE: _SPACE}
    if ascii_only:
        ascii_pos = {sre_c.CATEGORY_DIGIT: _ascii_set(r"(?a)\d"), sre_c.CATEGORY_WORD: _ascii_set(r"(?a)\w"),
                     sre_c.CATEGORY_SPACE: _ascii_set(r"(?a)\s")}
        if cat in ascii_pos:
            return CharSet(ascii_pos[cat], "none"), EXACT
        base = {sre_c.CATEGORY_NOT_DIGIT: sre_c.CATEGORY_DIGIT, sre_c.CATEGORY_NOT_WORD: sre_c.CATEGORY_WORD,
                sre_c.CATEGORY_NOT_SPACE: sre_c.CATEGORY_SPACE}.get(cat)
        if base is not None:
            return CharSet(ALL_ASCII - ascii_pos[base], "all"), EXACT
    if cat in pos:
        return CharSet(pos[cat], "some"), ASCII_EXACT
    if cat in neg:
        return CharSet(ALL_ASCII - neg[cat], "some"), ASCII_EXACT
    return CharSet(ALL_ASCII, "all"), INEXACT  # locale/linebreak categories: anything


def class_set(items: list[Any], flags: int) -> tuple[CharSet, int]:
    """The characters a class (its `re` parse items) matches under `flags`, and how exactly."""
    negate = False
    acc = CharSet()
    exact = EXACT
    icase = bool(flags & sre_c.SRE_FLAG_IGNORECASE)
    for op, av in items:
        if op == sre_c.NEGATE:
            negate = True
        elif op == sre_c.LITERAL:
            acc = acc.union(fold_literal(chr(av), flags))
        elif op == sre_c.RANGE:
            lo, hi = av
            a_lo, a_hi = lo, min(hi, 127)
            if a_lo <= a_hi:
                codes = set(range(a_lo, a_hi + 1))
                if icase:
                    for c in list(codes):
                        acc = acc.union(fold_literal(chr(c), flags))
                acc = acc.union(CharSet(codes))
            if hi >= 128:
                if not icase and hi - max(lo, 128) < 64:
                    acc = acc.union(CharSet((), frozenset(chr(c) for c in range(max(lo, 128), hi + 1))))
                else:
                    acc = acc.union(CharSet((), "some"))
        elif op == sre_c.CATEGORY:
            cs, ex = _category(av, flags)
            exact = min(exact, ex)
            acc = acc.union(cs)
        else:
            return CharSet(ALL_ASCII, "all"), INEXACT
    if negate:
        acc = acc.negate()
    return acc, min(exact, acc.exactness)


@dataclass
class _Tr:
    hs: str
    exact: int
    re2: str | None  # RE2 form equivalent on ASCII text; None when there is none


@dataclass(frozen=True)
class Plan:
    """How the engine evaluates one pattern."""

    hs: bytes | None  # Hyperscan expression (None: every non-null row is a candidate)
    exactness: int  # EXACT / ASCII_EXACT / INEXACT: when Hyperscan's answer is final
    re2: str | None  # RE2 form for long ASCII texts (and any ASCII text of a time-limited pattern without groups)
    timeout_always: bool  # run `regex` with a timeout on every text (not proven linear)
    note: str | None = None  # why the pattern has no (exact) prefilter
    #: When `hs` is only the leading literal: the whole pattern's expression, which the texts the
    #: bulk check leaves undecided must also match before `regex` (and its timeout) sees them.
    recheck: bytes | None = None

    @property
    def mode(self) -> str:
        if self.hs is None:
            return "regex-only"
        return {EXACT: "exact", ASCII_EXACT: "exact-on-ascii", INEXACT: "prefilter+verify"}[self.exactness]


_PLANS: dict[tuple[str, bool, bool, bool], Plan] = {}


def plan_pattern(pattern: Pattern, *, verify: bool = True) -> Plan:
    """Translate a pattern for the bulk scanner (see the module docstring); memoized.

    With `verify`, the Hyperscan expression is compiled on its own to be sure Hyperscan takes
    it (else a looser one is used); `CompiledCatalog` skips that and compiles all at once.
    """
    key = (pattern.regex, pattern.ignore_case, pattern.allow_backtracking, verify)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _PLANS[key] = _plan(pattern, verify)
    return plan


def parse_pattern(pattern: Pattern) -> Any:
    """The pattern's `re` parse tree (its `ignore_case` applied), or None when only `regex` reads it.

    `re`'s parser is private but exact for the syntax both modules share, which is why it is used.
    """
    flags = re.IGNORECASE if pattern.ignore_case else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return sre_parse.parse(normalize_for_re(pattern.regex), flags)
    except (re.error, Warning, RecursionError, OverflowError, ValueError, IndexError, TypeError):
        return None


def _plan(pattern: Pattern, verify: bool) -> Plan:
    tree = parse_pattern(pattern)
    if tree is None:
        return Plan(None, INEXACT, None, True, "uses syntax only the `regex` module knows: evaluated on every row")
    names = {v: k for k, v in tree.state.groupdict.items()}
    try:
        tr = _translate(list(tree), tree.state.flags, names)
    except (RecursionError, _Untranslatable):
        return Plan(None, INEXACT, None, pattern.time_limited, "too complex to prefilter: evaluated on every row")
    hs_expr = tr.hs.encode("ascii")
    note = recheck = None
    delimited = delimited_plan(pattern) if tree.state.groupdict else None
    if delimited is not None:
        # its fields are extracted from every candidate anyway, so its leading literal is prefilter
        # enough -- and several times cheaper to scan for than the whole pattern
        recheck = hs_expr
        hs_expr = ("".join(f"\\x{b:02x}" for b in delimited.lead) + _GAP + r"\xff").encode("ascii")
        tr.exact = INEXACT
        note = "prefiltered on its leading literal (its fields are extracted from every candidate)"
    if verify and not _hs_compiles(hs_expr):
        skel = _skeleton(list(tree), tree.state.flags)
        hs_expr = skel.encode("ascii") if skel is not None else None
        tr.exact = INEXACT
        if hs_expr is not None and not _hs_compiles(hs_expr):
            hs_expr = None
        note = "prefiltered on its literals only" if hs_expr else "cannot be prefiltered: evaluated on every row"
    return Plan(hs_expr, tr.exact, tr.re2, pattern.time_limited, note, recheck)


@functools.lru_cache(maxsize=1024)
def re2_compiles(re2: str) -> bool:
    """Whether RE2 takes the expression (it limits nested repeat counts, `(?:a{1,900}){1,900}`)."""
    try:
        pc.match_substring_regex(pa.array([""], pa.string()), re2)
    except pa.ArrowInvalid:
        return False
    return True


class _Untranslatable(Exception):
    pass


def _translate(items: list[Any], flags: int, names: dict[int, str]) -> _Tr:
    """Top level: handles anchors and word boundaries at both ends, then the row suffix."""
    items = list(items)
    prefix: list[_Tr] = []
    suffix = _GAP + r"\xff"
    re2_suffix = ""
    exact = EXACT
    multiline = bool(flags & sre_c.SRE_FLAG_MULTILINE)
    # leading anchor / word boundary
    if items and items[0][0] == sre_c.AT:
        at = items[0][1]
        nxt = items[1] if len(items) > 1 else None
        if at == sre_c.AT_BEGINNING_STRING or (at == sre_c.AT_BEGINNING and not multiline):
            prefix.append(_Tr(r"(?:^|\xff)", EXACT, r"\A"))
            items.pop(0)
        elif at == sre_c.AT_BEGINNING:
            prefix.append(_Tr(r"(?:^|\xff|\x0a)", EXACT, r"(?m:^)"))
            items.pop(0)
        elif at == sre_c.AT_BOUNDARY and nxt is not None and nxt[0] == sre_c.LITERAL:
            word = bool(_WORD_RX.match(chr(nxt[1])))
            other = CharSet(ALL_ASCII - ASCII_WORD, "some") if word else CharSet(ASCII_WORD, "some")
            hs = rf"(?:^|\xff|{other.hs()})" if word else other.hs()
            prefix.append(_Tr(hs, ASCII_EXACT, r"\b"))
            items.pop(0)
    # trailing anchor / word boundary
    if items and items[-1][0] == sre_c.AT:
        at = items[-1][1]
        prv = items[-2] if len(items) > 1 else None
        if at == sre_c.AT_END_STRING:
            suffix, re2_suffix = r"\xff", r"\z"
            items.pop()
        elif at == sre_c.AT_END and not multiline:
            suffix, re2_suffix = r"\x0a?\xff", r"\n?\z"
            items.pop()
        elif at == sre_c.AT_END:
            suffix, re2_suffix = r"(?:\x0a[^\xff]*)?\xff", r"(?m:$)"
            items.pop()
        elif at == sre_c.AT_BOUNDARY and prv is not None and prv[0] == sre_c.LITERAL:
            word = bool(_WORD_RX.match(chr(prv[1])))
            other = CharSet(ALL_ASCII - ASCII_WORD, "some") if word else CharSet(ASCII_WORD, "some")
            suffix = rf"(?:{other.hs()}[^\xff]*)?\xff" if word else rf"{other.hs()}[^\xff]*\xff"
            re2_suffix = r"\b"
            exact = ASCII_EXACT
            items.pop()
    body = _seq(items, flags, names)
    exact = min([exact, body.exact] + [p.exact for p in prefix])
    re2 = None
    if body.re2 is not None and all(p.re2 is not None for p in prefix):
        re2 = "".join(p.re2 for p in prefix) + body.re2 + re2_suffix
    return _Tr("".join(p.hs for p in prefix) + body.hs + suffix, exact, re2)


def _seq(items: list[Any], flags: int, names: dict[int, str]) -> _Tr:
    parts = [_node(op, av, flags, names) for op, av in items]
    re2 = None if any(p.re2 is None for p in parts) else "".join(p.re2 for p in parts)
    return _Tr("".join(p.hs for p in parts), min([EXACT] + [p.exact for p in parts]), re2)


def _repeat(lo: int, hi: Any) -> str:
    if hi == sre_c.MAXREPEAT:
        return {0: "*", 1: "+"}.get(lo, f"{{{lo},}}")
    if lo == 0 and hi == 1:
        return "?"
    return f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"


def _node(op: Any, av: Any, flags: int, names: dict[int, str]) -> _Tr:
    if op == sre_c.LITERAL:
        cs = fold_literal(chr(av), flags)
        return _Tr(cs.hs(), cs.exactness, cs.re2_ascii() or r"[^\x00-\x7f]")
    if op == sre_c.NOT_LITERAL:
        cs = fold_literal(chr(av), flags).negate()
        return _Tr(cs.hs(), cs.exactness, cs.re2_ascii() or r"[^\x00-\x7f]")
    if op == sre_c.ANY:
        cs = CharSet(ALL_ASCII if flags & sre_c.SRE_FLAG_DOTALL else ALL_ASCII - {10}, "all")
        return _Tr(cs.hs(), EXACT, r"(?s:.)" if flags & sre_c.SRE_FLAG_DOTALL else r"[^\n]")
    if op == sre_c.IN:
        cs, ex = class_set(list(av), flags)
        return _Tr(cs.hs(), ex, cs.re2_ascii() or r"[^\x00-\x7f]")
    if op == sre_c.BRANCH:
        subs = [_seq(list(b), flags, names) for b in av[1]]
        re2 = None if any(s.re2 is None for s in subs) else "(?:" + "|".join(s.re2 for s in subs) + ")"
        return _Tr("(?:" + "|".join(s.hs for s in subs) + ")", min(s.exact for s in subs), re2)
    if op == sre_c.SUBPATTERN:
        group, add, dele, sub = av
        inner = _seq(list(sub), (flags | add) & ~dele, names)
        re2 = None
        if inner.re2 is not None:
            re2 = f"(?P<{names[group]}>{inner.re2})" if group in names else f"(?:{inner.re2})"
        return _Tr(f"(?:{inner.hs})", inner.exact, re2)
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
        lo, hi, sub = av
        inner = _seq(list(sub), flags, names)
        exact = inner.exact if op != sre_c.POSSESSIVE_REPEAT else INEXACT
        if lo > _MAX_HS_REPEAT or (hi != sre_c.MAXREPEAT and hi > _MAX_HS_REPEAT):
            hs = f"(?:{inner.hs}){_repeat(min(lo, _MAX_HS_REPEAT), sre_c.MAXREPEAT)}"
            exact = INEXACT
        else:
            hs = f"(?:{inner.hs}){_repeat(lo, hi)}"
        re2 = None
        if inner.re2 is not None and op != sre_c.POSSESSIVE_REPEAT and lo <= 1000 and (
                hi == sre_c.MAXREPEAT or hi <= 1000):
            re2 = f"(?:{inner.re2}){_repeat(lo, hi)}" + ("?" if op == sre_c.MIN_REPEAT else "")
        return _Tr(hs, exact, re2)
    if op == sre_c.AT:
        re2 = {sre_c.AT_BOUNDARY: r"\b", sre_c.AT_NON_BOUNDARY: r"\B", sre_c.AT_BEGINNING_STRING: r"\A",
               sre_c.AT_END_STRING: r"\z"}.get(av)
        if av == sre_c.AT_BEGINNING:
            re2 = r"(?m:^)" if flags & sre_c.SRE_FLAG_MULTILINE else r"\A"
        elif av == sre_c.AT_END and flags & sre_c.SRE_FLAG_MULTILINE:
            re2 = r"(?m:$)"
        return _Tr("", INEXACT, re2)  # dropped: a zero-width test only narrows
    if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
        return _Tr("", INEXACT, None)
    if op == sre_c.ATOMIC_GROUP:
        inner = _seq(list(av), flags, names)
        return _Tr(f"(?:{inner.hs})", INEXACT, None)
    if op == sre_c.GROUPREF:
        return _Tr(_GAP, INEXACT, None)
    if op == sre_c.GROUPREF_EXISTS:
        _, yes, no = av
        a = _seq(list(yes), flags, names)
        b = _seq(list(no), flags, names) if no else _Tr("", EXACT, "")
        return _Tr(f"(?:{a.hs}|{b.hs})", INEXACT, None)
    raise _Untranslatable(str(op))


def _skeleton(items: list[Any], flags: int) -> str | None:
    """Case-sensitive literals with gaps between them: a looser prefilter."""
    icase = bool(flags & sre_c.SRE_FLAG_IGNORECASE)

    def seq(its: list[Any]) -> str:
        return "".join(node(op, av) for op, av in its)

    def node(op: Any, av: Any) -> str:
        if op == sre_c.LITERAL and not icase:
            return "".join(f"\\x{b:02x}" for b in chr(av).encode())
        if op == sre_c.BRANCH:
            return "(?:" + "|".join(seq(list(b)) or _GAP for b in av[1]) + ")"
        if op == sre_c.SUBPATTERN:
            return seq(list(av[3]))
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT) and av[0] >= 1:
            return seq(list(av[2])) + _GAP
        if op == sre_c.ATOMIC_GROUP:
            return seq(list(av))
        if op in (sre_c.AT, sre_c.ASSERT, sre_c.ASSERT_NOT):
            return ""
        return _GAP

    body = re.sub(r"(?:\[\^\\xff\]\*)+", lambda m: _GAP, seq(items))
    if not body.replace(_GAP, ""):
        return None
    return body + _GAP + r"\xff"


_SINGLE: dict[bytes, Any] = {}


def single_database(expr: bytes) -> Any:
    """A Hyperscan database of this one expression (memoized), or None when Hyperscan refuses it."""
    if expr not in _SINGLE:
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        try:
            db.compile(expressions=[expr], ids=[0], flags=0)
        except _hs.error:
            db = None
        _SINGLE[expr] = db
    return _SINGLE[expr]


def _hs_compiles(expr: bytes) -> bool:
    return _hs is None or single_database(expr) is not None


__all__ = ["ALL_ASCII", "ASCII_EXACT", "ASCII_WORD", "EXACT", "FOLD_POOL", "INEXACT", "CharSet", "Plan", "class_set", "fold_literal",
           "parse_pattern", "plan_pattern", "re2_compiles", "single_database"]
