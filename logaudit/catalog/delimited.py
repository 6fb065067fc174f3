"""Vectorized search and field extraction for "literal-delimited" patterns.

A pattern like ``\\bCOMPLETED: session (?P<id>\\S+) for user_id='(?P<user>[^']*)'(?:, x='(?P<x>[^']*)')?``
is a literal, then runs of a class that stop at a literal (or at the end), then at most one
optional tail of the same shape. Such a pattern is decided without backtracking: at the first
occurrence of its leading literal each run is the longest run of its class (the next literal
starts with a character the class excludes, so a shorter run cannot be followed by it). NumPy
does that for all texts at once on their UTF-8 bytes, which is several times quicker than one
`regex` search per text when a pattern matches and extracts fields on many rows.

Texts where this is not conclusive -- the first occurrence fails but a later one might match,
or the character before it is not ASCII and a ``\\b`` must be decided -- are returned as
undecided; the caller asks the `regex` module. The result equals a per-text
``pattern.compiled.search`` (property-tested against it).
"""

from __future__ import annotations

import re._constants as sre_c
import re._parser as sre_parse
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import regex

from logaudit.catalog.catalog import Pattern, normalize_for_re

#: A run's class may exclude at most this many characters (its stop set is searched for).
MAX_STOP_CHARS = 64


@dataclass(frozen=True)
class _Lit:
    text: bytes


@dataclass(frozen=True)
class _Run:
    name: str | None
    stops: tuple[bytes, ...]  # UTF-8 encodings of the characters the class excludes
    minimum: int


@dataclass(frozen=True)
class _Opt:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class DelimitedPlan:
    """How to decide one pattern on bytes: items after the leading literal."""

    lead: bytes
    word_start: bool  # `\b` before the leading literal (whose first character is a word character)
    items: tuple[Any, ...]
    names: tuple[str, ...]
    word_end: bool = False  # `\b` after the last literal (whose last character is a word character)

    @property
    def required(self) -> tuple[str, ...]:
        """Groups that take part in every match (those outside the optional tail)."""
        return tuple(item.name for item in self.items if isinstance(item, _Run) and item.name is not None)


@dataclass
class DelimitedResult:
    """Per text: matched (decided), undecided, and the named groups' values (None: no match / not taking part)."""

    matched: np.ndarray
    undecided: np.ndarray
    groups: dict[str, pa.Array]


class _NotDelimited(Exception):
    pass


@cache
def _all_chars() -> str:
    codes = np.concatenate([np.arange(0xD800, dtype=np.uint32), np.arange(0xE000, 0x110000, dtype=np.uint32)])
    return codes.astype("<u4").tobytes().decode("utf-32-le")


@cache
def _complement(source: str, flags: int) -> tuple[str, ...] | None:
    """The characters the one-character regex `source` does not match, or None when there are many."""
    rx = regex.compile(f"(?:{source})+", flags)
    chars = _all_chars()
    out: list[str] = []
    pos = 0
    for m in rx.finditer(chars):
        out.extend(chars[pos:m.start()])
        if len(out) > MAX_STOP_CHARS:
            return None
        pos = m.end()
    out.extend(chars[pos:])
    return tuple(out) if len(out) <= MAX_STOP_CHARS else None


_CATEGORY = {sre_c.CATEGORY_DIGIT: r"\d", sre_c.CATEGORY_NOT_DIGIT: r"\D", sre_c.CATEGORY_WORD: r"\w",
             sre_c.CATEGORY_NOT_WORD: r"\W", sre_c.CATEGORY_SPACE: r"\s", sre_c.CATEGORY_NOT_SPACE: r"\S"}


def _one_char_source(op: Any, av: Any) -> str:
    """A `regex` source matching what this one-character parse node matches."""
    if op == sre_c.ANY:
        return "."
    if op == sre_c.NOT_LITERAL:
        return f"[^\\U{av:08x}]"
    if op == sre_c.IN:
        parts = []
        for iop, iav in av:
            if iop == sre_c.NEGATE:
                parts.append("^")
            elif iop == sre_c.LITERAL:
                parts.append(f"\\U{iav:08x}")
            elif iop == sre_c.RANGE:
                parts.append(f"\\U{iav[0]:08x}-\\U{iav[1]:08x}")
            elif iop == sre_c.CATEGORY and iav in _CATEGORY:
                parts.append(_CATEGORY[iav])
            else:
                raise _NotDelimited
        return "[" + "".join(parts) + "]"
    raise _NotDelimited


