"""Classification: which catalog patterns each stored entry matches, fast and cached.

How an entry column is matched against many patterns (see docs/catalog.md for the long form):

1. **Bulk scan.** Every pattern is translated (from the ``re`` parse tree) into a byte-level
   Hyperscan expression that matches a *superset* of what the pattern matches, followed by
   ``[^\\xff]*\\xff``. The column's values are joined with a ``0xFF`` separator (a byte that never
   occurs in UTF-8) and scanned once by all patterns together; each (pattern, row) pair is
   reported once, at the row's separator. This is linear-time whatever the pattern is.
2. **Conditions.** `when` conditions are evaluated vectorised on the candidate rows only.
3. **Verification.** A candidate is accepted as is when the translation is exact (for
   patterns built of literals, classes, ``.``, repeats, alternation and ``^``/``$``/``\\b`` at
   the ends it is, on ASCII text always and elsewhere when no Unicode class is involved).
   Otherwise, and whenever fields must be extracted, the `regex` module decides, which keeps
   look-around, backreferences, possessive quantifiers and fuzzy matching working -- except for
   literal-delimited patterns on many candidates, which `logaudit.delimited` decides in bulk
   with NumPy (same answers, property-tested). Repeated values are decided once. Texts
   longer than `LONG_TEXT` go to RE2 (linear time, via pyarrow) when they are ASCII and the
   pattern has an RE2 form, else to `regex` with a timeout.
4. **Bounds.** Texts are cut to `max_chars` before matching. A pattern not proven linear
   (`logaudit.backtracking`, or marked `allow_backtracking`) runs under `REGEX_TIMEOUT` on every
   text, and each pattern's time-limited searches have a budget per evaluation
   (`PATTERN_BUDGET` + `TEXT_BUDGET` per text); texts that come while it is over budget are
   skipped. Cut texts, timeouts and skipped texts are counted and reported.

Results are cached per entry file and per pattern fingerprint under ``STORE/matches/``, so a
new ingest classifies only its new files and editing one pattern re-evaluates only that one
(`classify_store`). `register_views` exposes ``entries``, ``matches``, ``patterns`` and
``unclassified`` as DuckDB views.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gc
import hashlib
import multiprocessing
import os
import queue
import re
import re._constants as sre_c
import re._parser as sre_parse
import shutil
import threading
import time
import uuid
import warnings
from array import array
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import regex

from logaudit.catalog import Catalog, Condition, Pattern, normalize_for_re
from logaudit.db import connect
from logaudit.delimited import DelimitedPlan, delimited_plan, search_delimited
from logaudit.errors import StoreError
from logaudit.heap import tune_allocator
from logaudit.schema import DICTIONARY_COLUMNS, ENTRY_SCHEMA, TEXT_COLUMNS
from logaudit.store import damaged_error, parquet_framing_problem, scratch_dir, write_errors

try:  # Hyperscan is the bulk scanner; without it every row is a candidate (slow but correct).
    import hyperscan as _hs
except ImportError:  # pragma: no cover - exercised by forcing use_hyperscan=False in tests
    _hs = None

#: Bump when matching semantics change: it is part of every cache key.
ENGINE_VERSION = "2"
#: Texts are cut to this many characters before matching (Cloud Logging's limit is 256 KB).
DEFAULT_MAX_CHARS = 64 * 1024
#: Texts longer than this are verified by RE2 (ASCII) or by `regex` under a timeout.
LONG_TEXT = 1024
#: Seconds one time-limited `regex` search may take. Time-limited are the searches of a pattern
#: that is not proven linear (`logaudit.backtracking`; `allow_backtracking`) on every text, and
#: of any pattern on texts longer than `LONG_TEXT` that RE2 does not decide.
REGEX_TIMEOUT = 0.1
#: After this many timeouts of one pattern in one evaluation, its remaining time-limited texts are skipped.
MAX_TIMEOUTS = 20
#: The time-limited searches of one pattern in one evaluation (one entry file, one `match_table`)
#: may take `PATTERN_BUDGET` seconds in all plus `TEXT_BUDGET` per text they were given (a timeout
#: counts as `REGEX_TIMEOUT`); a text that comes while the pattern is over that is skipped.
PATTERN_BUDGET = 0.5
TEXT_BUDGET = 0.001
KEY_COLUMNS: tuple[str, ...] = ("log_name", "insert_id", "timestamp", "service", "revision")

EXACT, ASCII_EXACT, INEXACT = 2, 1, 0
_SEP = b"\xff"

Progress = Callable[[str, int, int], None]  # (entry file, files done, files total)


# =============================================================================== translation
def _ascii_set(rx: str) -> frozenset[int]:
    compiled = regex.compile(rx)
    return frozenset(i for i in range(128) if compiled.match(chr(i)))


_ALL_ASCII = frozenset(range(128))
_DIGIT = _ascii_set(r"\d")
_WORD = _ascii_set(r"\w")
_SPACE = _ascii_set(r"\s")
#: Non-ASCII characters `regex` folds onto an ASCII letter under IGNORECASE (verified by a test).
_SPECIAL_FOLDS: dict[str, str] = {"i": "\u0130", "s": "\u017f", "k": "\u212a"}
_SPECIAL_FOLDS_REV: dict[str, str] = {v: k for k, v in _SPECIAL_FOLDS.items()}
_WORD_RX = regex.compile(r"\w")
_MB = r"(?:[\xc0-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf7][\x80-\xbf]{3})"
_GAP = r"[^\xff]*"
_MAX_HS_REPEAT = 1000


class _CharSet:
    """Characters one position may match: an exact ASCII part and a non-ASCII part.

    `non` is "none", "all", "some" (an unknown part: emitted as any non-ASCII char, which makes
    the set exact only on ASCII text) or a frozenset of explicit characters.
    """

    __slots__ = ("ascii", "non")

    def __init__(self, ascii_: Iterable[int] = (), non: Any = "none") -> None:
        self.ascii = frozenset(ascii_)
        self.non = non

    def union(self, other: _CharSet) -> _CharSet:
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
        return _CharSet(self.ascii | other.ascii, non)

    def negate(self) -> _CharSet:
        non = {"none": "all", "all": "none"}.get(self.non, "some") if isinstance(self.non, str) else "some"
        return _CharSet(_ALL_ASCII - self.ascii, non)

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


def _fold_literal(ch: str, flags: int) -> _CharSet:
    """The characters `ch` matches under `flags` (IGNORECASE, ASCII)."""
    code = ord(ch)
    if not flags & sre_c.SRE_FLAG_IGNORECASE:
        return _CharSet([code]) if code < 128 else _CharSet((), frozenset([ch]))
    ascii_only = bool(flags & sre_c.SRE_FLAG_ASCII)
    if code < 128:
        if not ch.isalpha():
            return _CharSet([code])
        low = ch.lower()
        non: Any = "none"
        if not ascii_only and low in _SPECIAL_FOLDS:
            non = frozenset([_SPECIAL_FOLDS[low]])
        return _CharSet({ord(low), ord(ch.upper())}, non)
    if ascii_only:
        return _CharSet((), frozenset([ch]))
    extra = _SPECIAL_FOLDS_REV.get(ch)
    return _CharSet({ord(extra), ord(extra.upper())} if extra else (), "some")


def _category(cat: Any, flags: int) -> tuple[_CharSet, int]:
    ascii_only = bool(flags & sre_c.SRE_FLAG_ASCII)
    pos = {sre_c.CATEGORY_DIGIT: _DIGIT, sre_c.CATEGORY_WORD: _WORD, sre_c.CATEGORY_SPACE: _SPACE}
    neg = {sre_c.CATEGORY_NOT_DIGIT: _DIGIT, sre_c.CATEGORY_NOT_WORD: _WORD, sre_c.CATEGORY_NOT_SPACE: _SPACE}
    if ascii_only:
        ascii_pos = {sre_c.CATEGORY_DIGIT: _ascii_set(r"(?a)\d"), sre_c.CATEGORY_WORD: _ascii_set(r"(?a)\w"),
                     sre_c.CATEGORY_SPACE: _ascii_set(r"(?a)\s")}
        if cat in ascii_pos:
            return _CharSet(ascii_pos[cat], "none"), EXACT
        base = {sre_c.CATEGORY_NOT_DIGIT: sre_c.CATEGORY_DIGIT, sre_c.CATEGORY_NOT_WORD: sre_c.CATEGORY_WORD,
                sre_c.CATEGORY_NOT_SPACE: sre_c.CATEGORY_SPACE}.get(cat)
        if base is not None:
            return _CharSet(_ALL_ASCII - ascii_pos[base], "all"), EXACT
    if cat in pos:
        return _CharSet(pos[cat], "some"), ASCII_EXACT
    if cat in neg:
        return _CharSet(_ALL_ASCII - neg[cat], "some"), ASCII_EXACT
    return _CharSet(_ALL_ASCII, "all"), INEXACT  # locale/linebreak categories: anything


def _class(items: list[Any], flags: int) -> tuple[_CharSet, int]:
    negate = False
    acc = _CharSet()
    exact = EXACT
    icase = bool(flags & sre_c.SRE_FLAG_IGNORECASE)
    for op, av in items:
        if op == sre_c.NEGATE:
            negate = True
        elif op == sre_c.LITERAL:
            acc = acc.union(_fold_literal(chr(av), flags))
        elif op == sre_c.RANGE:
            lo, hi = av
            a_lo, a_hi = lo, min(hi, 127)
            if a_lo <= a_hi:
                codes = set(range(a_lo, a_hi + 1))
                if icase:
                    for c in list(codes):
                        acc = acc.union(_fold_literal(chr(c), flags))
                acc = acc.union(_CharSet(codes))
            if hi >= 128:
                if not icase and hi - max(lo, 128) < 64:
                    acc = acc.union(_CharSet((), frozenset(chr(c) for c in range(max(lo, 128), hi + 1))))
                else:
                    acc = acc.union(_CharSet((), "some"))
        elif op == sre_c.CATEGORY:
            cs, ex = _category(av, flags)
            exact = min(exact, ex)
            acc = acc.union(cs)
        else:
            return _CharSet(_ALL_ASCII, "all"), INEXACT
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


def _plan(pattern: Pattern, verify: bool) -> Plan:
    flags = re.IGNORECASE if pattern.ignore_case else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            tree = sre_parse.parse(normalize_for_re(pattern.regex), flags)
    except (re.error, Warning, RecursionError, OverflowError, ValueError, IndexError, TypeError):
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
def _re2_compiles(re2: str) -> bool:
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
            other = _CharSet(_ALL_ASCII - _WORD, "some") if word else _CharSet(_WORD, "some")
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
            other = _CharSet(_ALL_ASCII - _WORD, "some") if word else _CharSet(_WORD, "some")
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
        cs = _fold_literal(chr(av), flags)
        return _Tr(cs.hs(), cs.exactness, cs.re2_ascii() or r"[^\x00-\x7f]")
    if op == sre_c.NOT_LITERAL:
        cs = _fold_literal(chr(av), flags).negate()
        return _Tr(cs.hs(), cs.exactness, cs.re2_ascii() or r"[^\x00-\x7f]")
    if op == sre_c.ANY:
        cs = _CharSet(_ALL_ASCII if flags & sre_c.SRE_FLAG_DOTALL else _ALL_ASCII - {10}, "all")
        return _Tr(cs.hs(), EXACT, r"(?s:.)" if flags & sre_c.SRE_FLAG_DOTALL else r"[^\n]")
    if op == sre_c.IN:
        cs, ex = _class(list(av), flags)
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


def _single_database(expr: bytes) -> Any:
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
    return _hs is None or _single_database(expr) is not None


# =============================================================================== compiled catalogs
@dataclass
class _FieldScanner:
    field: str
    members: list[int]  # pattern indices using this field
    db: Any  # hyperscan Database or None
    hs_ids: list[int]  # pattern index per hyperscan id
    unfiltered: list[int]  # pattern indices with no prefilter


class CompiledCatalog:
    """Patterns ready to scan: per field one Hyperscan database, per pattern a `Plan`."""

    def __init__(self, patterns: Sequence[Pattern], *, max_chars: int = DEFAULT_MAX_CHARS,
                 use_hyperscan: bool = True) -> None:
        self.patterns = list(patterns)
        self.max_chars = max_chars
        self.use_hyperscan = use_hyperscan and _hs is not None
        self.plans = [plan_pattern(p, verify=False) for p in self.patterns]
        self.delimited = [delimited_plan(p) for p in self.patterns]
        self.scanners: dict[str, _FieldScanner] = {}
        by_field: dict[str, list[int]] = {}
        for i, p in enumerate(self.patterns):
            by_field.setdefault(p.field, []).append(i)
        for fld, members in by_field.items():
            db, with_hs = self._database(members)
            if db is None and with_hs:
                # some expression Hyperscan refuses: take the verified (maybe looser) plans
                for i in members:
                    self.plans[i] = plan_pattern(self.patterns[i], verify=True)
                db, with_hs = self._database(members)
                if db is None:
                    with_hs = []
            unfiltered = [i for i in members if i not in set(with_hs)]
            for i in unfiltered:  # no scan: nothing is decided without `regex`
                self.plans[i] = replace(self.plans[i], hs=None)
            self.scanners[fld] = _FieldScanner(fld, members, db, with_hs, unfiltered)

    def _database(self, members: list[int]) -> tuple[Any, list[int]]:
        """One Hyperscan database for these patterns: (database or None on failure, pattern indices)."""
        with_hs = [i for i in members if self.use_hyperscan and self.plans[i].hs is not None]
        if not with_hs:
            return None, []
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        try:
            db.compile(expressions=[self.plans[i].hs for i in with_hs], ids=list(range(len(with_hs))), flags=0)
        except _hs.error:
            return None, with_hs
        return db, with_hs

    @property
    def columns(self) -> list[str]:
        """Entry columns the patterns read (fields and `when` columns)."""
        cols = []
        for p in self.patterns:
            for c in [p.field] + [w.column for w in p.when]:
                if c not in cols:
                    cols.append(c)
        return cols


_COMPILED: OrderedDict[tuple, CompiledCatalog] = OrderedDict()


def compile_patterns(patterns: Sequence[Pattern], *, max_chars: int = DEFAULT_MAX_CHARS,
                     use_hyperscan: bool = True) -> CompiledCatalog:
    """`CompiledCatalog`, memoized on the patterns' fingerprints (compiling takes milliseconds)."""
    key = (tuple(p.fingerprint for p in patterns), max_chars, use_hyperscan)
    hit = _COMPILED.get(key)
    if hit is not None:
        _COMPILED.move_to_end(key)
        # same definitions, maybe other ids/categories: rebind the pattern objects
        if [id(p) for p in hit.patterns] != [id(p) for p in patterns]:
            hit = _rebind(hit, patterns)
        return hit
    compiled = CompiledCatalog(patterns, max_chars=max_chars, use_hyperscan=use_hyperscan)
    _COMPILED[key] = compiled
    while len(_COMPILED) > 16:
        _COMPILED.popitem(last=False)
    return compiled


