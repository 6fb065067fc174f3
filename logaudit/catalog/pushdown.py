"""A catalog pattern compiled for RE2, the regex engine of BigQuery's `REGEXP_CONTAINS`/`REGEXP_EXTRACT`.

`re2_plan` gives each pattern a mode:

* ``exact``: the RE2 expression matches the same texts as the pattern (on ASCII texts always; a
  pattern whose `\\d`, `\\w`, `\\b` or case folding reads Unicode differently says
  `recheck_non_ascii`, and its matching rows with a non-ASCII character are checked again locally);
* ``prefilter``: RE2 refuses the pattern (look-around, backreference, a bound above 1000,
  possessive or atomic parts), so the expression is a looser one: every text the pattern matches
  matches it, and its candidate rows are checked again locally with `regex`;
* ``local``: no useful RE2 expression exists; the pattern runs locally on every row.

The translation walks `re`'s parse tree, as `translate` does for Hyperscan, reusing its
character-set model: `re`'s parser is private but exact for the syntax `re` and `regex` share
(what it refuses runs locally), and one parser for both translations keeps them consistent; a
hand-written tokenizer would have to re-learn every escape and flag rule.

>>> from logaudit.catalog.catalog import default_catalog_paths, load_catalogs
>>> cat = load_catalogs(default_catalog_paths())
>>> re2_plan(cat.get("ws-auth-failure")).mode
'exact'
>>> plan = re2_plan(cat.get("golden-path-other-failure"))
>>> plan.mode, plan.reason
('prefilter', 'look-ahead (?! at column 32')
"""

from __future__ import annotations

import functools
import re._constants as sre_c
from dataclasses import dataclass, field
from typing import Any

import re2

from logaudit.catalog.catalog import Catalog, Pattern
from logaudit.catalog.translate import (
    ALL_ASCII,
    ASCII_EXACT,
    ASCII_WORD,
    EXACT,
    INEXACT,
    CharSet,
    class_set,
    fold_literal,
    parse_pattern,
)
from logaudit.core.errors import CatalogError
from logaudit.core.googlesql import string_literal

MODES: tuple[str, ...] = ("exact", "prefilter", "local")
#: RE2's largest repetition count.
MAX_REPEAT = 1000


def sql_budget(regex_text: str) -> int:
    """The most bytes `contains_sql` writes for a pattern: 48 + 5 per regex character (a
    case-insensitive letter becomes a class). A bound, not the usual size: 5,000 realistic
    patterns (about 40 characters) take about 680 KB of a query, 136 bytes each, under BigQuery's
    1,024 KB query text limit (tests/warehouse/test_query_budget.py measures it)."""
    return 48 + 5 * len(regex_text)

_NON_ASCII = r"\x{80}-\x{10ffff}"
_CONTROL = {"\n": r"\n", "\t": r"\t", "\r": r"\r"}
_META = frozenset("\\.+*?()|[]{}^$-")
_ATOM = re2.compile(r"\(\?:(?:\\.|[^()\\])*\)|\[(?:\\.|[^\]\\])*\]|\\x\{[0-9a-f]+\}|\\.|\(\?s:\.\)|[^\\]")
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = 64 << 20  # BigQuery's limit is not documented; RE2's default (8 MB) is lower


@dataclass(frozen=True)
class Re2Plan:
    """How one pattern runs in BigQuery. `re2` is None in mode ``local``; `extract` maps each
    named group to an RE2 expression with that group as its only capturing group (mode
    ``exact`` only; else fields are extracted locally from the re-checked rows)."""

    pattern_id: str
    mode: str
    re2: str | None
    reason: str | None = None
    recheck_non_ascii: bool = False
    extract: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.pattern_id, "mode": self.mode, "re2": self.re2, "reason": self.reason,
                "recheck_non_ascii": self.recheck_non_ascii, "extract": dict(self.extract)}


class _Untranslatable(Exception):
    pass