def _run(node: tuple[Any, Any], name: str | None, flags: int) -> _Run:
    op, av = node
    if op != sre_c.MAX_REPEAT:
        raise _NotDelimited
    lo, hi, sub = av
    if lo > 1 or hi != sre_c.MAXREPEAT or len(sub) != 1:
        raise _NotDelimited
    (cop, cav), = list(sub)
    stops = _complement(_one_char_source(cop, cav), flags)
    if stops is None:
        raise _NotDelimited
    return _Run(name, tuple(c.encode() for c in stops), lo)


def _sequence(items: list[Any], names: dict[int, str], flags: int, *, top: bool) -> tuple[Any, ...]:
    out: list[Any] = []
    lit = ""
    for k, (op, av) in enumerate(items):
        if op == sre_c.LITERAL:
            lit += chr(av)
            continue
        if lit:
            out.append(_Lit(lit.encode()))
            lit = ""
        if op == sre_c.SUBPATTERN:
            group, add, dele, sub = av
            if add or dele or group not in names or len(sub) != 1:
                raise _NotDelimited
            out.append(_run(list(sub)[0], names[group], flags))
        elif op == sre_c.MAX_REPEAT and av[0] == 0 and av[1] == 1 and top and k == len(items) - 1:
            # an optional tail, `(?:...)?` (the parser inlines the non-capturing group)
            inner = _sequence(list(av[2]), names, flags, top=False)
            if not inner or not isinstance(inner[0], _Lit):
                raise _NotDelimited
            out.append(_Opt(inner))
        else:
            out.append(_run((op, av), None, flags))
    if lit:
        out.append(_Lit(lit.encode()))
    # a run must end where the next literal starts: its class must exclude that literal's first character
    for a, b in zip(out, out[1:], strict=False):
        if isinstance(a, _Run):
            nxt = b.items[0] if isinstance(b, _Opt) else b
            if not isinstance(nxt, _Lit) or not any(nxt.text.startswith(s) for s in a.stops):
                raise _NotDelimited
    return tuple(out)


@cache
def _plan_for(source: str, flags: int) -> DelimitedPlan | None:
    try:
        tree = sre_parse.parse(source, flags)
    except Exception:  # noqa: BLE001 - any syntax `re` does not know: not eligible
        return None
    if tree.state.flags & (sre_c.SRE_FLAG_IGNORECASE | sre_c.SRE_FLAG_MULTILINE | sre_c.SRE_FLAG_VERBOSE
                           | sre_c.SRE_FLAG_LOCALE):
        return None
    ascii_only = bool(tree.state.flags & sre_c.SRE_FLAG_ASCII)
    rx_flags = (regex.DOTALL if tree.state.flags & sre_c.SRE_FLAG_DOTALL else 0) | (regex.ASCII if ascii_only else 0)
    names = {v: k for k, v in tree.state.groupdict.items()}
    if tree.state.groups - 1 != len(names):  # unnamed capturing groups: leave to `regex`
        return None
    items = list(tree)
    word_start = word_end = False
    if items and items[0] == (sre_c.AT, sre_c.AT_BOUNDARY):
        word_start = True
        items = items[1:]
    if len(items) > 1 and items[-1] == (sre_c.AT, sre_c.AT_BOUNDARY) and items[-2][0] == sre_c.LITERAL:
        if not regex.match(r"\w", chr(items[-2][1])) or (ascii_only and items[-2][1] > 127):
            return None
        word_end = True
        items = items[:-1]
    try:
        seq = _sequence(items, names, rx_flags, top=True)
    except (_NotDelimited, ValueError):
        return None
    if not seq or not isinstance(seq[0], _Lit):
        return None
    lead = seq[0].text.decode()
    if word_start and (not regex.match(r"\w", lead[0]) or (ascii_only and not lead[0].isascii())):
        return None
    if word_end and not isinstance(seq[-1], _Lit):
        return None
    order = tuple(n for n, _ in sorted(tree.state.groupdict.items(), key=lambda kv: kv[1]))
    return DelimitedPlan(seq[0].text, word_start, seq[1:], order, word_end)