def _rebind(compiled: CompiledCatalog, patterns: Sequence[Pattern]) -> CompiledCatalog:
    clone = object.__new__(CompiledCatalog)
    clone.__dict__.update(compiled.__dict__)
    clone.patterns = list(patterns)
    return clone


# =============================================================================== matching
@dataclass
class MatchResult:
    """Matches of a table: parallel arrays, sorted by (row, pattern)."""

    rows: np.ndarray  # int64 row numbers in the table
    patterns: np.ndarray  # int32 index into CompiledCatalog.patterns
    fields_json: pa.Array  # string: JSON object of the named groups, null for patterns without
    cut: dict[str, int] = field(default_factory=dict)  # field -> texts cut to max_chars
    timeouts: Counter = field(default_factory=Counter)  # pattern index -> regex timeouts
    skipped: Counter = field(default_factory=Counter)  # pattern index -> time-limited texts not evaluated
    limited: Counter = field(default_factory=Counter)  # pattern index -> texts given to time-limited search
    seconds: Counter = field(default_factory=Counter)  # pattern index -> seconds charged to its budget
    candidates: int = 0
    verified: int = 0

    def __len__(self) -> int:
        return len(self.rows)


def _as_array(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks == 0:
            return pa.array([], col.type)
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    return col


def _plain(arr: pa.Array) -> pa.Array:
    return arr.dictionary_decode() if pa.types.is_dictionary(arr.type) else arr


def _decoded(table: pa.Table) -> pa.Table:
    """The table with dictionary columns cast to their value type."""
    fields = [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
              for f in table.schema]
    return table.cast(pa.schema(fields))


def _text_column(table: pa.Table, name: str, max_chars: int) -> tuple[pa.Array, int]:
    """The column as strings cut to `max_chars`, and how many rows were cut.

    A dictionary column stays encoded (its dictionary is cut): `_segments` scans the dictionary.
    """
    arr = _as_array(table.column(name))
    if pa.types.is_dictionary(arr.type) and pa.types.is_string(arr.type.value_type):
        values, cut = _text_column(pa.table({name: arr.dictionary}), name, max_chars)
        if cut:
            long = np.asarray(pc.fill_null(pc.greater(pc.utf8_length(arr.dictionary), max_chars), False)
                              .to_numpy(zero_copy_only=False), dtype=bool)
            codes = _codes(arr)
            cut = int(long[codes[codes >= 0]].sum())
        return pa.DictionaryArray.from_arrays(arr.indices, values), cut
    arr = _plain(arr)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    if len(arr) == 0 or arr.null_count == len(arr):
        return arr, 0
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    if int(np.diff(offsets).max()) <= max_chars:  # bytes >= chars: nothing is longer (else checked exactly)
        return arr, 0
    long = pc.greater(pc.utf8_length(arr), max_chars)
    cut = pc.sum(long).as_py() or 0
    if cut:
        arr = pc.if_else(long, pc.utf8_slice_codeunits(arr, 0, max_chars), arr)
    return arr, int(cut)


#: Values are scanned in slices of at most this many bytes (32-bit offsets, bounded memory).
SCAN_SLICE_BYTES = 1 << 30


def _scan(scanner: _FieldScanner, arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Hyperscan over all values at once: (pattern index, row) per candidate."""
    if scanner.db is None or arr.null_count == len(arr):
        return np.empty(0, np.int32), np.empty(0, np.int64)
    lengths = pc.binary_length(arr)
    if (pc.sum(lengths).as_py() or 0) + len(arr) <= SCAN_SLICE_BYTES:
        return _scan_slice(scanner, arr)
    cum = np.cumsum(np.asarray(pc.fill_null(lengths, 0).to_numpy(zero_copy_only=False), dtype=np.int64) + 1)
    out_p, out_r = [], []
    start = 0
    while start < len(arr):
        base = cum[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(cum, base + SCAN_SLICE_BYTES, side="right")))
        p, r = _scan_slice(scanner, arr.slice(start, stop - start))
        out_p.append(p)
        out_r.append(r + start)
        start = stop
    return np.concatenate(out_p), np.concatenate(out_r)


def _scan_slice(scanner: _FieldScanner, arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if arr.null_count * 2 > len(arr):  # mostly nulls (the short values `_segments` took): join the rest only
        kept = np.flatnonzero(np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
        pats, rows = _scan_slice(scanner, arr.take(pa.array(kept)))
        return pats, kept[rows]
    joined = pc.binary_join_element_wise(arr.view(pa.binary()), pa.scalar(b""), pa.scalar(_SEP))
    bufs = joined.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(joined) + 1, offset=joined.offset * 4)
    data = bufs[2]
    if data is None or offsets[-1] == 0:
        return np.empty(0, np.int32), np.empty(0, np.int64)
    ids = array("i")
    ends = array("q")
    id_append, end_append = ids.append, ends.append

    def on_match(hs_id: int, _from: int, to: int, _flags: int, _ctx: Any) -> None:
        id_append(hs_id)
        end_append(to)

    view = memoryview(data)[offsets[0]:offsets[-1]]
    scanner.db.scan(view, match_event_handler=on_match)
    if not ids:
        return np.empty(0, np.int32), np.empty(0, np.int64)
    hs_ids = np.frombuffer(ids, dtype=np.int32)
    rows = np.searchsorted(offsets, np.frombuffer(ends, dtype=np.int64) + offsets[0], side="left") - 1
    return np.asarray(scanner.hs_ids, dtype=np.int32)[hs_ids], rows.astype(np.int64)


class _When:
    """`when` conditions of one table: numeric columns are copied to NumPy once and compared there
    (no `take` per condition); other columns go through `_condition_mask`."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.rows = table.num_rows
        self.numbers: dict[str, np.ndarray | None] = {}
        self.codes: dict[str, tuple[np.ndarray, list[str | None]]] = {}  # dictionary column -> (codes, values)
        self._globbed: dict[Condition, np.ndarray] = {}  # per dictionary value (and a last False for null)
        self._everywhere: dict[tuple[Condition, ...], np.ndarray] = {}

    def everywhere(self, pattern: Pattern) -> np.ndarray:
        """Mask over all rows: where every `when` condition of the pattern holds (memoized)."""
        hit = self._everywhere.get(pattern.when)
        if hit is None:
            hit = np.ones(self.rows, dtype=bool)
            for cond in pattern.when:
                hit &= self.mask(cond, None)
            self._everywhere[pattern.when] = hit
        return hit

    def mask(self, cond: Condition, rows: np.ndarray | None) -> np.ndarray:
        """Where `cond` holds on these rows (None: on all rows)."""
        if cond.column not in self.table.column_names:  # e.g. an entry file written before the column existed
            return np.zeros(self.rows if rows is None else len(rows), dtype=bool)
        col = self.table.column(cond.column)
        if pa.types.is_dictionary(col.type) and cond.op == "glob":  # decided once per distinct value
            if cond.column not in self.codes:
                arr = _as_array(col)
                self.codes[cond.column] = (_codes(arr), arr.dictionary.to_pylist())
            codes, values = self.codes[cond.column]
            ok = self._globbed.get(cond)
            if ok is None:
                ok = self._globbed[cond] = np.array([v is not None and cond.matches_value(v) for v in values] + [False])
            return ok[codes if rows is None else codes[rows]]  # a null's code, -1, takes the extra False
        if cond.column not in self.numbers:
            numeric = pa.types.is_integer(col.type) or pa.types.is_floating(col.type)
            self.numbers[cond.column] = np.asarray(  # null -> NaN, which no comparison holds for
                pc.fill_null(_as_array(col).cast(pa.float64()), np.nan).to_numpy(), dtype=np.float64) if numeric else None
        vals = self.numbers[cond.column]
        if vals is None or cond.op == "glob":
            return _condition_mask(self.table, cond, np.arange(self.rows) if rows is None else rows)
        v = vals if rows is None else vals[rows]
        if cond.op == ">=":
            return v >= cond.value[0]
        if cond.op == "<=":
            return v <= cond.value[0]
        if cond.op == "eq":
            return v == cond.value[0]
        mask = None
        for lo, hi, lo_incl, hi_incl in cond.value:  # "ranges"; a comparison with NaN (null) never holds
            part = ~np.isnan(v) if lo is None and hi is None else None
            if lo is not None:
                part = (v >= lo) if lo_incl else (v > lo)
            if hi is not None:
                upper = (v <= hi) if hi_incl else (v < hi)
                part = upper if part is None else part & upper
            mask = part if mask is None else mask | part
        return mask if mask is not None else np.zeros(len(v), dtype=bool)


def _condition_mask(table: pa.Table, cond: Condition, rows: np.ndarray) -> np.ndarray:
    if cond.column not in table.column_names:  # e.g. an entry file written before the column existed
        return np.zeros(len(rows), dtype=bool)
    col = _plain(_as_array(table.column(cond.column)).take(pa.array(rows)))
    if cond.op in (">=", "<="):
        fn = pc.greater_equal if cond.op == ">=" else pc.less_equal
        mask = fn(col, cond.value[0])
    elif cond.op == "eq":
        mask = pc.equal(col, cond.value[0])
    elif cond.op == "glob":
        uniq = [v for v in pc.unique(col).to_pylist() if v is not None]
        ok = [v for v in uniq if cond.matches_value(v)]
        mask = pc.is_in(col, value_set=pa.array(ok, col.type))
    elif cond.op == "ranges":
        mask = None
        for lo, hi, lo_incl, hi_incl in cond.value:
            part = None
            if lo is not None:
                part = (pc.greater_equal if lo_incl else pc.greater)(col, lo)
            if hi is not None:
                upper = (pc.less_equal if hi_incl else pc.less)(col, hi)
                part = upper if part is None else pc.and_(part, upper)
            mask = part if mask is None else pc.or_(mask, part)
    else:  # pragma: no cover - Condition ops are validated at load time
        raise ValueError(cond.op)
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _json_strings(col: pa.Array) -> pa.Array:
    """JSON text of each string (null -> `null`), vectorised."""
    esc = col
    if _needs_escape(col):
        esc = pc.replace_substring(col, "\\", "\\\\")
        for raw, quoted in (('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            esc = pc.replace_substring(esc, raw, quoted)
    out = pc.binary_join_element_wise(pa.scalar('"'), esc, pa.scalar('"'), pa.scalar(""))
    rare = pc.fill_null(pc.match_substring_regex(esc, r"[\x00-\x1f]"), False) if esc is not col else None
    if rare is not None and pc.any(rare).as_py():  # other control characters: let orjson spell them
        fixed = [orjson.dumps(v).decode() if r else o
                 for v, r, o in zip(col.to_pylist(), rare.to_pylist(), out.to_pylist(), strict=True)]
        out = pa.array(fixed, pa.string())
    return pc.if_else(pc.is_null(col), pa.scalar("null"), out)


def _needs_escape(col: pa.Array) -> bool:
    """Whether any value holds a quote, a backslash or a control character (a look at the raw bytes)."""
    col = col.cast(pa.string()) if col.type != pa.string() else col
    bufs = col.buffers()
    if bufs[2] is None or len(col) == 0:
        return False
    offsets = np.frombuffer(bufs[1], dtype=np.int32, count=len(col) + 1, offset=col.offset * 4)
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0]:offsets[-1]]
    return bool(((data < 0x20) | (data == 0x22) | (data == 0x5C)).any())


def _fields_json(pattern: Pattern, matches: list[Any]) -> pa.Array:
    """`{"name": value, ...}` of each match's named groups (null when a group did not take part).

    Built column by column with Arrow: one `orjson.dumps` per match costs several times more.
    """
    rx = pattern.compiled
    names = tuple(rx.groupindex)
    if not matches:
        return pa.array([], pa.string())
    if rx.groups == len(names):  # only named groups, in order: `re` matches of the ASCII form agree
        rows = [m.groups() for m in matches]
    elif len(names) == 1:
        rows = [(m.group(names[0]),) for m in matches]
    else:
        rows = [m.group(*names) for m in matches]
    return _json_objects(names, [pa.array(column, pa.string()) for column in zip(*rows, strict=True)])


def _json_objects(names: Sequence[str], columns: Sequence[pa.Array], null_rows_from: Sequence[str] = ()
                  ) -> pa.Array:
    """Per row, the JSON object {name: value of that column} (null values as JSON null).

    A null in a column named in `null_rows_from` makes the row's object null instead (and saves
    a pass per such column when its values need no escaping).
    """
    parts: list[Any] = []
    text = ""
    for k, (name, column) in enumerate(zip(names, columns, strict=True)):
        text += ("{" if k == 0 else ",") + orjson.dumps(name).decode() + ":"
        if name in null_rows_from and not _needs_escape(column):
            parts += [pa.scalar(text + '"'), column]
            text = '"'
        else:
            parts += [pa.scalar(text), _json_strings(column)]
            text = ""
    parts.append(pa.scalar(text + "}"))
    parts.append(pa.scalar(""))  # separator
    return pc.binary_join_element_wise(*parts)


def _matches_expression(expr: bytes, texts: pa.Array) -> np.ndarray:
    """Which texts one Hyperscan expression (ending in the separator) matches; all if it does not compile."""
    db = _single_database(expr) if _hs is not None else None
    if db is None:
        return np.ones(len(texts), dtype=bool)
    hit = np.zeros(len(texts), dtype=bool)
    hit[_scan(_FieldScanner("", [0], db, [0], []), texts)[1]] = True
    return hit


_RE_ASCII: dict[str, Any] = {}


def _re_ascii(re2: str | None) -> Any:
    """Python `re` compiled from the ASCII-exact translation (same spelling but `\\z`), or None."""
    if re2 is None:
        return None
    hit = _RE_ASCII.get(re2, _RE_ASCII)
    if hit is _RE_ASCII:
        try:
            hit = re.compile(re2.replace(r"\z", r"\Z"))
        except re.error:  # pragma: no cover - the translation only emits syntax both accept
            hit = None
        _RE_ASCII[re2] = hit
    return hit


@contextlib.contextmanager
def _no_gc() -> Any:
    """Millions of short-lived match objects: the cyclic GC only slows this down."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


#: From this many candidate texts on, a literal-delimited pattern is decided in bulk (`logaudit.delimited`).
DELIMITED_MIN_TEXTS = 512


def _verify(pattern: Pattern, plan: Plan, texts: pa.Array, res: MatchResult, idx: int,
            want_fields: bool, delimited: DelimitedPlan | None = None, *,
            exact_groups: bool = False) -> tuple[np.ndarray, pa.Array | None]:
    """Exact decision for distinct candidate texts: (matched mask, fields_json per text or None).

    Short texts of a proven-linear pattern go to `regex` (or `re`) as they are; the others to RE2
    when they are ASCII and the pattern has an RE2 form (long texts; every text of a pattern
    without groups that is not proven linear), else to `regex` under its time limit and the
    pattern's budget (`_limited_search`). `exact_groups`: long texts go to `regex` rather than
    RE2, which cannot tell an empty group from one that did not take part.
    """
    n = len(texts)
    lengths = np.asarray(pc.fill_null(pc.binary_length(texts), 0).to_numpy())
    if lengths.max(initial=0) > LONG_TEXT:  # bytes >= characters: only then count characters
        lengths = np.asarray(pc.fill_null(pc.utf8_length(texts), 0).to_numpy())
    slow = lengths > LONG_TEXT
    if delimited is not None and (n >= DELIMITED_MIN_TEXTS or slow.any()):  # long texts: linear time, exact
        return _verify_delimited(pattern, plan, texts, res, idx, want_fields, delimited)
    matched = np.zeros(n, dtype=bool)
    search = pattern.compiled.search
    if plan.timeout_always:
        slow[:] = True
    fast = np.flatnonzero(~slow)
    found_at: list[int] = []
    found: list[Any] = []
    with _no_gc():
        if len(fast):
            lanes = [(fast, search)]
            quick = _re_ascii(plan.re2)
            if quick is not None:  # ASCII texts: the `re` form of the ASCII-exact translation is quicker
                is_ascii = np.asarray(pc.fill_null(pc.string_is_ascii(texts), False)
                                      .to_numpy(zero_copy_only=False), dtype=bool)[fast]
                lanes = [(fast[is_ascii], quick.search), (fast[~is_ascii], search)]
            for rows, find in lanes:
                if not len(rows):
                    continue
                for j, m in zip(rows.tolist(), map(find, texts.take(pa.array(rows)).to_pylist()), strict=True):
                    if m is not None:
                        found_at.append(j)
                        found.append(m)
        long_ascii: list[int] = []
        any_length = plan.timeout_always and not pattern.group_names  # RE2 is exact on it
        re2 = bool(slow.any()) and plan.re2 is not None and not exact_groups and _re2_compiles(plan.re2)
        for j in np.flatnonzero(slow).tolist():
            text = texts[j].as_py()
            if re2 and (any_length or lengths[j] > LONG_TEXT) and text.isascii():
                long_ascii.append(j)
                continue
            m = _limited_search(search, text, res, idx)
            if m is not None:
                found_at.append(j)
                found.append(m)
        matched[found_at] = True
        values = _fields_json(pattern, found) if want_fields else None
    res.verified += n
    if long_ascii:
        extra = _verify_re2(plan.re2, texts.take(pa.array(long_ascii)), long_ascii, pattern.group_names)
        found_at += [j for j, _ in extra]
        matched[[j for j, _ in extra]] = True
        if want_fields:
            values = pa.concat_arrays([values, pa.array([fj for _, fj in extra], pa.string())])
    if not want_fields:
        return matched, None
    slot = np.full(n, -1, dtype=np.int64)  # text -> position in `values`, -1: no match
    slot[found_at] = np.arange(len(found_at))
    return matched, values.take(pa.array(slot, mask=slot < 0))


def _limited_search(search: Callable[..., Any], text: str, res: MatchResult, idx: int) -> Any:
    """`search(text)` under `REGEX_TIMEOUT`, charged to the pattern's budget for this evaluation;
    None (and counted) when it times out, or when the pattern has used up its budget (skipped)."""
    res.limited[idx] += 1
    if res.timeouts[idx] >= MAX_TIMEOUTS or res.seconds[idx] >= PATTERN_BUDGET + TEXT_BUDGET * res.limited[idx]:
        res.skipped[idx] += 1
        return None
    t0 = time.perf_counter()
    try:
        found = search(text, timeout=REGEX_TIMEOUT)
    except TimeoutError:
        res.timeouts[idx] += 1
        res.seconds[idx] += REGEX_TIMEOUT  # the nominal limit, not the clock: the same texts are skipped each run
        return None
    res.seconds[idx] += time.perf_counter() - t0
    return found


def _verify_delimited(pattern: Pattern, plan: Plan, texts: pa.Array, res: MatchResult, idx: int,
                      want_fields: bool, delimited: DelimitedPlan) -> tuple[np.ndarray, pa.Array | None]:
    """`_verify` in bulk (NumPy on the UTF-8 bytes); the texts it cannot decide go to `regex`."""
    got = search_delimited(delimited, texts)
    matched = got.matched.copy()
    rest = np.flatnonzero(got.undecided)
    if len(rest) and plan.recheck is not None:  # only texts the whole pattern's expression takes
        rest = rest[_matches_expression(plan.recheck, texts.take(pa.array(rest)))]
    fields = None
    if want_fields:
        names = tuple(pattern.compiled.groupindex)
        # a group outside the optional tail is null exactly where the text did not match
        fields = _json_objects(names, [got.groups[name] for name in names], null_rows_from=delimited.required)
        if fields.null_count != len(texts) - int(got.matched.sum()):
            fields = pc.if_else(pa.array(got.matched), fields, pa.scalar(None, pa.string()))
    res.verified += len(texts) - len(rest)
    if len(rest):
        more, more_fields = _verify(pattern, plan, texts.take(pa.array(rest)), res, idx, want_fields,
                                    exact_groups=True)
        matched[rest] = more
        if want_fields:
            slot = np.arange(len(texts))  # texts decided here keep their value, the others take regex's
            slot[rest] = len(texts) + np.arange(len(rest))
            fields = pa.concat_arrays([fields, more_fields]).take(pa.array(slot))
    return matched, fields


def _verify_re2(pattern: str, texts: pa.Array, positions: list[int],
                names: tuple[str, ...]) -> list[tuple[int, str | None]]:
    """Linear-time RE2 (pyarrow) for long ASCII texts; empty groups count as not taking part."""
    if not names:
        hits = pc.match_substring_regex(texts, pattern).to_pylist()
        return [(p, None) for p, h in zip(positions, hits, strict=True) if h]
    got = pc.extract_regex(texts, pattern)
    out = []
    for p, v in zip(positions, got.to_pylist(), strict=True):
        if v is not None:
            out.append((p, orjson.dumps({k: (v.get(k) or None) for k in names}).decode()))
    return out


#: Columns whose values repeat this much (distinct/non-null in a sample) are matched per distinct value.
DEDUP_RATIO = 0.1
_DEDUP_SAMPLE = 20_000
#: In other columns, values of at most this many bytes are matched once per distinct value when
#: they repeat (the same short line logged over and over: "Agent request completed").
SHORT_TEXT_BYTES = 64
_SHORT_MIN_ROWS = 10_000


class _Rows:
    """Which rows hold each value of a segment: `codes[i]` is the value of row `rows[i]` (all rows if None)."""

    def __init__(self, codes: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.codes, self.rows = codes, rows
        self._counts: np.ndarray | None = None

    def count(self, vids: np.ndarray, nvalues: int) -> int:
        """How many rows hold any of the value ids `vids`."""
        if self._counts is None:
            self._counts = np.bincount(self.codes + 1, minlength=nvalues + 1)[1:]  # code -1: null
        return int(self._counts[vids].sum())

    def expand(self, vids: np.ndarray, nvalues: int, where: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(rows holding any of the value ids `vids`, ascending; each one's position in `vids`).

        `where`: a mask over the table's rows; only rows where it holds are returned.
        """
        wanted = np.zeros(nvalues + 1, dtype=bool)
        wanted[vids] = True
        sel = wanted[self.codes]  # a code of -1 (null) hits the extra False
        if where is not None:
            sel &= where if self.rows is None else where[self.rows]
        hit = np.flatnonzero(sel)
        slot = np.empty(nvalues + 1, dtype=np.int64)
        slot[vids] = np.arange(len(vids))
        return (hit if self.rows is None else self.rows[hit]), slot[self.codes[hit]]


def _codes(arr: pa.DictionaryArray) -> np.ndarray:
    """A dictionary array's indices as int64, -1 for null."""
    return np.asarray(pc.fill_null(arr.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _segments(arr: pa.Array) -> list[tuple[pa.Array, _Rows | None]]:
    """The values to scan, in segments: (values, their rows, or None when value i is row i).

    Low-cardinality columns are one segment of distinct values. Elsewhere short values that
    repeat are one segment of distinct values and the rest (null where short) another.
    """
    if pa.types.is_dictionary(arr.type):  # already encoded (read so from Parquet): scan the dictionary
        return [(arr.dictionary, _Rows(_codes(arr)))]
    valid = len(arr) - arr.null_count
    if valid < 1000:
        return [(arr, None)]
    sample = arr.slice(0, _DEDUP_SAMPLE)
    sample_valid = len(sample) - sample.null_count
    if sample_valid and pc.count_distinct(sample).as_py() <= DEDUP_RATIO * sample_valid:
        enc = pc.dictionary_encode(arr)
        return [(enc.dictionary, _Rows(_codes(enc)))]
    if arr.type != pa.string():
        return [(arr, None)]
    if arr.offset:  # below, the buffers are used as they are
        arr = pa.concat_arrays([arr])
    valid_mask = np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
    short = valid_mask & (np.diff(offsets) <= SHORT_TEXT_BYTES)
    rows = np.flatnonzero(short)
    if len(rows) < _SHORT_MIN_ROWS:
        return [(arr, None)]
    enc = pc.dictionary_encode(arr.take(pa.array(rows)))
    if len(enc.dictionary) * 2 > len(rows):  # short but mostly distinct: not worth it
        return [(arr, None)]
    codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    # the other values, as they are: the same strings, with the short ones marked null (no copy)
    validity = pa.array(valid_mask & ~short).buffers()[1]
    rest = pa.Array.from_buffers(pa.string(), len(arr), [validity, arr.buffers()[1], arr.buffers()[2]])
    return [(enc.dictionary, _Rows(codes, rows)), (rest, None)]


def _apply_when(when: _When, pattern: Pattern, rows: np.ndarray) -> np.ndarray:
    for cond in pattern.when:
        if not len(rows):
            break
        rows = rows[when.mask(cond, rows)]
    return rows


class _AsciiMask:
    """Which values are pure ASCII: for a few ids computed on those, else once for all values."""

    def __init__(self, values: pa.Array) -> None:
        self.values = values
        self.mask: np.ndarray | None = None

    def __getitem__(self, ids: np.ndarray) -> np.ndarray:
        if self.mask is None and len(ids) * 16 < len(self.values):
            return np.asarray(pc.fill_null(pc.string_is_ascii(self.values.take(pa.array(ids))), False)
                              .to_numpy(zero_copy_only=False), dtype=bool)
        if self.mask is None:
            self.mask = np.asarray(pc.fill_null(pc.string_is_ascii(self.values), False)
                                   .to_numpy(zero_copy_only=False), dtype=bool)
        return self.mask[ids]


def _decide(pattern: Pattern, plan: Plan, values: pa.Array, ids: np.ndarray, res: MatchResult,
            idx: int, ascii_mask: _AsciiMask, delimited: DelimitedPlan | None = None
            ) -> tuple[np.ndarray, pa.Array | None]:
    """Which candidate value ids really match: (matched ids, their fields_json, or None)."""
    want_fields = bool(pattern.group_names)
    if not want_fields and plan.hs is not None and plan.exactness == EXACT:
        return ids, None
    accept = np.zeros(len(ids), dtype=bool)
    if not want_fields and plan.hs is not None and plan.exactness == ASCII_EXACT:
        accept = ascii_mask[ids]
    todo = np.flatnonzero(~accept)
    fjson = pa.array([], pa.string()) if want_fields else None
    if len(todo):
        texts = values.take(pa.array(ids[todo]))
        if len(texts) > 64 and pc.count_distinct(texts.slice(0, 512)).as_py() < 0.8 * min(512, len(texts)):
            enc = pc.dictionary_encode(texts)  # identical texts: decided once
            texts = enc.dictionary
            codes = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
        else:
            codes = np.arange(len(texts), dtype=np.int64)
        ok, fields = _verify(pattern, plan, texts, res, idx, want_fields, delimited)
        hit = ok[codes]
        accept[todo[hit]] = True
        if fields is not None:  # then nothing was accepted before verification: keep == todo[hit]
            fjson = fields if len(fields) == len(codes) and hit.all() else fields.take(pa.array(codes[hit]))
    keep = np.flatnonzero(accept)
    return ids[keep], fjson


def _match_segment(when: _When, compiled: CompiledCatalog, scanner: _FieldScanner, values: pa.Array,
                   holders: _Rows | None, res: MatchResult, apply_when: bool
                   ) -> Iterable[tuple[int, np.ndarray, pa.Array | None]]:
    """(pattern index, matched rows, their fields_json or None) for one segment of a field's values."""
    ascii_mask = _AsciiMask(values)
    cand_p, cand_v = _scan(scanner, values)
    groups: dict[int, np.ndarray] = {}
    if len(cand_p):
        small = np.uint16 if len(compiled.patterns) <= 1 << 16 else np.int32
        order = np.argsort(cand_p.astype(small), kind="stable")  # 16-bit keys: a radix sort
        sp, sv = cand_p[order], cand_v[order]
        bounds = np.flatnonzero(np.diff(sp)) + 1
        for chunk_p, chunk_v in zip(np.split(sp, bounds), np.split(sv, bounds), strict=True):
            groups[int(chunk_p[0])] = np.sort(chunk_v)
    if scanner.unfiltered:
        valid = np.flatnonzero(np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
        for idx in scanner.unfiltered:
            groups[idx] = valid.astype(np.int64)
    for idx in sorted(groups):
        ids = groups[idx]
        pattern, plan, delimited = compiled.patterns[idx], compiled.plans[idx], compiled.delimited[idx]
        res.candidates += len(ids)
        if holders is None:
            # one value per row: narrow by `when` first, then decide
            if apply_when and pattern.when:
                ids = _apply_when(when, pattern, ids)
            rows, fjson = _decide(pattern, plan, values, ids, res, idx, ascii_mask, delimited)
        else:
            # decide per distinct value, then expand to rows and apply `when`
            vids, vjson = _decide(pattern, plan, values, ids, res, idx, ascii_mask, delimited)
            if not len(vids):
                continue
            if apply_when and pattern.when and holders.count(vids, len(values)) * 8 > when.rows:
                # most rows would be expanded only to be tested: test all rows at once instead
                rows, pos = holders.expand(vids, len(values), where=when.everywhere(pattern))
            else:
                rows, pos = holders.expand(vids, len(values))
                if apply_when and pattern.when:
                    kept = _apply_when(when, pattern, rows)
                    pos = pos[np.searchsorted(rows, kept)]
                    rows = kept
            fjson = vjson.take(pa.array(pos)) if vjson is not None else None
        if len(rows):
            yield idx, rows, fjson


def match_table(table: pa.Table, compiled: CompiledCatalog, *, apply_when: bool = True) -> MatchResult:
    """Match every row of `table` (entry columns) against the compiled patterns.

    Per field: cut long texts, scan all values with Hyperscan, then per pattern apply `when`
    and verify the candidates that need it. Low-cardinality fields (http_path, log_id, ...),
    and short values that repeat in other fields, are scanned and verified once per distinct value.
    """
    rows_all: list[np.ndarray] = []
    pats_all: list[np.ndarray] = []
    fields_all: list[pa.Array | None] = []
    res = MatchResult(np.empty(0, np.int64), np.empty(0, np.int32), pa.array([], pa.string()))
    # one contiguous array per column used (Parquet hands over one chunk per row group)
    table = pa.table({c: _as_array(table.column(c)) for c in compiled.columns if c in table.column_names})
    when = _When(table)
    for fld, scanner in compiled.scanners.items():
        if fld not in table.column_names:
            continue
        arr, cut = _text_column(table, fld, compiled.max_chars)
        res.cut[fld] = cut
        for values, holders in _segments(arr):
            for idx, rows, fjson in _match_segment(when, compiled, scanner, values, holders, res, apply_when):
                rows_all.append(rows.astype(np.int64))
                pats_all.append(np.full(len(rows), idx, dtype=np.int32))
                fields_all.append(fjson)
    if rows_all:
        rows = np.concatenate(rows_all)
        pats = np.concatenate(pats_all)
        flat = pa.concat_arrays([f if f is not None else pa.nulls(len(r), pa.string())
                                 for f, r in zip(fields_all, rows_all, strict=True)])
        order = np.lexsort((pats, rows))
        res.rows, res.patterns = rows[order], pats[order]
        res.fields_json = flat.take(pa.array(order))
    return res


def match_texts(pattern: Pattern, texts: Sequence[str], *, max_chars: int = DEFAULT_MAX_CHARS,
                use_hyperscan: bool = True) -> list[dict[str, str] | None]:
    """Run the engine on plain texts for one pattern (ignoring `when`): fields dict or None each."""
    table = pa.table({pattern.field: pa.array(list(texts), pa.string())})
    compiled = compile_patterns([pattern], max_chars=max_chars, use_hyperscan=use_hyperscan)
    res = match_table(table, compiled, apply_when=False)
    out: list[dict[str, str] | None] = [None] * len(texts)
    for row, fj in zip(res.rows.tolist(), res.fields_json.to_pylist(), strict=True):
        out[row] = orjson.loads(fj) if fj else {}
    return out


MATCH_COLUMNS: tuple[str, ...] = ("entry_row", "pattern_id", "category", "title", "fields_json")


#: Schema metadata key of `classify_table`'s result: JSON list of `ClassifyReport.slow_patterns` entries.
SLOW_PATTERNS_KEY = b"logaudit.slow_patterns"


def classify_table(table: pa.Table, catalog: Catalog | Sequence[Pattern], *,
                   max_chars: int = DEFAULT_MAX_CHARS, use_hyperscan: bool = True) -> pa.Table:
    """Matches of an in-memory entry table: one row per (entry, pattern), plus any key columns present.

    Patterns whose searches timed out or were skipped are listed, as in `ClassifyReport.slow_patterns`,
    in the schema metadata under `SLOW_PATTERNS_KEY` (absent when there are none).
    """
    patterns = list(catalog)
    compiled = compile_patterns(patterns, max_chars=max_chars, use_hyperscan=use_hyperscan)
    res = match_table(table, compiled)
    idx = pa.array(res.rows)
    cols: dict[str, Any] = {}
    for name in KEY_COLUMNS:
        if name in table.column_names:
            cols[name] = table.column(name).take(idx)
    pats = res.patterns.tolist()
    cols["entry_row"] = pa.array(res.rows, pa.int64())
    cols["pattern_id"] = pa.array([patterns[i].id for i in pats], pa.string())
    cols["category"] = pa.array([patterns[i].category for i in pats], pa.string())
    cols["title"] = pa.array([patterns[i].title for i in pats], pa.string())
    cols["fields_json"] = res.fields_json
    out = pa.table(cols)
    slow = [_slow_pattern(patterns[i], res.timeouts[i], res.skipped[i]) for i in sorted({*res.timeouts, *res.skipped})]
    return out.replace_schema_metadata({SLOW_PATTERNS_KEY: orjson.dumps(slow)}) if slow else out


# =============================================================================== store cache
INDEX_NAME = "index.json"
CHUNK_SCHEMA = pa.schema([
    ("entry_file", pa.string()), ("entry_row", pa.int32()), ("fingerprint", pa.string()),
    ("log_name", pa.string()), ("insert_id", pa.string()), ("timestamp", ENTRY_SCHEMA.field("timestamp").type),
    ("service", pa.string()), ("revision", pa.string()), ("fields_json", pa.string()),
])
MAX_CHUNKS = 8
#: Below this many bytes of entry files to evaluate, one process does the work.
PARALLEL_MIN_BYTES = 4_000_000


def cache_key(pattern: Pattern, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """What a cached result depends on: the pattern's fingerprint, the engine and its bounds."""
    return hashlib.sha256(f"{pattern.fingerprint}/{ENGINE_VERSION}/{max_chars}".encode()).hexdigest()[:16]


def _entry_key(store_root: Path, path: Path) -> str:
    try:
        return path.relative_to(store_root / "entries").as_posix()
    except ValueError:
        return "external/" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16] + ".parquet"


def _match_dir(store_root: Path, key: str) -> Path:
    """The cache folder of an entry file: in the store, or in the scratch directory standing in
    for a read-only store's cache when classification had to add results there."""
    name = key.removesuffix(".parquet")
    scratch = scratch_dir(store_root, create=False)
    if scratch is not None and (scratch / "matches" / name).is_dir():
        return scratch / "matches" / name
    return store_root / "matches" / name


def _read_index(folder: Path) -> dict[str, Any] | None:
    """The folder's index, or None when missing or damaged (the results are then evaluated again)."""
    try:
        index = orjson.loads((folder / INDEX_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return index if isinstance(index, dict) and isinstance(index.get("fingerprints", {}), dict) else None


def _usable_index(folder: Path, entry_bytes: int) -> tuple[dict[str, Any] | None, set[str]]:
    """The folder's index if it belongs to an entry file of `entry_bytes` bytes, without the
    results whose chunk file is missing or damaged (those are evaluated again); and the names
    of those chunks."""
    index = _read_index(folder)
    if index is None or index.get("entry_bytes") != entry_bytes:
        return None, set()
    fps: dict[str, str | None] = index.get("fingerprints", {})
    bad = {c for c in set(fps.values()) if c and parquet_framing_problem(folder / c)}
    if bad:
        index["fingerprints"] = {k: c for k, c in fps.items() if c not in bad}
        index.pop("summary", None)
    return index, bad


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:6]}.tmp")
    with write_errors(path, tmp):
        tmp.write_bytes(data)
        os.replace(tmp, path)


def _overlay(root: Path, key: str, index: dict[str, Any] | None) -> Path:
    """A scratch folder standing in for a read-only store's cache folder of one entry file:
    its usable results are linked, new ones are written there (see `scratch_dir`)."""
    folder = root / "matches" / key.removesuffix(".parquet")
    scratch = scratch_dir(root) / "matches" / key.removesuffix(".parquet")  # type: ignore[operator]
    scratch.mkdir(parents=True, exist_ok=True)
    if index is not None:
        for chunk in {c for c in index["fingerprints"].values() if c}:
            if not (scratch / chunk).exists():
                (scratch / chunk).symlink_to(folder / chunk)
        _write_atomic(scratch / INDEX_NAME, orjson.dumps(index))
    return scratch


@contextlib.contextmanager
def _matches_lock(root: Path, writable: bool = True) -> Any:
    if not writable:  # nothing is written to a read-only store's cache: no writer to keep out
        yield
        return
    folder = root / "matches"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)  # explicit: a forked child may still share the descriptor
        os.close(fd)


@dataclass
class _FileTask:
    entry_path: str
    entry_key: str
    match_dir: str
    entry_bytes: int
    patterns: list[Pattern]
    keys: list[str]
    max_chars: int
    use_hyperscan: bool
    live_keys: list[str]  # every key of the current catalog (kept when compacting)
    store_root: str = ""


@dataclass
class _FileOutcome:
    entry_key: str
    rows: int
    seconds: float
    index: dict[str, Any]


def _write_chunk(chunk: pa.Table, path: Path) -> None:
    pq.write_table(chunk, path, compression="lz4",
                   use_dictionary=["entry_file", "fingerprint", "log_name", "service", "revision"],
                   write_statistics=["timestamp", "entry_row"])


def _live_hash(keys: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(keys))).encode()).hexdigest()[:16]


def read_entry_file(path: str | Path, compiled: CompiledCatalog) -> pa.Table:
    """The columns of one entry file that classifying it needs (`compiled`'s and the key columns).

    Columns stored dictionary-encoded are read so: `match_table` scans and tests their distinct
    values only, and the key columns go to the match chunk without decoding.
    """
    # ParquetFile, not read_table: no lazy import of pyarrow.dataset in freshly forked workers.
    with pq.ParquetFile(path) as pfile:
        meta, names = pfile.metadata, set(pfile.schema_arrow.names)  # older files may lack a column
    columns = [c for c in dict.fromkeys(compiled.columns + list(KEY_COLUMNS)) if c in names]
    encoded = [c for c in columns if c in DICTIONARY_COLUMNS and c in TEXT_COLUMNS]
    with pq.ParquetFile(path, metadata=meta, read_dictionary=encoded) as pfile:
        return pfile.read(columns=columns)


def _read_task_file(task: _FileTask, compiled: CompiledCatalog) -> pa.Table:
    """`read_entry_file`, naming the file and what is wrong with it when it cannot be read."""
    try:
        table = read_entry_file(task.entry_path, compiled)
        if all(c in table.column_names for c in ("timestamp", "log_name", "insert_id")):
            return table
        why = None  # a foreign Parquet file
    except (pa.ArrowException, OSError) as err:
        why = f"unreadable ({' '.join(str(err).split())[:160]})"
    from logaudit.storecheck import entry_file_problem

    path = Path(task.entry_path)
    why = entry_file_problem(path) or why or "not a logaudit entry file"
    raise damaged_error(Path(task.store_root or path.parent), [(path, why)])


def _evaluate_file(task: _FileTask) -> _FileOutcome:
    """Evaluate the missing patterns on one entry file; write a chunk and update its index."""
    t0 = time.perf_counter()
    compiled = compile_patterns(task.patterns, max_chars=task.max_chars, use_hyperscan=task.use_hyperscan)
    table = _read_task_file(task, compiled)
    res = match_table(table, compiled)
    folder = Path(task.match_dir)
    folder.mkdir(parents=True, exist_ok=True)
    index = _read_index(folder) or {}
    if index.get("entry_bytes") != task.entry_bytes:
        index = {}
    index.setdefault("version", 1)
    index["entry_file"] = task.entry_key
    index["entry_bytes"] = task.entry_bytes
    index["rows"] = table.num_rows
    fps: dict[str, str | None] = index.setdefault("fingerprints", {})
    cut: dict[str, int] = index.setdefault("cut", {})
    cut.update(res.cut)
    timeouts: dict[str, int] = index.setdefault("timeouts", {})
    skipped: dict[str, int] = index.setdefault("skipped", {})
    chunk_name = None
    per_key = np.bincount(res.patterns, minlength=len(task.keys)) if len(res) else np.zeros(len(task.keys), int)
    if len(res):
        chunk_name = f"c-{uuid.uuid4().hex[:12]}.parquet"
        idx = pa.array(res.rows)
        n = len(res)
        cols = {
            "entry_file": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([task.entry_key])),
            "entry_row": pa.array(res.rows.astype(np.int32)),
            "fingerprint": pa.DictionaryArray.from_arrays(pa.array(res.patterns), pa.array(task.keys, pa.string())),
        }
        for name in ("log_name", "insert_id", "timestamp", "service", "revision"):
            typ = CHUNK_SCHEMA.field(name).type
            cols[name] = _as_array(table.column(name)).take(idx) if name in table.column_names else pa.nulls(n, typ)
        cols["fields_json"] = res.fields_json
        chunk = pa.table(cols)
        tmp = folder / f".{chunk_name}.tmp"
        with write_errors(folder / chunk_name, tmp):
            _write_chunk(chunk, tmp)
            os.replace(tmp, folder / chunk_name)
    for i, key in enumerate(task.keys):
        fps[key] = chunk_name if per_key[i] else None
        if res.timeouts.get(i):
            timeouts[key] = res.timeouts[i]
        if res.skipped.get(i):
            skipped[key] = res.skipped[i]
    if len({c for c in fps.values() if c}) > MAX_CHUNKS:
        _compact(folder, index, set(task.live_keys))
    index["summary"] = _file_summary(folder, index, task, res, chunk_name, per_key)
    _write_atomic(folder / INDEX_NAME, orjson.dumps(index))
    return _FileOutcome(task.entry_key, table.num_rows, time.perf_counter() - t0, index)


def _file_summary(folder: Path, index: dict[str, Any], task: _FileTask, res: MatchResult, chunk_name: str | None,
                  per_key: np.ndarray) -> dict[str, Any]:
    """Matches per live cache key and entries matched by any of them, for reports without DuckDB."""
    live = set(task.live_keys)
    counts = {k: int(n) for k, n in zip(task.keys, per_key.tolist(), strict=True) if k in live and n}
    row_sets = [res.rows] if len(res) else []
    fresh = set(task.keys)
    older = sorted({c for k, c in index["fingerprints"].items() if c and k in live and k not in fresh})
    for name in older:
        t = _decoded(pq.read_table(folder / name, columns=["entry_row", "fingerprint"]))
        keep = pc.is_in(t["fingerprint"], value_set=pa.array(sorted(live - fresh), pa.string()))
        t = t.filter(keep)
        for k, n in zip(*[c.to_pylist() for c in pc.value_counts(t["fingerprint"]).flatten()], strict=True):
            counts[k] = counts.get(k, 0) + n
        row_sets.append(t["entry_row"].to_numpy())
    seen = np.zeros(int(index["rows"]), dtype=bool)
    for r in row_sets:
        seen[r] = True
    return {"live": _live_hash(live), "matched_rows": int(seen.sum()), "counts": counts}


def _compact(folder: Path, index: dict[str, Any], live: set[str]) -> None:
    """Merge an entry file's chunks into one holding only the current catalog's results."""
    fps: dict[str, str | None] = index["fingerprints"]
    chunks = sorted({c for c in fps.values() if c})
    tables = [_decoded(pq.read_table(folder / c)) for c in chunks]
    merged = pa.concat_tables(tables) if tables else CHUNK_SCHEMA.empty_table()
    keep = pc.is_in(merged["fingerprint"], value_set=pa.array(sorted(live), pa.string()))
    merged = merged.filter(keep)
    name = f"c-{uuid.uuid4().hex[:12]}.parquet"
    if merged.num_rows:
        tmp = folder / f".{name}.tmp"
        with write_errors(folder / name, tmp):
            _write_chunk(merged, tmp)
            os.replace(tmp, folder / name)
    present = set(merged["fingerprint"].to_pylist()) if merged.num_rows else set()
    index["fingerprints"] = {k: (name if k in present else None) for k in fps if k in live}
    for key in ("timeouts", "skipped"):
        index[key] = {k: v for k, v in index.get(key, {}).items() if k in live}
    for c in chunks:
        with contextlib.suppress(OSError):
            (folder / c).unlink()


def _drop_unusable(folder: Path, index: dict[str, Any] | None, damaged: set[str]) -> None:
    """Remove what `_usable_index` found unusable: the folder of a rewritten entry file or with a
    damaged index (start again), or damaged chunks (the index is rewritten without them first)."""
    if index is None:
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        return
    if damaged:
        _write_atomic(folder / INDEX_NAME, orjson.dumps(index))
        for chunk in damaged:
            (folder / chunk).unlink(missing_ok=True)


def _prune(root: Path) -> int:
    """Drop cached matches of entry files that no longer exist (compacted away)."""
    removed = 0
    base = root / "matches"
    for part in base.glob("date=*"):
        for folder in part.iterdir():
            if folder.is_dir() and not (root / "entries" / part.name / f"{folder.name}.parquet").exists():
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
    return removed


@dataclass
class ClassifyReport:
    """What `classify_store` did and what the window holds."""

    files: int = 0
    files_evaluated: int = 0
    entries: int = 0
    entries_evaluated: int = 0
    patterns: int = 0
    patterns_evaluated: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    matches: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    matched_entries: int = 0
    unclassified: int = 0
    cut: int = 0
    timeouts: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    #: per pattern with timeouts or skipped texts: where it is, the counts, why and what to do
    slow_patterns: list[dict[str, Any]] = field(default_factory=list)
    pruned: int = 0
    workers: int = 1
    seconds: float = 0.0
    since: str | None = None
    until: str | None = None

    @property
    def entries_per_second(self) -> float:
        return self.entries_evaluated / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["entries_per_second"] = round(self.entries_per_second, 1)
        return out


@contextlib.contextmanager
def _worker_pool(size: int) -> Any:
    """Worker processes for one classification run.

    Forked where the platform can (instant; the workers inherit the compiled catalog and the
    caller's `__main__` needs no `if __name__ == "__main__"` guard), else spawned. They only run
    this module's code (Arrow, Hyperscan, `regex`) and end with the run, so they hold no file
    descriptors (locks) of the caller for longer than that.
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "fork":
        # pyarrow imports pandas lazily on its first pa.array(): do it once here, not in every worker
        pa.array([0])
    pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context(method),
                               initializer=tune_allocator)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_tasks(tasks: list[_FileTask], workers: int, max_chars: int,
               use_hyperscan: bool) -> Iterable[tuple[_FileTask, _FileOutcome]]:
    """Evaluate tasks in this process and `workers - 1` worker processes; yield as they finish.

    A worker is handed its next task from the moment it finishes one (a done-callback), not when
    this process next looks up from its own task, so no core idles while work is pending.
    """
    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            yield task, _evaluate_file(task)
        return
    # biggest files first, so that the last task to finish is a small one
    pending = sorted(tasks, key=lambda t: -Path(t.entry_path).stat().st_size)
    for subset in {tuple(t.keys): t.patterns for t in pending}.values():
        compile_patterns(subset, max_chars=max_chars, use_hyperscan=use_hyperscan)  # the workers inherit it
    lock = threading.Lock()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    with _worker_pool(workers - 1) as pool:

        def take() -> _FileTask | None:
            with lock:
                return pending.pop(0) if pending else None

        def submit(task: _FileTask) -> None:
            future = pool.submit(_evaluate_file, task)
            future.add_done_callback(lambda f, task=task: done(task, f))

        def done(task: _FileTask, future: Any) -> None:
            finished.put((task, future))
            if not future.cancelled() and future.exception() is None:
                nxt = take()
                if nxt is not None:
                    with contextlib.suppress(RuntimeError):  # the pool is shutting down after an error
                        submit(nxt)

        gc.freeze()  # the workers fork now: keep the GC off the pages they inherit
        try:
            for _ in range(workers - 1):
                task = take()
                if task is not None:
                    submit(task)
        finally:
            gc.unfreeze()
        left = len(tasks)
        while left:
            task = take()
            if task is not None:  # this process works too, while there is work
                yield task, _evaluate_file(task)
                left -= 1
            else:  # nothing left to take: wait for a worker
                ptask, future = finished.get()
                yield ptask, future.result()
                left -= 1
            while left and not finished.empty():  # what the workers finished meanwhile
                ptask, future = finished.get()
                yield ptask, future.result()
                left -= 1


def _resolve_workers(workers: int | None) -> int:
    if workers is not None:
        return max(1, workers)
    return max(1, min(2, os.cpu_count() or 1))


def classify_store(store: Any, catalog: Catalog, since: datetime | None = None, until: datetime | None = None,
                   progress: Progress | None = None, *, workers: int | None = None,
                   max_chars: int = DEFAULT_MAX_CHARS, use_hyperscan: bool = True, summarize: bool = True) -> ClassifyReport:
    """Classify the store's entry files (those of the window) against `catalog`, using the cache.

    Only (entry file, pattern fingerprint) pairs not cached yet are evaluated; counts in the
    report cover the entries with since <= timestamp < until.
    """
    faults = getattr(store, "faults", contextlib.nullcontext)  # a Store; any object with root and entry_files works
    with faults():
        return _classify_store(store, catalog, since, until, progress, workers=workers, max_chars=max_chars,
                               use_hyperscan=use_hyperscan, summarize=summarize)


def _classify_store(store: Any, catalog: Catalog, since: datetime | None, until: datetime | None,
                    progress: Progress | None, *, workers: int | None, max_chars: int, use_hyperscan: bool,
                    summarize: bool) -> ClassifyReport:
    t0 = time.perf_counter()
    root = Path(store.root)
    files = store.entry_files(since, until)
    writable = getattr(store, "writable", True)
    report = ClassifyReport(files=len(files), patterns=len(catalog),
                            since=_iso(since), until=_iso(until))
    patterns = list(catalog)
    keys = [cache_key(p, max_chars) for p in patterns]
    unique: dict[str, Pattern] = {}
    for p, k in zip(patterns, keys, strict=True):
        unique.setdefault(k, p)
    live = list(unique)
    tasks: list[_FileTask] = []
    indexes: dict[str, dict[str, Any]] = {}
    with _matches_lock(root, writable):
        report.pruned = _prune(root) if writable else 0
        for path in files:
            ekey = _entry_key(root, path)
            folder = _match_dir(root, ekey)
            size = path.stat().st_size
            index, damaged = _usable_index(folder, size)
            if writable:
                _drop_unusable(folder, index, damaged)
            have = set((index or {}).get("fingerprints", {}))
            missing = [k for k in live if k not in have]
            report.cache_hits += len(live) - len(missing)
            report.cache_misses += len(missing)
            if missing and not writable:
                folder = _overlay(root, ekey, index)
            if index is not None:
                indexes[ekey] = index
            if missing:
                tasks.append(_FileTask(str(path), ekey, str(folder), size, [unique[k] for k in missing], missing,
                                       max_chars, use_hyperscan, live, str(root)))
        evaluated: set[str] = set()
        nworkers = _resolve_workers(workers)
        big = sum(Path(t.entry_path).stat().st_size for t in tasks) > PARALLEL_MIN_BYTES
        report.workers = nworkers if (nworkers > 1 and len(tasks) > 1 and big) else 1
        for done, (task, outcome) in enumerate(_run_tasks(tasks, report.workers, max_chars, use_hyperscan), 1):
            indexes[outcome.entry_key] = outcome.index
            report.files_evaluated += 1
            report.entries_evaluated += outcome.rows
            evaluated.update(task.keys)
            if progress:
                progress(task.entry_key, done, len(tasks))
        report.patterns_evaluated = sum(1 for p, k in zip(patterns, keys, strict=True) if k in evaluated)
        if summarize:  # counts for the report; views do not need them
            _summarize(report, root, files, indexes, patterns, keys, since, until)
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _chunk_files(root: Path, files: list[Path], indexes: dict[str, dict[str, Any]] | None,
                 live: set[str]) -> list[str]:
    out: list[str] = []
    for path in files:
        ekey = _entry_key(root, path)
        folder = _match_dir(root, ekey)
        index = (indexes or {}).get(ekey) or _read_index(folder) or {}
        names = {c for k, c in index.get("fingerprints", {}).items() if c and k in live}
        out.extend(str(folder / c) for c in sorted(names))
    return out


def _time_filter(column: str, since: datetime | None, until: datetime | None) -> str:
    conds = []
    if since is not None:
        conds.append(f"{column} >= TIMESTAMPTZ '{since.astimezone(UTC).isoformat()}'")
    if until is not None:
        conds.append(f"{column} < TIMESTAMPTZ '{until.astimezone(UTC).isoformat()}'")
    return " AND ".join(conds) if conds else "TRUE"


def _sql_list(paths: list[str]) -> str:
    return "[" + ", ".join("'" + p.replace("'", "''") + "'" for p in paths) + "]"


def _summarize(report: ClassifyReport, root: Path, files: list[Path], indexes: dict[str, dict[str, Any]],
               patterns: list[Pattern], keys: list[str], since: datetime | None, until: datetime | None) -> None:
    live = set(keys)
    by_key: dict[str, list[Pattern]] = {}
    for p, k in zip(patterns, keys, strict=True):
        by_key.setdefault(k, []).append(p)
    file_indexes = [indexes.get(_entry_key(root, f)) or {} for f in files]
    live_hash = _live_hash(live)
    if since is None and until is None and all(
            (i.get("summary") or {}).get("live") == live_hash for i in file_indexes):
        # every file's index summarises the current catalog: no need to read the chunks
        counts: dict[str, int] = Counter()
        for i in file_indexes:
            counts.update(i["summary"]["counts"])
            report.entries += int(i.get("rows", 0))
            report.matched_entries += int(i["summary"]["matched_rows"])
        _fill_report(report, files, file_indexes, patterns, keys, by_key, counts)
        return
    con = connect()
    try:
        if files:
            if since is None and until is None:
                report.entries = sum(int((indexes.get(_entry_key(root, f)) or {}).get("rows")
                                         or pq.ParquetFile(f).metadata.num_rows) for f in files)
            else:
                report.entries = con.execute(
                    f"SELECT count(*) FROM read_parquet({_sql_list([str(f) for f in files])}, hive_partitioning=false)"
                    f" WHERE {_time_filter('timestamp', since, until)}").fetchall()[0][0]
        chunks = _chunk_files(root, files, indexes, live)
        counts: dict[str, int] = {}
        if chunks:
            where = _time_filter("timestamp", since, until)
            src = f"read_parquet({_sql_list(chunks)}, hive_partitioning=false)"
            keylist = ", ".join(f"'{k}'" for k in live)
            rows = con.execute(f"SELECT fingerprint, count(*) FROM {src} WHERE {where} AND fingerprint IN ({keylist})"
                               " GROUP BY 1").fetchall()
            counts = dict(rows)
            report.matched_entries = con.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT entry_file, entry_row FROM {src} WHERE {where} "
                f"AND fingerprint IN ({keylist}))").fetchall()[0][0]
    finally:
        con.close()
    _fill_report(report, files, file_indexes, patterns, keys, by_key, counts)


def _fill_report(report: ClassifyReport, files: list[Path], file_indexes: list[dict[str, Any]],
                 patterns: list[Pattern], keys: list[str], by_key: dict[str, list[Pattern]],
                 counts: dict[str, int]) -> None:
    for p, k in zip(patterns, keys, strict=True):
        report.matches[p.id] = counts.get(k, 0)
        report.categories[p.category] = report.categories.get(p.category, 0) + counts.get(k, 0)
    report.unclassified = report.entries - report.matched_entries
    fields = {p.field for p in patterns}
    for index in file_indexes:
        report.cut += max((index.get("cut", {}).get(fld, 0) for fld in fields), default=0)
        for src_name, dest in (("timeouts", report.timeouts), ("skipped", report.skipped)):
            for k, n in index.get(src_name, {}).items():
                for p in by_key.get(k, []):
                    dest[p.id] = dest.get(p.id, 0) + n
    report.slow_patterns = [_slow_pattern(p, report.timeouts.get(p.id, 0), report.skipped.get(p.id, 0))
                            for p in patterns if report.timeouts.get(p.id) or report.skipped.get(p.id)]


def _slow_pattern(pattern: Pattern, timeouts: int, skipped: int) -> dict[str, Any]:
    """What to tell about a pattern whose searches timed out or were skipped (`ClassifyReport.slow_patterns`)."""
    counts = f"{timeouts} text(s) timed out and {skipped} were skipped (counted as not matching)"
    if pattern.time_limited:
        found = pattern.analysis
        why = found.risk.message if found.risk else f"it is not proven linear ({found.unanalysed})"
        fix = (f"{why}; rewrite the regex so that `logaudit catalog check` accepts it without "
               f"`allow_backtracking`" + (f" ({found.risk.hint})" if found.risk else ""))
    else:
        fix = (f"they are longer than {LONG_TEXT} characters and RE2 could not decide them; start the regex "
               "with a literal so that fewer start positions are tried")
    return {"pattern_id": pattern.id, "file": pattern.file, "line": pattern.line, "timeouts": timeouts,
            "skipped": skipped, "message": f"{counts}: {fix}"}


# =============================================================================== DuckDB views
def patterns_table(catalog: Catalog, max_chars: int = DEFAULT_MAX_CHARS) -> pa.Table:
    """The loaded patterns as an Arrow table (the `patterns` view)."""
    pats = list(catalog)
    plans = [plan_pattern(p, verify=False) for p in pats]
    return pa.table({
        "pattern_id": pa.array([p.id for p in pats], pa.string()),
        "category": pa.array([p.category for p in pats], pa.string()),
        "title": pa.array([p.title for p in pats], pa.string()),
        "catalog": pa.array([p.catalog for p in pats], pa.string()),
        "field": pa.array([p.field for p in pats], pa.string()),
        "regex": pa.array([p.regex for p in pats], pa.string()),
        "tags": pa.array([list(p.tags) for p in pats], pa.list_(pa.string())),
        "description": pa.array([p.description for p in pats], pa.string()),
        "engine_mode": pa.array([pl.mode for pl in plans], pa.string()),
        "fingerprint": pa.array([cache_key(p, max_chars) for p in pats], pa.string()),
        "file": pa.array([p.file for p in pats], pa.string()),
        "line": pa.array([p.line for p in pats], pa.int32()),
    })


def register_views(con: duckdb.DuckDBPyConnection, store: Any, catalog: Catalog, *,
                   since: datetime | None = None, until: datetime | None = None, classify: bool = True,
                   workers: int | None = None, max_chars: int = DEFAULT_MAX_CHARS,
                   progress: Progress | None = None) -> ClassifyReport | None:
    """Create temp views `entries`, `matches`, `patterns`, `unclassified` on `con`.

    With `classify` (the default) the store is first brought up to date with the catalog
    (cheap when cached), so queries always reflect the catalog as it is now.
    """
    report = None
    if classify:
        report = classify_store(store, catalog, since, until, progress, workers=workers, max_chars=max_chars,
                                summarize=False)
    root = Path(store.root)
    files = store.entry_files(since, until)
    ptable = patterns_table(catalog, max_chars)
    con.register("logaudit_patterns_table", ptable)
    con.execute("CREATE OR REPLACE TEMP VIEW patterns AS SELECT * FROM logaudit_patterns_table")
    where = _time_filter("timestamp", since, until)
    if files:
        con.execute(f"CREATE OR REPLACE TEMP VIEW entries AS SELECT * FROM "
                    f"read_parquet({_sql_list([str(f) for f in files])}, hive_partitioning=false) WHERE {where}")
    else:
        con.register("logaudit_empty_entries", ENTRY_SCHEMA.empty_table())
        con.execute("CREATE OR REPLACE TEMP VIEW entries AS SELECT * FROM logaudit_empty_entries")
    live = set(ptable["fingerprint"].to_pylist())
    chunks = _chunk_files(root, files, None, live)
    if chunks:
        src = f"read_parquet({_sql_list(chunks)}, hive_partitioning=false)"
    else:
        con.register("logaudit_empty_matches", CHUNK_SCHEMA.empty_table())
        src = "logaudit_empty_matches"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW matches AS
        SELECT m.log_name, m.insert_id, m.timestamp, m.service, m.revision,
               p.pattern_id, p.category, p.title, m.fields_json,
               p.catalog, m.entry_file, m.entry_row, m.fingerprint
        FROM {src} m JOIN logaudit_patterns_table p ON m.fingerprint = p.fingerprint
        WHERE {_time_filter('m.timestamp', since, until)}
    """)
    con.execute("""
        CREATE OR REPLACE TEMP VIEW unclassified AS
        SELECT e.* FROM entries e
        WHERE NOT EXISTS (
            SELECT 1 FROM matches m
            WHERE m.log_name IS NOT DISTINCT FROM e.log_name
              AND m.insert_id IS NOT DISTINCT FROM e.insert_id
              AND m.timestamp = e.timestamp)
    """)
    return report


def require_store(path: str | os.PathLike | None) -> Any:
    """Open an existing store (used by the CLI)."""
    from logaudit.store import Store

    store = Store(path, create=False) if path is not None else Store(create=False)
    if not (Path(store.root) / "entries").is_dir():  # pragma: no cover - Store creates it
        raise StoreError(f"{store.root}: not a logaudit store")
    return store


__all__ = [
    "ClassifyReport", "CompiledCatalog", "DEFAULT_MAX_CHARS", "MatchResult", "Plan", "SLOW_PATTERNS_KEY", "cache_key",
    "classify_store", "classify_table", "compile_patterns", "match_table", "match_texts", "patterns_table",
    "plan_pattern", "register_views",
]