class _Walk:
    """One translation of a parse tree: RE2 text, its exactness and why it is not exact."""

    def __init__(self, src: str, capture: int | None) -> None:
        self.src = src
        self.capture = capture
        self.exact = EXACT
        self.reasons: list[str] = []
        self.groups: dict[int, str] = {}
        self.text = ""

    def loosen(self, level: int, reason: str | None = None) -> None:
        self.exact = min(self.exact, level)
        if reason and reason not in self.reasons:
            self.reasons.append(reason)

    def column(self, token: str) -> str:
        at = self.src.find(token)
        return f"{token} at column {at + 1}" if at >= 0 else token

    def seq(self, items: list[Any], flags: int, top: bool = False) -> str:
        out: list[str] = []
        # case-insensitive ASCII literals RE2's (?i) folds as `regex` does (all but i and I, which
        # `regex` folds onto U+0130 and U+0131 and RE2 does not: compared over every code point)
        run: list[str] = []
        for i, (op, av) in enumerate(items):
            if op == sre_c.LITERAL and flags & sre_c.SRE_FLAG_IGNORECASE and av < 128 and chr(av) not in "iI":
                run.append(_char(chr(av)))
                continue
            if run:
                out.append(_icase_run(run))
                run = []
            if op == sre_c.AT:
                out.append(self.at(av, flags, items[:i], items[i + 1:], top))
            else:
                out.append(self.node(op, av, flags))
        if run:
            out.append(_icase_run(run))
        return "".join(out)

    def at(self, av: Any, flags: int, before: list[Any], after: list[Any], top: bool) -> str:
        multiline = bool(flags & sre_c.SRE_FLAG_MULTILINE)
        if av == sre_c.AT_BEGINNING:
            return "(?m:^)" if multiline else r"\A"
        if av == sre_c.AT_BEGINNING_STRING:
            return r"\A"
        if av == sre_c.AT_END_STRING:
            return r"\z"
        if av == sre_c.AT_END:
            if multiline:
                return "(?m:$)"
            if top and not after:  # `$`: the end, or before a last newline
                return r"\n?\z"
            self.loosen(INEXACT, "`$` inside the pattern (RE2 reads it as the very end)")
            return ""
        if av == sre_c.AT_BOUNDARY:
            near = [_first(after, flags), _first(list(reversed(before)), flags, last=True)]
            if any(cs is not None and cs.non == "none" and cs.ascii and cs.ascii <= ASCII_WORD for cs in near):
                # RE2's \b is ASCII: next to a certain ASCII word character it is the same on ASCII
                # text and looser on other text
                self.loosen(ASCII_EXACT)
                return r"\b"
        self.loosen(INEXACT, "`\\b` or `\\B` next to a character that may not be an ASCII letter")
        return ""

    def node(self, op: Any, av: Any, flags: int) -> str:
        if op in (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.IN, sre_c.ANY, sre_c.CATEGORY):
            return self.charset(op, av, flags)
        if op == sre_c.BRANCH:
            return "(?:" + "|".join(self.seq(list(b), flags) for b in av[1]) + ")"
        if op == sre_c.SUBPATTERN:
            group, add, dele, sub = av
            inner = self.seq(list(sub), (flags | add) & ~dele)
            if group is not None:
                self.groups[group] = inner
            return f"({inner})" if group is not None and group == self.capture else f"(?:{inner})"
        if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT):
            return self.repeat(op, av, flags)
        if op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            behind = av[0] < 0
            token = ("(?<" if behind else "(?") + ("!" if op == sre_c.ASSERT_NOT else "=")
            self.loosen(INEXACT, f"look-{'behind' if behind else 'ahead'} {self.column(token)}")
            return ""  # a zero-width test only narrows: without it the expression is looser
        if op == sre_c.ATOMIC_GROUP:
            self.loosen(INEXACT, f"atomic group {self.column('(?>')}")
            return f"(?:{self.seq(list(av), flags)})"
        if op == sre_c.GROUPREF:
            self.loosen(INEXACT, f"backreference \\{av}")
            # the text a group matched matches the group's own expression
            return f"(?:{self.groups[av]})" if av in self.groups else "(?s:.*)"
        if op == sre_c.GROUPREF_EXISTS:
            self.loosen(INEXACT, "conditional group (?(")
            _, yes, no = av
            return f"(?:{self.seq(list(yes), flags)}|{self.seq(list(no), flags) if no else ''})"
        raise _Untranslatable(str(op))

    def repeat(self, op: Any, av: Any, flags: int) -> str:
        lo, hi, sub = av
        inner = self.seq(list(sub), flags)
        if op == sre_c.POSSESSIVE_REPEAT:
            self.loosen(INEXACT, "possessive quantifier")  # it matches a subset of the greedy one
        unbounded = hi == sre_c.MAXREPEAT
        if lo > MAX_REPEAT or (not unbounded and hi > MAX_REPEAT):
            self.loosen(INEXACT, f"repetition bound {lo if unbounded else hi} > {MAX_REPEAT}")
            lo, hi, unbounded = min(lo, MAX_REPEAT), sre_c.MAXREPEAT, True
        if unbounded:
            count = {0: "*", 1: "+"}.get(lo, f"{{{lo},}}")
        else:
            count = "?" if (lo, hi) == (0, 1) else f"{{{lo}}}" if lo == hi else f"{{{lo},{hi}}}"
        body = inner if _ATOM.fullmatch(inner) else f"(?:{inner})"
        return body + count + ("?" if op == sre_c.MIN_REPEAT else "")

    def charset(self, op: Any, av: Any, flags: int) -> str:
        if op == sre_c.ANY:
            return "(?s:.)" if flags & sre_c.SRE_FLAG_DOTALL else r"[^\n]"
        if op == sre_c.LITERAL and not flags & sre_c.SRE_FLAG_IGNORECASE:
            return _char(chr(av))
        cs, ex = _charset(op, av, flags)
        if ex < EXACT:
            self.loosen(ex, "a character class RE2 cannot spell" if ex == INEXACT else None)
        return _class_text(cs)