def delimited_plan(pattern: Pattern) -> DelimitedPlan | None:
    """The pattern's delimited plan, or None when it is not of that shape (see the module docstring)."""
    if pattern.ignore_case or pattern.allow_backtracking:
        return None
    try:
        source = normalize_for_re(pattern.regex)
    except ValueError:  # `regex`-only syntax (fuzzy matching): not this shape
        return None
    return _plan_for(source, 0)


# ------------------------------------------------------------------------------------- evaluation
_ASCII_WORD = np.zeros(256, dtype=bool)
_ASCII_WORD[[ord(c) for c in map(chr, range(128)) if regex.match(r"\w", c)]] = True


class _Bytes:
    """The UTF-8 bytes of a string array, with each text's start and end."""

    def __init__(self, texts: pa.Array) -> None:
        if texts.type not in (pa.string(), pa.large_string()):
            texts = texts.cast(pa.large_string())
        wide = texts.type == pa.large_string()
        bufs = texts.buffers()
        offsets = np.frombuffer(bufs[1], dtype=np.int64 if wide else np.int32, count=len(texts) + 1,
                                offset=texts.offset * (8 if wide else 4)).astype(np.int64)
        self.type, self.buffer = texts.type, bufs[2] if bufs[2] is not None else pa.py_buffer(b"")
        self.data = np.frombuffer(self.buffer, dtype=np.uint8)
        self.start, self.end = offsets[:-1], offsets[1:]
        self._stops: dict[tuple[bytes, ...], np.ndarray] = {}

    def stops(self, chars: tuple[bytes, ...]) -> np.ndarray:
        """Sorted positions where any of these characters starts."""
        hit = self._stops.get(chars)
        if hit is None:
            data = self.data
            mask = np.zeros(len(data), dtype=bool)
            for lo, hi in _ranges(sorted(c[0] for c in chars if len(c) == 1)):  # compares beat a lookup table
                mask |= (data == lo) if lo == hi else ((data >= lo) & (data <= hi))
            multi = [c for c in chars if len(c) > 1]
            if multi:  # few positions hold a lead byte: check the rest of each character there
                leads = np.zeros(256, dtype=bool)
                leads[[c[0] for c in multi]] = True
                cand = np.flatnonzero(data >= min(c[0] for c in multi))
                cand = cand[leads[data[cand]]]
                for ch in multi:
                    at = cand[cand + len(ch) <= len(data)]
                    sel = np.ones(len(at), dtype=bool)
                    for j, byte in enumerate(ch):
                        sel &= data[at + j] == byte
                    mask[at[sel]] = True
            hit = self._stops[chars] = np.flatnonzero(mask)
        return hit

    def literal_at(self, pos: np.ndarray, end: np.ndarray, lit: bytes) -> np.ndarray:
        """Whether `lit` starts at each position (and fits before the text's end)."""
        ok = pos + len(lit) <= end
        if not ok.any():
            return ok
        at = pos[ok]
        if len(lit) >= 8:  # compare 8 bytes at a time (unaligned 64-bit words over the bytes)
            words = np.lib.stride_tricks.as_strided(self.data, shape=(len(self.data) - 7, 8), strides=(1, 1))
            words = words.view("<u8")[:, 0]
            hit = np.ones(len(at), dtype=bool)
            for k in (*range(0, len(lit) - 7, 8), len(lit) - 8):
                hit &= words[at + k] == np.frombuffer(lit[k:k + 8], dtype="<u8")[0]
        else:
            hit = (self.data[at[:, None] + np.arange(len(lit))] == np.frombuffer(lit, dtype=np.uint8)).all(axis=1)
        ok[ok] = hit
        return ok


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in values:
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _strings(b: _Bytes, starts: np.ndarray, ends: np.ndarray, valid: np.ndarray) -> pa.Array:
    """The bytes [starts, ends) of each text as strings, null where not `valid`.

    The ranges are cut out of the texts' own buffer: an array over that buffer whose values are
    the ranges and the gaps between them (offsets s0, e0, s1, e1, ...; a text's ranges lie in
    order inside it), of which `take` copies every other value.
    """
    n = len(starts)
    s = np.where(valid, starts, b.start)  # an empty range at its text's start: still in order
    e = np.where(valid, ends, b.start)
    offsets = np.empty(2 * n + 1, dtype=np.int64 if b.type == pa.large_string() else np.int32)
    offsets[0:-1:2], offsets[1::2] = s, e
    offsets[-1] = e[-1] if n else 0
    spans = pa.Array.from_buffers(b.type, 2 * n, [None, pa.py_buffer(offsets), b.buffer])
    got = spans.take(pa.array(np.arange(0, 2 * n, 2)))
    validity = pa.array(valid).buffers()[1]
    out = pa.Array.from_buffers(b.type, n, [validity, *got.buffers()[1:]], null_count=int(n - valid.sum()))
    return out.cast(pa.string()) if out.type != pa.string() else out


def _walk(b: _Bytes, items: tuple[Any, ...], rows: np.ndarray, cur: np.ndarray,
          spans: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Advance `cur` (positions of `rows`) through `items`: (which rows got through, where they are)."""
    ok = np.ones(len(rows), dtype=bool)
    end = b.end[rows]
    for item in items:
        if isinstance(item, _Lit):
            ok &= b.literal_at(cur, end, item.text)
            cur = np.where(ok, cur + len(item.text), cur)
        elif isinstance(item, _Run):
            stops = b.stops(item.stops)
            if len(stops):
                nxt = np.searchsorted(stops, cur)
                stop = np.minimum(np.where(nxt < len(stops), stops[np.minimum(nxt, len(stops) - 1)], end), end)
            else:  # none of its stop characters anywhere: every run goes to the end of its text
                stop = end.copy()
            if item.minimum:
                ok &= stop > cur
            if item.name is not None:
                s, e, v = spans[item.name]
                s[rows], e[rows], v[rows] = cur, stop, ok
            cur = np.where(ok, stop, cur)
        else:  # the optional tail: taken where it matches, else its groups do not take part
            took, _ = _walk(b, item.items, rows[ok], cur[ok].copy(), spans)
            for name in _names(item.items):
                spans[name][2][rows[ok][~took]] = False
    return ok, cur


def _names(items: tuple[Any, ...]) -> list[str]:
    out = []
    for item in items:
        if isinstance(item, _Run) and item.name is not None:
            out.append(item.name)
        elif isinstance(item, _Opt):
            out.extend(_names(item.items))
    return out


def search_delimited(plan: DelimitedPlan, texts: pa.Array) -> DelimitedResult:
    """Decide `plan` on every text (a string array) at once; see `DelimitedResult`."""
    n = len(texts)
    found = pc.find_substring(texts, plan.lead.decode())
    found = np.asarray(pc.fill_null(found, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    b = _Bytes(texts)
    matched = np.zeros(n, dtype=bool)
    undecided = np.zeros(n, dtype=bool)
    spans = {name: (np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, bool)) for name in plan.names}
    rows = np.flatnonzero(found >= 0)
    pos = b.start[rows] + found[rows]
    if plan.word_start:  # the character before the literal must not be a word character
        at_start = pos == b.start[rows]
        prev = b.data[np.maximum(pos - 1, 0)] if len(b.data) else np.zeros(len(pos), np.uint8)
        unknown = ~at_start & (prev >= 0x80)
        blocked = ~at_start & ~unknown & _ASCII_WORD[prev]
        undecided[rows[unknown | blocked]] = True  # a later occurrence may still match: ask `regex`
        keep = ~(unknown | blocked)
        rows, pos = rows[keep], pos[keep]
    ok, cur = _walk(b, plan.items, rows, pos + len(plan.lead), spans)
    if plan.word_end:  # the character after the match must not be a word character
        inside = cur < b.end[rows]
        nxt = b.data[np.minimum(cur, max(len(b.data) - 1, 0))] if len(b.data) else np.zeros(len(cur), np.uint8)
        ok &= ~inside | ((nxt < 0x80) & ~_ASCII_WORD[nxt])  # not ASCII after it: `regex` decides
    matched[rows[ok]] = True
    undecided[rows[~ok]] = True
    groups = {}
    for name, (s, e, v) in spans.items():
        groups[name] = _strings(b, s, e, v & matched)
    return DelimitedResult(matched, undecided, groups)