def _icase_run(run: list[str]) -> str:
    text = "".join(run)
    return f"(?i:{text})" if any(c.isalpha() for c in text) else text


def _charset(op: Any, av: Any, flags: int) -> tuple[CharSet, int]:
    if op == sre_c.LITERAL:
        cs = fold_literal(chr(av), flags)
        return cs, cs.exactness
    if op == sre_c.NOT_LITERAL:
        cs = fold_literal(chr(av), flags)
        if cs.non == "none":  # an ASCII character's complement is exact
            return CharSet(ALL_ASCII - cs.ascii, "all"), EXACT
        return cs.negate(), ASCII_EXACT
    if op == sre_c.CATEGORY:
        return class_set([(op, av)], flags)
    if op == sre_c.IN:
        return class_set(list(av), flags)
    return CharSet(ALL_ASCII, "all"), EXACT  # ANY with DOTALL


def _first(items: list[Any], flags: int, last: bool = False) -> CharSet | None:
    """The characters the sequence's first (with `last`: its reversed list's first) item can
    match, when that item consumes exactly one character or is a group starting with one."""
    if not items:
        return None
    op, av = items[0]
    if op in (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.IN, sre_c.CATEGORY, sre_c.ANY):
        return _charset(op, av, flags)[0]
    if op == sre_c.SUBPATTERN:
        sub = list(av[3])
        return _first(list(reversed(sub)) if last else sub, (flags | av[1]) & ~av[2], last)
    if op in (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, sre_c.POSSESSIVE_REPEAT) and av[0] >= 1:
        sub = list(av[2])
        return _first(list(reversed(sub)) if last else sub, flags, last)
    if op == sre_c.BRANCH:
        sets = [_first(list(reversed(b)) if last else list(b), flags, last) for b in av[1]]
        if any(s is None for s in sets):
            return None
        return functools.reduce(CharSet.union, sets)  # type: ignore[arg-type]
    return None


def _char(ch: str) -> str:
    """One character as RE2 text without quotes or line breaks (the SQL literal stays raw)."""
    if ch.isascii() and (ch.isalnum() or ch == " "):
        return ch
    if ch in _CONTROL:
        return _CONTROL[ch]
    if ch in _META:
        return "\\" + ch
    if ch.isascii() and ch.isprintable() and ch not in "'\"":
        return ch
    return f"\\x{{{ord(ch):x}}}"


def _class_text(cs: CharSet) -> str:
    body = ""
    for lo, hi in _ranges(sorted(cs.ascii)):
        body += _char(chr(lo)) if lo == hi else f"{_char(chr(lo))}-{_char(chr(hi))}"
    if cs.non in ("all", "some"):
        body += _NON_ASCII
    elif isinstance(cs.non, frozenset):
        body += "".join(_char(c) for c in sorted(cs.non))
    if not body:
        return r"[^\x{0}-\x{10ffff}]"  # matches nothing
    if cs.non == "all" and len(cs.ascii) > 64:  # shorter as a negated class
        return "[^" + "".join(_char(chr(a)) if a == b else f"{_char(chr(a))}-{_char(chr(b))}"
                              for a, b in _ranges(sorted(ALL_ASCII - cs.ascii))) + "]"
    return body if len(cs.ascii) + (0 if cs.non == "none" else 2) == 1 and len(body) <= 6 else f"[{body}]"


def _ranges(codes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for c in codes:
        if out and out[-1][1] == c - 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


@functools.lru_cache(maxsize=4096)
def re2_accepts(expr: str) -> bool:
    """Whether RE2 (the `google-re2` binding) compiles the expression."""
    try:
        re2.compile(expr, options=_RE2_OPTIONS)
    except re2.error:
        return False
    return True


def _translate(pattern: Pattern, tree: Any, capture: int | None = None) -> _Walk | None:
    walk = _Walk(pattern.regex, capture)
    items = list(tree)
    try:
        if len(items) == 1 and items[0][0] == sre_c.BRANCH:  # top-level alternatives: each is "top"
            walk.text = "|".join(walk.seq(list(b), tree.state.flags, top=True) for b in items[0][1][1])
        else:
            walk.text = walk.seq(items, tree.state.flags, top=True)
    except (_Untranslatable, RecursionError):
        return None
    return walk


def re2_plan(pattern: Pattern) -> Re2Plan:
    """How `pattern` runs in BigQuery (see the module docstring)."""
    tree = parse_pattern(pattern)
    walk = _translate(pattern, tree) if tree is not None else None
    if walk is None:
        return Re2Plan(pattern.id, "local", None, "uses syntax only the `regex` module reads" if tree is None
                       else "too complex to translate")
    if not re2_accepts(walk.text):
        return Re2Plan(pattern.id, "local", None, "RE2 refuses even a looser form (too large)")
    if re2.search(walk.text, "") is not None:
        return Re2Plan(pattern.id, "local", None, "; ".join(walk.reasons) + ": without them it matches every text")
    if walk.exact == INEXACT:
        return Re2Plan(pattern.id, "prefilter", walk.text, "; ".join(walk.reasons))
    names = {v: k for k, v in tree.state.groupdict.items()}
    extract = {}
    for group, name in sorted(names.items()):
        ex = _translate(pattern, tree, capture=group)
        if ex is not None and re2_accepts(ex.text):
            extract[name] = ex.text
    return Re2Plan(pattern.id, "exact", walk.text, None, walk.exact == ASCII_EXACT, extract)


def contains_sql(plan: Re2Plan, column: str = "message") -> str | None:
    """The GoogleSQL test for one pattern (None in mode ``local``).

    >>> contains_sql(Re2Plan("p", "exact", r"\\bexit\\(0\\)"))
    "REGEXP_CONTAINS(message, r'\\\\bexit\\\\(0\\\\)')"
    """
    return None if plan.re2 is None else f"REGEXP_CONTAINS({column}, {string_literal(plan.re2)})"


#: Entry columns a pattern's `field` and `when` conditions may read in BigQuery (the entry views').
PUSHDOWN_COLUMNS: frozenset[str] = frozenset((
    "timestamp", "receive_timestamp", "log_name", "log_id", "insert_id", "severity", "severity_num",
    "effective_severity", "effective_severity_num", "service", "revision", "configuration", "location",
    "instance_id", "trace", "http_method", "http_url", "http_path", "http_status", "http_latency_ms",
    "http_user_agent", "message", "audit_method", "audit_revision", "audit_status_code", "audit_resource_name"))
_ASCII_ONLY = r"^[[:ascii:]]*$"


class PushdownError(CatalogError):
    """A pattern that cannot run in BigQuery: its field or a condition reads a column the
    warehouse entry views do not have."""


@dataclass(frozen=True)
class PatternSQL:
    """One pattern in GoogleSQL: rows where `sure` holds match; rows where `candidate` holds are
    checked again locally (their `field` values fetched, then `regex`); None: no such rows."""

    pattern: Pattern
    plan: Re2Plan
    sure: str | None
    candidate: str | None

    @property
    def field(self) -> str:
        return self.pattern.field


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return string_literal(str(v))


def glob_re2(glob: str) -> str:
    """An fnmatch glob (case-sensitive; `*`, `?`, `[seq]`, `[!seq]`) as an anchored RE2 expression.

    >>> glob_re2("api*")
    '^api(?s:.*)$'
    """
    out, i = [], 0
    while i < len(glob):
        c = glob[i]
        i += 1
        if c == "*":
            out.append("(?s:.*)")
        elif c == "?":
            out.append("(?s:.)")
        elif c == "[":
            j = i + (1 if i < len(glob) and glob[i] == "!" else 0)
            j += 1 if j < len(glob) and glob[j] == "]" else 0
            close = glob.find("]", j)
            if close < 0:
                out.append(_char("["))
                continue
            body = glob[i:close]
            neg = body.startswith("!")
            chars = body[1:] if neg else body
            parts, k = [], 0
            while k < len(chars):  # a-z ranges (a reversed one is empty, as in fnmatch), the rest escaped
                if k + 2 < len(chars) and chars[k + 1] == "-":
                    if chars[k] <= chars[k + 2]:
                        parts.append(f"{_char(chars[k])}-{_char(chars[k + 2])}")
                    k += 3
                else:
                    parts.append(_char(chars[k]))
                    k += 1
            if parts:
                out.append(("[^" if neg else "[") + "".join(parts) + "]")
            else:  # nothing in the set: no character, or (negated) any character
                out.append("(?s:.)" if neg else r"[^\x{0}-\x{10ffff}]")
            i = close + 1
        else:
            out.append(_char(c))
    return "^" + "".join(out) + "$"


def condition_sql(cond: Any) -> str:
    """One `when` condition (`catalog.Condition`) in GoogleSQL; NULL values never match.

    >>> from logaudit.catalog.catalog import Condition
    >>> condition_sql(Condition("http_status", "ranges", ((500, 599, True, True),)))
    '((http_status >= 500 AND http_status <= 599))'
    """
    col, op, vals = cond.column, cond.op, cond.value
    if op in (">=", "<="):
        return f"{col} {op} {_value(vals[0])}"
    if op == "eq":
        return f"{col} = {_value(vals[0])}"
    if op == "glob":
        return "(" + " OR ".join(f"REGEXP_CONTAINS({col}, {string_literal(glob_re2(g))})" for g in vals) + ")"
    if op == "ranges":
        parts = []
        for lo, hi, lo_incl, hi_incl in vals:
            bounds = []
            if lo is not None:
                bounds.append(f"{col} {'>=' if lo_incl else '>'} {_value(lo)}")
            if hi is not None:
                bounds.append(f"{col} {'<=' if hi_incl else '<'} {_value(hi)}")
            parts.append("(" + (" AND ".join(bounds) or f"{col} IS NOT NULL") + ")")
        return "(" + " OR ".join(parts) + ")"
    raise ValueError(op)  # pragma: no cover - the catalog validates operators


def pattern_sql(pattern: Pattern, plan: Re2Plan | None = None) -> PatternSQL:
    """The `sure` and `candidate` GoogleSQL of a pattern (`PatternSQL`); raises `PushdownError`
    when its field or a condition reads a column BigQuery's entry views lack.

    >>> from logaudit.catalog.catalog import default_catalog_paths, load_catalogs
    >>> cat = load_catalogs(default_catalog_paths())
    >>> pattern_sql(cat.get("golden-path-other-failure")).sure is None
    True
    """
    plan = plan or re2_plan(pattern)
    for col in (pattern.field, *(c.column for c in pattern.when)):
        if col not in PUSHDOWN_COLUMNS:
            raise PushdownError(f"{pattern.location}: {pattern.id}: reads the column {col!r}, which BigQuery log "
                                "datasets do not give", hint="run this catalog on a local store, or leave the "
                                "pattern out (LOGAUDIT_CATALOG)")
    when = " AND ".join(condition_sql(c) for c in pattern.when)
    test = contains_sql(plan, pattern.field)
    field_present = f"{pattern.field} IS NOT NULL"

    def both(*parts: str | None) -> str:
        return " AND ".join(p for p in (*parts, when or None) if p)

    if plan.mode == "exact":
        if plan.recheck_non_ascii:
            # on other texts the RE2 form is looser (ASCII `\b`, classes widened to every
            # non-ASCII character): the texts it matches are the only candidates
            non_ascii = f"NOT REGEXP_CONTAINS({pattern.field}, r'{_ASCII_ONLY}')"
            return PatternSQL(pattern, plan, both(test, f"REGEXP_CONTAINS({pattern.field}, r'{_ASCII_ONLY}')"),
                              both(test, non_ascii))
        return PatternSQL(pattern, plan, both(test), None)
    if plan.mode == "prefilter":
        return PatternSQL(pattern, plan, None, both(test))
    return PatternSQL(pattern, plan, None, both(field_present))


@dataclass(frozen=True)
class BigQueryCheck:
    """Every pattern's plan, in catalog order, and the count per mode."""

    plans: tuple[tuple[Pattern, Re2Plan], ...]

    @property
    def counts(self) -> dict[str, int]:
        return {m: sum(1 for _, p in self.plans if p.mode == m) for m in MODES}

    def to_dict(self) -> dict[str, Any]:
        return {"modes": self.counts,
                "patterns": [p.to_dict() | {"file": pat.file, "line": pat.line} for pat, p in self.plans]}


def check_bigquery(catalog: Catalog) -> BigQueryCheck:
    """The RE2 plan of every pattern of the catalog (what `catalog check --engine bigquery` prints)."""
    return BigQueryCheck(tuple((p, re2_plan(p)) for p in catalog))


__all__ = ["MAX_REPEAT", "MODES", "PUSHDOWN_COLUMNS", "BigQueryCheck", "PatternSQL", "PushdownError", "Re2Plan",
           "check_bigquery", "condition_sql", "contains_sql", "glob_re2", "pattern_sql", "re2_accepts", "re2_plan",
           "sql_budget"]
